"""`http`: POST the event as JSON to a configured URL (chat-ops, ticketing)."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from handlers.base import (
    HandlerCommon,
    HandlerDefaults,
    Job,
    Outcome,
    Result,
    RunContext,
    parse_common,
    parse_secret,
    parse_url,
    read_secret,
)
from monitor.config.yamlview import View


@dataclass(frozen=True, slots=True)
class HttpSpec(HandlerDefaults):
    """Keys: `url`, `token_file` / `token_env` (sent as a bearer token). Acts on every event
    of its rules but `resolved`."""

    common: HandlerCommon
    url: str
    token_file: str | None
    token_env: str | None

    def run(self, job: Job, ctx: RunContext) -> Result:
        if ctx.dry_run or self.common.dry_run:
            return Result(Outcome.DRY_RUN, f"would POST the event to {self.url}")
        try:
            token = read_secret(self.token_file, self.token_env, ctx.env)
        except OSError as e:
            return Result(Outcome.GAVE_UP, f"cannot read token_file: {e.strerror}")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            r = ctx.session.request(
                "POST",
                self.url,
                json=job.event,
                headers=headers,
                timeout=self.common.timeout_us / 1e6,
            )
        except requests.RequestException as e:
            return Result(Outcome.FAILED, f"POST {self.url}: {type(e).__name__}", retry=True)
        if 200 <= r.status_code < 300:
            return Result(Outcome.DONE, f"POST {self.url}: HTTP {r.status_code}")
        retry = r.status_code >= 500 or r.status_code == 429
        return Result(
            Outcome.FAILED if retry else Outcome.GAVE_UP,
            f"POST {self.url}: HTTP {r.status_code}",
            retry=retry,
        )


def parse(view: View, name: str) -> HttpSpec:
    token_file, token_env = parse_secret(view, "token")
    return HttpSpec(parse_common(view, name), parse_url(view, "url"), token_file, token_env)

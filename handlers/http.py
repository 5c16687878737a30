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
    auth_headers,
    parse_common,
    parse_url,
)
from monitor.config.secrets import Auth, parse_auth, redact
from monitor.config.yamlview import View


@dataclass(frozen=True, slots=True)
class HttpSpec(HandlerDefaults):
    """Keys: `url`, `token_file` / `token_env` (sent as a bearer token, or as `token_header`).
    Acts on every event of its rules but `resolved`."""

    common: HandlerCommon
    url: str
    auth: Auth

    def run(self, job: Job, ctx: RunContext) -> Result:
        shown = redact(self.url)  # the URL's userinfo is sent, never shown
        if ctx.dry_run or self.common.dry_run:
            return Result(Outcome.DRY_RUN, f"would POST the event to {shown}")
        headers = auth_headers(self.auth, ctx.env)
        if isinstance(headers, Result):
            return headers
        try:
            r = ctx.session.request(
                "POST",
                self.url,
                json=job.event,
                headers=headers,
                timeout=self.common.timeout_us / 1e6,
            )
        except requests.RequestException as e:
            return Result(Outcome.FAILED, f"POST {shown}: {type(e).__name__}", retry=True)
        if 200 <= r.status_code < 300:
            return Result(Outcome.DONE, f"POST {shown}: HTTP {r.status_code}")
        retry = r.status_code >= 500 or r.status_code == 429
        return Result(
            Outcome.FAILED if retry else Outcome.GAVE_UP,
            f"POST {shown}: HTTP {r.status_code}",
            retry=retry,
        )


def parse(view: View, name: str) -> HttpSpec:
    url = parse_url(view, "url")
    return HttpSpec(parse_common(view, name), url, parse_auth(view, url))

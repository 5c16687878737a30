"""`provider_status`: for a stalled training, ask the fal.ai queue what became of the request.
COMPLETED -> fetch the result and deliver it through the `replay_webhook` handler named in
`replay_handler`; IN_QUEUE / IN_PROGRESS -> check again after `recheck_interval`; an error or a
404 -> give up, saying so."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests

from handlers.base import (
    HandlerCommon,
    HandlerDefaults,
    Job,
    Outcome,
    References,
    Result,
    RunContext,
    parse_common,
    parse_url,
)
from handlers.replay_webhook import ReplayWebhookSpec
from monitor.config.secrets import parse_secret, read_secret, redact
from monitor.config.yamlview import View


@dataclass(frozen=True, slots=True)
class ProviderStatusSpec(HandlerDefaults):
    """Keys: `base` (the queue API, default https://queue.fal.run), `models` (training type ->
    model id; without the type in the event, each model is tried), `api_key_file` /
    `api_key_env` (sent as `Authorization: Key …`), `recheck_interval` (default 5m),
    `replay_handler` (a `replay_webhook` handler that delivers a finished result)."""

    common: HandlerCommon
    base: str
    models: dict[str, str] = field(default_factory=dict)
    api_key_file: str | None = None
    api_key_env: str | None = None
    recheck_interval_us: int = 300_000_000
    replay_handler: str | None = None

    def wants(self, event: Mapping[str, Any]) -> str | None:
        return "stalled" if event["kind"] == "stalled" and event.get("key") else None

    def references(self) -> References:
        refs = {"replay_handler": self.replay_handler} if self.replay_handler else {}
        return References(handlers=refs)

    def recheck_us(self) -> int:
        return self.recheck_interval_us

    def run(self, job: Job, ctx: RunContext) -> Result:
        if ctx.dry_run or self.common.dry_run:
            return Result(Outcome.DRY_RUN, f"would ask {redact(self.base)} about {job.key}")
        try:
            key = read_secret(self.api_key_file, self.api_key_env, ctx.env)
        except OSError as e:
            return Result(Outcome.GAVE_UP, f"cannot read api_key_file: {e.strerror}")
        headers = {"Authorization": f"Key {key}"} if key else {}
        training_type = job.event["labels"].get("training_type")
        models = (
            [self.models[training_type]]
            if training_type in self.models
            else list(dict.fromkeys(self.models.values()))
        )
        if not models:
            return Result(Outcome.GAVE_UP, "no model ids configured under `models`")
        if not job.key.strip("."):  # "." and ".." would be path steps, not a request id
            return Result(Outcome.GAVE_UP, "the request_id is not usable in a URL")
        rid = quote(job.key, safe="")
        answers = []
        for model in models:
            url = f"{self.base.rstrip('/')}/{model}/requests/{rid}"
            status, body = self._get(ctx, f"{url}/status", headers)
            answers.append(f"{model}: {status if isinstance(status, str) else f'HTTP {status}'}")
            if status == 404:
                continue  # not this model's request
            if isinstance(status, int):
                return Result(
                    Outcome.FAILED,
                    f"queue status: {answers[-1]}",
                    retry=status >= 500 or status == 429,
                )
            state = str(body.get("status", "")).upper()
            if state in ("IN_QUEUE", "IN_PROGRESS"):
                return Result(Outcome.PENDING, f"the provider says {state}; checking again later")
            if state == "COMPLETED":
                return self._deliver(ctx, url, headers, job)
            return Result(Outcome.GAVE_UP, f"the provider says {state or 'nothing'}")
        return Result(
            Outcome.GAVE_UP, "the provider does not know the request (" + "; ".join(answers) + ")"
        )

    def _get(
        self, ctx: RunContext, url: str, headers: dict[str, str]
    ) -> tuple[int | str, dict[str, Any]]:
        try:
            r = ctx.session.request(
                "GET", url, headers=headers, timeout=self.common.timeout_us / 1e6
            )
        except requests.RequestException as e:
            return 503, {"error": type(e).__name__}
        if r.status_code != 200:
            return int(r.status_code), {}
        try:
            data = r.json()
        except ValueError:
            return 502, {}
        return "ok", data if isinstance(data, dict) else {}

    def _deliver(self, ctx: RunContext, url: str, headers: dict[str, str], job: Job) -> Result:
        replay = ctx.handlers.get(self.replay_handler or "")
        if not isinstance(replay, ReplayWebhookSpec):  # config validation names the problem
            return Result(
                Outcome.GAVE_UP, "the provider says COMPLETED, and no replay_handler is configured"
            )
        status, result = self._get(ctx, url, headers)
        if isinstance(status, int):
            return Result(Outcome.FAILED, f"fetching the result: HTTP {status}", retry=True)
        case = replay.status_case
        body = {
            "request_id": job.key,
            "status": "COMPLETED" if case == "upper" else "completed",
            "result": result,
        }
        delivered = replay.post(body, ctx)
        if delivered.outcome in (Outcome.REPLAYED, Outcome.DRY_RUN):
            return Result(
                Outcome.DONE if delivered.outcome == Outcome.REPLAYED else Outcome.DRY_RUN,
                f"the provider says COMPLETED; result delivered ({delivered.detail})",
            )
        return delivered


def parse(view: View, name: str) -> ProviderStatusSpec:
    key_file, key_env = parse_secret(view, "api_key")
    return ProviderStatusSpec(
        common=parse_common(view, name),
        base=parse_url(view, "base", "https://queue.fal.run"),
        models=view.str_map("models"),
        api_key_file=key_file,
        api_key_env=key_env,
        recheck_interval_us=view.duration_us("recheck_interval", "5m"),
        replay_handler=view.opt_str("replay_handler"),
    )

"""`replay_webhook`: the status-normalization fallback. Re-delivers the webhook that aisha-api
dropped, with the status it understands, to the URL in config; the daemon then watches the
journal for the training's end line (verification)."""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from handlers.base import (
    HandlerCommon,
    HandlerDefaults,
    Job,
    Outcome,
    References,
    Result,
    RunContext,
    auth_headers,
    parse_common,
    parse_url,
)
from monitor.config.secrets import Auth, parse_auth, redact
from monitor.config.yamlview import View

MAX_PAYLOAD_CHARS = 64 * 1024
MAX_PAYLOAD_DEPTH = 32


@dataclass(frozen=True, slots=True)
class ReplayWebhookSpec(HandlerDefaults):
    """Keys: `url` (aisha-api's webhook endpoint), `status_case` (lower|upper, default lower),
    `verify_within` (default 2m), `payload_rule` (a `match` rule with `key: request_id` and a
    `payload` group: the logged webhook body to rebuild the replay from), `token_file` /
    `token_env` (sent as a bearer token, or as `token_header`)."""

    common: HandlerCommon
    url: str
    status_case: str
    verify_within_us: int
    payload_rule: str | None
    auth: Auth = field(default_factory=Auth)

    def wants(self, event: Mapping[str, Any]) -> str | None:
        """Only unknown statuses that normalize to a known one, with a request_id, are
        replayed; the normalized status is the idempotency value."""
        if event["kind"] != "unknown_value" or not event.get("key"):
            return None
        normalized = event["labels"].get("normalized", "")
        return normalized or None

    def references(self) -> References:
        return References(rules={"payload_rule": self.payload_rule} if self.payload_rule else {})

    def payload_source(self) -> str | None:
        return self.payload_rule

    def verification_window_us(self) -> int | None:
        return self.verify_within_us

    def run(self, job: Job, ctx: RunContext) -> Result:
        return self.post(build_body(job, self.status_case), ctx)

    def post(self, body: dict[str, Any], ctx: RunContext) -> Result:
        """Deliver `body` to the webhook endpoint (also used by provider_status)."""
        shown = redact(self.url)  # the URL's userinfo is sent, never shown
        if ctx.dry_run or self.common.dry_run:
            return Result(Outcome.DRY_RUN, f"would POST {body!r} to {shown}")
        headers = auth_headers(self.auth, ctx.env)
        if isinstance(headers, Result):
            return headers
        try:
            timeout = self.common.timeout_us / 1e6
            r = ctx.session.request("POST", self.url, json=body, headers=headers, timeout=timeout)
        except requests.ReadTimeout:
            # sent, but no answer in time: it may well have been processed. Another POST could
            # replay it twice, so the journal decides (verification), not a retry.
            return Result(Outcome.REPLAYED, f"POST {shown}: no answer in time; verifying")
        except requests.RequestException as e:
            return Result(Outcome.FAILED, f"POST {shown}: {type(e).__name__}", retry=True)
        if 200 <= r.status_code < 300:
            return Result(
                Outcome.REPLAYED,
                f"POST {shown}: HTTP {r.status_code}, status {body['status']!r}",
            )
        # 5xx and 429 may pass; any other 4xx will not
        retry = r.status_code >= 500 or r.status_code == 429
        outcome = Outcome.FAILED if retry else Outcome.GAVE_UP
        return Result(outcome, f"POST {shown}: HTTP {r.status_code}", retry=retry)


def parse(view: View, name: str) -> ReplayWebhookSpec:
    url = parse_url(view, "url")
    return ReplayWebhookSpec(
        common=parse_common(view, name),
        url=url,
        status_case=view.choice("status_case", ("lower", "upper"), "lower"),
        verify_within_us=view.duration_us("verify_within", "2m"),
        payload_rule=view.opt_str("payload_rule"),
        auth=parse_auth(view, url),
    )


def build_body(job: Job, status_case: str) -> dict[str, Any]:
    """The logged body with the canonical status, else the minimal {request_id, status}."""
    status = job.event["labels"]["normalized"]
    status = status.upper() if status_case == "upper" else status.lower()
    body = parse_payload(job.payload) if job.payload else None
    if body is None or body.get("request_id") != job.key:
        body = {"request_id": job.key}
    body["status"] = status
    return body


def parse_payload(text: str) -> dict[str, Any] | None:
    """A logged Python repr of the webhook body, read as data (ast.literal_eval, never eval),
    within size and depth limits; None unless it is a dict that JSON can carry as it is."""
    if len(text) > MAX_PAYLOAD_CHARS:
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval")  # the parser itself stops at ~200 levels
        if _depth(tree) > MAX_PAYLOAD_DEPTH:
            return None
        value = ast.literal_eval(tree)
        json.dumps(value, allow_nan=False)  # sets, bytes, tuple keys, inf: not a JSON body
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) and all(isinstance(k, str) for k in value) else None


def _depth(tree: ast.AST) -> int:
    """How deeply containers nest in a parsed literal (strings are leaves, whatever they hold)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.Dict | ast.List | ast.Tuple | ast.Set):
            depth += 1
            deepest = max(deepest, depth)
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
    return deepest

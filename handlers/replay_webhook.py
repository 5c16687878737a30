"""`replay_webhook`: the status-normalization fallback (re-deliver a webhook with the status the
service understands). Configuration only; delivery runs from the daemon's outbox."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.base import HandlerCommon, parse_common, parse_url
from monitor.yamlview import View


@dataclass(frozen=True, slots=True)
class ReplayWebhookSpec:
    """Keys: `url` (aisha-api's webhook endpoint), `status_case` (lower|upper, default lower),
    `verify_within` (default 2m), `payload_rule` (a rule capturing the logged webhook body)."""

    common: HandlerCommon
    url: str
    status_case: str
    verify_within_us: int
    payload_rule: str | None


def parse(view: View, name: str) -> ReplayWebhookSpec:
    return ReplayWebhookSpec(
        common=parse_common(view, name),
        url=parse_url(view, "url"),
        status_case=view.choice("status_case", ("lower", "upper"), "lower"),
        verify_within_us=view.duration_us("verify_within", "2m"),
        payload_rule=view.opt_str("payload_rule"),
    )

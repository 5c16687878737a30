"""`http`: POST the event as JSON to a configured URL (chat-ops, ticketing). Configuration only;
requests run from the daemon's outbox."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.base import HandlerCommon, parse_common, parse_secret, parse_url
from monitor.yamlview import View


@dataclass(frozen=True, slots=True)
class HttpSpec:
    """Keys: `url`, `token_file` / `token_env` (sent as a bearer token)."""

    common: HandlerCommon
    url: str
    token_file: str | None
    token_env: str | None


def parse(view: View, name: str) -> HttpSpec:
    token_file, token_env = parse_secret(view, "token")
    return HttpSpec(parse_common(view, name), parse_url(view, "url"), token_file, token_env)

"""`provider_status`: ask the fal.ai queue what became of a stalled training. Configuration only;
requests run from the daemon's outbox."""

from __future__ import annotations

from dataclasses import dataclass, field

from handlers.base import HandlerCommon, parse_common, parse_secret, parse_url
from monitor.yamlview import View


@dataclass(frozen=True, slots=True)
class ProviderStatusSpec:
    """Keys: `base` (the queue API, default https://queue.fal.run), `models` (training type ->
    model id), `api_key_file` / `api_key_env` (sent as `Authorization: Key …`),
    `recheck_interval` (default 5m), `replay_handler` (a `replay_webhook` handler for results)."""

    common: HandlerCommon
    base: str
    models: dict[str, str] = field(default_factory=dict)
    api_key_file: str | None = None
    api_key_env: str | None = None
    recheck_interval_us: int = 300_000_000
    replay_handler: str | None = None


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

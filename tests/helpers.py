"""Small builders shared by the unit and golden tests."""

from __future__ import annotations

from monitor.config.schema import Config, load_config_text
from monitor.core.engine import Engine, engine_for
from monitor.core.model import Entry, Event

T0 = 1_795_000_000_000_000  # 2026-11-18T…Z, in microseconds
S = 1_000_000  # one second in microseconds

PREFIX = "2026-11-27 10:15:02,113 - app.routers.fal_webhook - INFO - "


def entry(msg: str, t_s: float = 0, pid: int = 100, priority: int = 6, host: str = "") -> Entry:
    return Entry(T0 + int(t_s * S), msg, "aisha-api.service", pid, priority, host)


def config(text: str, env: dict[str, str] | None = None) -> Config:
    return load_config_text(text, "test.yaml", env or {})


def engine(text: str) -> Engine:
    cfg = config(text)
    return engine_for(cfg)


def feed(eng: Engine, entries: list[Entry], now_s: float | None = None) -> list[Event]:
    """All events, in the order the engine gives them, ticking to `now_s` at the end."""
    out: list[Event] = []
    for e in entries:
        due, produced = eng.observe(e)
        out += due + produced
    if now_s is not None:
        out += eng.tick(T0 + int(now_s * S))
    return out


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(str(e.kind), e.key) for e in events]

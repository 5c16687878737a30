"""What HTTP shows (/api/v1/state, /api/v1/events, /healthz, /readyz, the status page): the
main loop publishes a `Snapshot` after each commit and a `LoopState` every round; the HTTP
threads read those, never the engine, the store or the loop's own objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor import __version__
from monitor.config.schema import Config
from monitor.core.clock import Clock
from monitor.core.engine import Engine
from monitor.core.model import format_time, us_to_datetime
from monitor.daemon.alerts import AlertBook
from monitor.daemon.health import HealthChecker
from monitor.daemon.outbox import Outbox
from monitor.daemon.state import Position
from rules.base import OpenItems

HEALTHY_WITHIN_S = 30.0  # /healthz: the loop went round within this
SHOWN_PAIRS = 500


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The committed state as the API shows it. Kept raw where formatting costs (open items,
    ages): the HTTP thread formats what it is asked for, the loop only copies references."""

    journal: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    open_items: tuple[tuple[str, OpenItems], ...] = ()  # (rule, its oldest open items)
    alerts: tuple[dict[str, Any], ...] = ()
    alerts_version: int = -1  # the alert book's version they were built from
    handler_queue: dict[str, Any] = field(default_factory=dict)
    rules: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class LoopState:
    """Set by the main loop every round; read by /healthz and /readyz."""

    last_round: float  # monotonic
    caught_up: bool = False
    lag_s: float = 0.0
    source_open: bool = False
    stopping: bool = False
    write_refused: bool = False
    journal_problem: str | None = None  # the followed directory is missing or has no files


def snapshot(
    engine: Engine,
    position: Position,
    book: AlertBook,
    outbox: Outbox,
    config: Config,
    reload_problems: list[str],
    previous: Snapshot,
    jobs_changed: bool,
) -> Snapshot:
    """Built by the main loop after a commit, from what it owns; what did not change since
    `previous` (the alert book, the jobs) is taken over, not queried again."""
    held = tuple(
        (r.base.name, items)
        for r in engine.rules
        if (items := r.open_items(SHOWN_PAIRS)) is not None
    )
    alerts, version = previous.alerts, previous.alerts_version
    if version != book.version:
        alerts, version = _alerts(book, config), book.version
    queue = previous.handler_queue
    if jobs_changed or not queue:
        queue = {"open": outbox.queue_size(), "recent": outbox.recent(20)}
    return Snapshot(
        journal=_journal(position),
        config={
            "source": config.source,
            "last_reload_ok": not reload_problems,
            "problems": list(reload_problems),
        },
        open_items=held,
        alerts=alerts,
        alerts_version=version,
        handler_queue=queue,
        rules=tuple(
            {"name": r.base.name, "type": r.base.type, "severity": str(r.base.severity),
             "counters": r.counters()}
            for r in engine.rules
        ),
    )  # fmt: skip


def _alerts(book: AlertBook, config: Config) -> tuple[dict[str, Any], ...]:
    specs = config.alerting.alerts
    return tuple(
        {"alertname": a.alertname, "severity": a.severity, "rule": a.rule, "keys": list(a.keys),
         "since": format_time(us_to_datetime(a.starts_us)),
         "summary": specs[a.alertname].summary if a.alertname in specs else ""}
        for a in book.sendable() if a.keys
    )  # fmt: skip


def _pairs(held: tuple[tuple[str, OpenItems], ...], now_us: int) -> list[dict[str, Any]]:
    pairs = [
        {"rule": rule, "key": item.key, "stalled": item.stalled, "labels": dict(item.labels),
         "started": format_time(us_to_datetime(item.start_us)),
         "age_seconds": max(0.0, (now_us - item.start_us) / 1e6)}
        for rule, items in held
        for item in items.first
    ]  # fmt: skip
    return sorted(pairs, key=lambda p: (not p["stalled"], p["started"]))


def _journal(position: Position) -> dict[str, Any]:
    last = position.realtime_us
    return {
        "entries": sum(position.unit_entries.values()),
        "by_unit": dict(position.unit_entries),
        "last_entry_time": format_time(us_to_datetime(last)) if last else None,
    }


class StateView:
    """The HTTP backend's questions, answered from what the loop published."""

    def __init__(
        self,
        clock: Clock,
        health: HealthChecker,
        recent: Callable[[int], list[dict[str, Any]]],
    ) -> None:
        self.clock = clock
        self.health = health
        self.events = recent
        self.started = clock.monotonic()
        self.current = Snapshot()  # replaced whole by the loop: a reader sees one or the other
        self.loop = LoopState(clock.monotonic())

    def state(self) -> dict[str, Any]:
        now_us, snap = self.clock.now_us(), self.current
        return {
            "generated_at": format_time(us_to_datetime(now_us)),
            "version": __version__,
            "uptime_seconds": round(self.clock.monotonic() - self.started, 1),
            "journal": {
                **snap.journal,
                "lag_seconds": self.loop.lag_s,
                "caught_up": self.loop.caught_up,
                "problem": self.loop.journal_problem,
            },
            "config": dict(snap.config),
            "open_pairs": _pairs(snap.open_items, now_us),
            "alerts": list(snap.alerts),
            "handler_queue": dict(snap.handler_queue),
            "open_total": {rule: items.total for rule, items in snap.open_items},
            "stalled_total": {rule: items.stalled for rule, items in snap.open_items},
            "health": [r.to_json() for r in list(self.health.results.values())],
            "rules": list(snap.rules),
        }

    def healthy(self) -> bool:
        return self.clock.monotonic() - self.loop.last_round < HEALTHY_WITHIN_S

    def ready(self) -> bool:
        loop = self.loop
        return (
            loop.source_open
            and not loop.stopping
            and not loop.write_refused
            and loop.journal_problem is None
        )

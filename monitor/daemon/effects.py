"""The effects stage, after a batch is committed: the metrics snapshot, the alerts handed to
the Alertmanager sender, the event log and the recent events the HTTP API lists."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor.core.engine import Engine
from monitor.core.model import Event, EventKind, Severity
from monitor.daemon.alerter import Alerter
from monitor.daemon.alerts import AlertBook
from monitor.daemon.metrics import Metrics, build_families
from monitor.daemon.state import Position
from monitor.journal.reader import JournalSource

log = logging.getLogger(__name__)

RECENT_EVENTS = 1000
# kinds that say something is wrong: logged as warnings whatever the rule's severity
_NEWS = frozenset(
    {
        EventKind.UNKNOWN_VALUE,
        EventKind.STALLED,
        EventKind.ABSENCE,
        EventKind.THRESHOLD,
        EventKind.HEALTH,
    }
)


class Effects:
    def __init__(self, metrics: Metrics, alerter: Alerter, recent: Iterable[dict[str, Any]]):
        self.metrics = metrics
        self.alerter = alerter
        self._recent = collections.deque(recent, maxlen=RECENT_EVENTS)
        self._recent_lock = threading.Lock()  # the HTTP thread copies what the loop appends
        self._seen_errors = (0, 0)
        self._timeouts_logged: dict[str, int] = {}

    def publish(self, engine: Engine, position: Position, units: Iterable[str]) -> None:
        """The committed counters, as the metric families /metrics exposes."""
        self.metrics.published = build_families(
            engine, position.unit_entries, units, position.host_entries
        )
        self._log_timeouts(engine.matcher.by_rule)

    def _log_timeouts(self, by_rule: Mapping[str, int]) -> None:
        """A rule's first search cut at the time budget is logged, then its count each time it
        has grown tenfold: a hostile stream of lines does not flood the log (the metric has
        every one)."""
        for rule, n in by_rule.items():
            logged = self._timeouts_logged.get(rule, 0)
            if n > logged and (logged == 0 or n >= 10 * logged):
                self._timeouts_logged[rule] = n
                log.warning(
                    "rule %s: its pattern ran out of its time budget on %d line(s) so far; "
                    "such a line is no match for this rule (the other rules still see it): "
                    "rewrite the pattern so that it cannot backtrack (check-config names the "
                    "shapes it knows)",
                    rule,
                    n,
                )

    def send_alerts(self, book: AlertBook, caught_up: bool) -> None:
        """Alerts describe the present: sent only once caught up."""
        for name, n in book.firing().items():
            self.metrics.alerts_firing.labels(name).set(n)
        if caught_up:
            self.alerter.publish(book.sendable())

    def dispatch(self, events: Sequence[Event]) -> None:
        """Count, remember for the API, log what a person should see."""
        for e in events:
            self.metrics.events.labels(e.rule, e.kind).inc()
            if e.kind == EventKind.HANDLER:
                self.metrics.handler_runs.labels(e.labels["handler"], e.labels["outcome"]).inc()
            first_line = e.message.splitlines()[0] if e.message else ""
            crit = e.severity is Severity.CRITICAL and e.kind != EventKind.RESOLVED
            level = logging.WARNING if e.kind in _NEWS or crit else logging.INFO
            log.log(level, "%s %s: %s", e.rule, e.kind, first_line)
        with self._recent_lock:
            self._recent.extend(e.to_json() for e in events)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        with self._recent_lock:
            return list(self._recent)[-limit:]

    def set_lag(self, seconds: float) -> None:
        self.metrics.lag.set(seconds)

    def count_source_problems(self, source: JournalSource) -> None:
        errors, truncated = source.read_errors, source.truncated
        self.metrics.read_errors.inc(max(0, errors - self._seen_errors[0]))
        self.metrics.truncated.inc(max(0, truncated - self._seen_errors[1]))
        self._seen_errors = (errors, truncated)

    def new_source(self) -> None:
        """A reopened journal counts its problems from zero."""
        self._seen_errors = (0, 0)

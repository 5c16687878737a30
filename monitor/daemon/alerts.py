"""Alert state: which alerts are active and for which keys, derived from events.

An Alertmanager alert is identified by its labels, and a request_id is never a label: so one
alert per (alertname, rule) is active while any of its keys is, and the keys (request_ids) go
into the annotations. The book is pure state, changed by the main loop in the same transaction
as the events that changed it, and survives restarts in the state store; monitor/daemon/alerter.py
sends what it publishes. Every change goes through the book's methods, which count them
(`version`): an unchanged book is not written again, and what it publishes is built once per
change."""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Any

from handlers.base import Outcome
from monitor.config.schema import AlertSpec, Config
from monitor.core.model import Event, EventKind, Severity

ONE_OFF = frozenset({EventKind.UNKNOWN_VALUE, EventKind.MATCH})  # true once, then history
STATEFUL = frozenset({EventKind.STALLED, EventKind.ABSENCE, EventKind.THRESHOLD, EventKind.HEALTH})
STATEFUL_TTL_US = 24 * 3600 * 1_000_000  # a stalled training nobody resolved stops paging
RESOLVED_RESEND_US = 15 * 60 * 1_000_000  # keep telling Alertmanager an alert resolved
SHOWN_KEYS = 20
# a run ended and no retry follows: the handler's alert; a retried `failed` attempt is not one
HANDLER_FAILED = frozenset({Outcome.GAVE_UP, Outcome.VERIFY_FAILED})
HANDLER_HEALED = frozenset({Outcome.VERIFIED, Outcome.DONE})
_NEVER = sys.maxsize
# versions are unique across books: one book's version never marks another (a reloaded one) saved
_VERSIONS = itertools.count(1)


@dataclass(slots=True)
class Instance:
    since_us: int
    expires_us: int
    detail: str


@dataclass(slots=True)
class Alert:
    """One (alertname, rule): active while it has instances."""

    alertname: str
    rule: str
    severity: str
    instances: dict[str, Instance] = field(default_factory=dict)
    starts_us: int = 0
    resolved_us: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alertname": self.alertname, "rule": self.rule, "severity": self.severity,
            "starts_us": self.starts_us, "resolved_us": self.resolved_us,
            "instances": {
                k: [i.since_us, i.expires_us, i.detail] for k, i in self.instances.items()
            },
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class Sendable:
    """What the sender needs of one alert at one moment."""

    alertname: str
    rule: str
    severity: str
    keys: tuple[str, ...]
    details: tuple[str, ...]
    starts_us: int
    resolved_us: int | None


class AlertBook:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.alerts: dict[tuple[str, str], Alert] = {}
        # which alert a rule, health check or handler raises
        self.alert_of: dict[str, str] = {
            r.base.name: r.base.alert for r in config.rules if r.base.alert
        }
        self.alert_of.update({h.name: h.alert for h in config.health_checks if h.alert})
        self.alert_of.update(
            {n: h.common.alert for n, h in config.handlers.items() if h.common.alert}
        )
        self._version = next(_VERSIONS)
        self._saved: int | None = None  # the version whose snapshot the state store holds
        self._due_us = _NEVER  # nothing expires before this (a lower bound)
        self._sendable: tuple[int, tuple[Sendable, ...]] | None = None

    @property
    def version(self) -> int:
        """Moves with every change: an equal version means the same contents."""
        return self._version

    def changed_since(self, version: int | None) -> bool:
        return version != self._version

    def unsaved(self) -> bool:
        """True when the book changed since the version last marked saved (or none was)."""
        return self.changed_since(self._saved)

    def mark_saved(self, version: int) -> None:
        """The snapshot taken at `version` is committed (call it after the commit succeeded)."""
        self._saved = version

    def _changed(self, due_us: int = _NEVER) -> None:
        self._version = next(_VERSIONS)
        self._due_us = min(self._due_us, due_us)

    def spec(self, alertname: str) -> AlertSpec | None:
        return self.config.alerting.alerts.get(alertname)

    def apply(self, events: list[Event], now_us: int) -> None:
        """Let the events of a batch raise and resolve alerts."""
        cfg = self.config.alerting
        for e in events:
            if e.kind == EventKind.HANDLER:
                self._handler_outcome(e, now_us)
                continue
            alertname = self.alert_of.get(e.rule)
            if alertname is None:
                continue
            key = e.key or "-"
            if e.kind == EventKind.RESOLVED:
                self._clear(alertname, e.rule, key, e.time_us)
            elif e.kind in ONE_OFF:
                if now_us - e.time_us <= cfg.max_event_age_us:  # stale ones are history
                    self._raise(alertname, e, key, e.time_us + cfg.one_off_ttl_us)
            elif e.kind in STATEFUL and e.labels.get("state") != "unknown":  # unknown is not down
                self._raise(alertname, e, key, e.time_us + STATEFUL_TTL_US)

    def _handler_outcome(self, e: Event, now_us: int) -> None:
        handler, outcome = e.labels.get("handler", ""), e.labels.get("outcome", "")
        key = e.key or "-"
        source = e.labels.get("source_rule", "")
        handler_alert = self.alert_of.get(handler)
        if outcome in HANDLER_HEALED and handler_alert:  # a later run for this key succeeded
            self._clear(handler_alert, e.rule, key, e.time_us)
        if outcome == Outcome.VERIFIED and source in self.alert_of:
            self._clear(self.alert_of[source], source, key, e.time_us)  # healed
            return
        self._note_outcome(source, key, e.message.splitlines()[0] if e.message else outcome)
        if outcome in HANDLER_FAILED and handler_alert:
            self._raise(handler_alert, e, key, e.time_us + self.config.alerting.one_off_ttl_us)

    def _note_outcome(self, source: str, key: str, line: str) -> None:
        """Say in the rule's alert what its handler found."""
        alert = self.alerts.get((self.alert_of.get(source, ""), source))
        instance = alert.instances.get(key) if alert is not None else None
        if instance is None:
            return
        detail = f"{instance.detail.split(' | ')[0]} | {line}"[:300]
        if detail != instance.detail:
            instance.detail = detail
            self._changed()

    def _raise(self, alertname: str, e: Event, key: str, expires_us: int) -> None:
        alert = self.alerts.get((alertname, e.rule))
        if alert is None:
            alert = self.alerts[(alertname, e.rule)] = Alert(alertname, e.rule, str(e.severity))
        if not alert.instances:
            alert.starts_us, alert.resolved_us = e.time_us, None
        if e.severity is Severity.CRITICAL:
            alert.severity = str(Severity.CRITICAL)
        first_line = e.message.splitlines()[0] if e.message else ""
        alert.instances[key] = Instance(e.time_us, expires_us, first_line[:300])
        self._changed(expires_us)

    def _clear(self, alertname: str, rule: str, key: str, when_us: int) -> None:
        alert = self.alerts.get((alertname, rule))
        if alert is None or alert.instances.pop(key, None) is None:
            return
        if alert.instances:
            self._changed()
            return
        alert.resolved_us = when_us
        self._changed(when_us + RESOLVED_RESEND_US + 1)  # then it is forgotten

    def expire(self, now_us: int) -> bool:
        """Drop expired instances, and alerts resolved long enough ago; True if anything went.
        Called on every batch: it looks at the instances only when one can be due."""
        if now_us < self._due_us:
            return False
        changed = False
        for id_, alert in list(self.alerts.items()):
            for key in [k for k, i in alert.instances.items() if i.expires_us <= now_us]:
                self._clear(alert.alertname, alert.rule, key, now_us)
                changed = True
            if alert.resolved_us is not None and now_us - alert.resolved_us > RESOLVED_RESEND_US:
                del self.alerts[id_]
                self._changed()
                changed = True
        self._due_us = self._next_due()
        return changed

    def _next_due(self) -> int:
        due = _NEVER
        for alert in self.alerts.values():
            for instance in alert.instances.values():
                due = min(due, instance.expires_us)
            if alert.resolved_us is not None:
                due = min(due, alert.resolved_us + RESOLVED_RESEND_US + 1)
        return due

    def firing(self) -> dict[str, int]:
        out: dict[str, int] = {name: 0 for name in self.config.alerting.alerts}
        for alert in self.alerts.values():
            if alert.instances:
                out[alert.alertname] = out.get(alert.alertname, 0) + 1
        return out

    def sendable(self) -> tuple[Sendable, ...]:
        if self._sendable is None or self._sendable[0] != self._version:
            built = tuple(
                Sendable(a.alertname, a.rule, a.severity, tuple(a.instances),
                         tuple(i.detail for i in a.instances.values()), a.starts_us,
                         a.resolved_us)
                for a in self.alerts.values()
            )  # fmt: skip
            self._sendable = (self._version, built)
        return self._sendable[1]

    def snapshot(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.alerts.values()]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            alert = Alert(row["alertname"], row["rule"], row["severity"])
            alert.starts_us, alert.resolved_us = int(row["starts_us"]), row.get("resolved_us")
            for key, (since, expires, detail) in row.get("instances", {}).items():
                alert.instances[key] = Instance(int(since), int(expires), str(detail))
            self.alerts[(alert.alertname, alert.rule)] = alert
        self._changed(self._next_due())

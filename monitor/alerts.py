"""Alert state: which alerts are active and for which keys, derived from events.

An Alertmanager alert is identified by its labels, and a request_id is never a label: so one
alert per (alertname, rule) is active while any of its keys is, and the keys (request_ids) go
into the annotations. The book is pure state, changed by the main loop in the same transaction
as the events that changed it, and survives restarts in the state store; monitor/alerter.py
sends what it publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.config import AlertSpec, Config
from monitor.model import Event, EventKind, Severity

ONE_OFF = frozenset({EventKind.UNKNOWN_VALUE, EventKind.MATCH})  # true once, then history
STATEFUL = frozenset({EventKind.STALLED, EventKind.ABSENCE, EventKind.THRESHOLD, EventKind.HEALTH})
STATEFUL_TTL_US = 24 * 3600 * 1_000_000  # a stalled training nobody resolved stops paging
RESOLVED_RESEND_US = 15 * 60 * 1_000_000  # keep telling Alertmanager an alert resolved
SHOWN_KEYS = 20


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
        if outcome == "verified" and source in self.alert_of:
            self._clear(self.alert_of[source], source, key, e.time_us)  # healed
            return
        alert = self.alerts.get((self.alert_of.get(source, ""), source))
        if alert is not None and key in alert.instances:  # say in the alert what the handler found
            instance = alert.instances[key]
            first_line = e.message.splitlines()[0] if e.message else outcome
            instance.detail = f"{instance.detail.split(' | ')[0]} | {first_line}"[:300]
        if outcome in ("verify_failed", "gave_up", "failed") and handler in self.alert_of:
            self._raise(
                self.alert_of[handler], e, key, e.time_us + self.config.alerting.one_off_ttl_us
            )

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

    def _clear(self, alertname: str, rule: str, key: str, when_us: int) -> None:
        alert = self.alerts.get((alertname, rule))
        if alert is None or alert.instances.pop(key, None) is None:
            return
        if not alert.instances:
            alert.resolved_us = when_us

    def expire(self, now_us: int) -> bool:
        """Drop expired instances, and alerts resolved long enough ago; True if anything went."""
        changed = False
        for id_, alert in list(self.alerts.items()):
            for key in [k for k, i in alert.instances.items() if i.expires_us <= now_us]:
                self._clear(alert.alertname, alert.rule, key, now_us)
                changed = True
            if alert.resolved_us is not None and now_us - alert.resolved_us > RESOLVED_RESEND_US:
                del self.alerts[id_]
                changed = True
        return changed

    def firing(self) -> dict[str, int]:
        out: dict[str, int] = {name: 0 for name in self.config.alerting.alerts}
        for alert in self.alerts.values():
            if alert.instances:
                out[alert.alertname] = out.get(alert.alertname, 0) + 1
        return out

    def sendable(self) -> tuple[Sendable, ...]:
        return tuple(
            Sendable(a.alertname, a.rule, a.severity, tuple(a.instances),
                     tuple(i.detail for i in a.instances.values()), a.starts_us, a.resolved_us)
            for a in self.alerts.values()
        )  # fmt: skip

    def snapshot(self) -> list[dict[str, Any]]:
        return [a.to_json() for a in self.alerts.values()]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            alert = Alert(row["alertname"], row["rule"], row["severity"])
            alert.starts_us, alert.resolved_us = int(row["starts_us"]), row.get("resolved_us")
            for key, (since, expires, detail) in row.get("instances", {}).items():
                alert.instances[key] = Instance(int(since), int(expires), str(detail))
            self.alerts[(alert.alertname, alert.rule)] = alert

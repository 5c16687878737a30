"""Prometheus metrics on a registry the app owns.

Counters that the rules keep (matches, label counts, unknown statuses, open pairs, durations)
are read from a snapshot the main loop publishes after each committed batch: they are restored
from the state store after a restart, so a crash neither resets nor double-counts them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from handlers.base import Outcome
from monitor import __version__
from monitor.core.engine import Engine
from monitor.core.model import METRIC_PREFIX

P = METRIC_PREFIX


@dataclass(frozen=True, slots=True)
class Published:
    """What the main loop last committed, as metric families ready to expose."""

    families: tuple[Metric, ...] = ()


def build_families(
    engine: Engine,
    unit_entries: dict[str, int],
    units: Iterable[str],
    host_entries: dict[str, int] | None = None,
) -> Published:
    """Turn the engine's committed counters into metric families (called by the main loop)."""
    entries = CounterMetricFamily(
        P + "journal_entries", "Journal entries read, by unit.", labels=["unit"]
    )
    for unit in sorted({*units, *unit_entries}):
        entries.add_metric([unit], unit_entries.get(unit, 0))
    matches = CounterMetricFamily(
        P + "rule_matches", "Lines that matched each rule.", labels=["rule"]
    )
    counts = CounterMetricFamily(
        P + "rule_counts", "Every rule's own counters (see the README).", labels=["rule", "counter"]
    )
    unknown = CounterMetricFamily(
        P + "unknown_status",
        "Unknown-status lines by raw status and what it normalizes to ('' = truly unknown).",
        labels=["status", "normalized"],
    )
    opened = GaugeMetricFamily(
        P + "trainings_open", "Open pairs (trainings) by rule.", labels=["rule"]
    )
    stalled = GaugeMetricFamily(
        P + "trainings_stalled", "Open pairs past their deadline.", labels=["rule"]
    )
    timeouts = CounterMetricFamily(
        P + "rule_timeouts",
        "Lines on which a rule's regex ran out of its time budget (taken as no match).",
        labels=["rule"],
    )
    families: list[Metric] = [entries, matches, counts, unknown, opened, stalled, timeouts]
    if host_entries:
        by_host = CounterMetricFamily(
            P + "journal_host_entries",
            "Journal entries read, by _HOSTNAME (journal.host_label).",
            labels=["host"],
        )
        for host, n in sorted(host_entries.items()):
            by_host.add_metric([host], n)
        families.append(by_host)
    for rule in engine.rules:
        name = rule.base.name
        c = rule.counters()
        matches.add_metric([name], c.get("matches", 0))
        timeouts.add_metric([name], engine.matcher.by_rule.get(name, 0))
        for counter, value in c.items():
            if counter not in ("matches", "open", "stalled_open"):
                counts.add_metric([name, counter], value)
    return Published(tuple(_merged(families, (f for r in engine.rules for f in r.collect()))))


def _merged(declared: list[Metric], contributed: Iterable[Metric]) -> list[Metric]:
    """The rules' families: one named like a declared family adds its samples to it (equal
    label sets summed: two unknown_value rules may count the same status), others follow."""
    out = list(declared)
    by_name = {f.name: f for f in out}
    shared: set[str] = set()
    for family in contributed:
        target = by_name.get(family.name)
        if target is None:
            by_name[family.name] = family
            out.append(family)
            continue
        shared.add(family.name)
        index = {_series(s): i for i, s in enumerate(target.samples)}
        for s in family.samples:
            at = index.get(key := _series(s))
            if at is None:
                index[key] = len(target.samples)
                target.samples.append(s)
            else:
                target.samples[at] = s._replace(value=target.samples[at].value + s.value)
    for name in shared:
        by_name[name].samples.sort(key=_series)
    return out


def _series(s: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A sample's series: its name and its labels, in a fixed order."""
    return s.name, tuple(sorted(s.labels.items()))


class _Published(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics.published.families


@dataclass
class Metrics:
    """The app's registry: the published rule families plus live gauges the loop sets."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    published: Published = field(default_factory=Published)

    def __post_init__(self) -> None:
        r = self.registry
        r.register(_Published(self))
        self.lag = Gauge(
            P + "journal_lag_seconds",
            "Wall time minus the time of the last entry read, while behind; 0 when caught up.",
            registry=r,
        )
        self.cursor_resets = Counter(
            P + "journal_cursor_resets",
            "Stored cursors that no longer existed (vacuum, other boot).",
            registry=r,
        )
        self.read_errors = Counter(
            P + "journal_read_errors", "Journal entries that could not be read.", registry=r
        )
        self.truncated = Counter(
            P + "journal_messages_truncated", "Messages longer than max_message_bytes.", registry=r
        )
        self.loop_heartbeat = Gauge(
            P + "loop_last_iteration_timestamp_seconds",
            "When the main loop last went round.",
            registry=r,
        )
        self.state_write_errors = Counter(
            P + "state_write_errors",
            "Commits the state file refused (disk full, read-only, I/O error); each is retried.",
            registry=r,
        )
        self.batch_seconds = Histogram(
            P + "batch_duration_seconds",
            "Time to process and commit one batch.",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
        )
        self.reload_ok = Gauge(
            P + "config_last_reload_successful",
            "1 if the last config (re)load was valid.",
            registry=r,
        )
        self.reload_time = Gauge(
            P + "config_last_reload_success_timestamp_seconds",
            "When the config was last loaded.",
            registry=r,
        )
        self.health_up = Gauge(
            P + "health_up", "1 up, 0 down, -1 unknown (cannot tell).", ["check"], registry=r
        )
        self.health_seconds = Gauge(
            P + "health_duration_seconds",
            "How long the last health check took.",
            ["check"],
            registry=r,
        )
        self.events = Counter(
            P + "events", "Events emitted, by rule and kind.", ["rule", "kind"], registry=r
        )
        self.alert_deliveries = Counter(
            P + "alert_deliveries",
            "Deliveries to Alertmanager by outcome (sent, failed).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("sent", "failed"):
            self.alert_deliveries.labels(outcome)
        self.handler_runs = Counter(
            P + "handler_runs",
            "Handler runs by handler and outcome.",
            ["handler", "outcome"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            P + "alerts_firing", "Active alerts by name.", ["alertname"], registry=r
        )
        ProcessCollector(registry=r)  # process_start_time_seconds: crash loops; memory; fds
        info = Gauge(P + "build_info", "The running version.", ["version"], registry=r)
        info.labels(__version__).set(1)

    def declare_handlers(self, handlers: Iterable[str]) -> None:
        """Every handler's outcome series exist from the start (at 0), for increase() alerts."""
        for name in handlers:
            for outcome in Outcome:
                self.handler_runs.labels(name, str(outcome))

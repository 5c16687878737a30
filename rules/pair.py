"""`pair`: a start line and an end line sharing a key (a training's request_id), with a deadline."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from monitor.config.yamlview import View
from monitor.core.model import METRIC_PREFIX, Entry, Event, EventKind, format_time, us_to_datetime
from rules.base import (
    UNBOUNDED,
    BuildContext,
    Context,
    ExplainContext,
    KeyedRule,
    Matcher,
    OpenItem,
    OpenItems,
    ParseContext,
    Pattern,
    RuleBase,
    RuleDefaults,
    SpecDefaults,
    event,
    human_duration,
    labels_of,
    parse_patterns,
    restore_counts,
    union_prefilter,
)


@dataclass(frozen=True, slots=True)
class PairSpec(SpecDefaults):
    """Keys: `start` and `end` (a regex or a list; each with the `key` group), `key` (default
    `request_id`), `deadline`, `max_open` (default 100000; the oldest is evicted and counted),
    `forget_after` (default 24h: how long a stalled pair waits for a late end, and how long a
    closed key is remembered so a re-delivered start does not reopen it)."""

    base: RuleBase
    start: tuple[Pattern, ...]
    end: tuple[Pattern, ...]
    deadline_us: int
    key: str = "request_id"
    max_open: int = 100_000
    forget_after_us: int = 24 * 3600 * 1_000_000

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return tuple((f"end[{i}]", p) for i, p in enumerate(self.end)) + tuple(
            (f"start[{i}]", p) for i, p in enumerate(self.start)
        )

    def explain(self, ctx: ExplainContext) -> list[str]:
        keys = [g.get(self.key, "") for g in ctx.groups]
        k = f"{self.key} {keys[0] if keys else ''!r}"
        if ctx.delta.get("opened"):
            deadline = human_duration(self.deadline_us)
            return [f"START of a pair: opens {k} (stalled if no end within {deadline})"]
        if ctx.delta.get("duplicate_start"):
            return [f"START of a pair for {k}, already open or recently closed: ignored"]
        if ctx.delta.get("unmatched_end"):
            return [f"END of a pair for {k}, but no pair is open for it: ignored (no start seen)"]
        return [f"END of a pair: closes {k} ({e.kind})" for e in ctx.events]

    def build(self, ctx: BuildContext) -> PairRule:
        return PairRule(self, ctx.matcher)


def parse(view: View, base: RuleBase, ctx: ParseContext) -> PairSpec | None:
    key = view.text("key", "request_id")
    start = parse_patterns(view, "start", (key,))
    end = parse_patterns(view, "end", (key,))
    deadline = view.duration_us("deadline", None, required=True)
    max_open = view.integer("max_open", 100_000, minimum=1)
    forget = view.duration_us("forget_after", "24h")
    if forget < deadline:
        view.error("forget_after", "must not be shorter than the deadline")
    if not start or not end:
        return None
    return PairSpec(base, start, end, deadline, key, max_open, forget)


@dataclass(slots=True)
class OpenPair:
    start_us: int
    deadline_us: int
    labels: dict[str, str] = field(default_factory=dict)
    stalled: bool = False

    def row(self) -> dict[str, Any]:
        return {"start_us": self.start_us, "deadline_us": self.deadline_us,
                "labels": self.labels, "stalled": self.stalled}  # fmt: skip


# training_duration_seconds buckets: trainings take minutes to hours
DURATION_BUCKETS_S = (60.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
_COUNTS = ("matches", "opened", "closed", "stalled", "resolved", "evicted", "expired",
           "duplicate_start", "unmatched_end")  # fmt: skip
# entries of ended and evicted pairs stay on the heap until popped; past twice the open pairs
# (plus this) it is rebuilt, so memory follows max_open, not the starts within a deadline
_HEAP_SLACK = 1024


def _seconds(us: int) -> str:
    return f"{us / 1_000_000:.3f}"


class PairRule(RuleDefaults):
    """Emits `stalled` (once per pair, at its deadline), `resolved` (a stalled pair's late end)
    and `pair_closed` (an end in time, with `duration_seconds`)."""

    timed = True
    needs_origin = False

    def __init__(self, spec: PairSpec, matcher: Matcher = UNBOUNDED) -> None:
        self.spec = spec
        self.base = spec.base
        self.prefilter = union_prefilter(spec.start + spec.end)
        name = spec.base.name
        self._ends = tuple(p.bound(matcher.bind(name, p.regex)) for p in spec.end)
        self._starts = tuple(p.bound(matcher.bind(name, p.regex)) for p in spec.start)
        self.open: dict[str, OpenPair] = {}
        self.closed: dict[str, int] = {}  # key -> close time, oldest first
        self._heap: list[tuple[int, str]] = []
        self.stalled_open = 0
        self._counts = dict.fromkeys(_COUNTS, 0)
        # cumulative histogram of closed durations: counts per bucket (+Inf last), then the sum
        self.duration_counts = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.duration_sum_s = 0.0
        self._dirty_open: dict[str, None] = {}  # ordered: rows are written in opening order
        self._dirty_closed: dict[str, None] = {}

    def observe(self, entry: Entry, ctx: Context) -> list[Event]:
        message, key = entry.message, self.spec.key
        for search in self._ends:
            m = search(message)
            if m is not None:
                self._counts["matches"] += 1
                ctx.ended(self.base.name, m.group(key), entry.realtime_us)
                return self._end(m.group(key), entry.realtime_us, labels_of(m, (key,)))
        for search in self._starts:
            m = search(message)
            if m is not None:
                self._counts["matches"] += 1
                labels = labels_of(m, (key,))
                if ctx.host_label and entry.hostname:
                    labels["host"] = entry.hostname  # where it started; ends may come elsewhere
                self._start(m.group(key), entry.realtime_us, labels, ctx)
                return []
        return []

    def _start(self, key: str, t: int, labels: dict[str, str], ctx: Context) -> None:
        if key in self.open or key in self.closed:
            self._counts["duplicate_start"] += 1
            return
        deadline = t + self.spec.deadline_us
        self.open[key] = OpenPair(t, deadline, labels)
        self._mark_open(key)
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 2 * len(self.open) + _HEAP_SLACK:
            self._compact()
        ctx.schedule(deadline)
        self._counts["opened"] += 1
        if len(self.open) > self.spec.max_open:
            oldest = next(iter(self.open))
            self._drop(oldest)
            self._counts["evicted"] += 1

    def _due(self, key: str, pair: OpenPair) -> tuple[int, str]:
        """The heap entry of an open pair: its deadline, or once stalled, when it is forgotten."""
        if pair.stalled:
            return (pair.start_us + self.spec.forget_after_us, key)
        return (pair.deadline_us, key)

    def _compact(self) -> None:
        """Only the open pairs' entries: the order of what tick() finds is unchanged."""
        self._heap = [self._due(key, pair) for key, pair in self.open.items()]
        heapq.heapify(self._heap)

    def _mark_open(self, key: str) -> None:
        self._dirty_open[key] = None

    def _mark_closed(self, key: str) -> None:
        self._dirty_closed[key] = None

    def _drop(self, key: str) -> OpenPair:
        pair = self.open.pop(key)
        self._mark_open(key)
        if pair.stalled:
            self.stalled_open -= 1
        return pair

    def _end(self, key: str, t: int, labels: dict[str, str]) -> list[Event]:
        if key not in self.open:
            self._counts["unmatched_end"] += 1
            return []
        pair = self._drop(key)
        self._remember_closed(key, t)
        duration = max(0, t - pair.start_us)
        self._observe_duration(duration / 1_000_000)
        labels = {**pair.labels, **labels, "duration_seconds": _seconds(duration)}
        took = human_duration(duration)
        if pair.stalled:
            self._counts["resolved"] += 1
            deadline = human_duration(self.spec.deadline_us)
            msg = f"{key}: ended {took} after its start, past the {deadline} deadline"
            return [event(self.base, EventKind.RESOLVED, t, key, labels, msg)]
        self._counts["closed"] += 1
        msg = f"{key}: ended {took} after its start"
        return [event(self.base, EventKind.PAIR_CLOSED, t, key, labels, msg)]

    def _observe_duration(self, seconds: float) -> None:
        self.duration_sum_s += seconds
        i = next(
            (i for i, b in enumerate(DURATION_BUCKETS_S) if seconds <= b), len(DURATION_BUCKETS_S)
        )
        self.duration_counts[i] += 1

    def _remember_closed(self, key: str, t: int) -> None:
        closed = self.closed
        closed[key] = t
        self._mark_closed(key)
        horizon = t - self.spec.forget_after_us
        while closed:
            first = next(iter(closed))
            if closed[first] > horizon and len(closed) <= self.spec.max_open:
                break
            del closed[first]
            self._mark_closed(first)

    def tick(self, now_us: int) -> list[Event]:
        events: list[Event] = []
        heap, forget = self._heap, self.spec.forget_after_us
        while heap and heap[0][0] <= now_us:
            when, key = heapq.heappop(heap)
            pair = self.open.get(key)
            if pair is None:
                continue
            if not pair.stalled and when == pair.deadline_us:
                pair.stalled = True
                self._mark_open(key)
                self.stalled_open += 1
                self._counts["stalled"] += 1
                heapq.heappush(heap, (pair.start_us + forget, key))
                start = format_time(us_to_datetime(pair.start_us))
                deadline = human_duration(self.spec.deadline_us)
                msg = f"{key}: no end within {deadline} of its start at {start}"
                events.append(
                    event(self.base, EventKind.STALLED, when, key, dict(pair.labels), msg)
                )
            elif pair.stalled and when == pair.start_us + forget:
                self._drop(key)
                self._counts["expired"] += 1
        return events

    def next_deadline(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def counters(self) -> dict[str, int]:
        return {**self._counts, "open": len(self.open), "stalled_open": self.stalled_open}

    def open_items(self, limit: int) -> OpenItems:
        first = tuple(
            OpenItem(key, p.start_us, p.stalled, p.labels)
            for key, p in itertools.islice(self.open.items(), limit)
        )
        return OpenItems(len(self.open), self.stalled_open, first)

    def collect(self) -> Iterable[Metric]:
        name = self.base.name
        opened = GaugeMetricFamily(METRIC_PREFIX + "trainings_open", "", labels=["rule"])
        opened.add_metric([name], len(self.open))
        stalled = GaugeMetricFamily(METRIC_PREFIX + "trainings_stalled", "", labels=["rule"])
        stalled.add_metric([name], self.stalled_open)
        durations = HistogramMetricFamily(
            METRIC_PREFIX + "training_duration_seconds",
            "Start to end of closed pairs (trainings).",
            labels=["rule"],
        )
        cumulative, buckets = 0, []
        bounds = (*DURATION_BUCKETS_S, float("inf"))
        for bound, n in zip(bounds, self.duration_counts, strict=True):
            cumulative += n
            buckets.append(("+Inf" if bound == float("inf") else f"{bound:g}", cumulative))
        durations.add_metric([name], buckets, self.duration_sum_s)
        return (opened, stalled, durations)

    def keyed(self) -> KeyedRule:
        return self

    # --- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": self._counts,
            "durations": self.duration_counts,
            "duration_sum_s": self.duration_sum_s,
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        restore_counts(self._counts, state)
        durations = state.get("durations", [])
        if len(durations) == len(self.duration_counts):
            self.duration_counts = [int(n) for n in durations]
            self.duration_sum_s = float(state.get("duration_sum_s", 0.0))

    def take_changes(self) -> tuple[dict[str, dict[str, Any] | None], dict[str, int | None]]:
        open_rows = {k: (p.row() if (p := self.open.get(k)) else None) for k in self._dirty_open}
        closed_rows = {k: self.closed.get(k) for k in self._dirty_closed}
        self._dirty_open.clear()
        self._dirty_closed.clear()
        return open_rows, closed_rows

    def load_rows(
        self, open_rows: Mapping[str, Mapping[str, Any]], closed: Mapping[str, int]
    ) -> None:
        """Open pairs and closed keys from the store, in the order they were opened (journal
        order: eviction picks the same pair as before a restart). The deadline follows the
        current config, so a reload that changes `deadline` applies to pairs already open."""
        for key, row in open_rows.items():
            start, stalled = int(row["start_us"]), bool(row["stalled"])
            pair = OpenPair(
                start, start + self.spec.deadline_us, dict(row.get("labels", {})), stalled
            )
            self.open[key] = pair
            if stalled:
                self.stalled_open += 1
            heapq.heappush(self._heap, self._due(key, pair))
        for key, t in closed.items():
            self.closed[key] = int(t)

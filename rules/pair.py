"""`pair`: a start line and an end line sharing a key (a training's request_id), with a deadline."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from monitor.model import Entry, Event, EventKind, format_time, us_to_datetime
from monitor.yamlview import View
from rules.base import (
    BuildContext,
    ParseContext,
    Pattern,
    Recall,
    RuleBase,
    event,
    human_duration,
    labels_of,
    parse_patterns,
    union_prefilter,
)


@dataclass(frozen=True, slots=True)
class PairSpec:
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

    def build(self, ctx: BuildContext) -> PairRule:
        return PairRule(self)


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


def _seconds(us: int) -> str:
    return f"{us / 1_000_000:.3f}"


class PairRule:
    """Emits `stalled` (once per pair, at its deadline), `resolved` (a stalled pair's late end)
    and `pair_closed` (an end in time, with `duration_seconds`)."""

    timed = True

    def __init__(self, spec: PairSpec) -> None:
        self.spec = spec
        self.base = spec.base
        self.prefilter = union_prefilter(spec.start + spec.end)
        self.open: dict[str, OpenPair] = {}
        self.closed: dict[str, int] = {}  # key -> close time, oldest first
        self._heap: list[tuple[int, str]] = []
        self.stalled_open = 0
        self._counts = dict.fromkeys(
            (
                "opened",
                "closed",
                "stalled",
                "resolved",
                "evicted",
                "expired",
                "duplicate_start",
                "unmatched_end",
            ),
            0,
        )

    def observe(self, entry: Entry, recall: Recall) -> list[Event]:
        message = entry.message
        for pattern in self.spec.end:
            m = pattern.search(message)
            if m is not None:
                return self._end(
                    m.group(self.spec.key), entry.realtime_us, labels_of(m, (self.spec.key,))
                )
        for pattern in self.spec.start:
            m = pattern.search(message)
            if m is not None:
                self._start(
                    m.group(self.spec.key), entry.realtime_us, labels_of(m, (self.spec.key,))
                )
                return []
        return []

    def _start(self, key: str, t: int, labels: dict[str, str]) -> None:
        if key in self.open or key in self.closed:
            self._counts["duplicate_start"] += 1
            return
        deadline = t + self.spec.deadline_us
        self.open[key] = OpenPair(t, deadline, labels)
        heapq.heappush(self._heap, (deadline, key))
        self._counts["opened"] += 1
        if len(self.open) > self.spec.max_open:
            oldest = next(iter(self.open))
            if self.open.pop(oldest).stalled:
                self.stalled_open -= 1
            self._counts["evicted"] += 1

    def _end(self, key: str, t: int, labels: dict[str, str]) -> list[Event]:
        pair = self.open.pop(key, None)
        if pair is None:
            self._counts["unmatched_end"] += 1
            return []
        self._remember_closed(key, t)
        duration = max(0, t - pair.start_us)
        labels = {**pair.labels, **labels, "duration_seconds": _seconds(duration)}
        if pair.stalled:
            self.stalled_open -= 1
            self._counts["resolved"] += 1
            took, deadline = human_duration(duration), human_duration(self.spec.deadline_us)
            msg = f"{key}: ended {took} after its start, past the {deadline} deadline"
            return [event(self.base, EventKind.RESOLVED, t, key, labels, msg)]
        self._counts["closed"] += 1
        msg = f"{key}: ended {human_duration(duration)} after its start"
        return [event(self.base, EventKind.PAIR_CLOSED, t, key, labels, msg)]

    def _remember_closed(self, key: str, t: int) -> None:
        closed = self.closed
        closed[key] = t
        horizon = t - self.spec.forget_after_us
        while closed:
            first = next(iter(closed))
            if closed[first] > horizon and len(closed) <= self.spec.max_open:
                break
            del closed[first]

    def tick(self, now_us: int) -> list[Event]:
        events: list[Event] = []
        heap = self._heap
        while heap and heap[0][0] <= now_us:
            when, key = heapq.heappop(heap)
            pair = self.open.get(key)
            if pair is None:
                continue
            if not pair.stalled and when == pair.deadline_us:
                pair.stalled = True
                self.stalled_open += 1
                self._counts["stalled"] += 1
                heapq.heappush(heap, (pair.start_us + self.spec.forget_after_us, key))
                start = format_time(us_to_datetime(pair.start_us))
                deadline = human_duration(self.spec.deadline_us)
                msg = f"{key}: no end within {deadline} of its start at {start}"
                events.append(
                    event(self.base, EventKind.STALLED, when, key, dict(pair.labels), msg)
                )
            elif pair.stalled and when == pair.start_us + self.spec.forget_after_us:
                del self.open[key]
                self.stalled_open -= 1
                self._counts["expired"] += 1
        return events

    def next_deadline(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def counters(self) -> dict[str, int]:
        return {**self._counts, "open": len(self.open), "stalled_open": self.stalled_open}

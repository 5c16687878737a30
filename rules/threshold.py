"""`threshold`: more than `count` matches within a sliding `window` (an error rate)."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config.yamlview import View
from monitor.core.model import Entry, Event, EventKind
from rules.base import (
    UNBOUNDED,
    BuildContext,
    Context,
    ExplainContext,
    Matcher,
    ParseContext,
    Pattern,
    RuleBase,
    RuleDefaults,
    SpecDefaults,
    event,
    human_duration,
    parse_pattern,
    parse_prefilter,
    restore_counts,
)


@dataclass(frozen=True, slots=True)
class ThresholdSpec(SpecDefaults):
    """Keys: `pattern` (optional when `priority` selects the lines), `prefilter`, `count`,
    `window`."""

    base: RuleBase
    pattern: Pattern | None
    count: int
    window_us: int

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return (("pattern", self.pattern),) if self.pattern is not None else ()

    def explain(self, ctx: ExplainContext) -> list[str]:
        w = human_duration(self.window_us)
        return [f"counts toward the threshold: more than {self.count} within {w} fires"]

    def build(self, ctx: BuildContext) -> ThresholdRule:
        return ThresholdRule(self, ctx.matcher)


def parse(view: View, base: RuleBase, ctx: ParseContext) -> ThresholdSpec | None:
    pattern = parse_pattern(view, "pattern", required=False, prefilter=parse_prefilter(view))
    count = view.integer("count", 0, minimum=0)
    if not view.has("count"):
        view.error("count", "required key is missing")
    window = view.duration_us("window", None, required=True)
    if not view.has("pattern") and not view.has("priority"):
        view.error("pattern", "a threshold needs a `pattern`, a `priority`, or both")
    return ThresholdSpec(base, pattern, count, window)


class ThresholdRule(RuleDefaults):
    """Emits `threshold` when the count in the window first exceeds `count`, and `resolved`
    when it falls back to `count` or fewer."""

    timed = True
    needs_origin = False

    def __init__(self, spec: ThresholdSpec, matcher: Matcher = UNBOUNDED) -> None:
        self.spec = spec
        self.base = spec.base
        self.prefilter = spec.pattern.literals if spec.pattern else ()
        self._search = matcher.bind(spec.base.name, spec.pattern.regex) if spec.pattern else None
        # only the newest count+1 matches decide whether the window holds more than `count`
        self._times: deque[int] = deque(maxlen=spec.count + 1)
        self.firing = False
        self._counts = {"matches": 0, "fired": 0, "resolved": 0}

    def observe(self, entry: Entry, ctx: Context) -> list[Event]:
        if self._search is not None and self._search(entry.message) is None:
            return []
        self._counts["matches"] += 1
        t = entry.realtime_us
        self._times.append(t)
        if (
            self.firing
            or len(self._times) <= self.spec.count
            or self._times[0] <= t - self.spec.window_us
        ):
            return []
        self.firing = True
        ctx.schedule(self._times[0] + self.spec.window_us)
        self._counts["fired"] += 1
        n, w = self.spec.count, human_duration(self.spec.window_us)
        labels = {"count": str(n), "window": w}
        return [
            event(
                self.base,
                EventKind.THRESHOLD,
                t,
                None,
                labels,
                f"more than {n} matching lines within {w}",
            )
        ]

    def tick(self, now_us: int) -> list[Event]:
        times, window = self._times, self.spec.window_us
        events: list[Event] = []
        while times and times[0] + window <= now_us:
            expired = times.popleft()
            if self.firing and len(times) <= self.spec.count:
                self.firing = False
                self._counts["resolved"] += 1
                n, w = self.spec.count, human_duration(window)
                msg = f"back to {n} or fewer matching lines within {w}"
                events.append(event(self.base, EventKind.RESOLVED, expired + window, None, {}, msg))
        return events

    def next_deadline(self) -> int | None:
        return self._times[0] + self.spec.window_us if self.firing and self._times else None

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    def snapshot(self) -> dict[str, Any]:
        return {"counts": self._counts, "times": list(self._times), "firing": self.firing}

    def restore(self, state: Mapping[str, Any]) -> None:
        restore_counts(self._counts, state)
        self._times.extend(int(t) for t in state.get("times", []))
        self.firing = bool(state.get("firing", False))

"""`absence`: nothing matched for a whole window (a silent service)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.config.yamlview import View
from monitor.core.model import Entry, Event, EventKind, format_time, us_to_datetime
from rules.base import (
    UNBOUNDED,
    BuildContext,
    Context,
    ExplainContext,
    Heartbeat,
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
class AbsenceSpec(SpecDefaults):
    """Keys: `pattern` (optional: without one, any entry of the journal's units counts),
    `prefilter`, `window`."""

    base: RuleBase
    pattern: Pattern | None
    window_us: int

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return (("pattern", self.pattern),) if self.pattern is not None else ()

    def explain(self, ctx: ExplainContext) -> list[str]:
        what = "any entry counts" if self.pattern is None else "the line matches"
        return [f"activity ({what}): restarts the {human_duration(self.window_us)} silence window"]

    def build(self, ctx: BuildContext) -> AbsenceRule:
        return AbsenceRule(self, ctx.matcher)


def parse(view: View, base: RuleBase, ctx: ParseContext) -> AbsenceSpec | None:
    pattern = parse_pattern(view, "pattern", required=False, prefilter=parse_prefilter(view))
    window = view.duration_us("window", None, required=True)
    return AbsenceSpec(base, pattern, window)


class AbsenceRule(RuleDefaults):
    """Emits `absence` once when `window` passes with no match (counted from the first entry
    the engine sees), and `resolved` at the next match."""

    timed = True
    needs_origin = False

    def __init__(self, spec: AbsenceSpec, matcher: Matcher = UNBOUNDED) -> None:
        self.spec = spec
        self.base = spec.base
        self.window_us = spec.window_us
        self.prefilter = spec.pattern.literals if spec.pattern else ()
        self._search = matcher.bind(spec.base.name, spec.pattern.regex) if spec.pattern else None
        self.last_us: int | None = None
        self.absent = False
        self._counts = {"matches": 0, "absences": 0, "resolved": 0}

    def observe(self, entry: Entry, ctx: Context) -> list[Event]:
        if self._search is not None and self._search(entry.message) is None:
            return []
        self._counts["matches"] += 1
        self.last_us = entry.realtime_us
        if not self.absent:
            return []
        self.absent = False
        ctx.schedule(self.last_us + self.spec.window_us)
        self._counts["resolved"] += 1
        return [
            event(
                self.base,
                EventKind.RESOLVED,
                entry.realtime_us,
                None,
                {},
                "matching lines are back",
            )
        ]

    def heartbeat(self) -> Heartbeat:
        return self

    @property
    def pulsing(self) -> bool:
        """Any line counts and nothing is absent: a line only needs `pulse`."""
        return self._search is None and not self.absent

    def pulse(self, t_us: int, count: int) -> None:
        self._counts["matches"] += count
        self.last_us = t_us

    def tick(self, now_us: int) -> list[Event]:
        if self.last_us is None:
            self.last_us = now_us  # the window counts from the first moment the engine sees
            return []
        due = self.last_us + self.spec.window_us
        if self.absent or due > now_us:
            return []
        self.absent = True
        self._counts["absences"] += 1
        last = format_time(us_to_datetime(self.last_us))
        msg = f"no matching line for {human_duration(self.spec.window_us)} (last seen {last})"
        return [event(self.base, EventKind.ABSENCE, due, None, {}, msg)]

    def next_deadline(self) -> int | None:
        if self.absent:
            return None
        if self.last_us is None:
            return 0  # ask for a first tick, which arms the window
        return self.last_us + self.spec.window_us

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    def snapshot(self) -> dict[str, Any]:
        return {"counts": self._counts, "last_us": self.last_us, "absent": self.absent}

    def restore(self, state: Mapping[str, Any]) -> None:
        restore_counts(self._counts, state)
        self.last_us = state.get("last_us")
        self.absent = bool(state.get("absent", False))

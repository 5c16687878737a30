"""`unknown_value`: the service logged a value it does not know (the incident's
"Неизвестный статус"); report it with what it normalizes to and the request it belongs to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from monitor.config.yamlview import View
from monitor.core.model import METRIC_PREFIX, Entry, Event, EventKind
from monitor.core.statuses import Statuses
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

OTHER = "other"


@dataclass(frozen=True, slots=True)
class ContextJoin:
    """Join fields from the latest match of another rule on the same host and `_PID`."""

    rule: str
    fields: tuple[str, ...]
    window_us: int


@dataclass(frozen=True, slots=True)
class UnknownValueSpec(SpecDefaults):
    """Keys: `pattern` (with a `value` group), `prefilter`, `key` (the group or context field
    that names the request, default `request_id`), `context` (`rule`, `fields`, `window`),
    `max_label_values` (distinct raw values kept as labels before folding into "other")."""

    base: RuleBase
    pattern: Pattern
    key: str = "request_id"
    context: ContextJoin | None = None
    max_label_values: int = 50

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return (("pattern", self.pattern),)

    def context_rules(self) -> tuple[str, ...]:
        return (self.context.rule,) if self.context is not None else ()

    def explain(self, ctx: ExplainContext) -> list[str]:
        out = []
        for e in ctx.events:
            raw, normalized = e.labels.get("status", ""), e.labels.get("normalized", "")
            out.append(
                f"value {raw!r} normalizes to {normalized!r}"
                if normalized
                else f"value {raw!r} is truly unknown (no alias; canonical: "
                f"{', '.join(ctx.canonical)})"
            )
            out.append(self._explain_key(e.key))
            out.append(f"emits unknown_value ({e.severity})")
        return out

    def _explain_key(self, key: str | None) -> str:
        c = self.context
        if key and self.key in self.pattern.regex.groupindex:
            return f"key {self.key} = {key!r}"
        if key and c is not None:
            return f"key {self.key} = {key!r}, joined from the {c.rule} line"
        if c is not None:
            return (
                f"key {self.key}: none yet; joined from the latest {c.rule} line of the same "
                f"host and _PID within {human_duration(c.window_us)} (give that line first)"
            )
        return f"key {self.key}: none (the pattern has no {self.key} group)"

    def build(self, ctx: BuildContext) -> UnknownValueRule:
        return UnknownValueRule(self, ctx.statuses, ctx.matcher)


def parse(view: View, base: RuleBase, ctx: ParseContext) -> UnknownValueSpec | None:
    pattern = parse_pattern(view, "pattern", ("value",), prefilter=parse_prefilter(view))
    key = view.text("key", "request_id")
    max_values = view.integer("max_label_values", 50, minimum=1)
    context = None
    cview = view.map("context")
    if cview is not None:
        rule = cview.text("rule", required=True)
        if rule and rule not in ctx.rule_names:
            cview.error("rule", f"no rule named {rule!r}")
        elif rule == base.name:
            cview.error("rule", "a rule cannot take context from itself")
        fields = cview.str_list("fields", (key,))
        window = cview.duration_us("window", "30s")
        cview.finish()
        context = ContextJoin(rule, fields, window)
    if pattern is None:
        return None
    return UnknownValueSpec(base, pattern, key, context, max_values)


class UnknownValueRule(RuleDefaults):
    """Emits `unknown_value` for every matching line: key = the request, labels `status` (raw),
    `normalized` (canonical status, or "" when truly unknown) and any joined context fields."""

    def __init__(
        self, spec: UnknownValueSpec, statuses: Statuses, matcher: Matcher = UNBOUNDED
    ) -> None:
        self.spec = spec
        self.base = spec.base
        self.prefilter = spec.pattern.literals
        self._search = matcher.bind(spec.base.name, spec.pattern.regex)
        self._statuses = statuses
        self.needs_origin = spec.context is not None
        self.by_status: dict[tuple[str, str], int] = {}
        self._counts = {"matches": 0, "joined": 0, "unjoined": 0, "normalizable": 0, "unknown": 0}

    def observe(self, entry: Entry, ctx: Context) -> list[Event]:
        m = self._search(entry.message)
        if m is None:
            return []
        spec = self.spec
        raw = m.group("value").strip()[:200]
        normalized = self._statuses.normalize(raw)
        labels = {"status": raw, "normalized": normalized}
        key = m.groupdict().get(spec.key)
        if spec.context is not None:
            joined = ctx.recall(spec.context.rule, entry, spec.context.window_us) or {}
            for f in spec.context.fields:
                if f in joined and f != spec.key:
                    labels[f] = joined[f]
            key = key or joined.get(spec.key)
        counts = self._counts
        counts["matches"] += 1
        counts["joined" if key else "unjoined"] += 1
        counts["normalizable" if normalized else "unknown"] += 1
        self._count(raw, normalized)
        what = f"normalizes to {normalized!r}" if normalized else "matches no known status"
        whose = f"request_id {key}" if key else "an unknown request (no context line found)"
        message = f"unknown status {raw!r} for {whose}: the service dropped it; it {what}"
        return [event(self.base, EventKind.UNKNOWN_VALUE, entry.realtime_us, key, labels, message)]

    def _count(self, raw: str, normalized: str) -> None:
        label = (raw, normalized)
        if label not in self.by_status and len(self.by_status) >= self.spec.max_label_values:
            label = (OTHER, normalized)
        self.by_status[label] = self.by_status.get(label, 0) + 1

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            METRIC_PREFIX + "unknown_status", "", labels=["status", "normalized"]
        )
        for (raw, normalized), n in sorted(self.by_status.items()):
            family.add_metric([raw, normalized], n)
        yield family

    def counters(self) -> dict[str, int]:
        return dict(self._counts)

    def snapshot(self) -> dict[str, Any]:
        return {
            "counts": self._counts,
            "by_status": [[r, n, c] for (r, n), c in self.by_status.items()],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        restore_counts(self._counts, state)
        for raw, normalized, count in state.get("by_status", []):
            self.by_status[(raw, normalized)] = int(count)

"""`match`: count lines matching a regex, by chosen groups; emit events only when asked to."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from monitor.config.yamlview import View
from monitor.core.model import METRIC_PREFIX, Entry, Event, EventKind
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
    labels_of,
    parse_pattern,
    parse_prefilter,
)

OTHER = "other"


@dataclass(frozen=True, slots=True)
class MatchSpec(SpecDefaults):
    """Keys: `pattern`, `prefilter`, `labels` (groups to count by), `allow` (group -> allowed
    values; others fold into "other"), `max_label_values` (default 20, then "other"), `emit`
    (emit a `match` event per line even without an alert or handler), `key` (the group that
    names the event's key, e.g. `request_id`)."""

    base: RuleBase
    pattern: Pattern
    labels: tuple[str, ...] = ()
    allow: dict[str, frozenset[str]] = field(default_factory=dict)
    max_label_values: int = 20
    emit: bool = False
    key: str | None = None

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        return (("pattern", self.pattern),)

    def explain(self, ctx: ExplainContext) -> list[str]:
        out = ["counted" + (f" by {', '.join(self.labels)}" if self.labels else "")]
        return out + [f"emits a match event, key {e.key!r}" for e in ctx.events]

    def build(self, ctx: BuildContext) -> MatchRule:
        return MatchRule(
            self,
            remember=self.base.name in ctx.remembered,
            keyed=self.key is not None and self.base.name in ctx.keyed,
            matcher=ctx.matcher,
        )


def parse(view: View, base: RuleBase, ctx: ParseContext) -> MatchSpec | None:
    pattern = parse_pattern(view, "pattern", prefilter=parse_prefilter(view))
    labels = view.str_list("labels")
    allow_view = view.map("allow")
    allow: dict[str, frozenset[str]] = {}
    if allow_view is not None:
        for name in allow_view.names():
            allow[name] = frozenset(allow_view.str_list(name))
            if name not in labels:
                allow_view.error(name, f"{name!r} is not one of this rule's labels")
        allow_view.finish()
    max_values = view.integer("max_label_values", 20, minimum=1)
    emit = view.flag("emit", False)
    key = view.opt_str("key")
    if pattern is None:
        return None
    if key is not None and key not in pattern.regex.groupindex:
        view.error("key", f"key {key!r} is not a named group of the pattern")
    for label in labels:
        if label not in pattern.regex.groupindex:
            view.error("labels", f"label {label!r} is not a named group of the pattern")
    return MatchSpec(base, pattern, labels, allow, max_values, emit, key)


class MatchRule(RuleDefaults):
    """Emits `match` (only with an alert, a handler or `emit: true`)."""

    def __init__(
        self,
        spec: MatchSpec,
        *,
        remember: bool = False,
        keyed: bool = False,
        matcher: Matcher = UNBOUNDED,
    ) -> None:
        self.spec = spec
        self.base = spec.base
        self.prefilter = spec.pattern.literals
        self._search = matcher.bind(spec.base.name, spec.pattern.regex)
        self._remember = remember
        self._keyed = keyed
        self.needs_origin = remember
        self._emit = spec.emit or spec.base.alert is not None or spec.base.handler is not None
        self._seen: dict[str, set[str]] = {label: set() for label in spec.labels}
        self.by_labels: dict[tuple[str, ...], int] = {}
        self.matches = 0

    def observe(self, entry: Entry, ctx: Context) -> list[Event]:
        m = self._search(entry.message)
        if m is None:
            return []
        self.matches += 1
        if self.spec.labels:
            values = tuple(self._fold(label, m.group(label)) for label in self.spec.labels)
            self.by_labels[values] = self.by_labels.get(values, 0) + 1
        if self._remember:
            ctx.remember(self.base.name, entry, labels_of(m))
        if self._keyed and self.spec.key and m.group(self.spec.key):
            # whole groups, not labels cut to 200 characters: a webhook body is replayed from it
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            ctx.remember_keyed(self.base.name, m.group(self.spec.key), groups)
        if not self._emit:
            return []
        key = m.group(self.spec.key) if self.spec.key else None
        labels = labels_of(m, (self.spec.key,) if self.spec.key else ())
        return [
            event(self.base, EventKind.MATCH, entry.realtime_us, key, labels, entry.message[:500])
        ]

    def _fold(self, label: str, value: str | None) -> str:
        value = value or ""
        allowed = self.spec.allow.get(label)
        if allowed is not None:
            return value if value in allowed else OTHER
        seen = self._seen[label]
        if value in seen:
            return value
        if len(seen) >= self.spec.max_label_values:
            return OTHER
        seen.add(value)
        return value

    def collect(self) -> Iterable[Metric]:
        if not self.base.metric:
            return
        labels = list(self.spec.labels)
        help_text = self.base.description or f"Lines matching rule {self.base.name}."
        family = CounterMetricFamily(METRIC_PREFIX + self.base.metric, help_text, labels=labels)
        for values, n in sorted(self.by_labels.items()):
            family.add_metric(list(values), n)
        if not labels:
            family.add_metric([], self.matches)
        yield family

    def counters(self) -> dict[str, int]:
        return {"matches": self.matches}

    def snapshot(self) -> dict[str, Any]:
        return {
            "matches": self.matches,
            "by_labels": [[*k, n] for k, n in self.by_labels.items()],
            "seen": {label: sorted(values) for label, values in self._seen.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.matches = int(state.get("matches", 0))
        width = len(self.spec.labels)
        for row in state.get("by_labels", []):
            if len(row) == width + 1:  # rows of another label set do not carry over
                self.by_labels[tuple(row[:-1])] = int(row[-1])
        for label, values in state.get("seen", {}).items():
            if label in self._seen:
                self._seen[label].update(values[: self.spec.max_label_values])

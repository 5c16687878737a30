"""`aisha-monitor explain`: what every rule does with given log lines, and why. The lines go
through the real engine (in order, as from one worker process, one second apart, so a context
line given first joins a later unknown status); the per-pattern detail is for people."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.config.schema import Config
from monitor.core.engine import Engine, build_rules
from monitor.core.model import Entry, Event, datetime_to_us
from monitor.tools.explainreport import LineReport, PatternReport, RuleReport, priority_name
from monitor.tools.explainreport import write_json as write_json  # re-exported for the command line
from monitor.tools.explainreport import write_text as write_text
from rules.absence import AbsenceSpec
from rules.base import PRIORITIES, Pattern, Rule, RuleSpec, human_duration
from rules.match import MatchSpec
from rules.pair import PairSpec
from rules.threshold import ThresholdSpec
from rules.unknown_value import UnknownValueSpec

T0 = datetime_to_us(datetime(2026, 11, 27, 10, tzinfo=UTC))  # lines are one second apart
PID, HOST = 4242, "explain"
# `journalctl` short output: the journal's own prefix, which is not part of MESSAGE
_JOURNALCTL = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [\w@.:-]+\[\d+\]: ")


@dataclass(frozen=True, slots=True)
class Options:
    unit: str = "aisha-api.service"
    priority: int = 6


def parse_priority(text: str) -> int | None:
    text = text.strip().lower()
    value = PRIORITIES.get(text, int(text) if text.isdigit() else None)
    return value if value is not None and 0 <= value <= 7 else None


class Explainer:
    """One engine for a whole `explain` run, so that lines can join and pair with each other."""

    def __init__(self, config: Config, opts: Options) -> None:
        self.config, self.opts = config, opts
        self.engine = Engine(build_rules(config), config.journal.max_message_bytes)
        self.remembered = _remembered_by(config)
        self.n = 0

    def explain(self, line: str) -> LineReport:
        cfg, opts = self.config, self.opts
        followed = opts.unit in cfg.journal.units
        notes = _line_notes(cfg, line, opts, followed)
        message = line[: self.engine.max_message_chars]
        before = self.engine.counters()
        produced: list[Event] = []
        if followed:
            entry = Entry(T0 + self.n * 1_000_000, line, opts.unit, PID, opts.priority, HOST)
            produced = list(self.engine.observe(entry)[1])
        self.n += 1
        after = self.engine.counters()
        reports = []
        for rule, spec in zip(self.engine.rules, cfg.rules, strict=True):
            name = rule.base.name
            delta = {k: v - before[name].get(k, 0) for k, v in after[name].items()}
            events = [e for e in produced if e.rule == name]
            reports.append(self._rule(rule, spec, message, followed, delta, events))
        return LineReport(line, opts.unit, opts.priority, followed, notes, tuple(reports))

    def _rule(
        self,
        rule: Rule,
        spec: RuleSpec,
        message: str,
        followed: bool,
        delta: dict[str, int],
        events: list[Event],
    ) -> RuleReport:
        base = rule.base
        patterns = tuple(_pattern(role, p, message) for role, p in _patterns(spec))
        prefilter_ok = not rule.prefilter or any(lit in message for lit in rule.prefilter)
        notes: list[str] = []
        if not followed:
            verdict = "not read"
        elif base.priority is not None and self.opts.priority > base.priority:
            verdict = "excluded by priority"
            notes.append(
                f"the rule reads only priority {priority_name(base.priority)} or more severe; "
                f"this line is {priority_name(self.opts.priority)}"
            )
        elif not prefilter_ok:
            verdict = "excluded by prefilter"
            if any(p.matches for p in patterns):
                notes.append(
                    "the regex matches but the prefilter excludes the line: the rule never "
                    "sees it (check the rule's `prefilter:`)"
                )
        else:
            verdict = "match" if delta.get("matches", 0) > 0 else "no match"
        if verdict == "match":
            notes += _effects(spec, delta, events, patterns, self.config, self.remembered)
        elif verdict == "not read" and any(p.matches for p in patterns):
            notes.append("the regex would match if the unit were read")
        js = tuple(e.to_json() for e in events)
        return RuleReport(base.name, base.type, verdict, patterns, tuple(notes), js)


def _line_notes(config: Config, line: str, opts: Options, followed: bool) -> tuple[str, ...]:
    notes = []
    if not followed:
        follows = ", ".join(config.journal.units) or "-"
        ids = ", ".join(config.journal.identifiers)
        notes.append(
            f"not read: the config follows only {follows}"
            + (f" (and the identifiers {ids})" if ids else "")
        )
    if _JOURNALCTL.match(line):
        notes.append(
            "this looks like `journalctl` output: the date, host and unit[pid] before the "
            "message are not part of MESSAGE, and the rules see only MESSAGE "
            "(copy lines from `journalctl -o cat`)"
        )
    if len(line) > config.journal.max_message_bytes:
        notes.append(f"rules see only the first {config.journal.max_message_bytes} characters")
    return tuple(notes)


def _remembered_by(config: Config) -> dict[str, list[str]]:
    """rule name -> the unknown_value rules that join context from it."""
    out: dict[str, list[str]] = {}
    for spec in config.rules:
        if isinstance(spec, UnknownValueSpec) and spec.context is not None:
            out.setdefault(spec.context.rule, []).append(spec.base.name)
    return out


def _patterns(spec: RuleSpec) -> list[tuple[str, Pattern]]:
    if isinstance(spec, PairSpec):
        return [(f"end[{i}]", p) for i, p in enumerate(spec.end)] + [
            (f"start[{i}]", p) for i, p in enumerate(spec.start)
        ]
    pattern = getattr(spec, "pattern", None)
    return [("pattern", pattern)] if isinstance(pattern, Pattern) else []


def _pattern(role: str, p: Pattern, message: str) -> PatternReport:
    m = p.regex.search(message)
    groups = {k: v for k, v in m.groupdict().items() if v is not None} if m else {}
    present = tuple(lit for lit in p.literals if lit in message)
    return PatternReport(role, p.source, p.literals, present, m is not None, groups)


def _effects(
    spec: RuleSpec,
    delta: dict[str, int],
    events: list[Event],
    patterns: tuple[PatternReport, ...],
    config: Config,
    remembered: dict[str, list[str]],
) -> list[str]:
    """What the matching line does, per rule type."""
    if isinstance(spec, MatchSpec):
        out = ["counted" + (f" by {', '.join(spec.labels)}" if spec.labels else "")]
        out += [f"emits a match event, key {e.key!r}" for e in events]
        if spec.base.name in remembered:
            out.append(
                f"remembered as context for {', '.join(remembered[spec.base.name])} "
                "(per host and _PID)"
            )
        return out
    if isinstance(spec, UnknownValueSpec):
        return _unknown_value(spec, events, config)
    if isinstance(spec, PairSpec):
        keys = [p.groups.get(spec.key, "") for p in patterns if p.matches]
        return _pair(spec, delta, events, keys[0] if keys else "")
    if isinstance(spec, AbsenceSpec):
        what = "any entry counts" if spec.pattern is None else "the line matches"
        return [f"activity ({what}): restarts the {human_duration(spec.window_us)} silence window"]
    if isinstance(spec, ThresholdSpec):
        w = human_duration(spec.window_us)
        return [f"counts toward the threshold: more than {spec.count} within {w} fires"]
    return []


def _unknown_value(spec: UnknownValueSpec, events: list[Event], config: Config) -> list[str]:
    out = []
    for e in events:
        raw, normalized = e.labels.get("status", ""), e.labels.get("normalized", "")
        canonical = ", ".join(config.statuses.canonical)
        out.append(
            f"value {raw!r} normalizes to {normalized!r}"
            if normalized
            else f"value {raw!r} is truly unknown (no alias; canonical: {canonical})"
        )
        if e.key and spec.key in spec.pattern.regex.groupindex:
            out.append(f"key {spec.key} = {e.key!r}")
        elif e.key and spec.context is not None:
            out.append(f"key {spec.key} = {e.key!r}, joined from the {spec.context.rule} line")
        elif spec.context is not None:
            c = spec.context
            out.append(
                f"key {spec.key}: none yet; joined from the latest {c.rule} line of the same "
                f"host and _PID within {human_duration(c.window_us)} (give that line first)"
            )
        else:
            out.append(f"key {spec.key}: none (the pattern has no {spec.key} group)")
        out.append(f"emits unknown_value ({e.severity})")
    return out


def _pair(spec: PairSpec, delta: dict[str, int], events: list[Event], key: str) -> list[str]:
    deadline = human_duration(spec.deadline_us)
    k = f"{spec.key} {key!r}"
    if delta.get("opened"):
        return [f"START of a pair: opens {k} (stalled if no end within {deadline})"]
    if delta.get("duplicate_start"):
        return [f"START of a pair for {k}, already open or recently closed: ignored"]
    if delta.get("unmatched_end"):
        return [f"END of a pair for {k}, but no pair is open for it: ignored (no start seen)"]
    return [f"END of a pair: closes {k} ({e.kind})" for e in events]


def explain_lines(config: Config, lines: Iterable[str], opts: Options) -> list[LineReport]:
    explainer = Explainer(config, opts)
    return [explainer.explain(line) for line in lines]

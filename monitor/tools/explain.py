"""`aisha-monitor explain`: what every rule does with given log lines, and why. The lines go
through the real engine (in order, as from one worker process, one second apart, so a context
line given first joins a later unknown status); the per-pattern detail is for people."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.config.schema import Config
from monitor.core.engine import engine_for
from monitor.core.model import Entry, Event, datetime_to_us
from monitor.tools.explainreport import LineReport, PatternReport, RuleReport, priority_name
from monitor.tools.explainreport import write_json as write_json  # re-exported for the command line
from monitor.tools.explainreport import write_text as write_text
from rules.base import PRIORITIES, ExplainContext, Pattern, Rule, RuleSpec

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
        self.engine = engine_for(config)
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
        patterns = tuple(_pattern(role, p, message) for role, p in spec.patterns())
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
            groups = tuple(p.groups for p in patterns if p.matches)
            canonical = self.config.statuses.canonical
            notes += spec.explain(ExplainContext(delta, events, groups, canonical))
            if base.name in self.remembered:
                joiners = ", ".join(self.remembered[base.name])
                notes.append(f"remembered as context for {joiners} (per host and _PID)")
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
    """rule name -> the rules that join context from it."""
    out: dict[str, list[str]] = {}
    for spec in config.rules:
        for rule in spec.context_rules():
            out.setdefault(rule, []).append(spec.base.name)
    return out


def _pattern(role: str, p: Pattern, message: str) -> PatternReport:
    m = p.regex.search(message)
    groups = {k: v for k, v in m.groupdict().items() if v is not None} if m else {}
    present = tuple(lit for lit in p.literals if lit in message)
    return PatternReport(role, p.source, p.literals, present, m is not None, groups)


def explain_lines(config: Config, lines: Iterable[str], opts: Options) -> list[LineReport]:
    explainer = Explainer(config, opts)
    return [explainer.explain(line) for line in lines]

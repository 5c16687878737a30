"""The report of `aisha-monitor explain`: what it says about each line and rule, written as text
for people or as one JSON document for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

PRIORITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


@dataclass(frozen=True, slots=True)
class PatternReport:
    role: str  # pattern, start[0], end[1]
    source: str
    literals: tuple[str, ...]  # the prefilter: one of them must be in the line
    present: tuple[str, ...]
    matches: bool
    groups: dict[str, str]


@dataclass(frozen=True, slots=True)
class RuleReport:
    name: str
    type: str
    verdict: str  # match | no match | not read | excluded by priority | excluded by prefilter
    patterns: tuple[PatternReport, ...]
    notes: tuple[str, ...]
    events: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class LineReport:
    line: str
    unit: str
    priority: int
    followed: bool
    notes: tuple[str, ...]
    rules: tuple[RuleReport, ...] = field(default_factory=tuple)


def priority_name(p: int) -> str:
    return f"{p} ({PRIORITY_NAMES[p]})"


def write_json(reports: Sequence[LineReport], out: TextIO) -> None:
    out.write(json.dumps([asdict(r) for r in reports], ensure_ascii=False, indent=2) + "\n")


def write_text(reports: Sequence[LineReport], out: TextIO) -> None:
    for i, r in enumerate(reports, 1):
        if i > 1:
            out.write("\n")
        shown = r.line if len(r.line) <= 200 else r.line[:200] + "…"
        out.write(f"line {i}: {shown}\n")
        read = "read" if r.followed else "NOT READ"
        out.write(f"  unit {r.unit} ({read}), priority {priority_name(r.priority)}\n")
        out.writelines(f"  ! {note}\n" for note in r.notes)
        width = max((len(x.name) for x in r.rules), default=0)
        for rule in r.rules:
            _write_rule(rule, width, out)


def _write_rule(rule: RuleReport, width: int, out: TextIO) -> None:
    verdict = rule.verdict.upper() if rule.verdict == "match" else rule.verdict
    out.write(f"  {rule.name:<{width}}  {rule.type:<13}  {verdict}\n")
    pad = " " * 6
    quiet = all(p.literals and not p.present and not p.matches for p in rule.patterns)
    if rule.patterns and quiet:
        lits = [repr(lit) for p in rule.patterns for lit in p.literals]
        more = f" (+{len(lits) - 3} more)" if len(lits) > 3 else ""
        out.write(f"{pad}prefilter absent: {', '.join(lits[:3])}{more}\n")
    elif not rule.patterns:
        out.write(f"{pad}(no pattern: every line of the followed units counts)\n")
    else:
        _write_patterns(rule.patterns, pad, out)
    out.writelines(f"{pad}→ {note}\n" for note in rule.notes)


def _write_patterns(patterns: tuple[PatternReport, ...], pad: str, out: TextIO) -> None:
    role_w = max(len(p.role) for p in patterns)
    for p in patterns:
        states = [f"{lit!r} {'present' if lit in p.present else 'absent'}" for lit in p.literals]
        pre = f"prefilter {', '.join(states)}" if states else "no prefilter"
        regex = "regex matches" if p.matches else "regex: no match"
        out.write(f"{pad}{p.role:<{role_w}}  {pre}; {regex}\n")
        if p.groups:
            groups = "  ".join(f"{k}={v!r}" for k, v in p.groups.items())
            out.write(f"{pad}{'':<{role_w}}  groups: {groups}\n")

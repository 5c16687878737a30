"""Regex compilation for rules: a literal prefilter derived from the pattern, and a check for
repeats that can backtrack catastrophically on hostile input (nested unbounded quantifiers here,
repeated alternatives that can match the same text in `monitor.config.regexoverlap`)."""

from __future__ import annotations

import re
import re._constants as sre_c  # type: ignore[import-not-found]  # no stubs for the private modules
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

from monitor.config.regexoverlap import (
    OVERLAP,
    OVERLAP_FIX,
    REPEATS,
    Chars,
    name_overlaps,
    overlapping,
    parts,
)

_UNBOUNDED = sre_c.MAXREPEAT
_NESTED = "an unbounded quantifier applied to a group that has one inside"
_NESTED_FIX = "make the inner repeat possessive (*+, ++) or atomic ((?>...)), or rewrite it"


def required_literal(pattern: str) -> str:
    """The longest run of literal text that every match must contain ("" when there is none).

    Only the top-level sequence (descending into plain groups) is considered; anything optional,
    repeated, alternative or case-insensitive ends a run, so the result is always safe to use as
    a `literal in message` prefilter.
    """
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return ""
    if parsed.state.flags & (re.IGNORECASE | re.VERBOSE):
        return ""
    runs: list[str] = []
    current: list[str] = []

    def walk(items: list[tuple[Any, Any]]) -> None:
        nonlocal current
        for op, av in items:
            if op is sre_c.LITERAL:
                current.append(chr(av))
            elif op is sre_c.AT:
                continue  # anchors consume nothing
            elif op is sre_c.SUBPATTERN and not (av[1] & re.IGNORECASE):
                walk(parts(av[3]))
            else:
                runs.append("".join(current))
                current = []

    walk(parts(parsed))
    runs.append("".join(current))
    return max(runs, key=len)


def _has_unbounded_repeat(items: list[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if op is sre_c.POSSESSIVE_REPEAT or op is sre_c.ATOMIC_GROUP:
            continue  # gives back nothing, so it cannot backtrack into the outer repeat
        if op in REPEATS:
            inner = av[1] == _UNBOUNDED or _has_unbounded_repeat(parts(av[2]))
        elif op is sre_c.SUBPATTERN:
            inner = _has_unbounded_repeat(parts(av[3]))
        elif op is sre_c.BRANCH:
            inner = any(_has_unbounded_repeat(parts(b)) for b in av[1])
        else:
            inner = False
        if inner:
            return True
    return False


def _findings(pattern: str) -> list[tuple[str, str]]:
    """(what, how to fix it) for each repeat that can backtrack exponentially."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return []
    chars = Chars(parsed)
    found: list[tuple[str, str]] = []

    def walk(items: list[tuple[Any, Any]]) -> None:
        for op, av in items:
            if op in REPEATS:
                problem = _repeat_problem(op, av, chars)
                if problem is not None:
                    found.append(problem)
                walk(parts(av[2]))
            elif op is sre_c.SUBPATTERN:
                walk(parts(av[3]))
            elif op is sre_c.BRANCH:
                for branch in av[1]:
                    walk(parts(branch))
            elif op is sre_c.ASSERT or op is sre_c.ASSERT_NOT:  # lookarounds backtrack too
                walk(parts(av[1]))
            elif op is sre_c.ATOMIC_GROUP:
                walk(parts(av))

    walk(parts(parsed))
    if (OVERLAP, OVERLAP_FIX) in found:
        name_overlaps(
            pattern, parsed.state.flags, found, lambda op, av: _repeat_problem(op, av, chars)
        )
    return found


def _repeat_problem(op: Any, av: Any, chars: Chars) -> tuple[str, str] | None:
    if av[1] != _UNBOUNDED or op is sre_c.POSSESSIVE_REPEAT:
        return None
    body = parts(av[2])
    if _has_unbounded_repeat(body):
        return _NESTED, _NESTED_FIX
    if overlapping(body, chars):
        return OVERLAP, OVERLAP_FIX
    return None


def catastrophic_parts(pattern: str) -> list[str]:
    """Descriptions of repeats that can backtrack exponentially: nested unbounded quantifiers,
    such as `(a+)+` or `(\\w+\\s?)*`, and repeated alternatives that can match the same
    text, such as `(a|aa)*`."""
    return [what for what, _ in _findings(pattern)]


def check_pattern(
    pattern: str, required_groups: tuple[str, ...] = ()
) -> tuple[re.Pattern[str] | None, list[str]]:
    """Compile `pattern`; return it with the list of problems (an empty list when it is fine)."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return None, [f"invalid regular expression: {e}"]
    problems = [
        f"{what}: it can take exponential time on a long hostile line; {fix}"
        for what, fix in _findings(pattern)
    ]
    problems += [
        f"the pattern needs a named group (?P<{g}>...)"
        for g in required_groups
        if g not in compiled.groupindex
    ]
    return compiled, problems

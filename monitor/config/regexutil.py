"""Regex compilation for rules: a literal prefilter derived from the pattern, and a check for
repeats that can backtrack catastrophically on hostile input (nested unbounded quantifiers and
bounded repeats of ambiguous groups here, repeated alternatives that can match the same text in
`monitor.config.regexoverlap`). No such check is complete: the daemon also gives every search a
time budget (monitor/matchbudget.py)."""

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
# `(.*?,){11}P` on "P1,1,…,1" (81 characters) tries every way of cutting the line into 11
# pieces: C(40, 11) ≈ 2e9; counted 3 times it already takes 10 ms on that line, and grows with
# the line. Alternatives that can match the same text, `(a|aa){n}`, try at most 2**n ways
_MANY_ROUNDS = 3
_MANY_CHOICES = 16
_BOUNDED = "a repeat counted {n} times of a group that can match the same text in several ways"
_BOUNDED_FIX = (
    "make what the group repeats unable to run into what follows it (`(.*?,){11}` is "
    "`([^,]*,){11}`), or make the inner repeat possessive (*+, ++) or atomic ((?>...))"
)


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
    if op is sre_c.POSSESSIVE_REPEAT:
        return None
    body = parts(av[2])
    if av[1] != _UNBOUNDED:
        if (av[1] >= _MANY_ROUNDS and _shifts(body, body, chars)) or (
            av[1] >= _MANY_CHOICES and overlapping(body, chars)
        ):
            return _BOUNDED.format(n=av[1]), _BOUNDED_FIX
        return None
    if _has_unbounded_repeat(body):
        return _NESTED, _NESTED_FIX
    if overlapping(body, chars):
        return OVERLAP, OVERLAP_FIX
    return None


def _shifts(items: list[tuple[Any, Any]], after: list[tuple[Any, Any]], chars: Chars) -> bool:
    """Whether an unbounded repeat in `items` can take the first character of what follows it
    (the rest of `items`, then `after`): then where one round of the outer repeat ends and the
    next begins is not fixed, as in `(a+){20}` or `(.*?,){11}`."""
    for i, (op, av) in enumerate(items):
        rest = items[i + 1 :] + after
        if op is sre_c.POSSESSIVE_REPEAT or op is sre_c.ATOMIC_GROUP:
            continue  # gives back nothing
        if op in REPEATS:
            inner = parts(av[2])
            if av[1] == _UNBOUNDED:
                follows, _ = chars.first(rest)
                mine, _ = chars.first(inner)
                if any(chars.meet(a, b) for a in mine for b in follows):
                    return True
            nested = [(inner, inner + rest)]
        elif op is sre_c.SUBPATTERN:
            nested = [(parts(av[3]), rest)]
        elif op is sre_c.BRANCH:
            nested = [(parts(b), rest) for b in av[1]]
        else:
            nested = []
        if any(_shifts(sub, then, chars) for sub, then in nested):
            return True
    return False


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

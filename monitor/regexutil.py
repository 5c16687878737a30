"""Regex compilation for rules: a literal prefilter derived from the pattern, and a check for
nested quantifiers that can backtrack catastrophically on hostile input."""

from __future__ import annotations

import re
import re._constants as sre_c  # type: ignore[import-not-found]  # no stubs for the private modules
import re._parser as sre_parse  # type: ignore[import-not-found]
from typing import Any

_UNBOUNDED = sre_c.MAXREPEAT
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT)


def _items(parsed: Any) -> list[tuple[Any, Any]]:
    return list(parsed.data if hasattr(parsed, "data") else parsed)


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
                walk(_items(av[3]))
            else:
                runs.append("".join(current))
                current = []

    walk(_items(parsed))
    runs.append("".join(current))
    return max(runs, key=len)


def _has_unbounded_repeat(items: list[tuple[Any, Any]]) -> bool:
    for op, av in items:
        if op is sre_c.POSSESSIVE_REPEAT or op is sre_c.ATOMIC_GROUP:
            continue  # gives back nothing, so it cannot backtrack into the outer repeat
        if op in _REPEATS:
            inner = av[1] == _UNBOUNDED or _has_unbounded_repeat(_items(av[2]))
        elif op is sre_c.SUBPATTERN:
            inner = _has_unbounded_repeat(_items(av[3]))
        elif op is sre_c.BRANCH:
            inner = any(_has_unbounded_repeat(_items(b)) for b in av[1])
        else:
            inner = False
        if inner:
            return True
    return False


def catastrophic_parts(pattern: str) -> list[str]:
    """Descriptions of nested unbounded quantifiers, such as `(a+)+` or `(\\w+\\s?)*`."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return []
    found: list[str] = []

    def walk(items: list[tuple[Any, Any]]) -> None:
        for op, av in items:
            if op in _REPEATS:
                body = _items(av[2])
                if (
                    av[1] == _UNBOUNDED
                    and op is not sre_c.POSSESSIVE_REPEAT
                    and _has_unbounded_repeat(body)
                ):
                    found.append("an unbounded quantifier applied to a group that has one inside")
                walk(body)
            elif op is sre_c.SUBPATTERN:
                walk(_items(av[3]))
            elif op is sre_c.BRANCH:
                for branch in av[1]:
                    walk(_items(branch))
            elif op is sre_c.ASSERT or op is sre_c.ASSERT_NOT:  # lookarounds backtrack too
                walk(_items(av[1]))
            elif op is sre_c.ATOMIC_GROUP:
                walk(_items(av))

    walk(_items(parsed))
    return found


def check_pattern(
    pattern: str, required_groups: tuple[str, ...] = ()
) -> tuple[re.Pattern[str] | None, list[str]]:
    """Compile `pattern`; return it with the list of problems (an empty list when it is fine)."""
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        return None, [f"invalid regular expression: {e}"]
    problems = [
        f"{part}: it can take exponential time on a long hostile line; "
        "make the inner repeat possessive (*+, ++) or atomic ((?>...)), or rewrite it"
        for part in catastrophic_parts(pattern)
    ]
    problems += [
        f"the pattern needs a named group (?P<{g}>...)"
        for g in required_groups
        if g not in compiled.groupindex
    ]
    return compiled, problems

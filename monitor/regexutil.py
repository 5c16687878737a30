"""Regex compilation for rules: a literal prefilter derived from the pattern, and a check for
repeats that can backtrack catastrophically on hostile input (nested unbounded quantifiers,
repeated alternatives that can match the same text)."""

from __future__ import annotations

import re
import re._constants as sre_c  # type: ignore[import-not-found]  # no stubs for the private modules
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Callable, Iterator
from typing import Any

_UNBOUNDED = sre_c.MAXREPEAT
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT)
_NESTED = "an unbounded quantifier applied to a group that has one inside"
_NESTED_FIX = "make the inner repeat possessive (*+, ++) or atomic ((?>...)), or rewrite it"
_OVERLAP = "a repeated group whose alternatives can match the same text"
_OVERLAP_FIX = (
    "make the alternatives exclusive (no two may start with the same text: `(a|aa)*` is `a*`, "
    "`(\\w|\\d\\d)+` is `\\w+`), or make the repeat possessive (*+, ++) or atomic ((?>...))"
)


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


def _findings(pattern: str) -> list[tuple[str, str]]:
    """(what, how to fix it) for each repeat that can backtrack exponentially."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error:
        return []
    chars = _Chars(parsed)
    found: list[tuple[str, str]] = []

    def walk(items: list[tuple[Any, Any]]) -> None:
        for op, av in items:
            if op in _REPEATS:
                problem = _repeat_problem(op, av, chars)
                if problem is not None:
                    found.append(problem)
                walk(_items(av[2]))
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
    if (_OVERLAP, _OVERLAP_FIX) in found:
        _name_overlaps(pattern, parsed.state.flags, chars, found)
    return found


def _repeat_problem(op: Any, av: Any, chars: _Chars) -> tuple[str, str] | None:
    if av[1] != _UNBOUNDED or op is sre_c.POSSESSIVE_REPEAT:
        return None
    body = _items(av[2])
    if _has_unbounded_repeat(body):
        return _NESTED, _NESTED_FIX
    if _overlapping(body, chars):
        return _OVERLAP, _OVERLAP_FIX
    return None


def catastrophic_parts(pattern: str) -> list[str]:
    """Descriptions of repeats that can backtrack exponentially: nested unbounded quantifiers,
    such as `(a+)+` or `(\\w+\\s?)*`, and repeated alternatives that can match the same
    text, such as `(a|aa)*`."""
    return [what for what, _ in _findings(pattern)]


# --- repeated alternatives that can match the same text ------------------------------------------
#
# `(a|aa)*b` on "aaaa…!" tries every way of cutting the a's into "a" and "aa" before it fails.
# Under an unbounded repeat, two alternatives of a branch are taken to overlap when their first
# characters (what follows them in the group and in the next round included) can be the same and
# their fixed-length starts agree position by position, as far as the shorter one is fixed. It
# errs towards overlap: assertions are ignored, and anything not fixed ends the comparison.

_FIXED = 16  # positions compared at most
CharTest = Callable[[str], bool]
_CATEGORIES = {
    sre_c.CATEGORY_DIGIT: r"\d",
    sre_c.CATEGORY_NOT_DIGIT: r"\D",
    sre_c.CATEGORY_SPACE: r"\s",
    sre_c.CATEGORY_NOT_SPACE: r"\S",
    sre_c.CATEGORY_WORD: r"\w",
    sre_c.CATEGORY_NOT_WORD: r"\W",
}
# besides the pattern's own characters: Latin, Cyrillic, other scripts' digits, odd spaces
_PROBES = (
    [chr(c) for c in range(0x250)]
    + [chr(c) for c in range(0x370, 0x530)]
    + list("\u0660\u0669\u0966\u2000\u200b\u2028\u2029\u202f\u205f\u3000\u4e00\uff10\uff21")
)


class _Chars:
    """Character sets of one pattern, compared on sample characters: all those the pattern names
    (literals, range ends and their neighbours) and a fixed sample of other scripts."""

    def __init__(self, parsed: Any) -> None:
        self.ascii = bool(parsed.state.flags & re.ASCII)
        self.dotall = bool(parsed.state.flags & re.DOTALL)
        self.ignorecase = bool(parsed.state.flags & re.IGNORECASE)
        named: set[str] = set()
        for op, av in _nodes(_items(parsed)):
            if op is sre_c.LITERAL or op is sre_c.NOT_LITERAL:
                named.add(chr(av))
            elif op is sre_c.RANGE:
                named.update(chr(c) for c in (av[0], av[1], max(av[0] - 1, 0), av[1] + 1))
            elif op is sre_c.SUBPATTERN and av[1] & re.IGNORECASE:
                self.ignorecase = (
                    True  # anywhere: case is then ignored everywhere (errs to overlap)
                )
        self.probes = sorted(named | set(_PROBES))

    def test(self, op: Any, av: Any) -> CharTest | None:
        """What one character position accepts; None when `op` is not one character."""
        if op is sre_c.LITERAL:
            return self._cased(lambda c: c == chr(av))
        if op is sre_c.NOT_LITERAL:
            return self._cased(lambda c: c != chr(av))
        if op is sre_c.ANY:
            return lambda c: self.dotall or c != "\n"
        if op is sre_c.IN:
            return self._cased(self._in(av))
        return None

    def _in(self, items: list[tuple[Any, Any]]) -> CharTest:
        negate = bool(items) and items[0][0] is sre_c.NEGATE
        tests = [self._member(op, av) for op, av in items[negate:]]
        return lambda c: any(t(c) for t in tests) != negate

    def _member(self, op: Any, av: Any) -> CharTest:
        if op is sre_c.LITERAL:
            return lambda c: c == chr(av)
        if op is sre_c.RANGE:
            return lambda c: av[0] <= ord(c) <= av[1]
        if op is sre_c.CATEGORY and av in _CATEGORIES:
            regex = re.compile(_CATEGORIES[av], re.ASCII if self.ascii else 0)
            return lambda c: regex.match(c) is not None
        return lambda c: True  # anything else: assume it can be any character

    def _cased(self, test: CharTest) -> CharTest:
        if not self.ignorecase:
            return test
        return lambda c: test(c) or test(c.lower()) or test(c.upper())

    def meet(self, a: CharTest, b: CharTest) -> bool:
        return any(a(c) and b(c) for c in self.probes)

    def first(self, items: list[tuple[Any, Any]]) -> tuple[list[CharTest], bool]:
        """What the first character can be (a union), and whether `items` can match nothing."""
        out: list[CharTest] = []
        for op, av in items:
            tests, empty = self._first_of(op, av)
            out += tests
            if not empty:
                return out, False
        return out, True

    def _first_of(self, op: Any, av: Any) -> tuple[list[CharTest], bool]:
        test = self.test(op, av)
        if test is not None:
            return [test], False
        if op is sre_c.SUBPATTERN:
            return self.first(_items(av[3]))
        if op is sre_c.ATOMIC_GROUP:
            return self.first(_items(av))
        if op in _REPEATS:
            tests, empty = self.first(_items(av[2]))
            return tests, empty or av[0] == 0
        if op is sre_c.BRANCH:
            starts = [self.first(_items(b)) for b in av[1]]
            return [t for tests, _ in starts for t in tests], any(e for _, e in starts)
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            return [], True
        return [lambda c: True], False  # a backreference, a conditional: could be anything

    def fixed(self, items: list[tuple[Any, Any]]) -> list[CharTest]:
        """One test per position of the fixed-length start of `items` (at most _FIXED), then
        what the first part that is not fixed must start with."""
        out: list[CharTest] = []
        todo = list(items)
        while todo and len(out) < _FIXED:
            op, av = todo[0]
            test = self.test(op, av)
            if test is not None:
                out.append(test)
            elif op is sre_c.SUBPATTERN:
                todo[:1] = _items(av[3])
                continue
            elif op in _REPEATS[:2] and av[0] == av[1]:
                todo[:1] = _items(av[2]) * min(av[0], _FIXED)
                continue
            elif op not in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):  # those: zero width
                tests, empty = self.first(todo)
                if not empty:
                    out.append(_any_of(tests))
                break
            del todo[0]
        return out[:_FIXED]

    def overlap(self, a: list[tuple[Any, Any]], b: list[tuple[Any, Any]]) -> bool:
        firsts_a, firsts_b = self.first(a)[0], self.first(b)[0]
        if not any(self.meet(x, y) for x in firsts_a for y in firsts_b):
            return False
        fixed = zip(self.fixed(a), self.fixed(b), strict=False)  # as far as the shorter
        return all(self.meet(x, y) for x, y in fixed)


def _any_of(tests: list[CharTest]) -> CharTest:
    return lambda c: any(t(c) for t in tests)


def _nodes(items: list[tuple[Any, Any]]) -> Iterator[tuple[Any, Any]]:
    """Every node, nested ones too."""
    for op, av in items:
        yield op, av
        if op is sre_c.IN:
            yield from av
        elif op is sre_c.SUBPATTERN:
            yield from _nodes(_items(av[3]))
        elif op in _REPEATS:
            yield from _nodes(_items(av[2]))
        elif op is sre_c.BRANCH:
            for branch in av[1]:
                yield from _nodes(_items(branch))
        elif op is sre_c.ASSERT or op is sre_c.ASSERT_NOT:
            yield from _nodes(_items(av[1]))
        elif op is sre_c.ATOMIC_GROUP:
            yield from _nodes(_items(av))


def _branches(
    items: list[tuple[Any, Any]], after: list[tuple[Any, Any]]
) -> Iterator[tuple[list[list[tuple[Any, Any]]], list[tuple[Any, Any]]]]:
    """The alternatives of each branch in `items` (groups entered, not repeats or atomic groups),
    with what follows the branch: the rest of `items`, then `after`."""
    for i, (op, av) in enumerate(items):
        rest = items[i + 1 :] + after
        if op is sre_c.BRANCH:
            alternatives = [_items(b) for b in av[1]]
            yield alternatives, rest
            for alternative in alternatives:
                yield from _branches(alternative, rest)
        elif op is sre_c.SUBPATTERN:
            yield from _branches(_items(av[3]), rest)


def _overlapping(body: list[tuple[Any, Any]], chars: _Chars) -> bool:
    """Whether two alternatives of a branch in the body of an unbounded repeat can match the
    same text (followed by the rest of the body and the next round, as the repeat goes on)."""
    for alternatives, rest in _branches(body, body):
        ways = [alternative + rest for alternative in alternatives]
        for i, a in enumerate(ways):
            if any(chars.overlap(a, b) for b in ways[i + 1 :]):
                return True
    return False


_QUANTIFIER = re.compile(r"(?:[*+]|\{\d*,\})(\+)?")


def _repeated_groups(pattern: str) -> list[str]:
    """The source text of each group followed by an unbounded greedy or lazy quantifier, in the
    order the groups open."""
    found: list[tuple[int, str]] = []
    opened: list[int] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 1
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            i += pattern.startswith("^", i + 1)
            i += pattern.startswith("]", i + 1)  # a "]" first in a class is a character
        elif c == "(":
            opened.append(i)
        elif c == ")" and opened:
            start = opened.pop()
            m = _QUANTIFIER.match(pattern, i + 1)
            if m is not None and m.group(1) is None:
                found.append((start, pattern[start : m.end()]))
        i += 1
    return [text for _, text in sorted(found)]


def _name_overlaps(pattern: str, flags: int, chars: _Chars, found: list[tuple[str, str]]) -> None:
    """Put the source text of each repeated group found overlapping into its description."""
    named = []
    for text in _repeated_groups(pattern):
        try:
            ((op, av),) = _items(sre_parse.parse(text, flags))
        except (re.error, ValueError):  # a reference to a group outside it; or not one repeat
            continue
        if op in _REPEATS and _repeat_problem(op, av, chars) == (_OVERLAP, _OVERLAP_FIX):
            named.append(text)
    if len(named) != sum(what == _OVERLAP for what, _ in found):
        return  # the source did not say which: keep the plain description
    names = iter(named)
    found[:] = [
        (f"`{next(names)}`: {what}" if what == _OVERLAP else what, fix) for what, fix in found
    ]


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

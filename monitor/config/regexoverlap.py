"""Repeated alternatives that can match the same text, such as `(a|aa)*`: on a line that almost
matches, the regex engine tries every way of cutting the text between the alternatives, which
takes exponential time (catastrophic backtracking)."""

from __future__ import annotations

import re
import re._constants as sre_c  # type: ignore[import-not-found]  # no stubs for the private modules
import re._parser as sre_parse  # type: ignore[import-not-found]
from collections.abc import Callable, Iterator
from typing import Any

REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT)
OVERLAP = "a repeated group whose alternatives can match the same text"
OVERLAP_FIX = (
    "make the alternatives exclusive (no two may start with the same text: `(a|aa)*` is `a*`, "
    "`(\\w|\\d\\d)+` is `\\w+`), or make the repeat possessive (*+, ++) or atomic ((?>...))"
)


def parts(parsed: Any) -> list[tuple[Any, Any]]:
    """The (opcode, argument) nodes of a parsed sequence."""
    return list(parsed.data if hasattr(parsed, "data") else parsed)


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


class Chars:
    """Character sets of one pattern, compared on sample characters: all those the pattern names
    (literals, range ends and their neighbours) and a fixed sample of other scripts."""

    def __init__(self, parsed: Any) -> None:
        self.ascii = bool(parsed.state.flags & re.ASCII)
        self.dotall = bool(parsed.state.flags & re.DOTALL)
        self.ignorecase = bool(parsed.state.flags & re.IGNORECASE)
        named: set[str] = set()
        for op, av in _nodes(parts(parsed)):
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
        # a case mapping may give two characters ('ß'.upper() is 'SS'): not one the test takes
        return lambda c: test(c) or any(len(m) == 1 and test(m) for m in (c.lower(), c.upper()))

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
            return self.first(parts(av[3]))
        if op is sre_c.ATOMIC_GROUP:
            return self.first(parts(av))
        if op in REPEATS:
            tests, empty = self.first(parts(av[2]))
            return tests, empty or av[0] == 0
        if op is sre_c.BRANCH:
            starts = [self.first(parts(b)) for b in av[1]]
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
                todo[:1] = parts(av[3])
                continue
            elif op in REPEATS[:2] and av[0] == av[1]:
                todo[:1] = parts(av[2]) * min(av[0], _FIXED)
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
            yield from _nodes(parts(av[3]))
        elif op in REPEATS:
            yield from _nodes(parts(av[2]))
        elif op is sre_c.BRANCH:
            for branch in av[1]:
                yield from _nodes(parts(branch))
        elif op is sre_c.ASSERT or op is sre_c.ASSERT_NOT:
            yield from _nodes(parts(av[1]))
        elif op is sre_c.ATOMIC_GROUP:
            yield from _nodes(parts(av))


def _branches(
    items: list[tuple[Any, Any]], after: list[tuple[Any, Any]]
) -> Iterator[tuple[list[list[tuple[Any, Any]]], list[tuple[Any, Any]]]]:
    """The alternatives of each branch in `items` (groups entered, not repeats or atomic groups),
    with what follows the branch: the rest of `items`, then `after`."""
    for i, (op, av) in enumerate(items):
        rest = items[i + 1 :] + after
        if op is sre_c.BRANCH:
            alternatives = [parts(b) for b in av[1]]
            yield alternatives, rest
            for alternative in alternatives:
                yield from _branches(alternative, rest)
        elif op is sre_c.SUBPATTERN:
            yield from _branches(parts(av[3]), rest)


def overlapping(body: list[tuple[Any, Any]], chars: Chars) -> bool:
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


Problem = Callable[[Any, Any], tuple[str, str] | None]


def name_overlaps(pattern: str, flags: int, found: list[tuple[str, str]], problem: Problem) -> None:
    """Put the source text of each repeated group found overlapping into its description.

    `problem` is what the caller reports for a repeat (op, av): a group counts only when that is
    OVERLAP, since another finding (a nested quantifier) takes precedence.
    """
    named = []
    for text in _repeated_groups(pattern):
        try:
            ((op, av),) = parts(sre_parse.parse(text, flags))
        except (re.error, ValueError):  # a reference to a group outside it; or not one repeat
            continue
        if op in REPEATS and problem(op, av) == (OVERLAP, OVERLAP_FIX):
            named.append(text)
    if len(named) != sum(what == OVERLAP for what, _ in found):
        return  # the source did not say which: keep the plain description
    names = iter(named)
    found[:] = [
        (f"`{next(names)}`: {what}" if what == OVERLAP else what, fix) for what, fix in found
    ]

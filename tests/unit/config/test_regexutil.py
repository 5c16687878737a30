"""Prefilter literals must be in every match; nested quantifiers and repeated alternatives that
can match the same text are caught."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.regexutil import catastrophic_parts, check_pattern, required_literal
from monitor.config.schema import default_config_text, load_config_text


def _shipped_patterns() -> list[str]:
    out = []
    for spec in load_config_text(default_config_text(), "c", {}).rules:
        single = getattr(spec, "pattern", None)
        patterns = (
            getattr(spec, "start", ()) + getattr(spec, "end", ()) + ((single,) if single else ())
        )
        out += [p.source for p in patterns]
    return out


SHIPPED = _shipped_patterns()

PATTERNS = [
    *SHIPPED,
    r"a(b|c)ddd",
    r"x?yz+w",
    r"^foo\b bar$",
    r"(?i:abc)def",
    r"pre(?P<g>mid)post",
    r"(?:ab)+cd",
]


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        (
            r"\[WEBHOOK BACKGROUND\] Неизвестный статус: (?P<value>\S+)",
            "[WEBHOOK BACKGROUND] Неизвестный статус: ",
        ),
        (r"\[TRAINING (?P<outcome>COMPLETED)\] (?P<request_id>[^\s:]+):", "[TRAINING COMPLETED] "),
        (r"(?i)foo", ""),
        (r"a(b|c)ddd", "ddd"),
        (r"x?yz", "yz"),
        (r"(?:ab)+cd", "cd"),
        (r"pre(?P<g>mid)post", "premidpost"),
    ],
)
def test_required_literal(pattern: str, literal: str) -> None:
    assert required_literal(pattern) == literal


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_match_contains_the_literal(pattern: str, data: st.DataObject) -> None:
    text = data.draw(st.from_regex(re.compile(pattern)))
    assert required_literal(pattern) in text


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(\w+\s?)*$", r"(?:x|y*)*z", r"((ab)*c*)+d"])
def test_nested_quantifiers_are_reported(pattern: str) -> None:
    assert catastrophic_parts(pattern)
    _, problems = check_pattern(pattern)
    assert problems and "possessive" in problems[0]


@pytest.mark.parametrize(
    "pattern", [r"\S+ \S+", r"(a|b)*c", r"(a++)+$", r"((?>a+))+$", r"a{2,5}(bc)+"]
)
def test_safe_patterns_pass(pattern: str) -> None:
    assert catastrophic_parts(pattern) == []


def test_the_rejected_shape_really_is_slow_and_the_fix_is_not() -> None:
    hostile = "a" * 20 + "!"
    started = time.monotonic()
    assert re.search(r"(a++)+$", hostile) is None
    fast = time.monotonic() - started
    started = time.monotonic()
    assert re.search(r"(a+)+$", hostile) is None
    slow = time.monotonic() - started
    assert slow > 20 * fast  # why the config check exists; 2**20 steps vs a handful


OVERLAPPING = [
    r"(a|a)*b",
    r"(a|aa)*b",
    r"(a|aa)*?b",
    r"(\w|\d\d)+$",
    r"(\d|\w\w)+$",
    r"(a|b|ab)*c",
    r"(?:x|ab|a|b)+$",
    r"(a|a?b)*c",
    r"((a|a)c)*$",
    r"x(?=(a|aa)*b)",
    r"(?>(a|aa)*b)",
    r"(?i:(a|A)x|ax)*y",
]


@pytest.mark.parametrize("pattern", OVERLAPPING)
def test_repeated_alternatives_that_can_match_the_same_text_are_reported(pattern: str) -> None:
    _, problems = check_pattern(pattern)
    assert len(problems) == 1, problems
    assert "alternatives can match the same text" in problems[0]
    assert "exponential time" in problems[0] and "exclusive" in problems[0]


def test_the_problem_names_the_repeated_group() -> None:
    _, problems = check_pattern(r"^\[x\] (?P<id>\w+) (?:ok|(\w|\d\d)+)$")
    assert problems[0].startswith(r"`(\w|\d\d)+`: a repeated group"), problems
    _, problems = check_pattern(r"(a|a)*b(a|aa)*c")
    assert [p.split(":")[0] for p in problems] == ["`(a|a)*`", "`(a|aa)*`"]


@pytest.mark.parametrize(
    "pattern",
    [
        r"(foo|far)*",
        r"(GET|POST|PUT)",
        r"(GET|POST|PUT)+",
        r"(WARN|WARNING)+ ",
        r"(ab|a)*c",  # "a" then "b" or the next round's "a": one way only
        r"(a|ab)*c",
        r"(\r\n|\n)*",
        r"(?:\\.|[^\\\"])*\"",
        r"(?:-\d|\+\d)+",
        r"(Ж|ж)+",
        r"(a|a)*+b",  # possessive and atomic repeats give nothing back
        r"(?>a|a)*b",
        r"(a|a){1,5}b",  # bounded
        r"(\w|\d)+$",  # Python makes the class [\w\d] of it: linear
    ],
)
def test_exclusive_alternatives_pass(pattern: str) -> None:
    assert catastrophic_parts(pattern) == []


def test_single_character_alternatives_are_one_class_to_python() -> None:
    # 80 characters: microseconds if the alternation is one class (quadratic at worst), longer
    # than the age of the universe if it backtracked over both branches (2**80 ways)
    hostile = "1" * 80 + "!"
    started = time.monotonic()
    assert re.search(r"(\w|\d)+$", hostile) is None
    assert time.monotonic() - started < 10.0
    assert catastrophic_parts(r"(\s+|\w+)*") != [], "a repeat in a repeat: the other check"


words = st.text(alphabet="ab", min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(words, words)
def test_two_literal_alternatives(a: str, b: str) -> None:
    """`(A|B)*` is ambiguous exactly when AB == BA: then rejected; when neither is a prefix of
    the other, one way to read the text only: accepted."""
    parts = catastrophic_parts(f"({a}|{b})*c")
    if a + b == b + a:
        assert parts, (a, b)
    if not a.startswith(b) and not b.startswith(a):
        assert parts == [], (a, b)


def test_case_insensitive_classes_with_multi_character_case_mappings_are_checked() -> None:
    """'ß'.upper() is 'SS': checking (?i) alternatives must not stumble on it."""
    assert catastrophic_parts("(?i)(?:[a-c]y|xy)+") == []
    assert catastrophic_parts("(?i)(?:ab|AB)*c") != [], "alike once case is ignored"
    assert catastrophic_parts("(?:ab|AB)*c") == []


# a bounded repeat counted many times of a group whose rounds can end in several places: the
# search tries every way of cutting the line into that many rounds
BOUNDED = [r"(.*?,){11}P", r"(?:a+){20}b", r"(\w+\s?){6}!", r"(a|aa){30}b", r"((a+){2}){10}b"]


@pytest.mark.parametrize("pattern", BOUNDED)
def test_bounded_repeats_of_ambiguous_groups_are_reported(pattern: str) -> None:
    _, problems = check_pattern(pattern)
    assert problems, f"accepted: {pattern}"
    assert "times of a group that can match the same text in several ways" in problems[0]
    assert "possessive" in problems[0]


def test_the_rejected_bounded_shape_really_is_slow_and_the_fix_is_not() -> None:
    line = "P" + "1," * 40  # 81 characters
    started = time.monotonic()
    assert re.search(r"([^,]*,){11}P", line) is None
    fast = time.monotonic() - started
    started = time.monotonic()
    assert re.search(r"(.*?,){4}P", line) is None  # 4 rounds, not 11: 11 would take hours
    slow = time.monotonic() - started
    assert slow > 20 * fast


@pytest.mark.parametrize(
    "pattern",
    [
        r"([^,]*,){11}P",  # a round cannot run into the next: where it ends is fixed
        r"(\d+\.){3}\d+",
        r"(\S+\s+){5}x",
        r"(?:a++){20}b",
        r"(?:(?>a+)){20}b",
        r"(?:a+){2}b",  # two rounds: no worse than `a+a+b`
        r"\d{4}-\d\d-\d\d",
        r"(?:ab|cd){10}",
    ],
)
def test_bounded_repeats_with_one_way_to_match_pass(pattern: str) -> None:
    assert catastrophic_parts(pattern) == []

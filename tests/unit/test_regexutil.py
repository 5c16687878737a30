"""Prefilter literals must be in every match; nested quantifiers are caught."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import default_config_text, load_config_text
from monitor.regexutil import catastrophic_parts, check_pattern, required_literal


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

"""A hostile webhook body cannot make a shipped rule's regex take long: every shipped pattern is
timed on adversarial 64 KiB strings (built from its own literals and its logging prefix, and
random ones from its own characters); and `check-config` rejects patterns with nested unbounded
quantifiers, in every place a pattern can go."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.cli import main
from monitor.config.schema import load_config
from monitor.core.engine import engine_for
from monitor.core.model import Entry
from rules.base import Pattern
from tests.helpers import PREFIX, T0
from tests.property import examples

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.yaml"
SIZE = 64 * 1024
BOUND_S = 0.5
CONFIG = load_config(SHIPPED, env={})


def shipped_patterns() -> list[tuple[str, Pattern]]:
    out = []
    for spec in CONFIG.rules:
        name = spec.base.name
        pattern = getattr(spec, "pattern", None)
        if isinstance(pattern, Pattern):
            out.append((f"{name}.pattern", pattern))
        for role in ("start", "end"):
            for i, p in enumerate(getattr(spec, role, ())):
                out.append((f"{name}.{role}[{i}]", p))
    return out


PATTERNS = shipped_patterns()


def fill(seed: str, size: int = SIZE) -> str:
    return (seed * (size // max(len(seed), 1) + 1))[:size]


def adversarial(p: Pattern) -> list[str]:
    """64 KiB strings that come close to matching `p` for as long as possible."""
    lits = p.literals or ("",)
    out = [fill(c) for c in ("a", " ", "0", "-", "'", "{", ".", "Ж", "\t", "x ")]
    out += [fill(PREFIX), "2026-11-27 10:15:02," + fill("1"), PREFIX[:26] + fill("a.")]
    out += [PREFIX[:26] + "app - " + fill("A"), PREFIX + fill(PREFIX[:-1])]
    for lit in lits:
        out += [fill(lit), PREFIX + lit + fill("x"), PREFIX + lit + fill(" ")]
        out += [lit + fill("'"), PREFIX + lit + fill("{'request_id': '"), lit + fill("\\S ")]
        out += [PREFIX + lit + fill("r, "), PREFIX + lit + fill("a" * 40 + ":")]
    return [s[:SIZE] for s in out]


def timed_search(p: Pattern, text: str) -> float:
    started = time.perf_counter()
    p.search(text)
    p.regex.search(text)  # without the prefilter too: the literal may be in a hostile body
    return time.perf_counter() - started


@pytest.mark.parametrize(("where", "pattern"), PATTERNS, ids=[w for w, _ in PATTERNS])
def test_shipped_pattern_on_adversarial_64k_strings(where: str, pattern: Pattern) -> None:
    worst = max((timed_search(pattern, s), i) for i, s in enumerate(adversarial(pattern)))
    print(f"\n{where}: worst {worst[0] * 1000:.2f} ms over {len(adversarial(pattern))} strings")
    assert worst[0] < BOUND_S, f"{where}: {worst[0]:.2f}s on string #{worst[1]}"


ALPHABET = sorted(
    set("".join(p.source for _, p in PATTERNS) + "".join("".join(p.literals) for _, p in PATTERNS))
    | set(PREFIX)
    | set(" \n'{}[]()_,:0123456789aZЖ")
)


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(PATTERNS), st.text(alphabet=ALPHABET, min_size=1, max_size=60), st.booleans()
)
def test_shipped_patterns_on_random_64k_strings(
    named: tuple[str, Pattern], chunk: str, prefixed: bool
) -> None:
    where, pattern = named
    text = ((PREFIX + "".join(pattern.literals)) if prefixed else "") + fill(chunk)
    took = timed_search(pattern, text[:SIZE])
    assert took < BOUND_S, f"{where}: {took:.2f}s on {chunk!r} repeated"


def test_a_64k_hostile_message_through_every_rule() -> None:
    engine = engine_for(CONFIG)
    worst = 0.0
    for _, p in PATTERNS:
        for text in adversarial(p):
            started = time.perf_counter()
            engine.observe(Entry(T0, text, "aisha-api.service", 4101, 3))
            worst = max(worst, time.perf_counter() - started)
    n = len(PATTERNS)
    print(f"\nengine.observe on {n} x adversarial 64 KiB messages: worst {worst * 1000:.2f} ms")
    assert worst < BOUND_S


# --- check-config rejects catastrophic patterns ---------------------------------------------------

NESTED = [r"(a+)+$", r"(a*)*b", r"(\w+\s?)*$", r"(?:x+y?)+z", r"((ab)*c)+$", r"(a+){2,}$",
          r"(?P<value>(\d+)+)!", r"(a|b+)*c"]  # fmt: skip


def config_with(tmp_path: Path, rule: str, where: str, pattern: str) -> Path:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    (spec,) = [r for r in data["rules"] if r["name"] == rule]
    if where == "pattern":
        spec["pattern"] = pattern
    else:
        spec[where] = [pattern if "(?P<request_id>" in pattern else pattern + "(?P<request_id>x)"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


PLACES = [
    ("unknown_status", "pattern"),
    ("webhooks", "pattern"),
    ("training_stalled", "start"),
    ("training_stalled", "end"),
    ("api_silent", "pattern"),
    ("api_errors", "pattern"),
]


def check_config(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["check-config", "-c", str(path)])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("pattern", NESTED)
@pytest.mark.parametrize(("rule", "where"), PLACES, ids=[f"{r}.{w}" for r, w in PLACES])
def test_check_config_rejects_nested_quantifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str, where: str, pattern: str
) -> None:
    if rule == "unknown_status" and "(?P<value>" not in pattern:
        pattern = f"(?P<value>x){pattern}"
    rc, err = check_config(config_with(tmp_path, rule, where, pattern), capsys)
    assert rc == 2, err
    assert re.search(r"config\.yaml:\d+:\d+: rules\[\d+\]\.\w+.*exponential time", err), err


def exponential(pattern: str) -> float:
    """Seconds to search `pattern` on 22 a's and a mismatch (ms for a linear one)."""
    started = time.perf_counter()
    re.search(pattern, "a" * 22 + "!")
    return time.perf_counter() - started


HIDDEN = [r"(?=(a+)+$)", r"(?>(a+)+b)", r"x|(?!(a+)+b)a"]
OVERLAP = [r"(a|a)*b", r"(a|aa)*b", r"(\w|\d\d)+$"]


@pytest.mark.parametrize("pattern", HIDDEN)
def test_check_config_rejects_nested_quantifiers_inside_lookarounds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str
) -> None:
    assert exponential(pattern) > 0.05, "the pattern is catastrophic"
    rc, err = check_config(config_with(tmp_path, "api_errors", "pattern", pattern), capsys)
    assert rc == 2 and "exponential time" in err, f"accepted: {pattern}"


@pytest.mark.parametrize("pattern", OVERLAP)
def test_check_config_rejects_overlapping_alternation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], pattern: str
) -> None:
    rc, err = check_config(config_with(tmp_path, "api_errors", "pattern", pattern), capsys)
    took = exponential(pattern)
    assert rc == 2 and "exponential time" in err, f"accepted: {pattern} ({took:.2f}s on 22 a's)"
    assert re.search(r"config\.yaml:\d+:\d+: rules\[\d+\]\.pattern: `\(", err), err

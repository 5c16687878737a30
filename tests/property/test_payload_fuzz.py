"""handlers.replay_webhook.parse_payload, the one place that parses log content as data (the
logged Python repr of a webhook body): any text gives a dict or None, quickly, and never runs
anything; a plain body comes back as it was logged. And the path the fallback takes from the
logged line to the body it POSTs: a real-size fal.ai body must survive it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.base import Job
from handlers.replay_webhook import MAX_PAYLOAD_CHARS, MAX_PAYLOAD_DEPTH, build_body, parse_payload
from monitor.config.schema import load_config
from monitor.core.engine import engine_for
from monitor.core.model import Entry
from tests.helpers import PREFIX, T0
from tests.property import examples

BOUND_S = 1.0  # per call, whatever the input

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.binary(max_size=10),
)
BODIES = st.recursive(
    LEAVES,
    lambda c: st.one_of(
        st.lists(c, max_size=5),
        st.tuples(c, c),
        st.dictionaries(st.text(max_size=10), c, max_size=5),
    ),
    max_leaves=40,
)


def timed(text: str) -> tuple[dict[str, Any] | None, float]:
    started = time.perf_counter()
    value = parse_payload(text)
    took = time.perf_counter() - started
    assert value is None or (isinstance(value, dict) and all(isinstance(k, str) for k in value))
    assert took < BOUND_S, f"{took:.2f}s on {text[:80]!r}…"
    return value, took


def depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list | tuple):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@settings(max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=10), BODIES, max_size=6))
def test_a_logged_dict_comes_back_as_it_was(body: dict[str, Any]) -> None:
    """As it was when JSON can carry it within the limits; None otherwise (bytes, sets…)."""
    text = repr(body)
    value, _ = timed(text)
    fits = len(text) <= MAX_PAYLOAD_CHARS and depth(body) <= MAX_PAYLOAD_DEPTH
    assert value == (body if fits and jsonable(body) else None)


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(1, 300), st.sampled_from(["{'a': ", "{'a': [", "{'a': ("]))
def test_nesting_is_bounded(levels: int, opener: str) -> None:
    closer = {"{'a': ": "}", "{'a': [": "]}", "{'a': (": ",)}"}[opener]
    text = opener * levels + "1" + closer * levels
    value, _ = timed(text)
    per_level = 1 if opener == "{'a': " else 2
    assert (value is not None) == (levels * per_level <= MAX_PAYLOAD_DEPTH)


@settings(max_examples=examples(500), deadline=None)
@given(st.one_of(st.text(max_size=200), BODIES.map(repr)))
def test_any_text_gives_a_dict_or_none(text: str) -> None:
    timed(text)


def hostile() -> list[tuple[str, str]]:
    """(name, text): deep nesting, huge, parser-recursion bombs, code, odd literals."""
    big = "x" * (MAX_PAYLOAD_CHARS - 20)
    return [
        ("dict nesting 32", "{'a': " * 32 + "1" + "}" * 32),
        ("dict nesting 33", "{'a': " * 33 + "1" + "}" * 33),
        ("list nesting 100k", "{'a': " + "[" * 100_000 + "]" * 100_000 + "}"),
        ("brackets inside strings", "{'a': '" + "[" * 60_000 + "'}"),
        ("unary minus 60k", "{'a': " + "-" * 60_000 + "1}"),
        ("unary plus/minus 30k", "{'a': " + "+-" * 30_000 + "1}"),
        ("long int 5000 digits", "{'a': " + "9" * 5000 + "}"),
        ("float overflow", "{'a': 1e999999}"),
        ("huge string at the limit", "{'a': '" + big + "'}"),
        ("huge string over the limit", "{'a': '" + "x" * MAX_PAYLOAD_CHARS + "'}"),
        ("10 MB", "{'a': '" + "x" * 10_000_000 + "'}"),
        ("a call", "__import__('os').system('touch /tmp/aisha-pwned')"),
        ("a call in a value", "{'a': __import__('os').system('touch /tmp/aisha-pwned')}"),
        ("lambda", "{'a': (lambda: 1)()}"),
        ("f-string", "{'a': f'{1+1}'}"),
        ("dict unpacking", "{**{'a': 1}}"),
        ("comprehension", "{k: 1 for k in 'ab'}"),
        ("set", "{'a', 'b'}"),
        ("non-str keys", "{1: 2, (3,): 4}"),
        ("bytes", "{'a': b'\\xff\\x00'}"),
        ("raw NUL", "{'a': '\x00'}"),
        ("escaped NUL", "{'a': '\\x00'}"),
        ("surrogates", "{'a': '\\ud800'}"),
        ("complex", "{'a': 1+2j}"),
        ("Ellipsis", "{'a': ...}"),
        ("walrus", "{'a': (x := 1)}"),
        ("many keys", "{" + ", ".join(f"'k{i}': {i}" for i in range(3000)) + "}"),
        ("unbalanced", "{'a': [1, 2}"),
        ("only closers", "}" * 50_000),
        ("newlines", "{'a':\n\n\n 1}"),
        ("comment", "{'a': 1} # }"),
        ("backslashes", "{'a': '" + "\\\\" * 20_000 + "'}"),
    ]


@pytest.mark.parametrize(("name", "text"), hostile(), ids=[n for n, _ in hostile()])
def test_hostile_payloads_give_a_dict_or_none_quickly(name: str, text: str) -> None:
    marker = Path("/tmp/aisha-pwned")
    marker.unlink(missing_ok=True)
    value, _ = timed(text)
    assert not marker.exists(), "parse_payload ran code"
    if name in ("dict nesting 32", "huge string at the limit", "many keys", "escaped NUL",
                "brackets inside strings", "newlines", "comment"):  # fmt: skip
        assert isinstance(value, dict), name
    if name in ("a call", "a call in a value", "lambda", "f-string", "comprehension", "set",
                "non-str keys", "dict nesting 33", "huge string over the limit", "10 MB",
                "walrus", "dict unpacking", "bytes", "complex", "Ellipsis", "float overflow",
                "list nesting 100k", "unbalanced"):  # fmt: skip
        assert value is None, name


# --- the fallback's path: logged line -> engine -> payload -> body --------------------------------


def replay_body(logged_body: dict[str, Any]) -> dict[str, Any]:
    """What the daemon POSTs for an unknown status of `logged_body`'s request, rebuilt as the
    daemon does it (engine.keyed_groups of the payload rule, then build_body)."""
    cfg = load_config(None, env={})
    engine = engine_for(cfg)
    rid = logged_body["request_id"]
    line = PREFIX + f"[WEBHOOK] Получен webhook от FAL AI: {logged_body!r}"
    engine.observe(Entry(T0, line, "aisha-api.service", 4101))
    groups = engine.keyed_groups("webhook_received", rid)
    payload = groups.get("payload") if groups else None
    event = {"kind": "unknown_value", "key": rid, "labels": {"normalized": "completed"}}
    return build_body(Job(1, "replay_webhook", rid, event, 1, payload), "lower")


def test_a_short_logged_body_is_replayed_with_its_payload() -> None:
    body = {"request_id": "r-1", "status": "OK", "payload": {"images": ["a"]}}
    assert replay_body(body) == {**body, "status": "completed"}


FAL_BODY = {
    "request_id": "764cabcf-b745-4b3e-ae38-1200304cf45b",
    "gateway_request_id": "764cabcf-b745-4b3e-ae38-1200304cf45b",
    "status": "OK",
    "payload": {
        "diffusers_lora_file": {
            "url": "https://v3.fal.media/files/koala/4mkJ2Ow_pytorch_lora_weights.safetensors",
            "content_type": None,
            "file_name": "pytorch_lora_weights.safetensors",
            "file_size": 89745224,
        },
        "config_file": {"url": "https://v3.fal.media/files/lion/Yv_config.json"},
    },
    "error": None,
}


def test_a_real_size_fal_body_is_replayed_with_its_payload() -> None:
    assert len(repr(FAL_BODY)) > 200
    assert replay_body(FAL_BODY) == {**FAL_BODY, "status": "completed"}

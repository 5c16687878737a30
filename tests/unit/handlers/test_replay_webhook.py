"""replay_webhook: the logged body re-sent with only `status` changed, hostile or oversized
payloads falling back to {request_id, status}, and what each HTTP answer becomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from handlers.base import Outcome
from handlers.replay_webhook import (
    MAX_PAYLOAD_CHARS,
    MAX_PAYLOAD_DEPTH,
    ReplayWebhookSpec,
    build_body,
    parse_payload,
)
from monitor.config.schema import ConfigError
from tests.standins import WebhookApi
from tests.unit.handlers import (
    context,
    job,
    load_handlers,
    refused_url,
    stalled,
    unknown_value,
)

# What aisha-api logs: a Python repr of fal.ai's JSON webhook (None, True, nesting, unicode).
LOGGED: dict[str, Any] = {
    "request_id": "req-42",
    "gateway_request_id": "gw-42",
    "status": "OK",
    "payload": {
        "diffusers_lora_file": {
            "url": "https://v3.fal.media/files/koala/lora.safetensors",
            "content_type": None,
            "file_name": "pytorch_lora_weights.safetensors",
            "file_size": 89745224,
        },
        "config_file": {"url": "https://v3.fal.media/files/koala/config.json"},
        "images": [{"url": "https://v3.fal.media/x.png", "nsfw": False}],
        "caption": "Аватар «Аиша» ✓ 🚀 — 'quoted' \"double\" \\ back\nslash",
        "scale": 0.75,
        "steps": [1, 2, 3],
    },
    "error": None,
    "logs": None,
    "ready": True,
}


def spec(url: str, extra: str = "") -> ReplayWebhookSpec:
    config = load_handlers(
        f"""
        replay:
          type: replay_webhook
          url: '{url}'
        """
        + extra
    )
    replay = config.handlers["replay"]
    assert isinstance(replay, ReplayWebhookSpec)
    return replay


def run(url: str, session: requests.Session, payload: str | None, **kw: Any) -> Any:
    extra = "".join(f"  {k}: {v}\n" for k, v in kw.items())
    return spec(url, extra).run(job(unknown_value(), "replay", payload), context(session))


# --- the logged body, re-sent -------------------------------------------------------------------


@pytest.mark.parametrize(("case", "sent"), [("lower", "completed"), ("upper", "COMPLETED")])
def test_logged_payload_is_resent_with_only_the_status_changed(
    api: WebhookApi, session: requests.Session, case: str, sent: str
) -> None:
    result = run(api.url, session, repr(LOGGED), status_case=case)
    assert result.outcome == Outcome.REPLAYED and not result.retry
    assert result.detail == f"POST {api.url}: HTTP 200, status {sent!r}"
    assert api.bodies == [{**LOGGED, "status": sent}]
    assert api.requests[0].headers["Content-Type"] == "application/json"


def test_a_payload_without_status_gets_one(api: WebhookApi, session: requests.Session) -> None:
    logged = {k: v for k, v in LOGGED.items() if k != "status"}
    run(api.url, session, repr(logged))
    assert api.bodies == [{**logged, "status": "completed"}]


@pytest.mark.parametrize(
    ("normalized", "case", "sent"),
    [("in_progress", "upper", "IN_PROGRESS"), ("FAILED", "lower", "failed")],
)
def test_the_status_is_the_normalized_one_in_the_configured_case(
    normalized: str, case: str, sent: str
) -> None:
    j = job(unknown_value(normalized=normalized), "replay", repr(LOGGED))
    assert build_body(j, case) == {**LOGGED, "status": sent}


# --- anything else falls back to {request_id, status} -------------------------------------------


def _deep(levels: int) -> str:
    return "{'request_id': 'req-42', 'a': " + "{'a': " * (levels - 1) + "1" + "}" * levels


FALLBACKS = {
    "no payload logged": None,
    "empty": "",
    "another request_id": repr({**LOGGED, "request_id": "req-other"}),
    "request_id of another type": "{'request_id': 42, 'status': 'OK'}",
    "no request_id": "{'status': 'OK', 'payload': {}}",
    "a list": "['req-42', 'OK']",
    "a string": "'req-42'",
    "a number": "42",
    "None": "None",
    "non-string keys": "{'request_id': 'req-42', 1: 'one'}",
    "70 KB": repr({"request_id": "req-42", "blob": "x" * 70_000}),
    "1000 deep": _deep(1000),
    "code": "{'request_id': 'req-42', 'x': __import__('os').system('touch MARKER')}",
    "bare code": "__import__('os').system('touch MARKER')",
    "a call in a string's place": "{'request_id': 'req-42', 'x': open('MARKER', 'w')}",
    "a lambda": "{'request_id': 'req-42', 'x': (lambda: 1)()}",
    "truncated": repr(LOGGED)[:-20],
    "invalid syntax": "{'request_id': 'req-42',, 'status': 'OK'}",
    "unbalanced": "{'request_id': 'req-42'" + "}" * 40,
    "unclosed brackets": "{" * 40,
    "JSON rather than a repr": '{"request_id": "req-42", "ready": true, "error": null}',
    "a set": "{'req-42', 'OK'}",
}


@pytest.mark.parametrize("payload", FALLBACKS.values(), ids=FALLBACKS.keys())
def test_unusable_payloads_fall_back_to_request_id_and_status(
    api: WebhookApi, session: requests.Session, tmp_path: Path, payload: str | None
) -> None:
    marker = tmp_path / "pwned"
    if payload is not None:
        payload = payload.replace("MARKER", str(marker))
    result = run(api.url, session, payload)
    assert result.outcome == Outcome.REPLAYED
    assert api.bodies == [{"request_id": "req-42", "status": "completed"}]
    assert not marker.exists()  # read as data, never evaluated


def test_size_limit_is_exact() -> None:
    head = "{'request_id': 'req-42', 'blob': '"
    fits = head + "x" * (MAX_PAYLOAD_CHARS - len(head) - 2) + "'}"
    assert len(fits) == MAX_PAYLOAD_CHARS
    assert parse_payload(fits) is not None
    too_big = head + "x" * (MAX_PAYLOAD_CHARS - len(head) - 1) + "'}"
    assert parse_payload(too_big) is None


def test_depth_limit_is_exact() -> None:
    assert parse_payload(_deep(MAX_PAYLOAD_DEPTH)) is not None
    assert parse_payload(_deep(MAX_PAYLOAD_DEPTH + 1)) is None


@pytest.mark.parametrize(
    "text",
    [
        "{'a': " + "-" * 60_000 + "1}",  # deep unary nesting in the parser
        "{'a': " + "9" * 60_000 + "}",  # an integer beyond the str->int limit
        "{'a': " + "(" * 5_000 + "1" + ")" * 5_000 + "}",
        "{'a': '\\N{NO SUCH NAME}'}",
        "{'a': '\x00'}",
        "{'a': 1, 'a': 2",
    ],
    ids=["unary", "huge int", "parentheses", "bad escape", "nul", "truncated"],
)
def test_parse_payload_never_raises(text: str) -> None:
    assert parse_payload(text) is None


def test_depth_limit_cannot_be_bypassed_by_brackets_in_a_string() -> None:
    levels = 100
    text = (
        "{'request_id': 'req-42', 'pad': '"
        + ")" * levels
        + "', 'a': "
        + "{'a': " * levels
        + "1"
        + "}" * (levels + 1)
    )
    assert parse_payload(text) is None


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    text = repr({"request_id": "req-42", "logs": "step " + "(" * 40})
    assert parse_payload(text) == {"request_id": "req-42", "logs": "step " + "(" * 40}


@pytest.mark.parametrize("value", ["{1, 2}", "b'bytes'", "{(1, 2): 'tuple key'}", "1e999", "1j"])
def test_values_json_cannot_carry_fall_back(
    api: WebhookApi, session: requests.Session, value: str
) -> None:
    result = run(api.url, session, "{'request_id': 'req-42', 'status': 'OK', 'x': " + value + "}")
    assert result.outcome == Outcome.REPLAYED
    assert [(b["request_id"], b["status"]) for b in api.bodies] == [("req-42", "completed")]


# --- which events it acts on ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "wanted"),
    [
        (unknown_value(), "completed"),
        (unknown_value(normalized="failed", raw="ERROR"), "failed"),
        (unknown_value(normalized=""), None),  # truly unknown: nothing to replay
        (unknown_value(key=None), None),
        (unknown_value(key=""), None),
        (stalled(), None),
    ],
    ids=["completed", "failed", "not normalizable", "no key", "empty key", "stalled"],
)
def test_wants_only_normalizable_unknown_values_with_a_key(event: Any, wanted: str | None) -> None:
    assert spec("http://127.0.0.1:1/x").wants(event.to_json()) == wanted


def test_wants_an_event_without_a_normalized_label() -> None:
    data = unknown_value().to_json()
    data["labels"] = {"status": "OK"}
    assert spec("http://127.0.0.1:1/x").wants(data) is None
    data["kind"] = "match"
    assert spec("http://127.0.0.1:1/x").wants(data) is None


# --- HTTP answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "retry"),
    [
        (200, Outcome.REPLAYED, False),
        (202, Outcome.REPLAYED, False),
        (500, Outcome.FAILED, True),
        (502, Outcome.FAILED, True),
        (503, Outcome.FAILED, True),
        (429, Outcome.FAILED, True),
        (400, Outcome.GAVE_UP, False),
        (404, Outcome.GAVE_UP, False),
        (422, Outcome.GAVE_UP, False),
    ],
)
def test_http_status_decides_the_outcome(
    api: WebhookApi, session: requests.Session, status: int, outcome: Outcome, retry: bool
) -> None:
    api.status = status
    result = run(api.url, session, repr(LOGGED))
    assert (result.outcome, result.retry) == (outcome, retry)
    assert f"HTTP {status}" in result.detail
    assert len(api.requests) == 1  # one attempt per run: the outbox owns retries


def test_connection_refused_is_retried(session: requests.Session) -> None:
    with refused_url() as url:
        result = run(url, session, repr(LOGGED))
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)
    assert result.detail == f"POST {url}: ConnectionError"


def test_a_slow_api_is_not_posted_twice(api: WebhookApi, session: requests.Session) -> None:
    """Sent but unanswered may well be processed: verification decides, not a second POST."""
    api.stand_in.mode = "slow"  # answers when the test is over
    result = run(api.url, session, repr(LOGGED), timeout="200ms")
    assert (result.outcome, result.retry) == (Outcome.REPLAYED, False)
    assert "no answer in time" in result.detail


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_sends_nothing(api: WebhookApi, session: requests.Session) -> None:
    replay = spec(api.url)
    result = replay.run(
        job(unknown_value(), "replay", repr(LOGGED)), context(session, dry_run=True)
    )
    assert result.outcome == Outcome.DRY_RUN
    assert api.url in result.detail and "'completed'" in result.detail
    assert api.requests == []


def test_dry_run_in_the_handler_config_sends_nothing(
    api: WebhookApi, session: requests.Session
) -> None:
    result = run(api.url, session, repr(LOGGED), dry_run="true")
    assert result.outcome == Outcome.DRY_RUN
    assert api.requests == []


# --- config -------------------------------------------------------------------------------------


def test_config_rejects_a_non_http_url_and_an_unknown_case() -> None:
    with pytest.raises(ConfigError) as info:
        load_handlers(
            """
            replay:
              type: replay_webhook
              url: 'file:///etc/passwd'
              status_case: title
            """
        )
    text = str(info.value)
    assert "expected an http:// or https:// URL" in text and "status_case" in text

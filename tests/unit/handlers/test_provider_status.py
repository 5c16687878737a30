"""provider_status against a fal.ai queue stand-in: pending, completed (the result delivered
through replay_webhook), unknown everywhere, and the API key that never leaks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from handlers.base import Outcome, Result
from handlers.provider_status import ProviderStatusSpec
from monitor.config.schema import Config
from tests.standins import FalQueue, WebhookApi
from tests.unit.handlers import (
    FAL_KEY,
    PORTRAIT,
    STYLE,
    context,
    job,
    load_handlers,
    refused_url,
    stalled,
    unknown_value,
)

RESULT = {
    "diffusers_lora_file": {"url": "https://v3.fal.media/files/koala/lora.safetensors"},
    "config_file": {"url": "https://v3.fal.media/files/koala/config.json", "size": None},
    "note": "готово ✓",
}


@pytest.fixture
def fal() -> Iterator[FalQueue]:
    server = FalQueue(FAL_KEY)
    yield server
    server.close()


def config(
    fal_url: str, api_url: str, key_source: str = "api_key_env: FAL_KEY", case: str = "lower"
) -> Config:
    return load_handlers(
        f"""
        replay:
          type: replay_webhook
          url: '{api_url}'
          status_case: {case}
        provider:
          type: provider_status
          base: '{fal_url}/'
          {key_source}
          models:
            portrait: {PORTRAIT}
            style: {STYLE}
          recheck_interval: 5m
          replay_handler: replay
        """
    )


def provider(cfg: Config) -> ProviderStatusSpec:
    spec = cfg.handlers["provider"]
    assert isinstance(spec, ProviderStatusSpec)
    return spec


def run(
    fal: FalQueue,
    api: WebhookApi,
    session: requests.Session,
    key: str = "req-42",
    training_type: str | None = None,
    *,
    env: dict[str, str] | None = None,
    dry_run: bool = False,
    **kw: Any,
) -> Result:
    cfg = config(fal.url, api.url, **kw)
    env = {"FAL_KEY": FAL_KEY} if env is None else env
    ctx = context(session, cfg.handlers, env, dry_run=dry_run)
    return provider(cfg).run(job(stalled(key, training_type), "provider"), ctx)


def status_calls(fal: FalQueue) -> list[str]:
    return [r.path for r in fal.requests if r.path.endswith("/status")]


# --- what the queue says ------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["IN_QUEUE", "IN_PROGRESS", "in_progress"])
def test_queued_or_running_is_pending(
    fal: FalQueue, api: WebhookApi, session: requests.Session, state: str
) -> None:
    fal.states[(STYLE, "req-42")] = state
    result = run(fal, api, session)
    assert result.outcome == Outcome.PENDING
    assert state.upper() in result.detail
    assert api.requests == []


def test_completed_result_is_delivered_through_the_replay_handler(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    fal.results[(PORTRAIT, "req-42")] = RESULT
    result = run(fal, api, session)
    assert result.outcome == Outcome.DONE
    assert "COMPLETED" in result.detail and "HTTP 200" in result.detail
    assert [r.path for r in fal.requests] == [
        f"/{PORTRAIT}/requests/req-42/status",
        f"/{PORTRAIT}/requests/req-42",
    ]
    assert api.bodies == [{"request_id": "req-42", "status": "completed", "result": RESULT}]


def test_completed_status_follows_the_replay_handlers_case(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(STYLE, "req-42")] = "COMPLETED"
    fal.results[(STYLE, "req-42")] = RESULT
    assert run(fal, api, session, case="upper").outcome == Outcome.DONE
    assert api.bodies == [{"request_id": "req-42", "status": "COMPLETED", "result": RESULT}]


def test_the_training_type_picks_the_model(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(STYLE, "req-42")] = "IN_PROGRESS"
    assert run(fal, api, session, training_type="style").outcome == Outcome.PENDING
    assert status_calls(fal) == [f"/{STYLE}/requests/req-42/status"]


def test_unknown_everywhere_gives_up_naming_the_models(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    result = run(fal, api, session)
    assert result.outcome == Outcome.GAVE_UP and not result.retry
    assert PORTRAIT in result.detail and STYLE in result.detail
    assert "HTTP 404" in result.detail
    assert status_calls(fal) == [
        f"/{PORTRAIT}/requests/req-42/status",
        f"/{STYLE}/requests/req-42/status",
    ]
    assert api.requests == []


def test_an_unknown_training_type_tries_every_model(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(STYLE, "req-42")] = "IN_QUEUE"
    assert run(fal, api, session, training_type="video").outcome == Outcome.PENDING
    assert len(status_calls(fal)) == 2


def test_the_request_id_is_quoted_into_the_path(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    rid = "req/../x?y=1#z %"
    fal.states[(PORTRAIT, rid)] = "COMPLETED"
    fal.results[(PORTRAIT, rid)] = RESULT
    assert run(fal, api, session, key=rid).outcome == Outcome.DONE
    assert all(r.path.startswith(f"/{PORTRAIT}/requests/req%2F..%2Fx%3Fy") for r in fal.requests)
    assert api.bodies[0]["request_id"] == rid


@pytest.mark.parametrize(("code", "retry"), [(500, True), (503, True), (429, True), (403, False)])
def test_queue_errors_fail(
    fal: FalQueue, api: WebhookApi, session: requests.Session, code: int, retry: bool
) -> None:
    fal.states[(PORTRAIT, "req-42")] = code
    result = run(fal, api, session)
    assert (result.outcome, result.retry) == (Outcome.FAILED, retry)
    assert f"HTTP {code}" in result.detail
    assert len(status_calls(fal)) == 1  # an error is not a "not this model"


def test_an_unexpected_state_gives_up(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "CANCELLED"
    result = run(fal, api, session)
    assert result.outcome == Outcome.GAVE_UP and "CANCELLED" in result.detail


def test_an_unreachable_queue_is_retried(api: WebhookApi, session: requests.Session) -> None:
    with refused_url() as url:
        base = url.split("/api/")[0]
        cfg = config(base, api.url)
        result = provider(cfg).run(
            job(stalled(), "provider"), context(session, cfg.handlers, {"FAL_KEY": FAL_KEY})
        )
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)


def test_result_fetch_failing_is_retried(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    fal.result_status = 500
    result = run(fal, api, session)
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)
    assert "fetching the result" in result.detail
    assert api.requests == []


@pytest.mark.parametrize(
    ("code", "outcome", "retry"), [(503, Outcome.FAILED, True), (400, Outcome.GAVE_UP, False)]
)
def test_delivery_failure_is_the_replays_outcome(
    fal: FalQueue,
    api: WebhookApi,
    session: requests.Session,
    code: int,
    outcome: Outcome,
    retry: bool,
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    fal.results[(PORTRAIT, "req-42")] = RESULT
    api.status = code
    result = run(fal, api, session)
    assert (result.outcome, result.retry) == (outcome, retry)
    assert len(api.requests) == 1


def test_completed_without_a_replay_handler_gives_up(
    fal: FalQueue, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    cfg = load_handlers(
        f"""
        provider:
          type: provider_status
          base: '{fal.url}'
          api_key_env: FAL_KEY
          models: {{portrait: {PORTRAIT}}}
        """
    )
    result = provider(cfg).run(
        job(stalled(), "provider"), context(session, cfg.handlers, {"FAL_KEY": FAL_KEY})
    )
    assert result.outcome == Outcome.GAVE_UP and "replay_handler" in result.detail


def test_no_models_gives_up(fal: FalQueue, session: requests.Session) -> None:
    cfg = load_handlers(f"provider: {{type: provider_status, base: '{fal.url}'}}")
    result = provider(cfg).run(job(stalled(), "provider"), context(session, cfg.handlers))
    assert result.outcome == Outcome.GAVE_UP and "models" in result.detail
    assert fal.requests == []


# --- the API key ----------------------------------------------------------------------------------


def test_the_key_from_env_is_sent_as_key_authorization(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    run(fal, api, session)
    assert [r.headers.get("Authorization") for r in fal.requests] == [f"Key {FAL_KEY}"] * 2
    assert all("Authorization" not in r.headers for r in api.requests)  # not sent to aisha-api


def test_the_key_from_a_file_is_sent_stripped(
    fal: FalQueue, api: WebhookApi, session: requests.Session, tmp_path: Path
) -> None:
    key_file = tmp_path / "fal_key"
    key_file.write_text(f"{FAL_KEY}\n", encoding="utf-8")
    fal.states[(PORTRAIT, "req-42")] = "IN_PROGRESS"
    result = run(fal, api, session, key_source=f"api_key_file: '{key_file}'", env={})
    assert result.outcome == Outcome.PENDING
    assert [r.headers.get("Authorization") for r in fal.requests] == [f"Key {FAL_KEY}"]


def test_a_wrong_or_missing_key_fails_without_retry(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "IN_PROGRESS"
    wrong = run(fal, api, session, env={"FAL_KEY": "not-the-key"})
    missing = run(fal, api, session, env={})
    for result in (wrong, missing):
        assert (result.outcome, result.retry) == (Outcome.FAILED, False)
        assert "HTTP 401" in result.detail
    assert "Authorization" not in fal.requests[-1].headers


def _every_outcome(fal: FalQueue, api: WebhookApi, session: requests.Session) -> list[Result]:
    results = []
    scenarios: list[tuple[str | int, int, int]] = [
        ("IN_PROGRESS", 200, 200),
        ("COMPLETED", 200, 200),
        ("COMPLETED", 500, 200),
        ("COMPLETED", 200, 503),
        ("COMPLETED", 200, 400),
        ("CANCELLED", 200, 200),
        (500, 200, 200),
        (404, 200, 200),
    ]
    for state, result_status, api_status in scenarios:
        fal.states[(PORTRAIT, "req-42")] = state
        fal.results[(PORTRAIT, "req-42")] = {"echo": "x"}
        fal.result_status, api.status = result_status, api_status
        results.append(run(fal, api, session))
        results.append(run(fal, api, session, dry_run=True))
    results.append(run(fal, api, session, env={"FAL_KEY": f"{FAL_KEY}-wrong"}))
    with refused_url() as url:
        cfg = config(url.split("/api/")[0], api.url)
        ctx = context(session, cfg.handlers, {"FAL_KEY": FAL_KEY})
        results.append(provider(cfg).run(job(stalled(), "provider"), ctx))
    return results


def test_the_key_never_appears_in_a_result(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    results = _every_outcome(fal, api, session)
    assert {r.outcome for r in results} >= {
        Outcome.PENDING,
        Outcome.DONE,
        Outcome.FAILED,
        Outcome.GAVE_UP,
    }
    for r in results:
        assert FAL_KEY not in r.detail
        assert FAL_KEY.rsplit("-", 1)[-1] not in r.detail


# --- dry run ------------------------------------------------------------------------------------


def test_dry_run_asks_and_sends_nothing(
    fal: FalQueue, api: WebhookApi, session: requests.Session
) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    run(fal, api, session, dry_run=True)
    assert fal.requests == [] and api.requests == []


def test_dry_run_reports_dry_run(fal: FalQueue, api: WebhookApi, session: requests.Session) -> None:
    fal.states[(PORTRAIT, "req-42")] = "COMPLETED"
    assert run(fal, api, session, dry_run=True).outcome == Outcome.DRY_RUN


# --- which events it acts on ----------------------------------------------------------------------


def test_wants_stalled_events_with_a_key(fal: FalQueue, api: WebhookApi) -> None:
    spec = provider(config(fal.url, api.url))
    assert spec.wants(stalled().to_json()) == "stalled"
    no_key = stalled().to_json() | {"key": None}
    assert spec.wants(no_key) is None
    assert spec.wants(unknown_value().to_json()) is None

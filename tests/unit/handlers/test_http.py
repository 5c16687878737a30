"""http: the event POSTed as JSON with a bearer token; what each answer becomes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from handlers.base import Outcome, Result
from handlers.http import HttpSpec
from tests.standins import StandIn
from tests.unit.handlers import (
    context,
    job,
    load_handlers,
    refused_url,
    stalled,
    unknown_value,
)

TOKEN = "chatops-token-b7e2"  # noqa: S105 - a test value


class Receiver:
    def __init__(self) -> None:
        self.status = 200
        self.stand_in = StandIn(respond=lambda req: (self.status, b'{"ok": true}')).start()
        self.url = self.stand_in.url + "/hooks/aisha"

    def close(self) -> None:
        self.stand_in.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def spec(url: str, extra: str = "token_env: CHATOPS_TOKEN") -> HttpSpec:
    cfg = load_handlers(
        f"""
        chatops:
          type: http
          url: '{url}'
          {extra}
        """
    )
    h = cfg.handlers["chatops"]
    assert isinstance(h, HttpSpec)
    return h


def run(url: str, session: requests.Session, extra: str = "token_env: CHATOPS_TOKEN") -> Result:
    event = unknown_value(raw="Успех ✓")
    return spec(url, extra).run(
        job(event, "chatops"), context(session, env={"CHATOPS_TOKEN": TOKEN})
    )


def test_posts_the_event_with_the_bearer_token(
    receiver: Receiver, session: requests.Session
) -> None:
    result = run(receiver.url, session)
    assert (result.outcome, result.retry) == (Outcome.DONE, False)
    assert result.detail == f"POST {receiver.url}: HTTP 200"
    [req] = receiver.stand_in.requests
    assert (req.method, req.path) == ("POST", "/hooks/aisha")
    assert req.headers["Authorization"] == f"Bearer {TOKEN}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == unknown_value(raw="Успех ✓").to_json()


def test_the_token_from_a_file(
    receiver: Receiver, session: requests.Session, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n", encoding="utf-8")
    result = run(receiver.url, session, f"token_file: '{token_file}'")
    assert result.outcome == Outcome.DONE
    assert receiver.stand_in.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in result.detail


def test_no_token_no_authorization_header(receiver: Receiver, session: requests.Session) -> None:
    h = spec(receiver.url, "")
    assert h.run(job(stalled(), "chatops"), context(session)).outcome == Outcome.DONE
    assert "Authorization" not in receiver.stand_in.requests[0].headers
    assert receiver.stand_in.requests[0].json()["kind"] == "stalled"


@pytest.mark.parametrize(
    ("status", "outcome", "retry"),
    [
        (200, Outcome.DONE, False),
        (204, Outcome.DONE, False),
        (503, Outcome.FAILED, True),
        (500, Outcome.FAILED, True),
        (429, Outcome.FAILED, True),
        (400, Outcome.GAVE_UP, False),
        (401, Outcome.GAVE_UP, False),
    ],
)
def test_http_status_decides_the_outcome(
    receiver: Receiver, session: requests.Session, status: int, outcome: Outcome, retry: bool
) -> None:
    receiver.status = status
    result = run(receiver.url, session)
    assert (result.outcome, result.retry) == (outcome, retry)
    assert f"HTTP {status}" in result.detail
    assert len(receiver.stand_in.requests) == 1


def test_connection_refused_is_retried(session: requests.Session) -> None:
    with refused_url() as url:
        result = run(url, session)
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)
    assert "ConnectionError" in result.detail


def test_dry_run_sends_nothing(receiver: Receiver, session: requests.Session) -> None:
    h = spec(receiver.url)
    result = h.run(job(stalled(), "chatops"), context(session, dry_run=True))
    assert result.outcome == Outcome.DRY_RUN and receiver.url in result.detail
    assert (
        spec(receiver.url, "dry_run: true").run(job(stalled(), "chatops"), context(session)).outcome
        == Outcome.DRY_RUN
    )
    assert receiver.stand_in.requests == []


def test_acts_on_every_event_but_resolved(receiver: Receiver) -> None:
    h = spec(receiver.url)
    assert h.wants(stalled().to_json()) == "stalled"
    assert h.wants(stalled().to_json() | {"kind": "resolved"}) is None

"""Credentials in a URL (`AISHA_API_URL=http://user:secret@…`, an Alertmanager or health-check URL)
are sent, never shown: a real replay to a stand-in aisha-api, a health check, and Alertmanager
deliveries (one refused), then the password appears in none of the daemon's log,
/api/v1/events, /api/v1/state, the status page, /metrics and the state file. The header and
bearer-token options (`token_file` / `token_env` / `token_header`) reach the stand-ins, so that a
URL need not carry a secret at all, and are shown nowhere either."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import api_logger, handler_outcomes, tune
from tests.integration.daemon_fixtures import (
    LiveJournal,
    MonitorDaemon,
    closed_url,
    daemon_env,
    live_journal_fixture,  # noqa: F401 - a fixture
    tail,
    wait_for,
)
from tests.standins import Request, StandIn

API_PASS = "api-pass-3f7d1c"  # noqa: S105 - test secrets, distinctive for grepping
AM_PASS = "am-pass-b82e5a"  # noqa: S105
PROBE_PASS = "probe-pass-61c0d9"  # noqa: S105
REPLAY_TOKEN = "replay-token-9a4e27"  # noqa: S105
AM_TOKEN = "am-token-c5d13f"  # noqa: S105
SECRETS = (API_PASS, AM_PASS, PROBE_PASS, REPLAY_TOKEN, AM_TOKEN)
RID = "url-cred-1"
ALERTS_PATH = "/api/v2/alerts"


def with_userinfo(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def lost_webhook(lj: LiveJournal, rid: str) -> None:
    body = {"request_id": rid, "status": "OK", "result": {"diffusers_lora_file": {"url": "x"}}}
    lj.send([
        lj.app(f"[WEBHOOK] Получен webhook от FAL AI: {body!r}"),
        lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: OK"),
        lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: OK", level="WARNING"),
    ])  # fmt: skip


def configure(path: Path, tokens: bool, token_file: Path) -> Path:
    def edit(data: dict[str, Any]) -> None:
        data["health_checks"] = [
            {"name": "aisha_api_http", "type": "http", "url": "${AISHA_API_URL}/health",
             "interval": "1s", "timeout": "2s"},
            {"name": "probe", "type": "http", "interval": "1s", "timeout": "2s",
             "url": with_userinfo(closed_url(), "probe", PROBE_PASS) + "/health"},
        ]  # fmt: skip
        if tokens:
            replay = data["handlers"]["replay_webhook"]
            replay.update({"token_file": str(token_file), "token_header": "X-Webhook-Token"})
            data["alerting"].update({"token_env": "AM_TOKEN"})

    return tune(path, edit)


@pytest.fixture
def servers() -> Iterator[list[StandIn]]:
    made: list[StandIn] = []
    try:
        yield made
    finally:
        for s in made:
            s.stop()


def aisha_api(lj: LiveJournal) -> StandIn:
    """aisha-api: a replayed webhook logs the training's end line; /health answers 200."""
    log_it = api_logger(lj)

    def on_request(req: Request) -> None:
        if req.method == "POST":
            log_it(req)

    return StandIn(on_request=on_request).start()


def alertmanager() -> StandIn:
    """Alertmanager that refuses the first delivery (the sender logs a failure with the URL)."""
    am = StandIn()
    am.respond = lambda req: (503, b"busy") if len(am.requests) == 1 else (200, b"{}")
    return am.start()


@pytest.mark.parametrize("tokens", [False, True], ids=["userinfo", "userinfo and tokens"])
def test_no_credential_of_a_url_or_a_token_option_is_shown(
    tokens: bool, tmp_path: Path, live_journal: LiveJournal, servers: list[StandIn]
) -> None:
    lj = live_journal
    api, am = aisha_api(lj), alertmanager()
    servers += [api, am]
    token_file = tmp_path / "replay.token"
    token_file.write_text(REPLAY_TOKEN + "\n", encoding="utf-8")
    config = configure(tmp_path / "config.yaml", tokens, token_file)
    # with a bearer token for Alertmanager, its URL carries no password (one or the other)
    am_url = am.url if tokens else with_userinfo(am.url, "am", AM_PASS)
    env = {"AISHA_API_URL": with_userinfo(api.url, "aisha", API_PASS), "ALERTMANAGER_URL": am_url}
    env["AM_TOKEN"] = AM_TOKEN
    d = MonitorDaemon(config, lj.directory, tmp_path / "state", tmp_path, daemon_env(env))
    try:
        d.start()
        lost_webhook(lj, RID)
        wait_for(lambda: "verified" in handler_outcomes(d, RID), 30, lambda: tail(d.log))
        wait_for(lambda: len(am.requests) >= 2, 30, lambda: f"Alertmanager\n{tail(d.log)}")
        wait_for(lambda: probe_down(d), 30, lambda: f"the probe down\n{tail(d.log)}")

        # the credentials went where they belong
        (replay,) = [r for r in api.requests if r.method == "POST"]
        basic = base64.b64encode(f"aisha:{API_PASS}".encode()).decode()
        assert replay.headers["Authorization"] == f"Basic {basic}"
        if tokens:
            assert replay.headers["X-Webhook-Token"] == REPLAY_TOKEN
            assert {r.headers.get("Authorization") for r in am.requests} == {f"Bearer {AM_TOKEN}"}
        # and are shown nowhere, the URLs without their userinfo
        seen = surfaces(d)
        assert d.stop() == 0
        seen["log"] = d.log_text()
        state = tmp_path / "state"
        seen["state file"] = b"".join(p.read_bytes() for p in state.iterdir()).decode("latin-1")
        leaks = [(s, where) for where, text in seen.items() for s in SECRETS if s in text]
        assert not leaks, f"secrets shown: {leaks}"
        assert f"POST http://***@127.0.0.1:{api.port}/" in seen["events"]
        assert f"http://***@127.0.0.1:{api.port}/" in seen["log"]
        if not tokens:
            assert f"alert delivery to http://***@127.0.0.1:{am.port}/" in seen["log"]
    finally:
        d.shutdown()


def probe_down(d: MonitorDaemon) -> bool:
    return any(h["check"] == "probe" and h["up"] == 0 for h in d.state()["health"])


def surfaces(d: MonitorDaemon) -> dict[str, str]:
    return {
        "events": d.get("/api/v1/events?limit=1000"),
        "state": d.get("/api/v1/state"),
        "status page": d.get("/"),
        "metrics": d.get("/metrics"),
    }

"""`aisha-monitor status`: against the real daemon over a real journal (a stalled training and
an unknown status), against a closed port, and against a stand-in for the daemon's HTTP API for
each problem it must report."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor import cli
from monitor.tools.export import export_entry, write_journal
from tests.integration.daemon_fixtures import (
    MonitorDaemon,
    closed_url,
    daemon_env,
    logging_prefix,
    wait_for,
    write_config,
)
from tests.standins import Request, StandIn

pytestmark = pytest.mark.integration

S = 1_000_000
PID = 4101


def status_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "status", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        env=daemon_env(),
    )


def app(t_us: int, text: str, level: str = "INFO") -> bytes:
    prio = {"INFO": 6, "WARNING": 4}[level]
    return export_entry(logging_prefix(t_us, level) + text, t_us, pid=PID, priority=prio)


def test_status_of_the_real_daemon_shows_the_stalled_training_and_exits_1(tmp_path: Path) -> None:
    three_hours_ago = time.time_ns() // 1000 - 3 * 3600 * S
    t = three_hours_ago
    write_journal(
        tmp_path / "journal" / "aisha-api.journal",
        [
            app(t, "Запуск обучения аватара av-7 отправлен в FAL AI, request_id: req-stalled-7"),
            app(t + 1 * S, "Запуск обучения аватара av-8 отправлен в FAL AI, request_id: req-done"),
            app(t + 2 * S, "[WEBHOOK BACKGROUND] Начинаем обработку req-u, статус: teleported"),
            app(t + 3 * S, "[WEBHOOK BACKGROUND] Неизвестный статус: teleported", "WARNING"),
            app(t + 60 * S, "[TRAINING COMPLETED] req-done: обучение завершено успешно"),
        ],
    )
    workdir = tmp_path / "monitor"
    workdir.mkdir()
    config = write_config(workdir / "config.yaml", start="head")
    daemon = MonitorDaemon(config, tmp_path / "journal", workdir / "state", workdir, daemon_env())
    try:
        daemon.start()  # polls /readyz with a deadline
        wait_for(
            lambda: sum(daemon.state()["stalled_total"].values()) == 1,
            30,
            lambda: f"a stalled training in {daemon.url}/api/v1/state",
        )
        proc = status_cli("--url", daemon.url)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        out = proc.stdout
        assert "STALLED TRAININGS: 1" in out
        (row,) = [line for line in out.splitlines() if "req-stalled-7" in line]
        assert row.split()[:3] == ["training_stalled", "req-stalled-7", "3h00m"]
        assert "avatar_id=av-7" in row
        assert "req-done" not in out
        assert "config" in out and str(config) in out and "last reload ok" in out
        assert "5 entries (aisha-api.service 5)" in out
        assert "HEALTH CHECKS: none" in out
        assert "unknown_status" in out and "unknown=1" in out
        assert out.rstrip().endswith("PROBLEM: 1 stalled training(s)")
        assert proc.stderr == ""

        raw = status_cli("--url", daemon.url, "--json")
        assert raw.returncode == 1
        state = json.loads(raw.stdout)
        assert state["stalled_total"] == {"training_stalled": 1}
        assert state["open_pairs"][0]["key"] == "req-stalled-7"

        assert daemon.stop() == 0
        gone = status_cli("--url", daemon.url, "--timeout", "2")
        assert gone.returncode == 3
        assert gone.stdout == ""
        assert gone.stderr.startswith(f"aisha-monitor status: {daemon.url}/api/v1/state: cannot")
        assert "Traceback" not in gone.stderr
    finally:
        daemon.shutdown()


# --- against a stand-in for the daemon's HTTP API ------------------------------------------------

HEALTHY: dict[str, Any] = {
    "generated_at": "2026-11-27T10:00:00.000000Z",
    "version": "0.1.0",
    "uptime_seconds": 3725.0,
    "journal": {
        "entries": 120, "by_unit": {"aisha-api.service": 120},
        "last_entry_time": "2026-11-27T09:59:48.000000Z", "lag_seconds": 0.0, "caught_up": True,
    },
    "config": {"source": "/etc/aisha-monitor/config.yaml", "last_reload_ok": True, "problems": []},
    "open_pairs": [
        {"rule": "training_stalled", "key": "r-young", "stalled": False, "labels": {},
         "started": "2026-11-27T09:58:00.000000Z", "age_seconds": 120.0},
        {"rule": "training_stalled", "key": "r-old", "stalled": False,
         "labels": {"avatar_id": "av-1"}, "started": "2026-11-27T09:20:00.000000Z",
         "age_seconds": 2400.0},
    ],
    "open_total": {"training_stalled": 2},
    "stalled_total": {"training_stalled": 0},
    "health": [{"check": "aisha_api_http", "up": 1, "detail": "HTTP 200",
                "checked_at": "2026-11-27T09:59:50.000000Z", "seconds": 0.01}],
    "rules": [
        {"name": "unknown_status", "type": "unknown_value", "severity": "critical",
         "counters": {"matches": 0, "joined": 0}},
        {"name": "webhooks", "type": "match", "severity": "info", "counters": {"matches": 7}},
    ],
}  # fmt: skip


class StateApi:
    """The daemon's GET /api/v1/state, answering `body` with `code`."""

    def __init__(self) -> None:
        self.body: bytes = json.dumps(HEALTHY).encode()
        self.code = 200
        self.stand_in = StandIn(respond=self._answer).start()
        self.url = self.stand_in.url

    def _answer(self, req: Request) -> tuple[int, bytes]:
        if req.path != "/api/v1/state":
            return 404, b"not found"
        return self.code, self.body

    @property
    def headers(self) -> list[dict[str, str]]:
        return [r.headers for r in self.stand_in.requests]

    def answer(self, state: dict[str, Any]) -> None:
        self.body = json.dumps(state).encode()


@pytest.fixture(name="stand_in")
def stand_in_fixture() -> Iterator[StateApi]:
    api = StateApi()
    try:
        yield api
    finally:
        api.stand_in.stop()


def status(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli.main(["status", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_healthy_daemon_exits_0_with_a_table(
    stand_in: StateApi, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = status(capsys, "--url", stand_in.url + "/")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"aisha-monitor 0.1.0 at {stand_in.url}/: up 1h02m, state at 2026-11-27T10:00:00.000000Z"
    )
    assert lines[1].split() == [
        "journal", "120", "entries", "(aisha-api.service", "120)", "last", "entry", "12s", "ago",
        "lag", "0.0s", "caught", "up",
    ]  # fmt: skip
    assert lines[2].split() == ["config", "/etc/aisha-monitor/config.yaml", "last", "reload", "ok"]
    assert lines[1].index("last entry") == lines[2].index("last reload"), "columns align"
    assert "STALLED TRAININGS: 0" in out
    open_rows = out.split("OPEN TRAININGS: 2 in time\n")[1].splitlines()
    assert open_rows[1].split()[:3] == ["training_stalled", "r-old", "40m00s"], "oldest first"
    assert open_rows[2].split()[:3] == ["training_stalled", "r-young", "2m00s"]
    assert "  aisha_api_http  up  HTTP 200" in out
    assert "  unknown_status  unknown_value  -" in out
    assert "  webhooks        match          matches=7" in out
    assert lines[-1] == "OK: healthy"
    assert "Authorization" not in stand_in.headers[0]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda s: (
                s["open_pairs"][1].update(stalled=True, age_seconds=7300.0),
                s["stalled_total"].update(training_stalled=1),
            ),
            "1 stalled training(s)",
        ),
        (
            lambda s: s["health"][0].update(up=0, detail="ConnectionError"),
            "health check aisha_api_http is down: ConnectionError",
        ),
        (
            lambda s: s["config"].update(last_reload_ok=False, problems=["c.yaml:3:5: bad"]),
            "the last config reload was refused (1 problem(s))",
        ),
        (
            lambda s: s["journal"].update(caught_up=False, lag_seconds=75.0),
            "catching up with the journal: 1m15s behind",
        ),
    ],
    ids=["stalled", "health-down", "reload-refused", "lagging"],
)
def test_each_problem_exits_1(
    stand_in: StateApi, capsys: pytest.CaptureFixture[str], change: Any, problem: str
) -> None:
    state = copy.deepcopy(HEALTHY)
    change(state)
    stand_in.answer(state)
    rc, out, _ = status(capsys, "--url", stand_in.url)
    assert rc == 1
    assert out.splitlines()[-1] == f"PROBLEM: {problem}"


def test_catching_up_with_little_lag_and_unknown_health_are_fine(
    stand_in: StateApi, capsys: pytest.CaptureFixture[str]
) -> None:
    state = copy.deepcopy(HEALTHY)
    state["journal"].update(caught_up=False, lag_seconds=59.0)
    state["health"][0].update(up=-1, detail="no systemd")
    stand_in.answer(state)
    rc, out, _ = status(capsys, "--url", stand_in.url)
    assert rc == 0
    assert "CATCHING UP" in out
    assert "aisha_api_http  unknown  no systemd" in out


def test_json_prints_the_raw_state(stand_in: StateApi, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = status(capsys, "--url", stand_in.url, "--json")
    assert rc == 0
    assert json.loads(out) == HEALTHY


def test_token_file_sends_a_bearer_token(
    stand_in: StateApi, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n", encoding="utf-8")
    rc, _, _ = status(capsys, "--url", stand_in.url, "--token-file", str(token))
    assert rc == 0
    assert stand_in.headers[0]["Authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(
    ("code", "body", "message"),
    [
        (401, b"unauthorized", "HTTP 401: the daemon wants a bearer token (give --token-file)"),
        (500, b"oops", "HTTP 500"),
        (200, b"<html>", "the answer is not JSON"),
        (200, b'{"hello": 1}', "the answer is not an aisha-monitor state"),
    ],
)
def test_an_unusable_answer_exits_3(
    stand_in: StateApi, capsys: pytest.CaptureFixture[str], code: int, body: bytes, message: str
) -> None:
    stand_in.code, stand_in.body = code, body
    rc, out, err = status(capsys, "--url", stand_in.url)
    assert (rc, out) == (3, "")
    assert err.startswith("aisha-monitor status: ")
    assert message in err


def test_unreachable_and_unreadable_token_exit_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = closed_url()
    rc, out, err = status(capsys, "--url", url, "--timeout", "2")
    assert (rc, out) == (3, "")
    assert err == (
        f"aisha-monitor status: {url}/api/v1/state: cannot connect: is aisha-monitor running?\n"
    )
    rc, _, err = status(capsys, "--url", url, "--token-file", str(tmp_path / "missing"))
    assert rc == 3
    assert "cannot read the token file" in err

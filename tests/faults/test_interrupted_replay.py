"""A replay cut short by kill -9 is verified like any other: the outbox commits the job `running`
before the POST and never sends it again, and at the next start the journal decides whether
it got through. (a) killed after aisha-api took the replay and logged the training's end:
`verified`; (b) killed before aisha-api processed it: `verify_failed` and AishaFallbackFailed;
(c) a replay's end line logged in time but read after its verify_within passed on the wall
clock, behind a backlog: `verified`, as the journal tells it.

The moments are fixed, not drawn: the stand-in freezes the daemon (SIGSTOP) as the replay
arrives, or the test holds the connection unanswered, and only then is the daemon killed."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from monitor.tools.export import export_entry
from tests.faults.conftest import (
    api_logger,
    handler_outcomes,
    tune,
    wait_loop_rounds,
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    tail,
    wait_for,
)
from tests.standins import Request, StandIn

pytestmark = pytest.mark.faults

REPLAY = "replay_webhook"
RUNS = "aisha_monitor_handler_runs_total"
HOLD_S = 60.0  # the longest the stand-in holds a replay (it is let go as soon as the kill is done)
PID = 4801
# the replay's timeout: the daemon must not give up on its POST before the test kills it
SLOW_TIMEOUT = "120s"


def lost_webhook(lj: LiveJournal, rid: str) -> None:
    """The incident: a webhook with status OK that the router dropped. No training start is
    logged for `rid`: its pair is not open in the engine, and its end line still verifies."""
    body = {"request_id": rid, "status": "OK", "result": {"diffusers_lora_file": {"url": "x"}}}
    lj.send([
        lj.app(f"[WEBHOOK] Получен webhook от FAL AI: {body!r}", pid=PID),
        lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: OK", pid=PID),
        lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: OK", pid=PID, level="WARNING"),
    ])  # fmt: skip


def job_of(d: MonitorDaemon, rid: str) -> dict[str, Any] | None:
    jobs = [j for j in d.state()["handler_queue"]["recent"] if j["key"] == rid]
    assert len(jobs) <= 1, jobs
    return jobs[0] if jobs else None


def verifying(d: MonitorDaemon, rid: str) -> dict[str, Any] | None:
    job = job_of(d, rid)
    return job if job is not None and job["state"] == "verifying" else None


def alerts(d: MonitorDaemon) -> dict[str, list[str]]:
    return {a["alertname"]: a["keys"] for a in d.state()["alerts"]}


def runs(d: MonitorDaemon, outcome: str) -> float:
    return d.metric(RUNS, handler=REPLAY, outcome=outcome) or 0.0


def set_replay(**keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["handlers"][REPLAY].update(keys)

    return edit


def test_a_replay_killed_after_it_reached_the_api_is_verified_after_the_restart(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    lj, rid = live_journal, "kill-after"
    logged, killed = threading.Event(), threading.Event()
    log_it = api_logger(lj)

    def take(req: Request) -> None:
        # aisha-api takes the replay and logs the training's completion, and the daemon is
        # killed before it reads that line or gets an answer: frozen first, so that it cannot
        # read the line between its writing and the kill
        d.signal(signal.SIGSTOP)
        log_it(req)
        lj.wait_written()
        logged.set()
        killed.wait(HOLD_S)

    api = stand_ins(on_request=take)
    d = make_daemon(env={"AISHA_API_URL": api.url})
    tune(d.config, set_replay(timeout=SLOW_TIMEOUT))
    d.start()
    lost_webhook(lj, rid)
    wait_for(logged.is_set, 30, lambda: f"the replay at the stand-in\n{tail(d.log)}")
    d.kill()
    killed.set()

    d.start()
    wait_for(lambda: "verified" in handler_outcomes(d, rid), 30, lambda: f"verified\n{tail(d.log)}")
    wait_loop_rounds(d)
    assert handler_outcomes(d, rid) == ["replayed", "verified"]
    taken_up = next(e for e in d.events() if e["kind"] == "handler" and e["key"] == rid)
    assert "the daemon stopped during this run" in taken_up["message"]
    assert [r.json() for r in api.requests] == [
        {"request_id": rid, "status": "completed", "result": {"diffusers_lora_file": {"url": "x"}}}
    ]  # once: not POSTed again after the restart
    job = job_of(d, rid)
    assert job is not None and (job["state"], job["outcome"]) == ("done", "verified")
    assert d.state()["handler_queue"]["open"] == 0
    firing = alerts(d)
    assert rid not in firing.get("AishaUnknownWebhookStatus", [])  # healed
    assert "AishaFallbackFailed" not in firing
    assert (runs(d, "replayed"), runs(d, "verified"), runs(d, "interrupted")) == (1, 1, 0)
    assert d.stop() == 0


def test_a_replay_killed_before_the_api_processed_it_fails_verification_and_alerts(
    live_journal: LiveJournal, make_daemon: MakeDaemon
) -> None:
    lj, rid = live_journal, "kill-before"
    # aisha-api's port: the kernel completes the connection, the test accepts it and never
    # reads the request, so nothing is processed and nothing logged
    with socket.create_server(("127.0.0.1", 0)) as api:
        api.settimeout(30)
        d = make_daemon(env={"AISHA_API_URL": f"http://127.0.0.1:{api.getsockname()[1]}"})
        tune(d.config, set_replay(verify_within="3s", timeout=SLOW_TIMEOUT))
        d.start()
        lost_webhook(lj, rid)
        conn, _ = api.accept()  # the replay is on its way: its job is committed `running`
        with conn:
            d.kill()

        d.start()
        wait_for(
            lambda: "verify_failed" in handler_outcomes(d, rid),
            30,
            lambda: f"verify_failed\n{tail(d.log)}",
        )
        wait_loop_rounds(d)
        api.setblocking(False)
        with pytest.raises(BlockingIOError):
            api.accept()  # no second connection: not POSTed again after the restart
    assert handler_outcomes(d, rid) == ["replayed", "verify_failed"]
    job = job_of(d, rid)
    assert job is not None and (job["state"], job["outcome"]) == ("done", "verify_failed")
    firing = alerts(d)
    assert firing["AishaFallbackFailed"] == [rid]
    assert firing["AishaUnknownWebhookStatus"] == [rid]  # still for a person to look at
    assert (runs(d, "replayed"), runs(d, "verify_failed"), runs(d, "interrupted")) == (1, 1, 0)
    assert d.stop() == 0


def test_an_end_line_logged_in_time_verifies_though_read_after_the_wall_clock_deadline(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    lj, rid = live_journal, "read-late"
    api = stand_ins()  # takes the replay and answers 200, logs nothing yet
    d = make_daemon(env={"AISHA_API_URL": api.url})
    tune(d.config, set_replay(verify_within="3s"))
    d.start()
    lost_webhook(lj, rid)
    job = wait_for(lambda: verifying(d, rid), 30, f"{rid} verifying")
    assert d.stop() == 0
    deadline_us = job["updated_us"] + 3_000_000
    # while the daemon is down, aisha-api logs 10 000 access lines, then the training's end,
    # all within verify_within: more than one batch (at most 5 000 entries, or 8 192 skipped
    # by the gate) comes before the end line
    t = lj.last_us + 1000
    backlog = [export_entry(ACCESS, t + i * 20, pid=PID) for i in range(10_000)]
    end_us = t + 10_000 * 20
    assert end_us < deadline_us
    end = f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"
    backlog.append(export_entry(end, end_us, pid=PID))
    lj.send(backlog)
    lj.wait_written(timeout=60)
    wait_for(lambda: time.time_ns() // 1000 > deadline_us, 10, "verify_within to pass")

    d.start()
    wait_for(lambda: d.state()["journal"]["caught_up"], 60, "the catch-up")
    wait_for(lambda: "verified" in handler_outcomes(d, rid), 10, lambda: f"verified\n{tail(d.log)}")
    assert handler_outcomes(d, rid) == ["replayed", "verified"]
    assert "AishaFallbackFailed" not in alerts(d)
    assert len(api.requests) == 1
    assert d.stop() == 0

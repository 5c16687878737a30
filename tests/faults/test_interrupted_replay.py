"""A replay is verified by the journal, not by the wall clock alone: an end line logged within
verify_within is found even when the daemon reads it later, after a restart behind a backlog
(verify_within runs on journal time while the daemon catches up, as a rule's deadline does)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from monitor.export import export_entry
from tests.faults.conftest import (
    StandIn,
    handler_outcomes,
    tune,
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    tail,
    wait_for,
)

pytestmark = pytest.mark.faults

REPLAY = "replay_webhook"
PID = 4801


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


def set_replay(**keys: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["handlers"][REPLAY].update(keys)

    return edit


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

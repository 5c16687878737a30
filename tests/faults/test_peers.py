"""(c) Peers that fail: Alertmanager down, then slow (a stand-in that answers after FAULT_SLOW_S,
30 s by default), then back; aisha-api down, then slow, then back. The journal loop never
stalls (measured from outside: the oldest entry not yet counted is always under 2 s old),
deliveries and handler runs are retried with backoff, the alert arrives once Alertmanager is
back, and a replay reaches aisha-api at most once."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Alertmanager
from tests.faults.conftest import (
    DELIVERIES,
    Feeder,
    LagProbe,
    api_logger,
    entries,
    events_of,
    handler_queue_empty,
    tune,
    wait_entries,
)
from tests.integration.daemon_fixtures import LiveJournal, MakeDaemon, MonitorDaemon, tail, wait_for
from tests.standins import StandIn

pytestmark = pytest.mark.faults

LAG_BOUND_S = 2.0


def failed(d: MonitorDaemon) -> float:
    return d.metric(DELIVERIES, outcome="failed") or 0.0


def sent(d: MonitorDaemon) -> float:
    return d.metric(DELIVERIES, outcome="sent") or 0.0


def until(probe: LagProbe, check: Callable[[], bool], timeout: float, what: str) -> None:
    """Sample the lag every ~0.2 s until `check()` holds (at most `timeout` s)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{tail(probe.d.log)}")
        probe.run_for(0.2)


def test_alertmanager_down_slow_back_never_stalls_the_loop(
    live_journal: LiveJournal,
    make_daemon: MakeDaemon,
    stand_ins: Callable[..., StandIn],
    tmp_path: Path,
) -> None:
    am_dir = tmp_path / "am"
    am_dir.mkdir()
    am = Alertmanager(am_dir)  # its port is chosen; nothing listens there yet: down
    d = make_daemon(env={"ALERTMANAGER_URL": am.url})
    tune(d.config)
    d.start()
    feeder = Feeder(live_journal, rate=300)
    probe = LagProbe(d, feeder, base=entries(d))
    feeder.start()
    try:
        # down: connection refused, retried with backoff
        until(probe, lambda: failed(d) >= 3, 30, "3 failed deliveries while Alertmanager is down")
        down_failed = failed(d)

        # slow: the stand-in accepts and answers after FAULT_SLOW_S; the daemon's 5 s read
        # timeout gives up first, in the alerter's thread
        slow = stand_ins(port=am.port, mode="slow")
        until(probe, lambda: bool(slow.requests), 40, "a delivery to the slow Alertmanager")
        assert slow.paths()[0] == "/api/v2/alerts"
        until(probe, lambda: failed(d) > down_failed, 15, "the slow delivery to time out")
        slow_failed = failed(d)
        slow.stop()

        # back: the real Alertmanager on the same port gets the alert at the next retry
        am.start()

        def alert_arrived() -> bool:
            return any(a["labels"]["alertname"] == "AishaUnknownWebhookStatus" for a in am.alerts())

        until(probe, alert_arrived, 90, "the alert in Alertmanager")
        (alert,) = [
            a for a in am.alerts() if a["labels"]["alertname"] == "AishaUnknownWebhookStatus"
        ]
        assert (
            "f0" in alert["annotations"]["request_ids"]
            or "more" in alert["annotations"]["request_ids"]
        )
        assert sent(d) >= 1
        probe.run_for(1.0)
    finally:
        feeder.finish()
        am.stop()
    wait_entries(d, int(probe.base) + feeder.written)
    print(
        f"\nAlertmanager down/slow/back: {failed(d):.0f} failed deliveries ({down_failed:.0f} "
        f"down, {slow_failed - down_failed:.0f} slow), {sent(d):.0f} sent; {feeder.written} "
        f"entries at {feeder.rate:.0f}/s all counted; worst lag {probe.worst:.2f} s measured, "
        f"{probe.worst_reported:.2f} s reported, over {probe.samples} samples"
    )
    assert probe.worst < LAG_BOUND_S, probe.worst
    assert probe.worst_reported < LAG_BOUND_S, probe.worst_reported
    assert slow_failed > down_failed >= 3


def unknown_pair(lj: LiveJournal, key: str, status: str, pid: int) -> list[bytes]:
    return [
        lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {status}", pid=pid),
        lj.app(f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}", pid=pid, level="WARNING"),
    ]


def handler_events(d: MonitorDaemon, key: str) -> list[dict[str, Any]]:
    return events_of(d, "handler", key)


def test_aisha_api_down_then_back_retries_with_backoff_and_replays_once(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    lj = live_journal
    api = stand_ins(on_request=api_logger(lj))
    api.stop()  # down: nothing listens on its port
    d = make_daemon(env={"AISHA_API_URL": api.url})
    tune(d.config, lambda data: data["handlers"]["replay_webhook"].update(max_attempts=8))
    d.start()
    feeder = Feeder(lj, rate=200)
    probe = LagProbe(d, feeder, base=entries(d))
    feeder.start()
    try:
        lj.send(unknown_pair(lj, "down-1", "COMPLETED", 4301))

        def failures() -> list[dict[str, Any]]:
            return [e for e in handler_events(d, "down-1") if e["labels"]["outcome"] == "failed"]

        until(probe, lambda: len(failures()) >= 3, 30, "3 failed attempts while aisha-api is down")
        details = [e["message"] for e in failures()]
        assert [m.rsplit("retry in ", 1)[1] for m in details[:3]] == ["1s", "2s", "4s"], details
        api.start()  # back, on the same port
        until(probe, lambda: "verified" in outcomes(d, "down-1"), 30, "the replay verified")
    finally:
        feeder.finish()
    wait_entries(d, int(probe.base) + feeder.written + 2 + len(api.requests) * 3)
    received = collections.Counter(r.json()["request_id"] for r in api.requests)
    assert received == {"down-1": 1}
    # the end line may arrive before the POST's answer: either order
    assert sorted(outcomes(d, "down-1")[-2:]) == ["replayed", "verified"]
    assert handler_queue_empty(d)
    assert probe.worst < LAG_BOUND_S, probe.worst
    print(
        f"\naisha-api down then back: {len(failures())} failed attempts (backoff 1s, 2s, 4s, …), "
        f"then replayed once and verified; worst lag {probe.worst:.2f} s"
    )


def outcomes(d: MonitorDaemon, key: str) -> list[str]:
    return [e["labels"]["outcome"] for e in handler_events(d, key)]


def test_slow_aisha_api_gets_each_replay_at_most_once(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    """aisha-api processes the webhook at once (logs the training's end line) but answers after
    4 s, past the handler's 2 s timeout: a slow proxy, or a loaded API."""
    lj = live_journal
    api = stand_ins(on_request=api_logger(lj), mode="slow", slow_s=4.0)
    d = make_daemon(env={"AISHA_API_URL": api.url})
    tune(d.config, lambda data: data["handlers"]["replay_webhook"].update(timeout="2s"))
    d.start()
    lj.send(unknown_pair(lj, "slow-1", "COMPLETED", 4302))
    wait_for(lambda: "verified" in outcomes(d, "slow-1"), 20, "the replay verified")
    api.mode = "ok"
    # the first POST timed out after 2 s; a retry would come 1 s later
    wait_for(lambda: len(api.requests) >= 2 or _quiet_for(api, 6.0), 15, "a second replay, or none")
    received = collections.Counter(r.json()["request_id"] for r in api.requests)
    assert received == {"slow-1": 1}, (received, outcomes(d, "slow-1"))
    wait_for(lambda: handler_queue_empty(d), 20, "the handler queue empty")


def _quiet_for(api: StandIn, seconds: float) -> bool:
    return bool(api.requests) and time.monotonic() - api.requests[-1].at >= seconds


def firing(d: MonitorDaemon) -> set[str]:
    return {a["alertname"] for a in d.state()["alerts"]}


def test_a_replay_verified_after_a_retry_leaves_no_fallback_alert(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    lj = live_journal
    api = stand_ins(on_request=api_logger(lj))
    api.stop()  # down for the first attempt
    d = make_daemon(env={"AISHA_API_URL": api.url})
    tune(d.config)
    d.start()
    lj.send(unknown_pair(lj, "retry-1", "COMPLETED", 4303))
    wait_for(lambda: "failed" in outcomes(d, "retry-1"), 20, "a failed first attempt")
    api.start()
    wait_for(lambda: "verified" in outcomes(d, "retry-1"), 20, "the replay verified")
    wait_for(lambda: handler_queue_empty(d), 20, "the handler queue empty")
    seen = outcomes(d, "retry-1")
    failed = seen.count("failed")  # more than one when the API came back after the 1 s backoff
    assert failed >= 1 and sorted(seen[failed:]) == ["replayed", "verified"], seen
    assert "AishaUnknownWebhookStatus" not in firing(d), "healed: the unknown status resolves"
    assert "AishaFallbackFailed" not in firing(d), firing(d)

"""The alert book (events -> alerts) and the Alertmanager sender against a stand-in server."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.schema import load_config
from monitor.core.engine import engine_for
from monitor.core.model import Event, EventKind, Severity
from monitor.daemon.alerter import Alerter
from monitor.daemon.alerts import RESOLVED_RESEND_US, AlertBook
from monitor.daemon.metrics import Metrics
from monitor.daemon.state import Position, StateStore
from tests.helpers import T0, S
from tests.standins import AlertReceiver

H = 3600 * S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


CONFIG = load_config(None, env={})


def book() -> AlertBook:
    return AlertBook(CONFIG)


def ev(kind: EventKind, rule: str, key: str | None, t: int, **labels: str) -> Event:
    sev = Severity.CRITICAL if rule == "unknown_status" else Severity.WARNING
    return Event(t, rule, kind, sev, key, dict(labels), f"{rule} {kind} {key}")


def active(b: AlertBook) -> dict[str, list[str]]:
    return {a.alertname: list(a.keys) for a in b.sendable() if a.keys}


def test_one_alert_per_rule_with_request_ids_as_instances() -> None:
    b = book()
    events = [
        ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0),
        ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r2", T0 + S),
        ev(EventKind.STALLED, "training_stalled", "t1", T0 + 2 * S),
        ev(EventKind.PAIR_CLOSED, "training_stalled", "t2", T0 + 3 * S),
    ]
    b.apply(events, T0 + 3 * S)
    assert active(b) == {"AishaUnknownWebhookStatus": ["r1", "r2"], "AishaTrainingStalled": ["t1"]}
    assert b.firing()["AishaUnknownWebhookStatus"] == 1
    b.apply([ev(EventKind.RESOLVED, "training_stalled", "t1", T0 + 4 * S)], T0 + 4 * S)
    (stalled,) = [a for a in b.sendable() if a.alertname == "AishaTrainingStalled"]
    assert stalled.keys == () and stalled.resolved_us == T0 + 4 * S


def test_stale_one_off_events_are_history_not_pages() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "old", T0)], T0 + 2 * H)
    b.apply([ev(EventKind.STALLED, "training_stalled", "t-old", T0)], T0 + 2 * H)
    assert active(b) == {"AishaTrainingStalled": ["t-old"]}  # still true now: alerted


def test_one_off_alerts_expire_and_resolved_ones_are_forgotten() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    assert not b.expire(T0 + H - 1)
    assert b.expire(T0 + H)
    assert active(b) == {}
    assert b.expire(T0 + H + 16 * 60 * S)  # resolved 15 min ago: no longer re-sent
    assert b.sendable() == ()


def test_verified_fallback_heals_and_failed_one_raises() -> None:
    b = book()
    b.apply(
        [
            ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0),
            ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r2", T0),
        ],
        T0,
    )
    b.apply(
        [
            ev(
                EventKind.HANDLER,
                "unknown_status",
                "r1",
                T0 + S,
                handler="replay_webhook",
                outcome="verified",
                source_rule="unknown_status",
            ),
            ev(
                EventKind.HANDLER,
                "unknown_status",
                "r2",
                T0 + S,
                handler="replay_webhook",
                outcome="verify_failed",
                source_rule="unknown_status",
            ),
        ],
        T0 + S,
    )
    assert active(b) == {"AishaUnknownWebhookStatus": ["r2"], "AishaFallbackFailed": ["r2"]}


def replay(key: str, t: int, outcome: str) -> Event:
    return ev(
        EventKind.HANDLER,
        "unknown_status",
        key,
        t,
        handler="replay_webhook",
        outcome=outcome,
        source_rule="unknown_status",
    )


def test_a_retried_attempt_raises_no_handler_alert_a_terminal_failure_does() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    b.apply([replay("r1", T0 + S, "failed"), replay("r1", T0 + 3 * S, "failed")], T0 + 3 * S)
    assert active(b) == {"AishaUnknownWebhookStatus": ["r1"]}
    b.apply([replay("r1", T0 + 7 * S, "gave_up")], T0 + 7 * S)
    assert active(b) == {"AishaUnknownWebhookStatus": ["r1"], "AishaFallbackFailed": ["r1"]}


def test_a_replay_verified_after_a_retry_heals_everything() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    b.apply([replay("r1", T0 + S, "failed")], T0 + S)
    b.apply(
        [replay("r1", T0 + 3 * S, "replayed"), replay("r1", T0 + 4 * S, "verified")], T0 + 4 * S
    )
    assert active(b) == {}


@pytest.mark.parametrize("success", ["verified", "done"])
def test_a_later_success_for_the_key_clears_the_handler_alert(success: str) -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r2", T0)], T0)
    b.apply([replay("r1", T0 + S, "verify_failed"), replay("r2", T0 + S, "gave_up")], T0 + S)
    assert active(b)["AishaFallbackFailed"] == ["r1", "r2"]
    b.apply([replay("r1", T0 + 9 * S, success)], T0 + 9 * S)  # another status, replayed fine
    assert active(b)["AishaFallbackFailed"] == ["r2"]


def test_the_version_moves_only_with_a_change() -> None:
    b = book()
    assert b.unsaved(), "a new book was never written"
    b.mark_saved(b.version)
    assert not b.unsaved()
    seen = b.version
    b.apply([ev(EventKind.PAIR_CLOSED, "training_stalled", "t1", T0)], T0)  # raises nothing
    assert not b.expire(T0) and not b.changed_since(seen)
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    assert b.changed_since(seen) and b.unsaved()
    sent = b.sendable()
    assert b.sendable() is sent, "unchanged: built once"
    b.mark_saved(b.version)
    assert not b.expire(T0 + H - 1) and not b.unsaved()
    assert b.expire(T0 + H) and b.unsaved() and active(b) == {}


def test_a_version_of_another_book_marks_nothing_saved() -> None:
    """A reload replaces the book with a copy: the old one's saved version says nothing of it."""
    old, fresh = book(), book()
    old.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    copy = book()
    copy.restore(old.snapshot())
    copy.mark_saved(old.version)
    fresh.mark_saved(book().version)
    assert copy.unsaved() and fresh.unsaved()


def test_a_restored_book_expires_on_time() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    b.apply([ev(EventKind.STALLED, "training_stalled", "t1", T0 + S)], T0 + S)
    c = book()
    c.restore(json.loads(json.dumps(b.snapshot())))
    assert not c.expire(T0 + H - 1)
    assert c.expire(T0 + H) and active(c) == {"AishaTrainingStalled": ["t1"]}
    assert not c.expire(T0 + H + RESOLVED_RESEND_US)
    assert c.expire(T0 + H + RESOLVED_RESEND_US + 1)
    assert [a.alertname for a in c.sendable()] == ["AishaTrainingStalled"]


KEYS = ["r1", "r2", "r3"]
step = st.tuples(
    st.sampled_from(["unknown", "stalled", "resolved", "verified", "verify_failed", "failed"]),
    st.sampled_from(KEYS),
    st.integers(0, 2 * H),  # how far time moves before the step
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=30))
def test_expiry_is_what_a_full_scan_at_every_batch_gives(steps: list[tuple[str, str, int]]) -> None:
    """The book skips expire() until something is due; a book restored before every batch
    (so it cannot skip) gives the same alerts at every point."""
    b, now = book(), T0
    for what, key, gap in steps:
        now += gap
        event = {
            "unknown": ev(EventKind.UNKNOWN_VALUE, "unknown_status", key, now),
            "stalled": ev(EventKind.STALLED, "training_stalled", key, now),
            "resolved": ev(EventKind.RESOLVED, "training_stalled", key, now),
        }.get(what) or replay(key, now, what)
        b.apply([event], now)
        reference = book()
        reference.restore(b.snapshot())
        reference._due_us = 0  # scans everything
        assert b.expire(now) == reference.expire(now)
        assert b.snapshot() == reference.snapshot()


def test_skipping_an_unchanged_book_restores_the_same_book(tmp_path: Path) -> None:
    """The daemon's commit: the book is written only when it changed since the last commit that
    succeeded; a restart at any point finds the book as it was."""
    engine = engine_for(CONFIG)
    store = StateStore(tmp_path / "state")
    b, written = book(), 0

    def commit(now: int, events: list[Event], refused: bool = False) -> None:
        nonlocal written
        b.apply(events, now)
        b.expire(now)
        version = b.version
        extra = {"alerts": b.snapshot()} if b.unsaved() else {}
        if refused:  # the state file refused the batch: nothing is marked saved
            return
        store.commit(Position(f"c{now}", now, {}), engine, [], extra)
        b.mark_saved(version)
        written += bool(extra)

    commit(T0, [ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)])
    commit(T0 + S, [ev(EventKind.STALLED, "training_stalled", "t1", T0 + S)], refused=True)
    for t in range(2, 40):  # nothing new: only the refused batch's change is written, once
        commit(T0 + t * S, [])
    commit(T0 + H, [])  # r1 expires
    provider = ev(
        EventKind.HANDLER,
        "training_stalled",
        "t1",
        T0 + H + S,
        handler="provider_status",
        outcome="pending",
        source_rule="training_stalled",
    )
    commit(T0 + H + S, [provider])  # the alert says what the provider answered
    assert written == 4
    restored = book()
    restored.restore(StateStore(tmp_path / "state").meta("alerts"))
    assert restored.snapshot() == b.snapshot()
    assert restored.sendable() == b.sendable()


def test_health_check_alert() -> None:
    b = book()
    b.apply([ev(EventKind.HEALTH, "aisha_api_http", None, T0, state="down")], T0)
    assert active(b) == {"AishaApiUnhealthy": ["-"]}
    b.apply([ev(EventKind.RESOLVED, "aisha_api_http", None, T0 + S, state="up")], T0 + S)
    assert active(b) == {}


def test_snapshot_round_trip() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    c = book()
    c.restore(json.loads(json.dumps(b.snapshot())))
    assert c.sendable() == b.sendable()


@pytest.fixture
def am() -> Iterator[AlertReceiver]:
    """An Alertmanager that refuses the first POST (503)."""
    receiver = AlertReceiver(refuse=1)
    yield receiver
    receiver.close()


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_alerter_posts_v2_payload_and_retries(am: AlertReceiver) -> None:
    cfg = load_config(None, env={"ALERTMANAGER_URL": am.url}).alerting
    metrics = Metrics()
    b = book()
    now = time.time_ns() // 1000
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "test_completed", now)], now)
    alerter = Alerter(cfg, metrics, "http://127.0.0.1:9817/")
    alerter.start()
    try:
        alerter.publish(b.sendable())
        wait_for(lambda: am.posts, 10)  # the first POST got 503: retried after backoff
    finally:
        alerter.stop()
    (alert,) = am.posts[0].alerts
    assert alert["labels"] == {
        "alertname": "AishaUnknownWebhookStatus",
        "severity": "critical",
        "service": "aisha-api",
        "instance": cfg.instance,
        "rule": "unknown_status",
    }
    assert alert["annotations"]["request_ids"] == "test_completed"
    assert alert["annotations"]["summary"] == "aisha-api dropped a webhook with an unknown status"
    assert alert["generatorURL"] == "http://127.0.0.1:9817/"
    assert alert["endsAt"] > alert["startsAt"]
    sample = metrics.registry.get_sample_value
    assert sample("aisha_monitor_alert_deliveries_total", {"outcome": "failed"}) == 1
    assert sample("aisha_monitor_alert_deliveries_total", {"outcome": "sent"}) == 1


def test_unknown_health_is_not_down() -> None:
    b = book()
    b.apply([ev(EventKind.HEALTH, "aisha_api_unit", None, T0, state="unknown")], T0)
    b.apply([ev(EventKind.HEALTH, "aisha_api_http", None, T0, state="unknown")], T0)
    assert active(b) == {}


def test_the_alert_says_what_the_provider_answered() -> None:
    b = book()
    b.apply([ev(EventKind.STALLED, "training_stalled", "t1", T0)], T0)
    pending = ev(
        EventKind.HANDLER,
        "training_stalled",
        "t1",
        T0 + S,
        handler="provider_status",
        outcome="pending",
        source_rule="training_stalled",
    )
    b.apply([pending], T0 + S)
    (alert,) = b.sendable()
    assert alert.details[0].endswith("| training_stalled handler t1")
    assert alert.details[0].startswith("training_stalled stalled t1")


def _us(rfc3339: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time as the alerter writes it."""
    return (datetime.fromisoformat(rfc3339) - EPOCH) // timedelta(microseconds=1)


def test_a_resolved_alert_ends_in_the_past_a_firing_one_in_the_future(
    alert_receiver: AlertReceiver,
) -> None:
    """Alertmanager keeps an alert whose endsAt lies ahead firing until then: a resolved one must
    say it ended (at its resolution), a firing one that it has not."""
    cfg = load_config(None, env={"ALERTMANAGER_URL": alert_receiver.url}).alerting
    b = book()
    now = time.time_ns() // 1000
    started, resolved = now - 60 * S, now - 5 * S  # the end line came a little late
    b.apply([ev(EventKind.STALLED, "training_stalled", "t1", started)], now)
    alerter = Alerter(cfg, Metrics(), "http://127.0.0.1:9817/")
    alerter.start()
    try:
        alerter.publish(b.sendable())
        wait_for(lambda: alert_receiver.posts, 10)
        b.apply([ev(EventKind.RESOLVED, "training_stalled", "t1", resolved)], now)
        alerter.publish(b.sendable())
        wait_for(lambda: len(alert_receiver.posts) >= 2, 10)
    finally:
        alerter.stop()
    first, second = alert_receiver.posts[:2]
    (firing,), (ended,) = first.alerts, second.alerts
    firing_at, ended_at = first.wall_us, second.wall_us
    assert firing["annotations"]["request_ids"] == "t1"
    assert "request_ids" not in ended["annotations"]  # no key left: the resolved one
    assert _us(firing["startsAt"]) == _us(ended["startsAt"]) == started
    assert _us(firing["endsAt"]) > firing_at, "a firing alert must not end before its resend"
    assert _us(ended["endsAt"]) <= ended_at, "a resolved alert must not end in the future"
    assert _us(ended["endsAt"]) == resolved


def test_an_unchanged_firing_alert_is_resent_every_resend_interval(
    alert_receiver: AlertReceiver,
) -> None:
    """Alertmanager forgets an alert not re-sent within its resolve_timeout: an unchanged one is
    sent again every resend_interval, and not more often."""
    interval_s = 1.0
    cfg = replace(
        load_config(None, env={"ALERTMANAGER_URL": alert_receiver.url}).alerting,
        resend_interval_us=int(interval_s * S),
    )
    b = book()
    now = time.time_ns() // 1000
    b.apply([ev(EventKind.STALLED, "training_stalled", "t1", now)], now)
    alerter = Alerter(cfg, Metrics(), "http://127.0.0.1:9817/")
    alerter.start()
    try:
        alerter.publish(b.sendable())  # once: nothing changes after this
        wait_for(lambda: len(alert_receiver.posts) >= 3, 10 * interval_s)
    finally:
        alerter.stop()
    posts = list(alert_receiver.posts)
    for post in posts:
        [alert] = post.alerts
        assert alert["annotations"]["request_ids"] == "t1"
        assert alert["labels"]["alertname"] == "AishaTrainingStalled"
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
    assert min(gaps) >= interval_s, f"re-sent sooner than resend_interval: {gaps}"
    ends = [_us(post.alerts[0]["endsAt"]) for post in posts]
    assert ends == sorted(set(ends)), "each resend moves endsAt on"

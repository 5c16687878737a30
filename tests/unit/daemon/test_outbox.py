"""The handler outbox over a real state store (SQLite in tmp) and the shipped config: at most
once, idempotency, stale events, rate limit, backoff, crash recovery and verification."""

from __future__ import annotations

import dataclasses
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers.base import Job, Outcome, Result
from monitor.config.schema import Config, load_config
from monitor.core.model import Event, EventKind, Severity
from monitor.daemon.alerts import AlertBook
from monitor.daemon.outbox import Outbox
from monitor.daemon.state import StateStore
from monitor.daemon.worker import Worker
from tests.helpers import T0, S
from tests.standins import WEBHOOK_PATH, WebhookApi
from tests.unit.handlers import stalled, unknown_value

REPLAY, PROVIDER = "replay_webhook", "provider_status"
MIN = 60 * S


@pytest.fixture
def cfg() -> Config:
    env = {"AISHA_API_URL": "http://127.0.0.1:9", "FAL_QUEUE_URL": "http://127.0.0.1:9"}
    return load_config(None, env=env)


class Box:
    """An outbox over a state store in `directory`, committed the way the daemon does."""

    def __init__(self, cfg: Config, directory: Path, payloads: dict[str, str] | None = None):
        self.store = StateStore(directory)
        self.outbox = Outbox(cfg, self.store.db)
        self.payloads = payloads or {}

    def payload_of(self, spec: object, key: str) -> str | None:
        return self.payloads.get(key) if getattr(spec, "payload_rule", None) else None

    def commit(self) -> None:
        self.store.write(self.outbox.take_ops())
        self.outbox.arm_watches()

    def enqueue(self, events: list[Event], now_us: int) -> list[Event]:
        out = self.outbox.enqueue(events, now_us, self.payload_of)
        self.commit()
        return out

    def due(self, now_us: int) -> list[tuple[Job, str]]:
        jobs = self.outbox.due(now_us)
        self.store.write(self.outbox.take_ops())  # marked running before any worker sees them
        return jobs

    def apply(self, item: tuple[Job, str], result: Result, now_us: int) -> list[Event]:
        out = self.outbox.apply(item[0], item[1], result, now_us)
        self.commit()
        return out

    def verify(
        self, ended: list[tuple[str, str, int]], events: list[Event], now_us: int
    ) -> list[Event]:
        out = self.outbox.verify(ended, events, now_us)
        self.commit()
        return out

    def row(self, key: str, handler: str = REPLAY) -> dict[str, Any]:
        cur = self.store.db.execute(
            "SELECT state, attempts, outcome, detail, next_at_us, verify_deadline_us, payload"
            " FROM jobs WHERE key = ? AND handler = ?",
            (key, handler),
        )
        rows = cur.fetchall()
        assert len(rows) == 1, rows
        cols = ("state", "attempts", "outcome", "detail", "next_at_us", "deadline", "payload")
        return dict(zip(cols, rows[0], strict=True))

    def count(self) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def make_box(cfg: Config, tmp_path: Path) -> Iterator[Callable[..., Box]]:
    boxes: list[Box] = []

    def make(payloads: dict[str, str] | None = None) -> Box:
        boxes.append(Box(cfg, tmp_path / "state", payloads))
        return boxes[-1]

    yield make
    for b in boxes:
        b.close()


@pytest.fixture
def box(make_box: Callable[..., Box]) -> Box:
    return make_box()


def outcomes(events: list[Event]) -> list[tuple[str | None, str]]:
    assert all(e.kind == EventKind.HANDLER for e in events)
    return [(e.key, e.labels["outcome"]) for e in events]


def firing_keys(book: AlertBook) -> dict[str, list[str]]:
    return {a.alertname: list(a.keys) for a in book.sendable() if a.keys}


def replayed(detail: str = "POST …: HTTP 200") -> Result:
    return Result(Outcome.REPLAYED, detail)


# --- enqueue ------------------------------------------------------------------------------------


def test_the_same_event_twice_is_one_job(box: Box) -> None:
    e = unknown_value("req-1")
    assert box.enqueue([e, e], T0) == []
    assert box.enqueue([e], T0 + 10 * S) == []  # seen again, e.g. after a restart
    assert box.count() == 1
    [(job, rule)] = box.due(T0 + 10 * S)
    assert (job.handler, job.key, job.attempt, rule) == (REPLAY, "req-1", 1, "unknown_status")
    assert job.event == e.to_json()
    assert box.due(T0 + 20 * S) == []


def test_another_normalized_status_for_the_request_is_another_job_the_same_one_is_not(
    box: Box,
) -> None:
    """The value acted on is part of the idempotency key: a training reported unknown first as
    `Running` (in_progress), then as `OK` (completed) needs both replays, or it never ends."""
    running = unknown_value("req-1", normalized="in_progress", raw="Running")
    assert box.enqueue([running, running], T0) == []
    assert box.count() == 1
    [first] = box.due(T0)
    assert first[0].event["labels"]["normalized"] == "in_progress"
    box.apply(first, replayed(), T0 + S)
    ok = unknown_value("req-1", normalized="completed", raw="OK", t_us=T0 + 10 * S)
    assert outcomes(box.verify([], [ok], T0 + 10 * S)) == [("req-1", "verify_failed")]
    assert box.enqueue([ok], T0 + 10 * S) == []
    assert box.enqueue([ok], T0 + 20 * S) == []  # the same status reported once more
    assert box.count() == 2, "the completed replay must not be swallowed by the first's key"
    [(job, rule)] = box.due(T0 + 20 * S)
    assert (job.key, rule, job.attempt) == ("req-1", "unknown_status", 1)
    assert job.event["labels"]["normalized"] == "completed"
    assert box.due(T0 + 3600 * S) == []


def test_the_logged_payload_travels_with_the_job(make_box: Callable[..., Box]) -> None:
    box = make_box({"req-1": "{'request_id': 'req-1', 'status': 'OK'}"})
    box.enqueue([unknown_value("req-1")], T0)
    [(job, _)] = box.due(T0)
    assert job.payload == "{'request_id': 'req-1', 'status': 'OK'}"


def test_events_no_handler_wants_make_no_job(box: Box) -> None:
    not_normalizable = unknown_value("req-1", normalized="")
    no_key = unknown_value(None)
    no_handler_rule = Event(T0, "webhook_processing", EventKind.MATCH, Severity.INFO, "req-1")
    unknown_rule = unknown_value("req-1", rule="no_such_rule")
    assert box.enqueue([not_normalizable, no_key, no_handler_rule, unknown_rule], T0) == []
    assert box.count() == 0


def test_a_stale_event_runs_nothing_and_says_so(box: Box) -> None:
    old = unknown_value("req-old", t_us=T0 - 3601 * S)
    events = box.enqueue([old], T0)
    assert outcomes(events) == [("req-old", "skipped_stale")]
    assert events[0].labels == {
        "handler": REPLAY,
        "outcome": "skipped_stale",
        "source_rule": "unknown_status",
    }
    assert "3601s old" in events[0].message
    assert box.row("req-old")["state"] == "done"
    assert box.row("req-old")["outcome"] == "skipped_stale"
    assert box.due(T0 + 3600 * S) == []
    assert box.outbox.watching == {}  # nothing to verify either


def test_an_event_just_within_max_event_age_runs(box: Box) -> None:
    assert box.enqueue([unknown_value("req-1", t_us=T0 - 3600 * S)], T0) == []
    assert len(box.due(T0)) == 1


def test_finished_jobs_are_forgotten_after_2_h_and_an_old_event_seen_again_runs_nothing(
    box: Box,
) -> None:
    day = 2 * 3600 * S  # twice the shipped handlers' max_event_age (1h)
    box.enqueue([unknown_value("req-done"), unknown_value("req-waiting", raw="ok")], T0)
    [done, waiting] = sorted(box.due(T0), key=lambda j: j[0].key)
    box.apply(done, Result(Outcome.REPLAYED, "204"), T0)
    box.verify([("training_stalled", "req-done", T0 + S)], [], T0 + S)
    box.apply(waiting, Result(Outcome.FAILED, "refused", retry=True), T0)
    assert box.row("req-done")["state"] == "done"
    box.outbox.prune(T0 + day)  # not old enough yet
    box.commit()
    assert box.count() == 2
    box.outbox.prune(T0 + day + 2 * S)
    box.commit()
    assert box.count() == 1, "the finished one is gone, the one still pending stays"
    assert box.row("req-waiting")["state"] == "pending"
    # the journal read again (a lost state file, a cursor from long ago): the event is older
    # than max_event_age, so it is only reported, not replayed a second time
    again = box.enqueue([unknown_value("req-done")], T0 + day + 3 * S)
    assert outcomes(again) == [("req-done", "skipped_stale")]
    assert [j.key for j, _ in box.due(T0 + day + 3 * S)] == ["req-waiting"]


# --- due: at most once, rate limit ------------------------------------------------------------


def test_due_marks_jobs_running_and_hands_each_out_once(box: Box) -> None:
    box.enqueue([unknown_value("req-1"), stalled("req-2")], T0)
    assert box.due(T0 - 1) == []  # not yet due
    jobs = box.due(T0)
    assert sorted((j.handler, j.key) for j, _ in jobs) == [(PROVIDER, "req-2"), (REPLAY, "req-1")]
    assert box.row("req-1")["state"] == "running"
    assert box.row("req-1")["attempts"] == 1
    assert box.due(T0 + 3600 * S) == []
    assert box.outbox.queue_size() == 2


def test_due_respects_the_rate_limit_per_handler(box: Box, cfg: Config) -> None:
    limit = cfg.handlers[REPLAY].common.rate_limit_per_minute
    assert limit == 30
    box.enqueue([unknown_value(f"req-{i}") for i in range(limit + 5)] + [stalled("req-s")], T0)
    jobs = box.due(T0)
    handlers = [j.handler for j, _ in jobs]
    assert handlers.count(REPLAY) == limit
    assert handlers.count(PROVIDER) == 1  # another handler's limit is its own
    assert box.due(T0 + S) == []  # the rest wait for the minute to pass
    states = box.store.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
    assert dict(states) == {"running": limit + 1, "pending": 5}


# --- apply: retries and backoff ---------------------------------------------------------------


def test_failures_back_off_then_give_up(box: Box, cfg: Config) -> None:
    common = cfg.handlers[REPLAY].common
    assert (common.max_attempts, common.backoff_us) == (5, 5 * S)
    box.enqueue([unknown_value("req-1")], T0)
    now = T0
    for attempt, delay_s in enumerate([5, 10, 20, 40], start=1):
        [item] = box.due(now)
        assert item[0].attempt == attempt
        events = box.apply(item, Result(Outcome.FAILED, "POST x: HTTP 503", retry=True), now)
        assert outcomes(events) == [("req-1", "failed")]
        assert events[0].severity == Severity.WARNING
        assert events[0].message.endswith(f"retry in {delay_s}s")
        row = box.row("req-1")
        assert (row["state"], row["next_at_us"]) == ("pending", now + delay_s * S)
        assert box.due(now + delay_s * S - 1) == []
        now += delay_s * S
    [item] = box.due(now)
    assert item[0].attempt == 5
    events = box.apply(item, Result(Outcome.FAILED, "POST x: HTTP 503", retry=True), now)
    assert outcomes(events) == [("req-1", "gave_up")]
    assert events[0].severity == Severity.CRITICAL
    assert "gave up after 5 attempt(s)" in events[0].message
    assert (box.row("req-1")["state"], box.row("req-1")["outcome"]) == ("done", "gave_up")
    assert box.due(now + 3600 * S) == []
    assert "req-1" not in box.outbox.watching


def test_a_failure_a_retry_cannot_fix_gives_up_at_once(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    [item] = box.due(T0)
    events = box.apply(item, Result(Outcome.FAILED, "queue status: HTTP 401"), T0)
    assert outcomes(events) == [("req-1", "gave_up")]
    assert "gave up after 1 attempt(s)" in events[0].message
    assert box.due(T0 + 3600 * S) == []


def test_provider_pending_is_asked_again_after_recheck_interval(box: Box) -> None:
    box.enqueue([stalled("req-1")], T0)
    [item] = box.due(T0)
    events = box.apply(item, Result(Outcome.PENDING, "the provider says IN_PROGRESS"), T0)
    assert outcomes(events) == [("req-1", "pending")]
    assert box.row("req-1", PROVIDER)["next_at_us"] == T0 + 5 * MIN
    assert box.due(T0 + 5 * MIN - 1) == []
    [again] = box.due(T0 + 5 * MIN)
    events = box.apply(again, Result(Outcome.DONE, "delivered"), T0 + 5 * MIN)
    assert outcomes(events) == [("req-1", "done")]
    assert box.row("req-1", PROVIDER)["state"] == "done"


def test_pending_rechecks_do_not_use_up_the_attempts(box: Box) -> None:
    box.enqueue([stalled("req-1")], T0)
    now = T0
    for _ in range(5):  # the training runs for 25 more minutes
        [item] = box.due(now)
        box.apply(item, Result(Outcome.PENDING, "the provider says IN_PROGRESS"), now)
        now += 5 * MIN
    [item] = box.due(now)
    events = box.apply(item, Result(Outcome.FAILED, "queue status: HTTP 503", retry=True), now)
    assert outcomes(events) == [("req-1", "failed")]


# --- recover: at most once ----------------------------------------------------------------------


def test_a_run_interrupted_by_a_crash_is_reported_never_repeated(
    make_box: Callable[..., Box],
) -> None:
    before = make_box()
    # provider_status: nothing in the journal tells whether its run happened
    before.enqueue([stalled("req-run"), stalled("req-wait")], T0)
    [running, waiting] = before.due(T0)
    assert (running[0].key, waiting[0].key) == ("req-run", "req-wait")
    before.apply(waiting, Result(Outcome.FAILED, "queue status: HTTP 503", retry=True), T0)
    before.close()  # the process dies here: req-run is `running`, req-wait pending (backoff)

    after = make_box()
    events = after.outbox.recover(T0 + MIN)
    after.commit()
    assert outcomes(events) == [("req-run", "interrupted")]
    assert events[0].severity == Severity.WARNING
    assert "not repeated" in events[0].message
    assert after.row("req-run", PROVIDER)["state"] == "done"
    assert after.row("req-run", PROVIDER)["outcome"] == "interrupted"
    assert after.outbox.watching == {}  # its success does not show in the journal
    # the pending one survives the restart and runs when due
    [(job, _)] = after.due(T0 + 2 * MIN)
    assert (job.key, job.attempt) == ("req-wait", 2)
    assert after.due(T0 + 3600 * S) == []
    # crashing again: only the run in flight now is reported; req-run is not reported twice
    after.close()
    again = make_box().outbox.recover(T0 + 3 * MIN)
    assert outcomes(again) == [("req-wait", "interrupted")]


def test_a_replay_interrupted_by_a_crash_is_verified_never_repeated(
    make_box: Callable[..., Box],
) -> None:
    before = make_box()
    before.enqueue([unknown_value("req-ok"), unknown_value("req-lost")], T0)
    assert [j.key for j, _ in before.due(T0)] == ["req-ok", "req-lost"]
    before.close()  # the process dies with both POSTs in flight

    after = make_box()
    events = after.outbox.recover(T0 + MIN)
    after.commit()
    assert outcomes(events) == [("req-ok", "replayed"), ("req-lost", "replayed")]
    assert "the daemon stopped during this run" in events[0].message
    assert "verifying against the journal" in events[0].message
    assert events[0].severity == Severity.INFO  # not final: verified or verify_failed follows
    for key in ("req-ok", "req-lost"):
        row = after.row(key)
        assert (row["state"], row["deadline"], row["attempts"]) == ("verifying", T0 + 3 * MIN, 1)
    assert after.due(T0 + 3600 * S) == []  # at most once: never POSTed again
    # the journal, read on from the last committed entry, holds req-ok's end line
    events = after.verify([("training_stalled", "req-ok", T0 + MIN + S)], [], T0 + MIN + S)
    assert outcomes(events) == [("req-ok", "verified")]
    assert (after.row("req-ok")["state"], after.row("req-ok")["outcome"]) == ("done", "verified")
    assert after.verify([], [], T0 + 3 * MIN - 1) == []
    events = after.verify([], [], T0 + 3 * MIN)  # verify_within (2m) after the restart
    assert outcomes(events) == [("req-lost", "verify_failed")]
    assert events[0].severity == Severity.CRITICAL
    assert "no end line within verify_within" in events[0].message
    row = after.row("req-lost")
    assert (row["state"], row["outcome"]) == ("done", "verify_failed")
    after.close()
    assert make_box().outbox.recover(T0 + 4 * MIN) == []  # each reported once


def test_an_interrupted_replay_raises_the_fallback_alert_only_when_its_verification_fails(
    make_box: Callable[..., Box], cfg: Config
) -> None:
    before = make_box()
    before.enqueue([unknown_value("req-ok"), unknown_value("req-lost")], T0)
    before.due(T0)
    before.close()
    after = make_box()
    book = AlertBook(cfg)
    book.apply([unknown_value("req-ok"), unknown_value("req-lost")], T0)
    book.apply(after.outbox.recover(T0 + MIN), T0 + MIN)
    assert firing_keys(book) == {"AishaUnknownWebhookStatus": ["req-ok", "req-lost"]}
    after.commit()
    book.apply(after.verify([("training_stalled", "req-ok", T0 + MIN)], [], T0 + MIN), T0 + MIN)
    assert firing_keys(book) == {"AishaUnknownWebhookStatus": ["req-lost"]}  # healed
    book.apply(after.verify([], [], T0 + 3 * MIN), T0 + 3 * MIN)
    assert firing_keys(book) == {
        "AishaUnknownWebhookStatus": ["req-lost"],
        "AishaFallbackFailed": ["req-lost"],
    }


def test_a_replay_verified_before_the_crash_is_not_taken_up_again(
    make_box: Callable[..., Box],
) -> None:
    before = make_box()
    before.enqueue([unknown_value("req-1")], T0)
    before.due(T0)
    # the end line was read and committed while the POST still waited for its answer
    assert outcomes(before.verify([("training_stalled", "req-1", T0 + S)], [], T0 + S)) == [
        ("req-1", "verified")
    ]
    before.close()  # then the process died

    after = make_box()
    assert after.outbox.recover(T0 + MIN) == []
    assert (after.row("req-1")["state"], after.row("req-1")["outcome"]) == ("done", "verified")
    assert after.outbox.watching == {}


def test_a_dry_run_interrupted_by_a_crash_is_reported_not_verified(
    make_box: Callable[..., Box],
) -> None:
    before = make_box()
    before.enqueue([unknown_value("req-1")], T0)
    before.due(T0)
    before.close()
    after = make_box()
    after.outbox.dry_run = True  # it sends nothing: there is nothing to verify
    assert outcomes(after.outbox.recover(T0 + MIN)) == [("req-1", "interrupted")]
    assert after.outbox.watching == {}


def test_a_replay_being_verified_is_watched_again_after_a_restart(
    make_box: Callable[..., Box],
) -> None:
    before = make_box()
    before.enqueue([unknown_value("req-1")], T0)
    before.apply(before.due(T0)[0], replayed(), T0)
    before.close()

    after = make_box()
    assert after.outbox.recover(T0 + MIN) == []
    after.commit()
    assert after.verify([], [], T0 + 2 * MIN - 1) == []
    events = after.verify([], [], T0 + 2 * MIN)
    assert outcomes(events) == [("req-1", "verify_failed")]


# --- verify -------------------------------------------------------------------------------------


def test_replayed_then_the_end_line_is_verified(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    item = box.due(T0)[0]
    events = box.apply(item, replayed(), T0 + S)
    assert outcomes(events) == [("req-1", "replayed")]
    row = box.row("req-1")
    assert (row["state"], row["deadline"]) == ("verifying", T0 + S + 2 * MIN)
    events = box.verify([("training_stalled", "req-1", T0 + 3 * S)], [], T0 + 4 * S)
    assert outcomes(events) == [("req-1", "verified")]
    assert events[0].time_us == T0 + 3 * S  # when the end line was logged
    assert events[0].severity == Severity.INFO
    assert (box.row("req-1")["state"], box.row("req-1")["outcome"]) == ("done", "verified")
    assert box.verify([], [], T0 + 3600 * S) == []


def test_an_end_line_before_the_post_returns_verifies(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    item = box.due(T0)[0]
    # the API logs the completion while the POST is still in flight
    events = box.verify([("training_stalled", "req-1", T0 + S)], [], T0 + S)
    assert outcomes(events) == [("req-1", "verified")]
    assert outcomes(box.apply(item, replayed(), T0 + 2 * S)) == [("req-1", "replayed")]
    assert (box.row("req-1")["state"], box.row("req-1")["outcome"]) == ("done", "verified")
    assert box.verify([], [], T0 + 3600 * S) == []  # no late verify_failed


def test_the_deadline_passing_fails_verification(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    box.apply(box.due(T0)[0], replayed(), T0)
    assert box.verify([], [], T0 + 2 * MIN - 1) == []
    events = box.verify([], [], T0 + 2 * MIN)
    assert outcomes(events) == [("req-1", "verify_failed")]
    assert events[0].severity == Severity.CRITICAL
    assert events[0].time_us == T0 + 2 * MIN
    assert "verify_within" in events[0].message
    assert (box.row("req-1")["state"], box.row("req-1")["outcome"]) == ("done", "verify_failed")
    # a late end line changes nothing
    assert box.verify([("training_stalled", "req-1", T0 + 3 * MIN)], [], T0 + 3 * MIN) == []


def test_unknown_again_after_the_replay_fails_verification_without_a_new_job(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    box.apply(box.due(T0)[0], replayed(), T0 + S)
    again = unknown_value("req-1", t_us=T0 + 2 * S)
    events = box.verify([], [again], T0 + 3 * S)
    assert outcomes(events) == [("req-1", "verify_failed")]
    assert events[0].time_us == T0 + 2 * S
    assert "unknown again" in events[0].message
    assert box.enqueue([again], T0 + 3 * S) == []
    assert box.count() == 1 and box.due(T0 + 3600 * S) == []


def test_other_keys_and_kinds_do_not_touch_a_verification(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    box.apply(box.due(T0)[0], replayed(), T0)
    others = [unknown_value("req-2"), stalled("req-1")]
    assert box.verify([("training_stalled", "req-2", T0 + S)], others, T0 + S) == []
    assert box.row("req-1")["state"] == "verifying"


def test_a_replay_that_gave_up_is_not_verified(box: Box) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    events = box.apply(box.due(T0)[0], Result(Outcome.GAVE_UP, "POST x: HTTP 400"), T0)
    assert outcomes(events) == [("req-1", "gave_up")]
    assert box.outbox.watching == {}
    assert box.verify([("training_stalled", "req-1", T0 + S)], [], T0 + S) == []


# --- the worker thread ----------------------------------------------------------------------------


def test_the_worker_runs_due_jobs_against_the_api(api: WebhookApi, tmp_path: Path) -> None:
    cfg = load_config(None, env={"AISHA_API_URL": api.url.removesuffix(WEBHOOK_PATH)})
    box = Box(
        cfg, tmp_path / "state", {"req-1": "{'request_id': 'req-1', 'status': 'OK', 'ok': True}"}
    )
    worker = Worker(cfg, dry_run=False)
    worker.start()
    try:
        box.enqueue([unknown_value("req-1", raw="OK")], T0)
        for item in box.due(T0):
            worker.jobs.put(item)
        job, rule, result = worker.results.get(timeout=10)  # a deadline, not a sleep
        assert (job.key, rule, result.outcome) == ("req-1", "unknown_status", Outcome.REPLAYED)
        assert api.bodies == [{"request_id": "req-1", "status": "completed", "ok": True}]
        assert outcomes(box.apply((job, rule), result, T0 + S)) == [("req-1", "replayed")]
    finally:
        worker.stop()
        box.close()
    with pytest.raises(queue.Empty):
        worker.results.get_nowait()


# --- a reload ------------------------------------------------------------------------------------


def test_after_a_reload_the_worker_runs_with_the_new_handler_settings(
    api: WebhookApi, tmp_path: Path
) -> None:
    before = load_config(None, env={"AISHA_API_URL": "http://127.0.0.1:9"})  # refused: port 9
    after = load_config(None, env={"AISHA_API_URL": api.url.removesuffix(WEBHOOK_PATH)})
    box = Box(before, tmp_path / "state", {"req-1": "{'request_id': 'req-1', 'status': 'OK'}"})
    worker = Worker(before, dry_run=False)
    worker.start()
    try:
        box.outbox.reconfigure(after)
        worker.reconfigure(after)
        box.enqueue([unknown_value("req-1", raw="OK")], T0)
        for item in box.due(T0):
            worker.jobs.put(item)
        _, _, result = worker.results.get(timeout=10)  # a deadline, not a sleep
        assert result.outcome == Outcome.REPLAYED, result
        assert api.bodies == [{"request_id": "req-1", "status": "completed"}]
    finally:
        worker.stop()
        box.close()


def test_a_run_whose_handler_a_reload_removed_is_finished_not_retried(
    box: Box, cfg: Config
) -> None:
    box.enqueue([unknown_value("req-1")], T0)
    [item] = box.due(T0)
    without = dataclasses.replace(
        cfg, handlers={n: h for n, h in cfg.handlers.items() if n != REPLAY}
    )
    box.outbox.reconfigure(without)
    events = box.apply(item, Result(Outcome.FAILED, "POST x: HTTP 503", retry=True), T0)
    assert outcomes(events) == [("req-1", "gave_up")]
    assert events[0].message.endswith("handler replay_webhook is no longer in the config")
    assert box.row("req-1")["state"] == "done"
    assert "req-1" not in box.outbox.watching
    assert box.due(T0 + 3600 * S) == []

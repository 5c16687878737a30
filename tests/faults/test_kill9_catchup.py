"""(a) kill -9 at random moments of 10k-entry catch-ups (`start: head`), twenty times, with the
fallback replaying to an aisha-api emulator: every unknown status and every stalled training is
reported exactly once overall, journal_entries_total is exact, and no replay is sent twice; a
replay a kill cut short is verified at the next start (`verified` when it had reached the
emulator, `verify_failed` when it had not).

KILL_SEED=N reproduces the kill moments (the seed is printed)."""

from __future__ import annotations

import collections
import functools
import json
import os
import random
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from monitor.tools.export import export_entry
from tests.e2e.conftest import ApiEmulator
from tests.faults.conftest import (
    entries,
    events_of,
    handler_queue_empty,
    tune,
    wait_entries,
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    API_UNIT,
    LEVELS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    logging_prefix,
    tail,
    wait_for,
)

pytestmark = pytest.mark.faults

ROUND = 10_000  # entries of one catch-up
ROUNDS = 20  # one kill -9 in each catch-up
STEP_US = 1000  # the backlog's entries are 1 ms apart, the last one about 100 s ago
NORMALIZABLE = ("COMPLETED", "success", "Failed", "ok")  # replayed by the fallback
BOGUS = ("bogus", "weird-thing")  # truly unknown: reported, never replayed
TERMINAL = {"verified", "interrupted", "verify_failed", "gave_up"}


@dataclass
class Backlog:
    """Catch-up entries, and what the shipped rules must report on them."""

    entries: list[bytes] = field(default_factory=list)
    replayable: list[str] = field(default_factory=list)
    bogus: list[str] = field(default_factory=list)
    stalled: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def backlog(rng: random.Random, k: int, t0: int, out: Backlog) -> None:
    """Round `k`: ROUND aisha-api entries from `t0 + k * ROUND ms`, access-line noise with 6
    unknown statuses (4 replayable), 4 trainings that never end and 4 that end in time, each
    in its own block of ten entries at a random place."""
    blocks = ROUND // 10
    lines: list[tuple[str, int, str] | None] = [None] * ROUND  # (text, pid, level)
    free = set(range(blocks - 60))

    def take() -> int:
        b = rng.choice(sorted(free))
        free.discard(b)
        return b * 10

    for j in range(6):
        i, key = take(), f"u{k}-{j}"
        status = NORMALIZABLE[j] if j < 4 else BOGUS[j % 2]
        (out.replayable if j < 4 else out.bogus).append(key)
        body = {"request_id": key, "status": status, "payload": {"images": [f"img-{j}"]}}
        pid = 6000 + j
        begin = f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {status}"
        lines[i] = (f"[WEBHOOK] Получен webhook от FAL AI: {body!r}", pid, "INFO")
        lines[i + 1] = (begin, pid, "INFO")
        lines[i + 2] = (f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}", pid, "WARNING")
    for j in range(4):
        key = f"s{k}-{j}"
        text = f"Запуск обучения аватара av-{j} отправлен в FAL AI, request_id: {key}"
        lines[take()] = (text, 4101, "INFO")
        out.stalled.append(key)
    for j in range(4):
        key = f"c{k}-{j}"
        start = take()
        # 50+ entries (50+ ms) later, well within the 20 s deadline
        end = next(b for b in range(start // 10 + 5, blocks) if lines[b * 10] is None)
        free.discard(end)
        text = f"Запуск обучения аватара avc-{j} отправлен в FAL AI, request_id: {key}"
        lines[start] = (text, 4102, "INFO")
        lines[end * 10] = (f"[TRAINING COMPLETED] {key}: обучение завершено успешно", 4102, "INFO")
        out.closed.append(key)
    for n, line in enumerate(lines):
        t = t0 + (k * ROUND + n) * STEP_US
        if line is None:
            out.entries.append(export_entry(ACCESS, t, pid=4100 + n % 4))
        else:
            text, pid, level = line
            message = logging_prefix(t, level) + text
            out.entries.append(export_entry(message, t, pid=pid, priority=LEVELS[level]))


def passed(moment: float) -> bool:
    return time.monotonic() >= moment


def committed_entries(d: MonitorDaemon) -> int:
    """The aisha-api entries the (stopped) daemon committed, read from its state file."""
    uri = f"file:{d.state_dir / 'state.sqlite'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'unit_entries'").fetchone()
    finally:
        db.close()
    return int(json.loads(row[0]).get(API_UNIT, 0)) if row else 0


@pytest.mark.parametrize("live_journal", ["bare"], indirect=True)
def test_kill_9_during_catch_up_reports_everything_once_and_replays_at_most_once(
    live_journal: LiveJournal, api_emulator: ApiEmulator, make_daemon: MakeDaemon
) -> None:
    seed = int(os.environ.get("KILL_SEED", random.SystemRandom().randrange(1 << 30)))
    print(f"\nKILL_SEED={seed}")
    rng = random.Random(seed)  # noqa: S311 - reproducible moments, not a secret
    lj = live_journal
    t0 = time.time_ns() // 1000 - (ROUNDS * ROUND * STEP_US + 100_000_000)
    d = make_daemon(start="head", env={"AISHA_API_URL": api_emulator.url})

    def edit(data: dict[str, Any]) -> None:
        # the stall itself is under test here; provider_status has its own tests
        (rule,) = [r for r in data["rules"] if r["name"] == "training_stalled"]
        del rule["handler"]
        # a replay killed before its POST went out fails verification this long after
        data["handlers"]["replay_webhook"]["verify_within"] = "5s"

    tune(d.config, edit, start="head", deadline="20s")

    truth = Backlog()
    moments: list[str] = []
    mid_catch_up = committed = 0
    catch_up_s = 0.0
    for k in range(ROUNDS):
        # a new 10k-entry backlog, and a start that must catch up on it. The first catch-up is
        # timed (ready -> caught up) and killed once caught up, with replays in flight; every
        # later one is killed at a drawn moment in the first half of the time its own backlog
        # should take at the first one's pace (what the last kill left unread is read again):
        # moments drawn over the whole first catch-up's time, which polling stretches, fell
        # after catch-ups that ran faster than it
        before = len(truth.entries)
        backlog(rng, k, t0, truth)
        for i in range(before, len(truth.entries), 5000):
            lj.send(truth.entries[i : i + 5000])
        lj.wait_written(timeout=60)
        d.start()
        ready = time.monotonic()
        if k == 0:
            wait_for(lambda: d.state()["journal"]["caught_up"], 60, "the first catch-up")
            catch_up_s = time.monotonic() - ready
            at = ready + catch_up_s + rng.uniform(0, 0.3)
        else:
            expected_s = catch_up_s * (len(truth.entries) - committed) / ROUND
            at = ready + rng.uniform(0, expected_s / 2)
        wait_for(functools.partial(passed, at), 60, "the kill moment")
        d.kill()
        committed, written = committed_entries(d), lj.count()
        mid_catch_up += committed < written
        moments.append(
            f"kill {k + 1}: {at - ready:.3f} s after ready, {committed} of the {written} "
            f"entries in the journal committed"
        )
    print(f"the first catch-up took {catch_up_s:.2f} s\n" + "\n".join(moments))

    d.start()
    wait_for(lambda: handler_queue_empty(d), 60, lambda: f"the handler queue empty\n{tail(d.log)}")
    lj.wait_written(timeout=60)
    wait_entries(d, lj.sent[API_UNIT], timeout=60)
    assert entries(d) == lj.count() == lj.sent[API_UNIT]
    assert mid_catch_up >= ROUNDS // 2, f"only {mid_catch_up} kills landed during a catch-up"

    events = d.events()
    assert len(events) < 1000, "the API shows the last 1000 events: the test must fit in them"
    by = collections.Counter((e["kind"], e["key"]) for e in events)
    for key in truth.replayable + truth.bogus:
        assert by[("unknown_value", key)] == 1, key
    for key in truth.stalled:
        assert by[("stalled", key)] == 1, key
    for key in truth.closed:
        assert by[("pair_closed", key)] == 1, key
        assert by[("stalled", key)] == 0, key
    assert sum(1 for e in events if e["kind"] == "unknown_value") == 6 * ROUNDS
    assert sum(1 for e in events if e["kind"] == "stalled") == 4 * ROUNDS

    received = collections.Counter(body["request_id"] for body in api_emulator.received)
    assert max(received.values(), default=0) <= 1, f"a replay was sent twice: {received}"
    assert set(received) <= set(truth.replayable), "a truly unknown status was replayed"
    outcomes = {key: handler_outcomes_of(events, key) for key in truth.replayable}
    for key, seen in outcomes.items():
        terminal = [o for o in seen if o in TERMINAL]
        assert len(terminal) == 1, (key, seen)
        # a run the kill cut short is verified, not redone: the emulator logged the training's
        # end for every replay it received, and nothing for one killed before its POST
        assert terminal == (["verified"] if received[key] else ["verify_failed"]), (key, seen)
    for key in truth.bogus:
        assert not events_of(d, "handler", key), key
    verified = sum("verified" in seen for seen in outcomes.values())
    failed = sum("verify_failed" in seen for seen in outcomes.values())
    taken_up = sum(
        1 for e in events if e["kind"] == "handler" and "the daemon stopped" in e["message"]
    )
    print(
        f"kills: {ROUNDS} ({mid_catch_up} during a catch-up); entries {entries(d):.0f} (exact); "
        f"unknown_value {6 * ROUNDS} once each; stalled {4 * ROUNDS} once each; replays "
        f"received {sum(received.values())}/{len(truth.replayable)} (max 1 per key); "
        f"verified {verified}, verify_failed {failed}; runs cut short by a kill and verified "
        f"at the next start: {taken_up}"
    )


def handler_outcomes_of(events: list[dict[str, Any]], key: str) -> list[str]:
    return [e["labels"]["outcome"] for e in events if e["kind"] == "handler" and e["key"] == key]

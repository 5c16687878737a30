"""(e) Signals under load: 100 SIGHUP reloads while entries flow (no crash, nothing lost or
counted twice, the reload metric 1 at the end), and SIGTERM in the middle of a catch-up batch
(exit 0 within 5 s, nothing lost on restart)."""

from __future__ import annotations

import collections
import functools
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest

from monitor.tools.export import export_entry
from tests.faults.conftest import (
    RELOAD_OK,
    UNKNOWN,
    Feeder,
    LagProbe,
    entries,
    events_of,
    handler_outcomes,
    rule_of,
    tune,
    wait_entries,
    wait_loop_rounds,
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    API_UNIT,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    logging_prefix,
    tail,
    wait_for,
)
from tests.standins import StandIn

pytestmark = pytest.mark.faults

P = "aisha_monitor_"
RELOADS = 100
STOP_BOUND_S = 5.0
TERMS = 3  # SIGTERMs during one catch-up, each resumed from where the last one stopped
THEN_S = 0.02  # about how long the daemon takes to read one batch of the backlog


def log_count(d: MonitorDaemon, text: str) -> int:
    return d.log.read_text(encoding="utf-8", errors="replace").count(text)


def test_100_sighup_reloads_under_load(live_journal: LiveJournal, make_daemon: MakeDaemon) -> None:
    lj = live_journal
    d = make_daemon()
    tune(d.config)
    d.start()
    lj.send([lj.app("Запуск обучения аватара av-h отправлен в FAL AI, request_id: t-hup")])
    wait_for(lambda: d.metric(P + "trainings_open", rule="training_stalled") == 1, 10, "open 1")

    def variant(i: int) -> Callable[[dict[str, Any]], None]:
        def edit(data: dict[str, Any]) -> None:
            rule = rule_of(data, "training_stalled")
            rule["deadline"] = "1h" if i % 2 else "2h"
            rule["description"] = f"reload {i}"
            if i % 10 == 5:
                rule["deadline"] = "soon"  # invalid: refused, the old config keeps running

        return edit

    feeder = Feeder(lj, rate=300)
    probe = LagProbe(d, feeder, base=entries(d))
    feeder.start()
    refused = 0
    try:
        for i in range(RELOADS):
            tune(d.config, variant(i))
            invalid = i % 10 == 5
            refused += invalid
            done = log_count(d, "config reloaded") + log_count(d, "reload refused")
            d.signal(signal.SIGHUP)
            wait_for(
                lambda done=done: (
                    log_count(d, "config reloaded") + log_count(d, "reload refused") > done
                ),
                20,
                lambda i=i: f"reload {i} to be applied or refused\n{tail(d.log)}",
                interval=0.01,
            )
            if i % 5 == 0:
                probe.sample()
        probe.run_for(1.0)
    finally:
        feeder.finish()
    assert d.running()
    total = int(probe.base) + feeder.written
    wait_entries(d, total)
    assert log_count(d, "config reloaded") == RELOADS - refused
    assert log_count(d, "reload refused:") >= refused  # one line per problem
    assert d.metric(RELOAD_OK) == 1
    assert d.metric(P + "trainings_open", rule="training_stalled") == 1
    keys = collections.Counter(e["key"] for e in events_of(d, "unknown_value"))
    assert keys == collections.Counter(feeder.keys), "every unknown status reported exactly once"
    counted_unknown = sum(v for (name, _), v in d.metrics().items() if name == UNKNOWN)
    assert counted_unknown == len(feeder.keys), "counters neither reset nor doubled by reloads"
    assert d.metric(P + "journal_read_errors_total") == 0
    assert d.stop() == 0
    print(
        f"\n{RELOADS} SIGHUPs under {feeder.rate:.0f} entries/s: {RELOADS - refused} applied, "
        f"{refused} refused, 0 crashes; {total} entries counted exactly, {len(keys)} unknown "
        f"statuses once each; worst lag {probe.worst:.2f} s; reload metric 1"
    )


# --- SIGTERM -------------------------------------------------------------------------------------


def committed_entries(d: MonitorDaemon) -> int:
    db = sqlite3.connect(f"file:{d.state_dir / 'state.sqlite'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'unit_entries'").fetchone()
    finally:
        db.close()
    return int(json.loads(row[0]).get(API_UNIT, 0)) if row else 0


def backlog(n: int, keys: int, t0: int) -> tuple[list[bytes], list[str]]:
    """`n` entries 1 ms apart from `t0`, `keys` unknown-status incidents spread among them."""
    special: dict[int, tuple[str, str]] = {}
    names = [f"b{k}" for k in range(keys)]
    for k, key in enumerate(names):
        i = k * (n // keys)
        special[i] = ("INFO", f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: bogus")
        special[i + 1] = ("WARNING", "[WEBHOOK BACKGROUND] Неизвестный статус: bogus")
    out = []
    for i in range(n):
        t = t0 + i * 1000
        if i in special:
            level, text = special[i]
            priority = 4 if level == "WARNING" else 6
            out.append(
                export_entry(logging_prefix(t, level) + text, t, pid=4501, priority=priority)
            )
        else:
            out.append(export_entry(ACCESS, t, pid=4500))
    return out, names


def passed(moment: float) -> bool:
    return time.monotonic() >= moment


def term_during_catch_up(d: MonitorDaemon, at_entries: int, then_s: float) -> tuple[int, float]:
    """Start the daemon on its backlog, SIGTERM it `then_s` after it counted `at_entries`
    entries: (exit code, seconds to exit). The moment follows the daemon's own progress, not
    the clock, so a catch-up that runs faster or slower than usual moves it too."""
    d.start()
    wait_for(
        lambda: entries(d) >= at_entries,
        60,
        lambda: f"{at_entries} entries counted (have {entries(d)})\n{tail(d.log)}",
        interval=0.005,
    )
    at = time.monotonic() + then_s
    wait_for(functools.partial(passed, at), 5, "the SIGTERM moment", interval=0.001)
    began = time.monotonic()
    rc = d.stop(timeout=STOP_BOUND_S)
    return rc if rc is not None else -1, time.monotonic() - began


@pytest.mark.parametrize("live_journal", ["bare"], indirect=True)
def test_sigterm_in_the_middle_of_a_batch_exits_0_quickly_and_loses_nothing(
    live_journal: LiveJournal, make_daemon: MakeDaemon
) -> None:
    seed = int(os.environ.get("TERM_SEED", random.SystemRandom().randrange(1 << 30)))
    print(f"\nTERM_SEED={seed}")
    rng = random.Random(seed)  # noqa: S311 - reproducible moments
    lj = live_journal
    t0 = time.time_ns() // 1000 - 200 * 1_000_000
    batch, keys = backlog(100_000, 100, t0)
    for i in range(0, len(batch), 5000):
        lj.send(batch[i : i + 5000])
    lj.wait_written(timeout=60)
    d = make_daemon(start="head")
    tune(d.config, start="head")
    stops = []
    for k in range(TERMS):
        # stop k comes once the counter passed a drawn count in the k-th eighth of the backlog
        # (it moves a committed batch at a time), then a drawn part of a batch later; the daemon
        # ends the batch it is in and exits with about half of the backlog unread, on a fast
        # machine or a slow one (a moment drawn on the clock fell after a quick catch-up)
        at_entries = rng.randrange(len(batch) * k // 8, len(batch) * (k + 1) // 8)
        rc, took = term_during_catch_up(d, at_entries, rng.uniform(0, THEN_S))
        stops.append((at_entries, rc, round(took, 2), committed_entries(d)))
        assert rc == 0, f"exit {rc} after {took:.1f}s\n{tail(d.log)}"
        assert took < STOP_BOUND_S
    print(f"(SIGTERM after, exit code, seconds to exit, entries committed) = {stops}")
    late = [s for s in stops if s[-1] >= len(batch)]
    assert not late, f"a SIGTERM landed after the catch-up: {late}"
    d.start()
    wait_entries(d, len(batch))
    got = collections.Counter(e["key"] for e in events_of(d, "unknown_value"))
    assert got == collections.Counter(keys)
    assert d.stop() == 0


def test_sigterm_with_slow_peers_exits_within_5_s(
    live_journal: LiveJournal, make_daemon: MakeDaemon, stand_ins: Callable[..., StandIn]
) -> None:
    lj = live_journal
    # answers after FAULT_SLOW_S and logs no end line: the replay is unconfirmed at SIGTERM
    api = stand_ins(mode="slow")
    am = stand_ins(mode="slow")
    d = make_daemon(env={"AISHA_API_URL": api.url, "ALERTMANAGER_URL": am.url})
    tune(
        d.config,
        lambda data: data["handlers"]["replay_webhook"].update(timeout="20s", verify_within="2s"),
    )
    d.start()
    lj.send([
        lj.app("[WEBHOOK BACKGROUND] Начинаем обработку sl-1, статус: COMPLETED", pid=4601),
        lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: COMPLETED", pid=4601, level="WARNING"),
    ])  # fmt: skip
    wait_for(lambda: api.requests and am.requests, 20, "a replay and an alert in flight")
    began = time.monotonic()
    rc = d.stop(timeout=15)
    took = time.monotonic() - began
    print(f"\nSIGTERM with slow peers: exit {rc} after {took:.1f} s")
    assert rc == 0
    assert took < STOP_BOUND_S, f"{took:.1f} s to exit"
    d.start()  # the replay cut short is verified, never POSTed again: no end line came
    wait_for(lambda: "verify_failed" in handler_outcomes(d, "sl-1"), 20, "sl-1 verify_failed")
    wait_loop_rounds(d)
    assert handler_outcomes(d, "sl-1") == ["replayed", "verify_failed"]
    assert [r.json()["request_id"] for r in api.requests] == ["sl-1"]
    assert d.stop(timeout=15) == 0

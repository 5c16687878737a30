"""A rule whose regex backtracks for hours on one short line, which check-config accepts (no
static check sees every shape), costs the daemon one time budget per search: /healthz answers
within 1 s meanwhile, the next line is counted within 3 s, SIGTERM stops it within 5 s, the
timeout is counted for that rule, and the line is committed, so a restart does not meet it
again. `replay` gets past it too."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from monitor.config.regexutil import check_pattern
from tests.faults.conftest import entries, tune, wait_entries
from tests.integration.daemon_fixtures import (
    ACCESS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    tail,
    wait_for,
)

pytestmark = pytest.mark.faults

TIMEOUTS = "aisha_monitor_rule_timeouts_total"
# `(.*?,){11}P` written out: the same search, with no repeated group for the check to see
SLOW = ".*?," * 11 + "P"
# 81 characters with the prefilter's ",P" but no P after a comma: the search tries every way
# of cutting the line into 11 pieces, from each start
HOSTILE = ",P" + "1," * 39 + "1"
LOGGED = "rule csv_p: its pattern ran out of its time budget"
HEALTHZ_S = 1.0
COUNTED_S = 3.0
STOP_S = 5.0


def with_slow_rule(data: dict[str, Any]) -> None:
    data["rules"].append({"name": "csv_p", "type": "match", "pattern": SLOW})


def healthz_s(d: MonitorDaemon) -> float:
    """Seconds /healthz took to answer 200; fails when it did not within HEALTHZ_S."""
    started = time.monotonic()
    answer = d.request("/healthz", timeout=HEALTHZ_S)
    took = time.monotonic() - started
    assert answer is not None and answer[0] == 200, (
        f"/healthz: no answer within {HEALTHZ_S} s ({answer})\n{tail(d.log)}"
    )
    return took


def test_a_line_a_rule_cannot_finish_with_costs_one_time_budget(
    live_journal: LiveJournal, make_daemon: MakeDaemon
) -> None:
    assert check_pattern(SLOW)[1] == [], "the shape check-config does not see"
    lj = live_journal
    d = make_daemon()
    tune(d.config, with_slow_rule, start="head")
    d.start()
    wait_entries(d, 1)
    at_start = [d.metric(TIMEOUTS, rule=rule) for rule in ("csv_p", "training_stalled")]

    lj.send([lj.raw(HOSTILE), lj.raw(ACCESS)])
    sent = time.monotonic()
    slowest = 0.0
    while True:
        slowest = max(slowest, healthz_s(d))
        if entries(d) >= 3:  # the hostile line, then a normal one
            break
        assert time.monotonic() - sent < COUNTED_S, f"not counted in {COUNTED_S} s\n{tail(d.log)}"
    print(f"both lines counted after {time.monotonic() - sent:.2f} s; /healthz <= {slowest:.2f} s")
    assert at_start == [0, 0]  # every rule's series, from the start
    assert d.metric(TIMEOUTS, rule="csv_p") == 1
    assert d.metric(TIMEOUTS, rule="training_stalled") == 0  # the other rules saw it unharmed
    assert d.log_text().count(LOGGED) == 1

    started = time.monotonic()
    assert d.stop(STOP_S) == 0, f"no clean exit within {STOP_S} s\n{tail(d.log)}"
    print(f"SIGTERM: exit in {time.monotonic() - started:.2f} s")

    d.start()  # from the committed position: past the hostile line
    healthz_s(d)
    wait_entries(d, 3)
    assert d.metric(TIMEOUTS, rule="csv_p") == 0, "the hostile line was searched again"
    lj.send([lj.raw(ACCESS)])
    wait_entries(d, 4, timeout=COUNTED_S)
    assert LOGGED not in d.log.read_text(encoding="utf-8")

    argv = [sys.executable, "-m", "monitor", "replay", "-c", str(d.config)]
    replayed = subprocess.run(
        [*argv, "--journal-dir", str(d.journal_dir)],
        capture_output=True,
        text=True,
        env=d.env,
        cwd=d.workdir,
        timeout=60,
        check=False,
    )
    assert replayed.returncode == 0, replayed.stderr
    (summary,) = [line for line in replayed.stderr.splitlines() if "csv_p (match)" in line]
    assert summary.endswith("timeouts=1"), replayed.stderr


def test_the_daemon_stops_on_sigterm_while_a_search_runs(
    live_journal: LiveJournal, make_daemon: MakeDaemon
) -> None:
    """A stream of such lines: every one costs a budget and the loop still goes round."""
    lj = live_journal
    d = make_daemon()
    tune(d.config, with_slow_rule, start="head")
    d.start()
    wait_entries(d, 1)
    lj.send([lj.raw(HOSTILE) for _ in range(200)])
    wait_for(lambda: (d.metric(TIMEOUTS, rule="csv_p") or 0) >= 2, 10, "two timeouts")
    healthz_s(d)
    started = time.monotonic()
    assert d.stop(STOP_S) == 0, f"no clean exit within {STOP_S} s\n{tail(d.log)}"
    print(f"SIGTERM with {200 - 2} hostile lines to go: exit in {time.monotonic() - started:.2f}s")
    assert d.log_text().count(LOGGED) <= 3  # the first, then at 10 and 100 at most

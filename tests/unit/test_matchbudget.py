"""Every search a rule makes gets a time budget: one that runs out is counted for its rule and
taken as no match, the others give what `re` gives, and other signal handlers keep running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from types import FrameType

from monitor.matchbudget import TimeBudget

SLOW = re.compile(r"(?:a+){20}b")  # hours on 40 a's


def test_a_search_that_runs_out_is_no_match_counted_for_its_rule() -> None:
    with TimeBudget(0.05) as budget:
        slow = budget.bind("slow", SLOW)
        fine = budget.bind("fine", re.compile(r"(?P<n>\d+),P"))
        started = time.monotonic()
        assert slow("a" * 40) is None
        took = time.monotonic() - started
        found = fine("P1,22,P")
        assert found is not None and found.group("n") == "22"
        assert fine("x" * 100_000) is None
    assert took < 2.0
    assert budget.total == 1 and dict(budget.by_rule) == {"slow": 1}


def test_other_handlers_run_during_a_search_and_the_old_handler_comes_back() -> None:
    seen: list[int] = []

    def on_usr1(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    before = signal.getsignal(signal.SIGVTALRM)
    previous = signal.signal(signal.SIGUSR1, on_usr1)
    try:
        with TimeBudget(0.2) as budget:
            pid = os.getpid()
            signal.setitimer(signal.ITIMER_REAL, 0.05)  # SIGALRM: default would kill; replace
            signal.signal(signal.SIGALRM, lambda s, f: os.kill(pid, signal.SIGUSR1))
            assert budget.bind("slow", SLOW)("a" * 40) is None
        assert seen == [signal.SIGUSR1]  # the SIGTERM handler of the daemon is such a handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, previous)
    assert signal.getsignal(signal.SIGVTALRM) == before


def test_a_process_that_installed_a_budget_exits_cleanly() -> None:
    """At exit Python gives SIGVTALRM back its default action (end the process): the ticks
    stop before that. A tick every 0.5 ms of CPU would otherwise hit the finalization."""
    program = (
        "from monitor.matchbudget import TimeBudget\n"
        "TimeBudget(0.001).install()\n"
        "sum(i * i for i in range(2_000_000))\n"
        "big = [str(i) for i in range(300_000)]  # work for the finalization too\n"
    )
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", program], timeout=60, check=False)
        assert done.returncode == 0

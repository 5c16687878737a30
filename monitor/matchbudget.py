"""A time budget for every regex search a rule makes (rules.base.Matcher), for the daemon and
`replay`.

Python's `re` holds the GIL for a whole search, so a pattern that backtracks for minutes on one
line would freeze every thread: HTTP, the watchdog, the SIGTERM handler. But `re` checks for
signals while it matches, and a signal handler that raises ends the search. So a CPU-time timer
(ITIMER_VIRTUAL: a search that is merely descheduled on a busy machine is not cut) ticks every
half budget while the budget is installed, and each search notes its number while it runs; a
tick that finds the same search running as the tick before raises in it. A search is so cut
after between a half and a whole budget, at the cost of two attribute stores per search (arming
a timer per search would take two system calls, 1.2 µs). A search cut short is counted for its
rule and taken as no match.

The handler is installed in the main thread, where the engine runs: Python runs signal handlers
there, wherever the kernel delivered the signal. Other threads' system calls are restarted, not
interrupted (siginterrupt False); the timer only runs while the process uses CPU."""

from __future__ import annotations

import atexit
import itertools
import re
import signal
from collections.abc import Callable, Mapping
from types import FrameType, TracebackType
from typing import Any

MATCH_BUDGET_S = 0.1  # ~1000 times a normal search of a 64 KiB line; /healthz waits for it
_SIGNAL = signal.SIGVTALRM
_TIMER = signal.ITIMER_VIRTUAL


class MatchTimeoutError(Exception):
    """Raised by the timer's handler inside a search that used up its budget."""


class TimeBudget:
    """A rules.base.Matcher whose searches each get at most `seconds` of CPU time."""

    def __init__(self, seconds: float = MATCH_BUDGET_S) -> None:
        self.seconds = seconds
        self.total = 0
        self._by_rule: dict[str, int] = {}
        self._running = 0  # the number of the search running now, 0 between searches
        self._seen = 0  # … as the last tick found it
        self._numbers = itertools.count(1).__next__
        self._previous: Any = None

    @property
    def by_rule(self) -> Mapping[str, int]:
        return self._by_rule

    def install(self) -> TimeBudget:
        """Take the timer's signal and start the ticks (main thread only: `signal.signal`
        says so otherwise)."""
        self._previous = signal.signal(_SIGNAL, self._tick)
        signal.siginterrupt(_SIGNAL, False)
        signal.setitimer(_TIMER, self.seconds / 2, self.seconds / 2)
        # at exit Python gives the signal back its default action, which ends the process: a
        # tick then would turn a clean exit into death by SIGVTALRM
        atexit.register(signal.setitimer, _TIMER, 0)
        return self

    def uninstall(self) -> None:
        signal.setitimer(_TIMER, 0)
        signal.signal(_SIGNAL, self._previous if self._previous is not None else signal.SIG_DFL)

    def __enter__(self) -> TimeBudget:
        return self.install()

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()

    def _tick(self, signum: int, frame: FrameType | None) -> None:
        running = self._running
        if running and running == self._seen:  # a whole tick long already
            self._running = 0  # raised once, and only inside `bounded`
            raise MatchTimeoutError
        self._seen = running

    def bind(self, rule: str, regex: re.Pattern[str]) -> Callable[[str], re.Match[str] | None]:
        search, number = regex.search, self._numbers

        def bounded(message: str) -> re.Match[str] | None:
            try:
                try:  # numbered inside: wherever the handler raises, it is caught here
                    self._running = number()
                    found = search(message)
                    self._running = 0
                except MatchTimeoutError:
                    found = None
                    self.total += 1
                    self._by_rule[rule] = self._by_rule.get(rule, 0) + 1
            finally:  # also when Ctrl-C ends the search
                self._running = 0
            return found

        return bounded

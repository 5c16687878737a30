"""A time budget for every regex search a rule makes (rules.base.Matcher), for the daemon and
`replay`.

Python's `re` holds the GIL for a whole search, so a pattern that backtracks for minutes on one
line would freeze every thread: HTTP, the watchdog, the SIGTERM handler. But `re` checks for
signals while it matches, and a signal handler that raises ends the search. So each search arms
a one-shot CPU-time timer (ITIMER_VIRTUAL: a search that is merely descheduled on a busy machine
is not cut) and disarms it when the search returns; the handler raises only while a search is
armed. A search cut short is counted for its rule and taken as no match.

The handler is installed in the main thread, where the engine runs: Python runs signal handlers
there, wherever the kernel delivered the signal. Other threads' system calls are restarted, not
interrupted (siginterrupt False)."""

from __future__ import annotations

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
    """A rules.base.Matcher whose searches each get `seconds` of CPU time."""

    def __init__(self, seconds: float = MATCH_BUDGET_S) -> None:
        self.seconds = seconds
        self.total = 0
        self._by_rule: dict[str, int] = {}
        self._armed = False
        self._previous: Any = None

    @property
    def by_rule(self) -> Mapping[str, int]:
        return self._by_rule

    def install(self) -> TimeBudget:
        """Take the timer's signal (main thread only: `signal.signal` says so otherwise)."""
        self._previous = signal.signal(_SIGNAL, self._expired)
        signal.siginterrupt(_SIGNAL, False)
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

    def _expired(self, signum: int, frame: FrameType | None) -> None:
        # a late signal (the search returned just as the timer fired) must not land elsewhere
        if self._armed:
            self._armed = False
            raise MatchTimeoutError

    def bind(self, rule: str, regex: re.Pattern[str]) -> Callable[[str], re.Match[str] | None]:
        search, setitimer, seconds = regex.search, signal.setitimer, self.seconds

        def bounded(message: str) -> re.Match[str] | None:
            try:
                try:  # armed inside: wherever the handler raises, it is caught here
                    self._armed = True
                    setitimer(_TIMER, seconds)
                    found = search(message)
                    self._armed = False
                except MatchTimeoutError:
                    found = None
                    self.total += 1
                    self._by_rule[rule] = self._by_rule.get(rule, 0) + 1
            finally:  # also when Ctrl-C ends the search
                self._armed = False
                setitimer(_TIMER, 0)
            return found

        return bounded

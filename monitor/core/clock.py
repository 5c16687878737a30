"""Time, injected: the wall clock for event and deadline times, a monotonic clock for timeouts
and pacing. The daemon's parts take a Clock; the engine never reads one (time comes from the
entries and from `tick`)."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int:
        """Wall-clock time in microseconds since the epoch (journal realtime's unit)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never steps back (timeouts, pacing)."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()

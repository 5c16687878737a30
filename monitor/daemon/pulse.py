"""What systemd hears from the main loop while it runs: WATCHDOG=1 at a quarter of WatchdogSec,
and a STATUS= line (entries/s, lag, open trainings) every few seconds."""

from __future__ import annotations

from collections.abc import Callable

from monitor.core.clock import Clock
from monitor.journal.reader import notify

STATUS_EVERY_S = 5.0


class Pulse:
    """systemd's watchdog (a quarter of WatchdogSec) and the STATUS= line (every 5 s)."""

    def __init__(self, clock: Clock, watchdog_s: float, entries: int) -> None:
        self.clock, self.watchdog_s = clock, watchdog_s
        self.last_watchdog = self.last_status = 0.0
        self.entries_at_status = entries

    def beat(self, now: float, status: Callable[[], tuple[int, float, int]] | None) -> None:
        """`status` gives (entries read, lag in seconds, open trainings) when a STATUS= line
        is due; None while there is nothing to say (a refused write has its own line)."""
        if self.watchdog_s and now - self.last_watchdog >= self.watchdog_s / 4:
            notify("WATCHDOG=1")
            self.last_watchdog = now
        if status is None or now - self.last_status < STATUS_EVERY_S:
            return
        entries, lag_s, open_ = status()
        elapsed = max(now - self.last_status, 1e-9)
        rate = (entries - self.entries_at_status) / elapsed if self.last_status else 0.0
        notify(f"STATUS={rate:.0f} entries/s, lag {lag_s:.1f}s, {open_} open trainings")
        self.entries_at_status, self.last_status = entries, now

"""The load plan shared by the writer and the measuring side: a warm-up, each load after an idle
gap, the soak; and when the writer sends its markers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
API = "aisha-api.service"
MARKER_STATUS = "bench_marker"
MARKER_EVERY_S = 0.25
WARMUP = ("warm-up", 200, 5.0)
GAP_S = 5.0


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    rate: int
    seconds: float
    start: float  # wall clock (time.time()) when the writer begins it

    @property
    def end(self) -> float:
        return self.start + self.seconds


def make_plan(
    t0: float, seconds: float, rates: tuple[int, ...], soak_s: float = 0, soak_rate: int = 10_000
) -> list[Phase]:
    """A warm-up, then each load for `seconds`, with an idle gap before each; then, with
    `soak_s`, a longer run at `soak_rate` whose second half shows whether RSS has levelled off
    (the daemon keeps the last 1000 events in memory: at 4 markers/s that fills in 250 s)."""
    name, rate, warm = WARMUP
    phases = [Phase(name, rate, warm, t0)]
    t = t0 + warm + GAP_S
    for r in rates:
        phases.append(Phase(rate_name(r), r, seconds, t))
        t += seconds + GAP_S
    if soak_s:
        phases.append(Phase(f"soak {rate_name(soak_rate)}", soak_rate, soak_s, t))
    return phases


def rate_name(rate: int) -> str:
    return f"{rate // 1000}k" if rate % 1000 == 0 else str(rate)


def marker_times(phase: Phase) -> list[float]:
    """When the writer sends its markers in a phase (none in the warm-up)."""
    if phase.name == WARMUP[0]:
        return []
    n = int(phase.seconds / MARKER_EVERY_S)
    return [phase.start + (i + 0.5) * MARKER_EVERY_S for i in range(n)]

"""The discrete-event core of the simulation: a heap of lines and actions in time order, Poisson
streams, the emission of entries (strictly increasing times, each unit's quota) and what the
emitted aisha-api lines tell the truth."""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable, Iterator

from bench import lines as L  # noqa: N812 - the clock
from bench.simulate.model import (
    API,
    API_PIDS,
    BOT,
    EPOCH_US,
    NGINX,
    PRIORITY,
    WARMUP_US,
    Export,
    Line,
    Mix,
    S,
    Training,
    text_is_access,
)
from bench.truth import Truth


class Engine:
    """The state of the services and the scheduling, driven by one random.Random(seed)."""

    def __init__(self, size: int, seed: int, mix: Mix, truth: Truth, export: Export) -> None:
        self.size, self.mix, self.truth, self.export = size, mix, truth, export
        self.other_quota = round(size * mix.other_ratio)
        self.rng = random.Random(seed)
        self.clock = L.Clock()
        self.heap: list[tuple[int, int, Callable[[int], None] | None, Line | None]] = []
        self.seq = 0
        self.busy = dict.fromkeys(API_PIDS, 0)
        self.inflight: dict[str, Training] = {}
        self.counts: dict[str, int] = dict.fromkeys((API, NGINX, BOT), 0)
        self.stats: dict[str, int] = {}
        self.first = self.last = self.final_api = 0
        self.max_api_gap = 0
        self.max_shift = 0
        self._errs: deque[int] = deque()
        self.max_err_5m = 0

    # --- scheduling -------------------------------------------------------------------------

    def at(self, t: int, line: Line) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, None, line))

    def act(self, t: int, fn: Callable[[int], None]) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, fn, None))

    def count(self, what: str, n: int = 1) -> None:
        self.stats[what] = self.stats.get(what, 0) + n

    def every(self, rate: float, fn: Callable[[int], None]) -> Callable[[int], None]:
        """A Poisson stream: fn at exponential gaps of mean 1/rate seconds."""

        def step(t: int) -> None:
            fn(t)
            self.act(t + int(self.rng.expovariate(rate) * S) + 1, step)

        return step

    def run(self, streams: tuple[tuple[float, Callable[[int], None]], ...]) -> Iterator[bytes]:
        """Each (rate, fn) stream started at the warm-up's start, then the entries in time order
        until every unit has its quota (lines before EPOCH_US, the warm-up's, are not emitted)."""
        start = EPOCH_US - WARMUP_US
        for rate, fn in streams:
            self.act(start + int(self.rng.expovariate(rate) * S), self.every(rate, fn))
        while self.counts[API] < self.size or self._others() < self.other_quota:
            t, _, action, line = heapq.heappop(self.heap)
            if action is not None:
                action(t)
            elif line is not None and t >= EPOCH_US:
                data = self.emit(t, line)
                if data is not None:
                    yield data

    def _others(self) -> int:
        return self.counts[NGINX] + self.counts[BOT]

    # --- emission -----------------------------------------------------------------------------

    def emit(self, t: int, line: Line) -> bytes | None:
        if (
            (self.counts[API] >= self.size)
            if line.unit == API
            else (self._others() >= self.other_quota)
        ):
            return None
        if t <= self.last:  # a tie or an overlap: keep entry times strictly increasing
            self.stats["shifted_entries"] = self.stats.get("shifted_entries", 0) + 1
            self.max_shift = max(self.max_shift, self.last + 1 - t)
            t = self.last + 1
        if not self.first:
            self.first = t
        self.last = t
        self.counts[line.unit] += 1
        text = line.text
        if line.logger:
            text = self.clock.logging_prefix(t, line.logger, line.level) + text
        priority = PRIORITY[line.level]
        if line.unit == API:
            self._observe_api(t, line, priority)
        return self.export(text, t, line.unit, line.pid, priority)

    def _observe_api(self, t: int, line: Line, priority: int) -> None:
        if self.final_api:
            self.max_api_gap = max(self.max_api_gap, t - self.final_api)
        self.final_api = t
        if text_is_access(line.text):
            self.count("emitted_access_lines")
        if priority <= 3:
            errs = self._errs
            errs.append(t)
            while errs[0] <= t - 300 * S:
                errs.popleft()
            self.max_err_5m = max(self.max_err_5m, len(errs))
        tag = line.tag
        if tag is None:
            return
        kind, rid = tag[0], tag[1]
        self.count(f"emitted_{kind}_lines")
        if kind == "start":
            self.truth.start(rid, t)
        elif kind == "end":
            self.truth.end(rid, t)
        elif kind == "unknown":
            self.truth.unknown_status(rid, tag[2], t)
        else:
            self.truth.crash(rid)

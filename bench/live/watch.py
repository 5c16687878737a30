"""The measuring threads: the sampler (lag, entries read, batches, /proc every 0.5 s) and the
marker pollers (when /metrics, or /api/v1/events, first shows each marker)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import Any

from bench.live.plan import MARKER_STATUS
from bench.live.probes import (
    BATCH_METRIC,
    LAG_METRIC,
    MARKER_METRIC,
    entries_read,
    http_get,
    machine_cpu,
    parse_rfc3339,
    parse_time_us,
    proc_sample,
)

POLL_S = 0.005  # the first POLL_FINE_S after a marker's scheduled time …
POLL_FINE_S = 0.1
POLL_COARSE_S = 0.025  # … then this: every request costs the daemon GIL time
SAMPLE_S = 0.5
MARKER_TIMEOUT_S = 15.0


class Sampler(threading.Thread):
    """Every SAMPLE_S: lag (reported and true), entries read, and /proc of the processes."""

    def __init__(self, base: str, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.base, self.pids = base, pids
        self.rows: list[dict[str, Any]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        prev: dict[str, tuple[float, float]] = {}
        prev_machine = machine_cpu()
        next_t = time.time()
        while not self.stopped.is_set():
            next_t += SAMPLE_S
            now = time.time()
            row: dict[str, Any] = {"t": now}
            self._daemon(row)
            self._processes(row, now, prev)
            busy, total = machine_cpu()
            d_busy, d_total = busy - prev_machine[0], total - prev_machine[1]
            row["machine_cpu"] = 100 * os.cpu_count() * d_busy / max(d_total, 1)  # type: ignore[operator]
            prev_machine = (busy, total)
            self.rows.append(row)
            self.stopped.wait(max(0.0, next_t - time.time()))

    def _daemon(self, row: dict[str, Any]) -> None:
        """The daemon's figures: its lag gauge, entries read, batches, and the true lag."""
        try:
            text = http_get(self.base + "/metrics")
            m = LAG_METRIC.search(text)
            row["lag_reported"] = float(m.group(1)) if m else None
            row["entries"] = entries_read(text)
            for kind, value in BATCH_METRIC.findall(text):
                row[f"batch_{kind}"] = float(value)
            state = json.loads(http_get(self.base + "/api/v1/state"))
            last = state["journal"]["last_entry_time"]
            if last:
                row["lag_true"] = max(0.0, time.time() - parse_rfc3339(last))
        except (OSError, ValueError) as err:
            row["error"] = str(err)

    def _processes(
        self, row: dict[str, Any], now: float, prev: dict[str, tuple[float, float]]
    ) -> None:
        """CPU% since the previous sample, and memory, of each of our processes."""
        for name, pid in self.pids.items():
            s = proc_sample(pid)
            if s is None:
                continue
            cpu, rss, anon, file_ = s
            if name in prev:
                t_prev, cpu_prev = prev[name]
                row[f"{name}_cpu"] = 100 * (cpu - cpu_prev) / max(now - t_prev, 1e-6)
            prev[name] = (now, cpu)
            row[f"{name}_rss_kb"], row[f"{name}_anon_kb"] = rss, anon
            row[f"{name}_file_kb"] = file_


class MarkerPoller(threading.Thread):
    """From each marker's scheduled time, poll until the daemon shows it; record when."""

    def __init__(self, base: str, schedule: list[float], what: str, baseline: int = 0) -> None:
        super().__init__(daemon=True)
        self.base, self.schedule, self.what, self.baseline = base, schedule, what, baseline
        self.seen: dict[int, float] = {}  # metrics: marker number (1-based) -> when seen
        self.by_time: dict[int, float] = {}  # events: the event's time (µs) -> when seen
        self.requests = 0
        self.stopped = threading.Event()

    def _observe(self, now: float) -> None:
        self.requests += 1
        if self.what == "metrics":
            m = MARKER_METRIC.search(http_get(self.base + "/metrics"))
            for n in range(1, (int(float(m.group(1))) - self.baseline if m else 0) + 1):
                self.seen.setdefault(n, now)
            return
        # a marker's event is known by its time: the entry's own timestamp, to the microsecond
        for e in json.loads(http_get(self.base + "/api/v1/events?limit=20")):
            if e.get("rule") == "unknown_status" and e.get("labels", {}).get("status") == (
                MARKER_STATUS
            ):
                self.by_time.setdefault(parse_time_us(e["time"]), now)

    def count(self) -> int:
        return len(self.seen) if self.what == "metrics" else len(self.by_time)

    def seen_at(self, marker: dict[str, Any]) -> float | None:
        if self.what == "metrics":
            return self.seen.get(marker["k"])
        return self.by_time.get(marker["t_us"])

    def run(self) -> None:
        for k, when in enumerate(self.schedule, start=1):
            if self.stopped.wait(max(0.0, when - time.time())):
                return
            give_up = time.time() + MARKER_TIMEOUT_S
            while self.count() < k and time.time() < give_up and not self.stopped.is_set():
                with contextlib.suppress(OSError, ValueError):
                    self._observe(time.time())
                now = time.time()
                if self.count() < k:
                    time.sleep(POLL_S if now - when < POLL_FINE_S else POLL_COARSE_S)

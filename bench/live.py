"""`python -m bench.live [--quick]`: the daemon following a journal directory that the real
`systemd-journal-remote --listen-raw` writes, at offered loads of 1k, 10k and 30k entries/s.

Set-up, all on 127.0.0.1 and in a temporary directory: journal-remote listens on a free port and
writes into D/; the daemon runs `aisha-monitor run -c <copy of config.yaml with start: tail, no
health checks, no Alertmanager> --journal-dir D --state-dir S --listen 127.0.0.1:P`; a writer
process (`--writer`, its own interpreter so its work does not share the measuring process's GIL)
streams export-format aisha-api entries with current, strictly increasing timestamps under one
boot id over one TCP connection, paced in 5 ms ticks. The mix is aisha-api's (uvicorn access lines
~56%, application filler, webhook deliveries with known statuses, training starts); every 0.25 s
it writes a marker: `Начинаем обработку bench-marker-N, статус: bench_marker` and `Неизвестный
статус: bench_marker` from a worker pid of its own, which the shipped `unknown_status` rule counts
and reports (the status normalizes to nothing: no handler runs).

Measured, in this process:
- write → /metrics: from the marker entry's timestamp (taken just before it is sent) until a
  GET /metrics shows `aisha_monitor_unknown_status_total{status="bench_marker"}` at N. Polled from
  the marker's scheduled time every 5 ms for 100 ms, then every 25 ms (every request costs the
  daemon GIL time): the resolution is 5 ms (25 ms past 100 ms) plus one request.
- write → event: the same until GET /api/v1/events?limit=20 has the marker's unknown_value event
  (known by its time, the entry's own timestamp to the microsecond).
- lag: `aisha_monitor_journal_lag_seconds` scraped every 0.5 s (the daemon's own figure, 0 while
  it is caught up), and the true lag during a load: scrape time minus the later of
  `journal.last_entry_time` of /api/v1/state and the load's start (the writer stamps entries
  with the wall clock, so this is the age of the oldest entry not yet read, pipeline included);
  and how long after a load the daemon had read everything written.
- batches: `aisha_monitor_batch_duration_seconds` count and sum, per load.
- CPU% and RSS (VmRSS, RssAnon, RssFile) of the daemon, journal-remote and the writer from /proc
  every 0.5 s, and the whole machine's busy CPU (/proc/stat; 2 cores shared with other runs).

Each marker has a new request_id (`--marker-keys N` cycles through N instead): like an incident,
every one stays an active key of the AishaUnknownWebhookStatus alert for one_off_ttl (1h).
Without --quick a 180 s soak at 10k/s follows the three loads, long enough for the daemon's
in-memory list of the last 1000 events to fill: its second half tells whether RSS levels off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import lines as L  # noqa: N812 - the texts
from bench.generate import Exporter
from bench.simulate import BOOT_US, EPOCH_US
from monitor.tools.export import JOURNAL_REMOTE

REPO = Path(__file__).resolve().parent.parent
API = "aisha-api.service"
API_PIDS = (2817, 2818, 2819, 2820)
MARKER_PID = 2899
MARKER_STATUS = "bench_marker"
MARKER_EVERY_S = 0.25
TICK_S = 0.005
POLL_S = 0.005  # the first POLL_FINE_S after a marker's scheduled time …
POLL_FINE_S = 0.1
POLL_COARSE_S = 0.025  # … then this: every request costs the daemon GIL time
SAMPLE_S = 0.5
MARKER_TIMEOUT_S = 15.0
PY_SPY = shutil.which("py-spy") or str(REPO / ".venv/bin/py-spy")
OURS = ("daemon", "remote", "writer", "bench")
WARMUP = ("warm-up", 200, 5.0)
GAP_S = 5.0
RSS_FLAT_MB_PER_MIN = 0.5  # "flat": the last load's second half grows slower than this
TARGETS = {"p99_metrics_ms_at_10k": 100.0, "max_lag_s_at_30k": 1.0}
_MARKER_METRIC = re.compile(
    r'^aisha_monitor_unknown_status_total\{[^}]*status="' + MARKER_STATUS + r'"[^}]*\} (\S+)$',
    re.MULTILINE,
)
_LAG_METRIC = re.compile(r"^aisha_monitor_journal_lag_seconds (\S+)$", re.MULTILINE)
_BATCH_METRIC = re.compile(
    r"^aisha_monitor_batch_duration_seconds_(count|sum) (\S+)$", re.MULTILINE
)
_ENTRIES_METRIC = re.compile(
    r'^aisha_monitor_journal_entries_total\{unit="aisha-api.service"\} (\S+)$', re.MULTILINE
)


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


# --- the writer (its own process) ---------------------------------------------------------------


def mix_pool(seed: int = 7, size: int = 20_000) -> list[tuple[int, int, str, str, str]]:
    """(pid, priority, logger, level, text) of aisha-api's traffic, cycled by the writer: access
    lines, filler, webhook deliveries (in_progress and completed) and training submissions."""
    rng = random.Random(seed)
    pool: list[tuple[int, int, str, str, str]] = []
    access_w = [w for w, *_ in L.ACCESS_MIX]
    access = [(m, p, s) for _, m, p, s in L.ACCESS_MIX]
    filler_w = [w for w, *_ in L.FILLER_MIX]
    filler = [rest for _, *rest in L.FILLER_MIX]
    rids = [L.uuid4(rng) for _ in range(400)]
    router = "app.routers.fal_webhook"
    while len(pool) < size:
        pid = rng.choice(API_PIDS)
        r = rng.random()
        if r < 0.56:
            method, path, status = rng.choices(access, access_w)[0]
            path = path.format(uid=L.uid(rng), uuid=L.uuid4(rng))
            pool.append((pid, 6, "", "INFO", L.access(rng, method, path, status)))
        elif r < 0.80:
            logger, level, template = rng.choices(filler, filler_w)[0]
            pool.append((pid, 4 if level == "WARNING" else 6, logger, level, L.fill(rng, template)))
        elif r < 0.98:  # one webhook delivery: five or six lines on one worker
            rid = rng.choice(rids)
            done = rng.random() < 0.1
            status = "completed" if done else "in_progress"
            body = L.webhook_body(rng, rid, status, status, rng.randrange(1, 99), "", False)
            ttype = rng.choice(("portrait", "style"))
            pool += [
                (pid, 6, router, "INFO", f"[WEBHOOK] Получен webhook от FAL AI: {body}"),
                (
                    pid,
                    6,
                    router,
                    "INFO",
                    f"[WEBHOOK] Обработка статуса '{status}' для request_id: {rid}, тип: {ttype}",
                ),
                (pid, 6, "", "INFO", L.access(rng, "POST", "/api/v1/avatar/status_update", 200)),
                (
                    pid,
                    6,
                    router,
                    "INFO",
                    f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}",
                ),
                (
                    pid,
                    6,
                    router,
                    "INFO",
                    f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"
                    if done
                    else f"[WEBHOOK BACKGROUND] Обучение в процессе для {rid}, прогресс: 50%",
                ),
                (pid, 6, router, "INFO", f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}"),
            ]
        else:
            avatar, rid = L.uuid4(rng), rng.choice(rids)
            service = "app.services.avatar.training_service"
            pool += [
                (
                    pid,
                    6,
                    service,
                    "INFO",
                    f"[TRAINING START] Запуск обучения аватара {avatar} для пользователя "
                    f"{L.uid(rng)}, тип: portrait",
                ),
                (
                    pid,
                    6,
                    service,
                    "INFO",
                    f"Запуск обучения аватара {avatar} отправлен в FAL AI, request_id: {rid}",
                ),
            ]
    return pool


class Encoder:
    """Export-format bytes for pool items, fast: the fields that repeat and the message text are
    encoded once per item; per entry only the timestamps and aisha-api's logging prefix time
    (`2026-11-27 10:15:02,113`, fixed length) are formatted. Checked against Exporter (the
    generator's, itself checked against monitor.tools.export) for every item at start-up."""

    def __init__(self, pool: list[tuple[int, int, str, str, str]]) -> None:
        ex, clock = Exporter(), L.Clock()
        self.items: list[tuple[bytes, bool, bytes]] = []
        self._sec, self._sec_text = -1, b""
        for pid, priority, logger, level, text in pool:
            if "\n" in text:
                raise ValueError("the writer's pool has single-line messages only")
            ex.entry("-", EPOCH_US, API, pid, priority)  # fills the cache of repeated fields
            head = ex._middle[(API, pid, priority)] + b"MESSAGE="
            tail = (f" - {logger} - {level} - {text}" if logger else text).encode() + b"\n\n"
            self.items.append((head, bool(logger), tail))
            t = EPOCH_US + 123_456 * len(self.items)
            full = clock.logging_prefix(t, logger, level) + text if logger else text
            if self.entry(len(self.items) - 1, t) != ex.entry(full, t, API, pid, priority):
                raise RuntimeError(f"Encoder differs from Exporter for {text!r}")

    def entry(self, i: int, t: int) -> bytes:
        head, prefixed, tail = self.items[i]
        stamp = b""
        if prefixed:
            sec = t // 1_000_000
            if sec != self._sec:
                self._sec = sec
                self._sec_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec)).encode()
            stamp = self._sec_text + b",%03d" % (t // 1000 % 1000)
        return (
            b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (t, t - BOOT_US)
            + head
            + stamp
            + tail
        )


def writer_main(plan_path: Path) -> int:
    """Stream the plan's phases into journal-remote; log markers and progress as JSON lines."""
    spec = json.loads(plan_path.read_text())
    phases = [Phase(**p) for p in spec["phases"]]
    out = open(spec["log"], "w", buffering=1)  # noqa: SIM115 - closed at the end
    pool = mix_pool()
    enc = Encoder(pool)
    ex, clock = Exporter(), L.Clock()  # the markers' lines
    sock = socket.create_connection(("127.0.0.1", spec["port"]))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last_us, i, total, k, n_pool = 0, 0, 0, 0, len(pool)
    router = "app.routers.fal_webhook"
    keys = int(spec.get("marker_keys", 0))
    for phase in phases:
        while (wait := phase.start - time.time()) > 0:
            time.sleep(min(wait, 0.5))
        markers = marker_times(phase)
        sent, next_progress, blocked = 0, phase.start + 1, 0.0
        while (now := time.time()) < phase.end:
            due = min(int(phase.rate * (now - phase.start)) - sent, phase.rate // 10 + 1)
            t = max(int(now * 1_000_000), last_us + 1)
            chunk = []
            for _ in range(max(due, 0)):
                chunk.append(enc.entry(i, t))
                i = (i + 1) % n_pool
                t += 1
            sent += max(due, 0)
            marker = None
            if markers and now >= markers[0]:
                markers.pop(0)
                k += 1
                key = f"bench-marker-{k:05d}" if not keys else f"bench-marker-key{k % keys:02d}"
                first = f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {MARKER_STATUS}"
                second = f"[WEBHOOK BACKGROUND] Неизвестный статус: {MARKER_STATUS}"
                chunk += [
                    ex.entry(
                        clock.logging_prefix(t, router, "INFO") + first, t, API, MARKER_PID, 6
                    ),
                    ex.entry(
                        clock.logging_prefix(t + 1, router, "WARNING") + second,
                        t + 1,
                        API,
                        MARKER_PID,
                        4,
                    ),
                ]
                t += 2
                marker = {
                    "k": k,
                    "key": key,
                    "t": (t - 1) / 1e6,
                    "t_us": t - 1,
                    "phase": phase.name,
                }
            last_us = t - 1
            if chunk:
                before = time.time()
                sock.sendall(b"".join(chunk))
                blocked += time.time() - before
            if marker:
                out.write(json.dumps(marker) + "\n")
            if now >= next_progress:
                out.write(json.dumps({"progress": phase.name, "t": now, "sent": sent}) + "\n")
                next_progress += 1
            time.sleep(max(0.0, TICK_S - (time.time() - now)))
        total += sent
        done = {"done": phase.name, "sent": sent, "t": time.time(), "blocked_s": blocked}
        out.write(json.dumps(done) + "\n")
    sock.close()
    out.write(json.dumps({"total": total + k * 2}) + "\n")
    out.close()
    return 0


# --- measuring ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return str(r.read().decode())


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def proc_sample(pid: int) -> tuple[float, int, int, int] | None:
    """(cpu seconds, VmRSS kB, RssAnon kB, RssFile kB) of a process, all threads."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    mem = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            mem[key] = int(value.split()[0])
    return cpu, mem.get("VmRSS", 0), mem.get("RssAnon", 0), mem.get("RssFile", 0)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return float(sum(parts) - idle), float(sum(parts))


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
            try:
                text = http_get(self.base + "/metrics")
                m, e = _LAG_METRIC.search(text), _ENTRIES_METRIC.search(text)
                row["lag_reported"] = float(m.group(1)) if m else None
                row["entries"] = int(float(e.group(1))) if e else None
                for kind, value in _BATCH_METRIC.findall(text):
                    row[f"batch_{kind}"] = float(value)
                state = json.loads(http_get(self.base + "/api/v1/state"))
                last = state["journal"]["last_entry_time"]
                if last:
                    row["lag_true"] = max(0.0, time.time() - parse_rfc3339(last))
            except (OSError, ValueError) as err:
                row["error"] = str(err)
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
            busy, total = machine_cpu()
            row["machine_cpu"] = (
                100 * os.cpu_count() * (busy - prev_machine[0]) / max(total - prev_machine[1], 1)
            )  # type: ignore[operator]
            prev_machine = (busy, total)
            self.rows.append(row)
            self.stopped.wait(max(0.0, next_t - time.time()))


def parse_time_us(text: str) -> int:
    from datetime import datetime

    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def parse_rfc3339(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


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
            m = _MARKER_METRIC.search(http_get(self.base + "/metrics"))
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


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def slope_per_min(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over ts, per minute."""
    if len(ts) < 3:
        return None
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var


def live_config(dest: Path) -> Path:
    doc = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    doc["journal"]["start"] = "tail"
    doc["health_checks"] = []
    doc["alerting"]["alertmanager_urls"] = []  # nothing of ours listens there
    dest.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


def run(
    quick: bool = False,
    seconds: float | None = None,
    rates: tuple[int, ...] = (1000, 10_000, 30_000),
    soak_s: float | None = None,
    marker_keys: int = 0,
    monitor: str = str(REPO / ".venv/bin/aisha-monitor"),
    keep: bool = False,
    profile_phase: str | None = None,
    profile_out: Path | None = None,
) -> dict[str, Any]:
    """The whole live measurement; returns numbers and time series (JSON-able)."""
    seconds = seconds or (20.0 if quick else 60.0)
    work = Path(tempfile.mkdtemp(prefix="aisha-live-"))
    journal_dir, state_dir = work / "journal", work / "state"
    journal_dir.mkdir()
    config = live_config(work / "config.yaml")
    remote_port, http_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    procs: list[subprocess.Popen[bytes]] = []
    profiler: subprocess.Popen[bytes] | None = None
    try:
        remote = subprocess.Popen(
            [JOURNAL_REMOTE, f"--listen-raw=127.0.0.1:{remote_port}", f"--output={journal_dir}/"],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "journal-remote.log", "wb"),  # noqa: SIM115
        )
        procs.append(remote)
        wait_port(remote_port)
        with socket.create_connection(("127.0.0.1", remote_port)) as s:  # the file exists first
            s.sendall(Exporter().entry("bench: journal opened", time.time_ns() // 1000, API, 1, 6))
        deadline = time.monotonic() + 5
        while not list(journal_dir.glob("*.journal")) and time.monotonic() < deadline:
            time.sleep(0.02)
        daemon = subprocess.Popen(
            [
                monitor,
                "run",
                "-c",
                str(config),
                "--journal-dir",
                str(journal_dir),
                "--state-dir",
                str(state_dir),
                "--listen",
                f"127.0.0.1:{http_port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(work / "daemon.log", "wb"),  # noqa: SIM115
        )
        procs.append(daemon)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                http_get(base + "/readyz", 0.5)
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the daemon did not get ready: {(work / 'daemon.log').read_text()}"
                )
            time.sleep(0.05)
        t0 = time.time() + 1.0
        soak = (0.0 if quick else 180.0) if soak_s is None else soak_s
        plan = make_plan(t0, seconds, rates, soak)
        spec = {
            "port": remote_port,
            "log": str(work / "writer.jsonl"),
            "marker_keys": marker_keys,
            "phases": [
                {"name": p.name, "rate": p.rate, "seconds": p.seconds, "start": p.start}
                for p in plan
            ],
        }
        (work / "plan.json").write_text(json.dumps(spec))
        writer = subprocess.Popen(
            [sys.executable, "-m", "bench.live", "--writer", str(work / "plan.json")], cwd=REPO
        )
        procs.append(writer)
        sampler = Sampler(
            base,
            {
                "daemon": daemon.pid,
                "remote": remote.pid,
                "writer": writer.pid,
                "bench": os.getpid(),
            },
        )
        schedule = [t for p in plan for t in marker_times(p)]
        pollers = [MarkerPoller(base, schedule, "metrics"), MarkerPoller(base, schedule, "events")]
        sampler.start()
        for p in pollers:
            p.start()
        if profile_phase:
            target = next(p for p in plan if p.name == profile_phase)
            time.sleep(max(0.0, target.start + 2 - time.time()))
            profiler = subprocess.Popen(
                [
                    PY_SPY,
                    "record",
                    "--pid",
                    str(daemon.pid),
                    "--duration",
                    str(int(target.seconds - 4)),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--output",
                    str(profile_out or work / "profile.txt"),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        if writer.wait() != 0:
            raise SystemExit("the writer failed")
        if profiler is not None:
            profiler.wait(timeout=120)
        log = [json.loads(x) for x in (work / "writer.jsonl").read_text().splitlines()]
        # the daemon starts at the tail: the opening entry is not read, everything after it is
        written = next(x["total"] for x in log if "total" in x)
        drain_started = time.time()
        drained_at = None
        while time.time() - drain_started < 60:
            text = http_get(base + "/metrics")
            e = _ENTRIES_METRIC.search(text)
            if e and int(float(e.group(1))) >= written:
                drained_at = time.time()
                break
            time.sleep(0.05)
        time.sleep(1.0)
        for p in pollers:
            p.stopped.set()
            p.join(timeout=5)
        sampler.stopped.set()
        sampler.join(timeout=5)
        read = _ENTRIES_METRIC.search(http_get(base + "/metrics"))
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        result = summarize(
            plan,
            log,
            sampler.rows,
            pollers,
            written=written,
            read=int(float(read.group(1))) if read else None,
            drain_s=(drained_at - plan[-1].end) if drained_at else None,
            work=str(work) if keep else None,
        )
        result["marker_keys"] = marker_keys
        return result
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if profiler is not None and profiler.poll() is None:
            profiler.terminate()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def summarize(
    plan: list[Phase],
    log: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    pollers: list[MarkerPoller],
    *,
    written: int,
    read: int | None,
    drain_s: float | None,
    work: str | None,
) -> dict[str, Any]:
    markers = {x["k"]: x for x in log if "k" in x}
    sent = {x["done"]: x["sent"] for x in log if "done" in x}
    t0 = plan[0].start
    phases = []
    cumulative = sum(sent.get(p.name, 0) for p in plan[:1])
    for p in plan[1:]:
        n_markers = len([k for k, m in markers.items() if m["phase"] == p.name])
        cumulative += sent.get(p.name, 0) + 2 * n_markers
        caught = [r["t"] for r in rows if r["t"] >= p.end and (r.get("entries") or 0) >= cumulative]
        blocked = next((x.get("blocked_s") for x in log if x.get("done") == p.name), None)
        latency: dict[str, list[float]] = {}
        missed: dict[str, int] = {}
        for poller in pollers:
            ks = [k for k, m in markers.items() if m["phase"] == p.name]
            seen = [(poller.seen_at(markers[k]), markers[k]["t"]) for k in ks]
            lat = [1000 * (at - t) for at, t in seen if at is not None]
            latency[poller.what], missed[poller.what] = lat, len(ks) - len(lat)
        inside = [r for r in rows if p.start <= r["t"] <= p.end + GAP_S]
        during = [r for r in rows if p.start <= r["t"] <= p.end]
        for r in during:  # the oldest entry not yet read is at most as old as the load
            if r.get("lag_true") is not None:
                r["lag_in_load"] = r["t"] - max(r["t"] - r["lag_true"], p.start)
        second_half = [r for r in during if r["t"] >= p.start + p.seconds / 2]

        def col(rs: list[dict[str, Any]], key: str) -> list[float]:
            return [r[key] for r in rs if r.get(key) is not None]

        anon = col(during, "daemon_anon_kb")
        batches = [r for r in during if r.get("batch_count") is not None]
        n_batches = batches[-1]["batch_count"] - batches[0]["batch_count"] if batches else 0
        batch_s = batches[-1]["batch_sum"] - batches[0]["batch_sum"] if batches else 0.0
        span = batches[-1]["t"] - batches[0]["t"] if len(batches) > 1 else 0.0
        reads = [(r["t"], r["entries"]) for r in during if r.get("entries") is not None]
        read_rate = (
            (reads[-1][1] - reads[0][1]) / (reads[-1][0] - reads[0][0])
            if len(reads) > 1 and reads[-1][0] > reads[0][0]
            else None
        )
        phases.append(
            {
                "phase": p.name,
                "offered_rate": p.rate,
                "seconds": p.seconds,
                "written": sent.get(p.name),
                "written_rate": (sent.get(p.name) or 0) / p.seconds,
                "daemon_read_rate": read_rate,
                "markers": len([k for k, m in markers.items() if m["phase"] == p.name]),
                "metrics_ms": stats(latency.get("metrics", [])),
                "events_ms": stats(latency.get("events", [])),
                "missed": missed,
                "lag_reported_max_s": max(col(inside, "lag_reported"), default=None),
                "lag_true_max_s": max(col(during, "lag_in_load"), default=None),
                "caught_up_after_end_s": (caught[0] - p.end) if caught else None,
                "writer_blocked_s": blocked,
                "lag_true_p50_s": percentile(col(during, "lag_in_load"), 50),
                "batches_per_s": n_batches / span if span else None,
                "batch_ms_mean": 1000 * batch_s / n_batches if n_batches else None,
                "daemon_cpu_mean": mean(col(during, "daemon_cpu")),
                "daemon_cpu_max": max(col(during, "daemon_cpu"), default=None),
                "remote_cpu_mean": mean(col(during, "remote_cpu")),
                "writer_cpu_mean": mean(col(during, "writer_cpu")),
                "machine_cpu_mean": mean(col(during, "machine_cpu")),
                "others_cpu_mean": mean(
                    [
                        r["machine_cpu"] - sum(r.get(f"{n}_cpu", 0) for n in OURS)
                        for r in during
                        if r.get("machine_cpu") is not None
                    ]
                ),
                "daemon_anon_mb_start": anon[0] / 1024 if anon else None,
                "daemon_anon_mb_end": anon[-1] / 1024 if anon else None,
                "daemon_anon_mb_per_min_2nd_half": _slope(second_half, "daemon_anon_kb"),
                "daemon_rss_mb_max": max(col(during, "daemon_rss_kb"), default=0) / 1024,
                "latency_samples_ms": {k: [round(x, 2) for x in v] for k, v in latency.items()},
            }
        )
    anon_all = [(r["t"], r["daemon_anon_kb"]) for r in rows if r.get("daemon_anon_kb")]
    after_warm = [(t, a) for t, a in anon_all if t >= plan[1].start]
    series = [
        {"t": round(r["t"] - t0, 3), **{k: v for k, v in r.items() if k != "t"}} for r in rows
    ]
    return {
        "phases": phases,
        "plan": [
            {"name": p.name, "rate": p.rate, "start": p.start - t0, "end": p.end - t0} for p in plan
        ],
        "written": written,
        "read": read,
        "drain_after_last_phase_s": drain_s,
        "poll_requests": {p.what: p.requests for p in pollers},
        "rss_anon_mb": {
            "first": after_warm[0][1] / 1024 if after_warm else None,
            "last": after_warm[-1][1] / 1024 if after_warm else None,
            "max": max((a for _, a in after_warm), default=0) / 1024,
            "slope_mb_per_min": (
                slope_per_min([t for t, _ in after_warm], [a / 1024 for _, a in after_warm])
            ),
        },
        "series": series,
        "work": work,
    }


def _slope(rows: list[dict[str, Any]], key: str) -> float | None:
    pts = [(r["t"], r[key] / 1024) for r in rows if r.get(key)]
    return slope_per_min([t for t, _ in pts], [y for _, y in pts])


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def stats(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def verdicts(result: dict[str, Any]) -> list[str]:
    """Which targets were missed, in words (empty: all met)."""
    out = []
    by = {p["phase"]: p for p in result["phases"]}
    p10 = by.get("10k")
    if p10:  # with several runs: the median of the runs' p99
        p99 = p10["metrics_ms"].get("p99_median_of_runs", p10["metrics_ms"]["p99"])
        if p99 is None or p99 >= TARGETS["p99_metrics_ms_at_10k"] or p10["missed"]["metrics"]:
            out.append(f"p99 write→/metrics at 10k/s is {fmt(p99)} ms (target < 100 ms)")
    p30 = by.get("30k")
    if p30:
        lag = max(p30["lag_true_max_s"] or 0, p30["lag_reported_max_s"] or 0)  # median of runs
        if lag >= TARGETS["max_lag_s_at_30k"]:
            out.append(f"max lag at 30k/s is {lag:.2f} s (target < 1 s)")
        if p30["written_rate"] < 0.95 * p30["offered_rate"]:
            out.append(
                f"the 30k/s load was not offered in full: journal-remote accepted "
                f"{p30['written_rate']:,.0f}/s (the writer was blocked "
                f"{p30['writer_blocked_s']:.1f} s)"
            )
    slope = result["rss_anon_mb"]["slope_mb_per_min"]
    last = by.get(list(by)[-1]) if by else None
    tail_slope = last["daemon_anon_mb_per_min_2nd_half"] if last else None
    if tail_slope is not None and tail_slope > RSS_FLAT_MB_PER_MIN:
        out.append(
            f"RSS (anon) still grows at {tail_slope:.2f} MB/min in the second half of the last "
            f"load ({last['phase'] if last else '-'}; whole run {fmt(slope, 2)} MB/min)"
        )
    return out


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(
        "| load | written/s | read/s | markers | /metrics p50 / p99 / max ms "
        "| event p50 / p99 ms | max lag s (reported / true) | daemon CPU % | machine CPU % "
        "| anon MB start→end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in result["phases"]:
        m, e = p["metrics_ms"], p["events_ms"]
        print(
            f"| {p['phase']}/s | {fmt(p['written_rate'], 0)} | {fmt(p['daemon_read_rate'], 0)} "
            f"| {m['n']} ({p['missed']['metrics']} missed) | {fmt(m['p50'])} / {fmt(m['p99'])} "
            f"/ {fmt(m['max'])} | {fmt(e['p50'])} / {fmt(e['p99'])} "
            f"| {fmt(p['lag_reported_max_s'], 2)} / {fmt(p['lag_true_max_s'], 2)} "
            f"| {fmt(p['daemon_cpu_mean'], 0)} (max {fmt(p['daemon_cpu_max'], 0)}) "
            f"| {fmt(p['machine_cpu_mean'], 0)} | {fmt(p['daemon_anon_mb_start'])}→"
            f"{fmt(p['daemon_anon_mb_end'])} |"
        )
    r = result["rss_anon_mb"]
    print(
        f"\nwritten {result['written']:,}, read {result['read']:,}; drained "
        f"{fmt(result['drain_after_last_phase_s'], 2)} s after the last load; RSS anon "
        f"{fmt(r['first'])} → {fmt(r['last'])} MB (max {fmt(r['max'])}, "
        f"{fmt(r['slope_mb_per_min'], 2)} MB/min)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20 s per load instead of 60 s")
    parser.add_argument("--seconds", type=float, help="seconds per load")
    parser.add_argument("--rates", default="1000,10000,30000")
    parser.add_argument(
        "--soak", type=float, help="seconds of a final 10k/s soak (default 180, 0 with --quick)"
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--marker-keys",
        type=int,
        default=0,
        help="markers cycle through this many request_ids (default 0: a new one each)",
    )
    parser.add_argument("--profile", metavar="PHASE", help="py-spy record the daemon in PHASE")
    parser.add_argument("--profile-out", type=Path)
    parser.add_argument("--runs", type=int, default=1, help="repeat (the soak in the last)")
    parser.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.writer:
        return writer_main(args.writer)
    if not os.access(JOURNAL_REMOTE, os.X_OK):
        raise SystemExit(f"{JOURNAL_REMOTE} is needed (Debian package systemd-journal-remote)")
    if args.runs > 1:
        result = run_repeated(args.quick, args.runs, args.seconds)
    else:
        result = run(
            quick=args.quick,
            seconds=args.seconds,
            rates=tuple(int(x) for x in args.rates.split(",")),
            soak_s=args.soak,
            marker_keys=args.marker_keys,
            keep=args.keep,
            profile_phase=args.profile,
            profile_out=args.profile_out,
        )
    print_table(result)
    for v in verdicts(result):
        print(f"MISSED: {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())


def profile_summary(path: Path, phase: str) -> dict[str, Any]:
    """Top frames of a `py-spy record --format raw` file (collapsed stacks), by function (line
    numbers folded), self and inclusive, as shares of all samples; and the share of the main
    loop against the HTTP threads."""
    self_: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = main_loop = http = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f]
        if not frames:
            continue
        self_[frames[-1]] = self_.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
        if any(f.startswith("Daemon.run ") for f in frames):
            main_loop += n
        elif any("BaseHTTPRequestHandler" in f or "socketserver" in f for f in frames):
            http += n

    def top(d: dict[str, int]) -> list[tuple[float, str]]:
        return [(100 * n / total, f) for f, n in sorted(d.items(), key=lambda kv: -kv[1])][:25]

    return {
        "phase": phase,
        "samples": total,
        "main_loop_share": 100 * main_loop / total if total else 0,
        "http_share": 100 * http / total if total else 0,
        "self": top(self_),
        "inclusive": top(incl),
        "note": (
            f"py-spy record --rate 100 --nonblocking on the daemon's pid during the {phase}/s "
            f"load of a separate run (py-spy itself takes CPU on this 2-core machine). "
            f"{100 * main_loop / total if total else 0:.0f}% of the samples are in the main loop "
            f"(Daemon.run), {100 * http / total if total else 0:.0f}% in HTTP request threads "
            "(the benchmark's own /metrics and /api/v1/events polling; Prometheus scrapes every "
            "15 s in production). Samples count threads holding or waiting for the GIL alike."
        ),
    }


def run_repeated(
    quick: bool = False, runs: int | None = None, seconds: float | None = None
) -> dict[str, Any]:
    """`run` `runs` times (3; 1 with quick), the soak only in the last; per load, each run's
    figures and their median, the latency percentiles of all runs' markers pooled. The time
    series (plots) are the last run's."""
    runs = runs or (1 if quick else 3)
    results = []
    for i in range(runs):
        last = i == runs - 1
        print(f"live run {i + 1} of {runs}", flush=True)
        results.append(run(quick=quick, seconds=seconds, soak_s=None if last else 0.0))
        print_table(results[-1])
    combined = dict(results[-1])
    phases = []
    for p in results[-1]["phases"]:
        same = [q for r in results for q in r["phases"] if q["phase"] == p["phase"]]
        merged = dict(p)
        merged["runs"] = len(same)
        pooled: dict[str, list[float]] = {}
        for what in ("metrics", "events"):
            pooled[what] = [x for q in same for x in q["latency_samples_ms"].get(what, [])]
            merged[f"{what}_ms"] = stats(pooled[what])
            merged[f"{what}_ms"]["p99_per_run"] = [q[f"{what}_ms"]["p99"] for q in same]
            merged[f"{what}_ms"]["p50_per_run"] = [q[f"{what}_ms"]["p50"] for q in same]
            merged[f"{what}_ms"]["p99_median_of_runs"] = _median(
                [q[f"{what}_ms"]["p99"] for q in same]
            )
        merged["latency_samples_ms"] = pooled
        merged["missed"] = {w: sum(q["missed"][w] for q in same) for w in ("metrics", "events")}
        for key in (
            "written_rate", "daemon_read_rate", "lag_reported_max_s", "lag_true_max_s",
            "caught_up_after_end_s", "batches_per_s", "batch_ms_mean", "daemon_cpu_mean",
            "remote_cpu_mean", "writer_cpu_mean", "machine_cpu_mean", "others_cpu_mean",
            "writer_blocked_s",
        ):  # fmt: skip
            values = [q.get(key) for q in same]
            merged[f"{key}_per_run"] = values
            merged[key] = _median([v for v in values if v is not None])
        merged["daemon_cpu_max"] = max((q["daemon_cpu_max"] or 0) for q in same)
        phases.append(merged)
    combined["phases"] = phases
    combined["runs"] = runs
    combined["per_run"] = [
        {k: v for k, v in r.items() if k not in ("series", "phases")} for r in results
    ]
    return combined


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None

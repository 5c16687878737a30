"""What the measuring side reads: a free port, the daemon's HTTP endpoints and the figures in its
/metrics, and /proc (a process's CPU and memory, the whole machine's CPU)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from bench.live.plan import MARKER_STATUS

MARKER_METRIC = re.compile(
    r'^aisha_monitor_unknown_status_total\{[^}]*status="' + MARKER_STATUS + r'"[^}]*\} (\S+)$',
    re.MULTILINE,
)
LAG_METRIC = re.compile(r"^aisha_monitor_journal_lag_seconds (\S+)$", re.MULTILINE)
BATCH_METRIC = re.compile(r"^aisha_monitor_batch_duration_seconds_(count|sum) (\S+)$", re.MULTILINE)
ENTRIES_METRIC = re.compile(
    r'^aisha_monitor_journal_entries_total\{unit="aisha-api.service"\} (\S+)$', re.MULTILINE
)


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


def entries_read(metrics: str) -> int | None:
    """aisha-api entries the daemon has read, from its /metrics text."""
    m = ENTRIES_METRIC.search(metrics)
    return int(float(m.group(1))) if m else None


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


def parse_time_us(text: str) -> int:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

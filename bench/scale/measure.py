"""Timed replays of a journal and their figures, and the daemon catching up on one."""

from __future__ import annotations

import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.live import free_port, http_get, proc_sample
from bench.replayout import SUMMARY, replay_counters
from bench.scale.configs import MONITOR
from bench.timing import Run


def replay_argv(directory: Path, config: Path) -> list[str]:
    """One reader in one process (the files named, not the directory): what the state costs is
    measured without the parallel reader's buffers, as the daemon keeps it."""
    files = sorted(str(f) for f in directory.glob("*.journal"))
    return [MONITOR, "replay", "-c", str(config), *(f"--journal-file={f}" for f in files)]


def loop_seconds(run: Run) -> tuple[int, float]:
    m = SUMMARY.search(run.stderr)
    if not m:
        raise SystemExit(f"no replay summary in:\n{run.stderr}")
    return int(m.group(1)), float(m.group(2))


def summarize_runs(runs: list[Run]) -> dict[str, Any]:
    loops = [loop_seconds(r) for r in runs]
    entries = loops[0][0]
    loop_s = statistics.median(s for _, s in loops)
    return {
        "entries": entries,
        "wall_s": [round(r.seconds, 3) for r in runs],
        "loop_s": [s for _, s in loops],
        "median_wall_s": statistics.median(r.seconds for r in runs),
        "median_loop_s": loop_s,
        "entries_per_s": entries / statistics.median(r.seconds for r in runs),
        "loop_entries_per_s": entries / loop_s,
        "us_per_entry": 1e6 * loop_s / entries,
        "max_anon_mb": max(r.max_anon_kb for r in runs) / 1024,
        "max_rss_mb": max((r.max_rss_kb or 0) for r in runs) / 1024,
        "counters": replay_counters(runs[-1].stderr),
        "pair": _pair_counters(runs[-1].stderr),
    }


def _pair_counters(stderr: str) -> dict[str, int]:
    for line in stderr.splitlines():
        if line.strip().startswith("training_stalled (pair):"):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split(":", 1)[1].split())}
    return {}


def daemon_catchup(directory: Path, config: Path, expected: int, work: Path) -> dict[str, Any]:
    """The daemon from the head of `directory` until it has read `expected` entries."""
    state = work / f"state-{directory.name}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            MONITOR,
            "run",
            "-c",
            str(config),
            "--journal-dir",
            str(directory),
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        read, peak_rss, peak_anon = _follow(proc, base, expected, started)
        seconds = time.monotonic() - started
        s = proc_sample(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    size = sum(f.stat().st_size for f in state.glob("state.sqlite*"))
    return {
        "entries": read,
        "seconds": seconds,
        "entries_per_s": read / seconds,
        "peak_anon_mb": peak_anon / 1024,
        "peak_rss_mb": peak_rss / 1024,
        "end_anon_mb": (s[2] / 1024) if s else None,
        "state_file_mb": size / 2**20,
    }


def _follow(
    proc: subprocess.Popen[bytes], base: str, expected: int, started: float
) -> tuple[int, int, int]:
    """Poll the daemon's /metrics until it has read `expected` entries (for at most 900 s from
    `started`), sampling its memory; (entries read, peak VmRSS kB, peak RssAnon kB)."""
    peak_anon = peak_rss = 0
    read = 0
    while time.monotonic() - started < 900:
        s = proc_sample(proc.pid)
        if s:
            peak_rss, peak_anon = max(peak_rss, s[1]), max(peak_anon, s[2])
        try:
            text = http_get(base + "/metrics")
        except OSError:
            time.sleep(0.2)
            continue
        for line in text.splitlines():
            if line.startswith('aisha_monitor_journal_entries_total{unit="aisha-api.service"}'):
                read = int(float(line.split()[-1]))
        if read >= expected:
            break
        if proc.poll() is not None:
            raise SystemExit(f"the daemon exited {proc.returncode} while catching up")
        time.sleep(0.2)
    return read, peak_rss, peak_anon

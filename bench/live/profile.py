"""py-spy on the daemon during one load, and the hot spots of what it recorded."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.live.plan import REPO, Phase

PY_SPY = shutil.which("py-spy") or str(REPO / ".venv/bin/py-spy")


def start_profiler(pid: int, phase: Phase, out: Path) -> subprocess.Popen[bytes]:
    """Wait until 2 s into the phase, then record the process until 2 s before its end."""
    time.sleep(max(0.0, phase.start + 2 - time.time()))
    return subprocess.Popen(
        [
            PY_SPY,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(phase.seconds - 4)),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
    return _shares(phase, total, main_loop, http, self_, incl)


def _shares(
    phase: str, total: int, main_loop: int, http: int, self_: dict[str, int], incl: dict[str, int]
) -> dict[str, Any]:
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

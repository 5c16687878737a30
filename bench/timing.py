"""A process timed as the benchmarks time it: wall-clock seconds around the whole process, its own
peak RSS from GNU time's wait4 (`getrusage(RUSAGE_CHILDREN)` of a Python parent cannot tell a
small child from the parent it was forked from), user + system CPU seconds, and its peak RssAnon
sampled 20 times a second (journal readers mmap their files: the RSS includes file pages)."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    max_rss_kb: int | None
    max_anon_kb: int
    stderr: str
    cpu_s: float | None = None  # user + system, the process and the children it waited for


class AnonSampler(threading.Thread):
    """The peak RssAnon of the children of `parent` (GNU time's one child), sampled."""

    def __init__(self, parent: int) -> None:
        super().__init__(daemon=True)
        self.parent, self.peak_kb = parent, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                kids = Path(f"/proc/{self.parent}/task/{self.parent}/children").read_text()
                for pid in kids.split():
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("RssAnon:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                continue  # exited between the two reads


def timed(argv: list[str], stdout_path: str) -> Run:
    """Run argv with stdout to a file; wall-clock seconds and the child's own peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, open(stdout_path, "wb") as out:
        wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", rss.name, *argv]
        started = time.monotonic()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=subprocess.PIPE)
        sampler = AnonSampler(proc.pid)
        sampler.start()
        _, err_bytes = proc.communicate()
        seconds = time.monotonic() - started
        sampler.stopped.set()
        sampler.join()
        text = rss.read().strip()
    err = err_bytes.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(argv)} exited {proc.returncode}:\n{err}")
    fields = text.splitlines()[-1].split() if text else []
    kb = int(fields[0]) if fields else None
    cpu = float(fields[1]) + float(fields[2]) if len(fields) == 3 else None
    return Run(seconds, kb, sampler.peak_kb, err, cpu)

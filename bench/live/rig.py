"""One live run: journal-remote, the daemon and the writer as processes in a temporary directory,
the measuring threads beside them, then the summary."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from bench.generate import Exporter
from bench.live.plan import API, REPO, Phase, make_plan, marker_times
from bench.live.probes import entries_read, free_port, http_get, wait_port
from bench.live.profile import start_profiler
from bench.live.summary import summarize
from bench.live.watch import MarkerPoller, Sampler
from monitor.tools.export import JOURNAL_REMOTE


def live_config(dest: Path) -> Path:
    doc = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    doc["journal"]["start"] = "tail"
    doc["health_checks"] = []
    doc["alerting"]["alertmanager_urls"] = []  # nothing of ours listens there
    dest.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return dest


class Rig:
    """The processes of a run and their directory: on leaving, whatever still runs is
    terminated (killed after 10 s) and the directory removed unless `keep`."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.work = Path(tempfile.mkdtemp(prefix="aisha-live-"))
        self.journal_dir = self.work / "journal"
        self.journal_dir.mkdir()
        self.config = live_config(self.work / "config.yaml")
        self.remote_port, http_port = free_port(), free_port()
        self.listen = f"127.0.0.1:{http_port}"
        self.base = f"http://{self.listen}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.profiler: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Rig:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if self.profiler is not None and self.profiler.poll() is None:
            self.profiler.terminate()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)

    def _start(
        self, argv: list[str], log: str | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """A child of the run; with `log`, its stderr goes to that file and its stdout nowhere."""
        err = open(self.work / log, "wb") if log else None  # noqa: SIM115 - the child's, open while it runs
        out = subprocess.DEVNULL if log else None
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd)
        self.procs.append(proc)
        return proc

    def start_remote(self) -> subprocess.Popen[bytes]:
        """journal-remote, listening, and its journal file: an opening entry makes it create the
        file before the daemon opens the directory."""
        remote = self._start(
            [
                JOURNAL_REMOTE,
                f"--listen-raw=127.0.0.1:{self.remote_port}",
                f"--output={self.journal_dir}/",
            ],
            "journal-remote.log",
        )
        wait_port(self.remote_port)
        with socket.create_connection(("127.0.0.1", self.remote_port)) as s:
            s.sendall(Exporter().entry("bench: journal opened", time.time_ns() // 1000, API, 1, 6))
        deadline = time.monotonic() + 5
        while not list(self.journal_dir.glob("*.journal")) and time.monotonic() < deadline:
            time.sleep(0.02)
        return remote

    def start_daemon(self, monitor: str) -> subprocess.Popen[bytes]:
        """`aisha-monitor run` on the journal directory, once it answers /readyz."""
        daemon = self._start(
            [
                monitor,
                "run",
                "-c",
                str(self.config),
                "--journal-dir",
                str(self.journal_dir),
                "--state-dir",
                str(self.work / "state"),
                "--listen",
                self.listen,
            ],
            "daemon.log",
        )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                http_get(self.base + "/readyz", 0.5)
                return daemon
            if daemon.poll() is not None or time.monotonic() > deadline:
                log = (self.work / "daemon.log").read_text()
                raise SystemExit(f"the daemon did not get ready: {log}")
            time.sleep(0.05)

    def start_writer(self, plan: list[Phase], marker_keys: int) -> subprocess.Popen[bytes]:
        spec = {
            "port": self.remote_port,
            "log": str(self.work / "writer.jsonl"),
            "marker_keys": marker_keys,
            "phases": [
                {"name": p.name, "rate": p.rate, "seconds": p.seconds, "start": p.start}
                for p in plan
            ],
        }
        (self.work / "plan.json").write_text(json.dumps(spec))
        argv = [sys.executable, "-m", "bench.live", "--writer", str(self.work / "plan.json")]
        return self._start(argv, cwd=REPO)

    def writer_log(self, writer: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
        """The writer's log once it has finished (and the profiler with it)."""
        if writer.wait() != 0:
            raise SystemExit("the writer failed")
        if self.profiler is not None:
            self.profiler.wait(timeout=120)
        return [json.loads(x) for x in (self.work / "writer.jsonl").read_text().splitlines()]

    def wait_drained(self, written: int) -> float | None:
        """When the daemon had read all `written` entries (None: not within 60 s)."""
        started = time.time()
        while time.time() - started < 60:
            n = entries_read(http_get(self.base + "/metrics"))
            if n is not None and n >= written:
                return time.time()
            time.sleep(0.05)
        return None

    def stop_daemon(self, daemon: subprocess.Popen[bytes]) -> int | None:
        """Entries read in all, then SIGTERM and its exit."""
        read = entries_read(http_get(self.base + "/metrics"))
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        return read


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
    with Rig(keep) as rig:
        remote = rig.start_remote()
        daemon = rig.start_daemon(monitor)
        soak = (0.0 if quick else 180.0) if soak_s is None else soak_s
        plan = make_plan(time.time() + 1.0, seconds, rates, soak)
        writer = rig.start_writer(plan, marker_keys)
        pids = {"daemon": daemon.pid, "remote": remote.pid, "writer": writer.pid}
        sampler, pollers = _watch(rig.base, plan, pids)
        if profile_phase:
            target = next(p for p in plan if p.name == profile_phase)
            rig.profiler = start_profiler(
                daemon.pid, target, profile_out or rig.work / "profile.txt"
            )
        log = rig.writer_log(writer)
        # the daemon starts at the tail: the opening entry is not read, everything after it is
        written = next(x["total"] for x in log if "total" in x)
        drained_at = rig.wait_drained(written)
        time.sleep(1.0)
        threads: list[MarkerPoller | Sampler] = [*pollers, sampler]
        for thread in threads:
            thread.stopped.set()
            thread.join(timeout=5)
        read = rig.stop_daemon(daemon)
        result = summarize(
            plan,
            log,
            sampler.rows,
            pollers,
            written=written,
            read=read,
            drain_s=(drained_at - plan[-1].end) if drained_at else None,
            work=str(rig.work) if keep else None,
        )
        result["marker_keys"] = marker_keys
        return result


def _watch(
    base: str, plan: list[Phase], pids: dict[str, int]
) -> tuple[Sampler, list[MarkerPoller]]:
    """The sampler (of our processes and this one) and a poller of /metrics and of the events,
    started."""
    sampler = Sampler(base, {**pids, "bench": os.getpid()})
    schedule = [t for p in plan for t in marker_times(p)]
    pollers = [MarkerPoller(base, schedule, w) for w in ("metrics", "events")]
    for thread in (sampler, *pollers):
        thread.start()
    return sampler, pollers

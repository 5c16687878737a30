"""Fixtures for the daemon's integration tests: a live journal written entry by entry by
`systemd-journal-remote --listen-raw`, `aisha-monitor run` as a subprocess on 127.0.0.1, and
readers for its HTTP endpoints. Every process started here is stopped here (the stand-ins for
the daemon's HTTP peers are in tests/standins.py)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from systemd import journal

from monitor.tools.export import JOURNAL_REMOTE, export_entry

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config.yaml"
API_UNIT = "aisha-api.service"
WARMUP_UNIT = "journal-warmup.service"  # not followed by the daemon: it only creates the file
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 5.0
PID_A = 4101  # one uvicorn worker
LEVELS = {"INFO": 6, "WARNING": 4, "ERROR": 3}
ACCESS = 'INFO:     127.0.0.1:51234 - "POST /api/v1/avatar/status_update HTTP/1.1" 200 OK'


# --- small helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str | Callable[[], str] = "a condition",
    interval: float = 0.02,
) -> T:
    """predicate() until it returns something truthy (which is returned), at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout:.1f}s waiting for {described}")
        time.sleep(interval)


def tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"({path.name}: not written)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"--- {path} (last {len(text)} lines) ---\n" + "\n".join(text)


def logging_prefix(realtime_us: int, level: str) -> str:
    """aisha-api's `%(asctime)s - %(name)s - %(levelname)s - ` prefix for a line at that time."""
    when = datetime.fromtimestamp(realtime_us / 1e6, UTC)
    millis = realtime_us // 1000 % 1000
    return f"{when:%Y-%m-%d %H:%M:%S},{millis:03d} - app.routers.fal_webhook - {level} - "


# --- the seed's log lines (after the logging prefix) ---------------------------------------------


def begin(rid: str, status: str) -> str:
    return f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}"


def unknown(status: str) -> str:
    return f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}"


def submitted(rid: str, avatar: str = "av-1") -> str:
    return f"Запуск обучения аватара {avatar} отправлен в FAL AI, request_id: {rid}"


def completed(rid: str) -> str:
    return f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"


def finished(rid: str) -> str:
    return f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}"


# --- the live journal ----------------------------------------------------------------------------


def count_entries(reader: journal.Reader, unit: str = API_UNIT) -> int:
    """Entries of `unit` that `reader` (a directory's or files') finds; closes it."""
    try:
        reader.add_match(_SYSTEMD_UNIT=unit)
        n = 0
        while reader._next():
            n += 1
        return n
    finally:
        reader.close()


class LiveJournal:
    """systemd-journal-remote listening on 127.0.0.1, fed export-format entries over one TCP
    connection; it writes real journal files into `directory` as the entries arrive."""

    def __init__(self, directory: Path, log: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.log = log
        self._lock = threading.Lock()
        self._last_us = 0
        self.sent: dict[str, int] = {}  # entries sent, by unit
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [JOURNAL_REMOTE, f"--listen-raw=127.0.0.1:{self.port}", f"--output={directory}/"],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            self._conn = wait_for(
                self._connect, 10, lambda: f"journal-remote listening\n{tail(log)}"
            )
        except BaseException:
            self._stop_process()
            raise

    def _connect(self) -> socket.socket | None:
        if self.proc.poll() is not None:
            pytest.fail(f"systemd-journal-remote exited with {self.proc.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            return None

    def now_us(self) -> int:
        """The current time, strictly increasing between calls (one boot id, one clock)."""
        with self._lock:
            self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
            return self._last_us

    @property
    def last_us(self) -> int:
        """The timestamp given to the entry built last."""
        return self._last_us

    def app(self, text: str, *, pid: int = PID_A, level: str = "INFO") -> bytes:
        """An aisha-api entry logged now, its message with aisha-api's logging prefix."""
        t = self.now_us()
        message = logging_prefix(t, level) + text
        return export_entry(message, t, pid=pid, priority=LEVELS[level])

    def raw(self, message: str, *, unit: str = API_UNIT, pid: int = PID_A) -> bytes:
        """An entry logged now, its message as given (uvicorn access lines have no prefix)."""
        return export_entry(message, self.now_us(), unit=unit, pid=pid)

    def send(self, entries: Sequence[bytes]) -> None:
        """Write export-format entries (built by `app`/`raw`, in order) over the connection."""
        with self._lock:
            self._conn.sendall(b"".join(entries))
            for e in entries:
                unit = e.split(b"\n_SYSTEMD_UNIT=", 1)[1].split(b"\n", 1)[0].decode()
                self.sent[unit] = self.sent.get(unit, 0) + 1

    def count(self, unit: str = API_UNIT) -> int:
        """Entries of `unit` a reader finds in the directory now."""
        return count_entries(journal.Reader(path=str(self.directory)), unit)

    def wait_written(self, unit: str = API_UNIT, timeout: float = 10.0) -> None:
        """Until everything sent for `unit` is in the journal files."""
        want = self.sent.get(unit, 0)
        wait_for(
            lambda: self.count(unit) >= want,
            timeout,
            lambda: f"{want} {unit} entries in {self.directory} (have {self.count(unit)})",
            interval=0.01,
        )

    def close(self) -> None:
        self._conn.close()
        self._stop_process()

    def _stop_process(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)


@pytest.fixture(name="live_journal")
def live_journal_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveJournal]:
    """A journal directory written live, its file already there. "primed" (the default) holds
    one aisha-api entry written before the test; "bare" (parametrize `live_journal` indirectly)
    only an entry of another unit."""
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail(f"{JOURNAL_REMOTE} is missing: apt-get install systemd-journal-remote")
    kind = getattr(request, "param", "primed")
    directory = tmp_path / "journal"
    directory.mkdir()
    lj = LiveJournal(directory, tmp_path / "journal-remote.log")
    try:
        lj.send([lj.raw("warm-up", unit=WARMUP_UNIT)])
        if kind == "primed":
            lj.send([lj.raw(ACCESS)])
        lj.wait_written(WARMUP_UNIT)
        lj.wait_written(API_UNIT)
        yield lj
    finally:
        lj.close()


# --- configs -------------------------------------------------------------------------------------


def write_config(
    path: Path,
    *,
    start: str = "resume",
    deadline: str | None = None,
    health_url: str | None = None,
) -> Path:
    """The shipped config.yaml with `journal.start` set, the training deadline replaced when
    given, and its health checks removed, or replaced by one http check of `health_url`."""
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data["journal"]["start"] = start
    if deadline is not None:
        (rule,) = [r for r in data["rules"] if r["name"] == "training_stalled"]
        rule["deadline"] = deadline
    data.pop("health_checks", None)
    if health_url is not None:
        data["health_checks"] = [
            {
                "name": "aisha_api_http",
                "type": "http",
                "url": health_url,
                "expect_status": 200,
                "timeout": "2s",
                "interval": "1s",
                "alert": "AishaApiUnhealthy",
            }
        ]
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100_000)
    path.write_text(text, encoding="utf-8")
    return path


# --- the daemon ----------------------------------------------------------------------------------


def closed_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: anything that slips out fails fast."""
    return f"http://127.0.0.1:{free_port()}"


def daemon_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AISHA_MONITOR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "FAL_KEY")
        and not k.startswith("STATE_DIRECTORY")
    }
    env.update(
        AISHA_API_URL=closed_url(),
        ALERTMANAGER_URL=closed_url(),
        FAL_QUEUE_URL=closed_url(),
        PYTHONIOENCODING="utf-8",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Every sample of a /metrics page, keyed by (sample name, sorted labels)."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class MonitorDaemon:
    """`python -m monitor run` over one journal directory and one state directory; it can be
    started again (each run on a new free port, with its own log file)."""

    def __init__(
        self, config: Path, journal_dir: Path, state_dir: Path, workdir: Path, env: dict[str, str]
    ) -> None:
        self.config, self.journal_dir, self.state_dir = config, journal_dir, state_dir
        self.workdir, self.env = workdir, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.runs = 0
        self.logs: list[Path] = []
        self.all_procs: list[subprocess.Popen[bytes]] = []

    @property
    def log(self) -> Path:
        return self.logs[-1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "monitor",
            "run",
            "-c",
            str(self.config),
            "--journal-dir",
            str(self.journal_dir),
            "--state-dir",
            str(self.state_dir),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]

    def start(self, wait: bool = True) -> MonitorDaemon:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("the daemon is already running")
        self.runs += 1
        self.port = free_port()
        log = self.workdir / f"daemon-{self.runs}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir
            )
        self.all_procs.append(self.proc)
        if wait:
            self.wait_ready()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _alive_proc(self) -> subprocess.Popen[bytes]:
        if self.proc is None:
            raise RuntimeError("the daemon was never started")
        if self.proc.poll() is not None:
            pytest.fail(f"aisha-monitor exited with {self.proc.returncode}\n{tail(self.log)}")
        return self.proc

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        wait_for(
            lambda: self.status("/readyz") == 200,
            timeout,
            lambda: f"{self.url}/readyz\n{tail(self.log)}",
        )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM; the exit code, or None when it did not exit within `timeout` (then killed)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
            return None

    def kill(self) -> None:
        """SIGKILL: no chance to commit anything."""
        proc = self._alive_proc()
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)

    def signal(self, signum: int) -> None:
        self._alive_proc().send_signal(signum)

    # --- HTTP ----------------------------------------------------------------------------------

    def request(self, path: str, timeout: float = 5.0) -> tuple[int, str] | None:
        """(status, body) of GET path, or None when nothing answers (yet)."""
        self._alive_proc()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8")
        except (ConnectionError, TimeoutError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def status(self, path: str) -> int | None:
        r = self.request(path)
        return None if r is None else r[0]

    def get(self, path: str) -> str:
        r = self.request(path)
        assert r is not None, f"no answer from {self.url}{path}\n{tail(self.log)}"
        assert r[0] == 200, f"{self.url}{path}: HTTP {r[0]}: {r[1][:500]}"
        return r[1]

    def metrics(self) -> Samples:
        return parse_metrics(self.get("/metrics"))

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics (full sample name, e.g. `..._total`), None when absent."""
        return self.metrics().get((name, tuple(sorted(labels.items()))))

    def state(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/api/v1/state")))

    def events(self) -> list[dict[str, Any]]:
        return list(json.loads(self.get("/api/v1/events?limit=1000")))

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self.logs)

    def shutdown(self) -> None:
        """Stop every process this handle ever started that is still running."""
        for proc in self.all_procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(STOP_TIMEOUT_S)


@pytest.fixture
def daemons() -> Iterator[list[MonitorDaemon]]:
    """Append every MonitorDaemon a test builds: each is shut down afterwards (every process
    it ever started) and its logs are printed (pytest shows them when the test failed)."""
    made: list[MonitorDaemon] = []
    try:
        yield made
    finally:
        for d in made:
            d.shutdown()
        for d in made:
            for log in d.logs:
                print(tail(log, 200))


MakeDaemon = Callable[..., MonitorDaemon]


@pytest.fixture(name="make_daemon")
def make_daemon_fixture(
    tmp_path: Path, live_journal: LiveJournal, daemons: list[MonitorDaemon]
) -> Iterator[MakeDaemon]:
    """make_daemon(start=..., deadline=..., health_url=..., env=...): a MonitorDaemon (not yet
    started) on the live journal, with its own config copy and state directory, stopped
    afterwards by `daemons`."""

    def make(
        *,
        start: str = "resume",
        deadline: str | None = None,
        health_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> MonitorDaemon:
        workdir = tmp_path / f"monitor-{len(daemons) + 1}"
        workdir.mkdir()
        config = write_config(
            workdir / "config.yaml", start=start, deadline=deadline, health_url=health_url
        )
        d = MonitorDaemon(
            config, live_journal.directory, workdir / "state", workdir, daemon_env(env)
        )
        daemons.append(d)
        return d

    yield make
    print(tail(live_journal.log, 20))

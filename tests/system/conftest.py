"""System tests: the shipped unit file under systemd-analyze, the daemon over a real
systemd-journald, and the status page in a real browser. Each one starts real processes on
127.0.0.1 and stops every one of them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = ROOT / "config.yaml"
UNIT_FILE = ROOT / "deploy" / "aisha-monitor.service"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # the unit's TimeoutStopSec

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "system: real systemd tools, a real systemd-journald in a private mount namespace, "
        "a real headless Chromium (root, Linux)",
    )


def aisha_monitor_bin() -> Path:
    """The console script of the environment running the tests (the project's venv)."""
    beside = Path(sys.executable).parent / "aisha-monitor"
    if beside.exists():
        return beside
    found = shutil.which("aisha-monitor")
    if found is None:
        pytest.fail("no aisha-monitor console script: pip install -e . into this environment")
    return Path(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_url() -> str:
    """An http URL on 127.0.0.1 where nothing listens: handlers and alerts that slip through
    --dry-run fail fast here instead of reaching anything real."""
    return f"http://127.0.0.1:{free_port()}"


def quiet_env() -> dict[str, str]:
    """The daemon's environment: every outbound URL of the default config points at a closed
    local port, no config from /etc, no systemd socket from whoever runs the tests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AISHA_MONITOR_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "FAL_KEY")
    }
    env.update(
        AISHA_API_URL=closed_url(),
        ALERTMANAGER_URL=closed_url(),
        FAL_QUEUE_URL=closed_url(),
        PYTHONIOENCODING="utf-8",
        PYTHONUNBUFFERED="1",
    )
    return env


def write_config(path: Path, **journal: Any) -> Path:
    """The shipped config.yaml with `start: head` (plus any other `journal` keys given) and no
    health checks (there is no aisha-api here to check)."""
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data["journal"].update(start="head", **journal)
    data.pop("health_checks", None)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def poll(check: Callable[[], T | None], timeout_s: float, what: Callable[[], str] | str) -> T:
    """check() until it returns something other than None/False, at most timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout_s:.0f}s waiting for {what() if callable(what) else what}"
            )
        time.sleep(0.05)


def http_get(url: str, timeout_s: float = 2.0) -> tuple[int, str] | None:
    """(status, body), or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - a test URL
            return int(r.status), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(metrics_text: str, name: str, **labels: str) -> float | None:
    return samples(metrics_text).get((name, tuple(sorted(labels.items()))))


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path.name}: not written)"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return f"--- {path.name} (last {lines} lines) ---\n" + "\n".join(text)


def stop_process(proc: subprocess.Popen[Any], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM (the daemon commits and exits 0), SIGKILL if it does not within timeout_s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)


class Daemon:
    """`aisha-monitor run` as a subprocess on 127.0.0.1:port, its output in a log file."""

    def __init__(self, args: Sequence[str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "daemon.log"
        argv = [str(aisha_monitor_bin()), "run", *args, "--listen", f"127.0.0.1:{self.port}"]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=quiet_env(), cwd=workdir
            )

    def get(self, path: str) -> tuple[int, str] | None:
        if self.proc.poll() is not None:
            pytest.fail(f"aisha-monitor exited with {self.proc.returncode}\n{tail(self.log)}")
        return http_get(self.url + path)

    def wait_ready(self) -> None:
        poll(
            lambda: (r := self.get("/readyz")) is not None and r[0] == 200,
            START_TIMEOUT_S,
            lambda: f"{self.url}/readyz\n{tail(self.log)}",
        )

    def state(self) -> dict[str, Any]:
        r = self.get("/api/v1/state")
        assert r is not None and r[0] == 200, r
        return dict(json.loads(r[1]))

    def events(self) -> list[dict[str, Any]]:
        r = self.get("/api/v1/events?limit=1000")
        assert r is not None and r[0] == 200, r
        return list(json.loads(r[1]))

    def stop(self) -> int:
        stop_process(self.proc)
        return int(self.proc.returncode)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """start_daemon(*args): `aisha-monitor run ARGS --listen 127.0.0.1:FREE`, stopped after."""
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        workdir = tmp_path / f"daemon-{len(started)}"
        workdir.mkdir()
        daemon = Daemon(args, workdir)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    """$AISHA_TEST_ARTIFACTS (CI uploads it), else the test's tmp_path."""
    where = os.environ.get("AISHA_TEST_ARTIFACTS")
    path = Path(where) if where else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path

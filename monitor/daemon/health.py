"""Health checks of aisha-api: `http` and `systemd_unit`, run on their own thread so
they never block the journal loop. Changes of state become `health` events."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
import time
from dataclasses import dataclass

import requests

from monitor.config.schema import HealthCheckSpec
from monitor.core.model import Event, EventKind, Severity, format_time, us_to_datetime
from monitor.daemon.metrics import Metrics

log = logging.getLogger(__name__)

UP, DOWN, UNKNOWN = 1, 0, -1
_STATE_NAMES = {UP: "up", DOWN: "down", UNKNOWN: "unknown"}


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    up: int
    detail: str
    checked_us: int
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "check": self.check,
            "up": self.up,
            "detail": self.detail,
            "checked_at": format_time(us_to_datetime(self.checked_us)),
            "seconds": round(self.seconds, 4),
        }


def check_http(spec: HealthCheckSpec, session: requests.Session) -> tuple[int, str]:
    try:
        r = session.get(spec.url, timeout=spec.timeout_us / 1e6, allow_redirects=False)
    except requests.RequestException as e:
        return DOWN, f"{spec.url}: {type(e).__name__}"
    if r.status_code == spec.expect_status:
        return UP, f"HTTP {r.status_code}"
    return DOWN, f"HTTP {r.status_code}, expected {spec.expect_status}"


def check_systemd_unit(spec: HealthCheckSpec) -> tuple[int, str]:
    if not os.path.isdir("/run/systemd/system"):
        return UNKNOWN, "systemd is not running on this machine"
    try:
        out = subprocess.run(  # noqa: S603 - a fixed argv; the unit name comes from config
            ["/bin/systemctl", "show", spec.unit, "--property=ActiveState,SubState,NRestarts"],
            capture_output=True,
            text=True,
            timeout=spec.timeout_us / 1e6,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return UNKNOWN, f"systemctl: {type(e).__name__}"
    props = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    active, sub = props.get("ActiveState", "?"), props.get("SubState", "?")
    detail = f"{active}/{sub}, {props.get('NRestarts', '?')} restarts"
    return (UP if active == "active" else DOWN), detail


class HealthChecker:
    """Runs every check at its interval on one background thread."""

    def __init__(self, checks: tuple[HealthCheckSpec, ...], metrics: Metrics) -> None:
        self.checks = checks
        self.metrics = metrics
        self.events: queue.Queue[Event] = queue.Queue(maxsize=1000)
        self.results: dict[str, Result] = {}
        self._stop = threading.Event()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        for spec in checks:
            metrics.health_up.labels(spec.name).set(UNKNOWN)
            metrics.health_seconds.labels(spec.name).set(0)

    def start(self) -> None:
        if self.checks:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        due = {spec.name: 0.0 for spec in self.checks}
        while not self._stop.is_set():
            now = time.monotonic()
            for spec in self.checks:
                if due[spec.name] <= now:
                    self.run_one(spec)
                    due[spec.name] = time.monotonic() + spec.interval_us / 1e6
            self._stop.wait(max(0.05, min(due.values()) - time.monotonic()))

    def run_one(self, spec: HealthCheckSpec) -> Result:
        started = time.monotonic()
        try:
            if spec.type == "http":
                up, detail = check_http(spec, self._session)
            else:
                up, detail = check_systemd_unit(spec)
        except Exception as e:  # noqa: BLE001 - a check must never kill its thread
            up, detail = UNKNOWN, f"check failed: {type(e).__name__}"
        result = Result(spec.name, up, detail, time.time_ns() // 1000, time.monotonic() - started)
        previous = self.results.get(spec.name)
        self.results[spec.name] = result
        self.metrics.health_up.labels(spec.name).set(up)
        self.metrics.health_seconds.labels(spec.name).set(result.seconds)
        if previous is None and up == UP:
            return result  # starting up healthy is not news
        if previous is None or previous.up != up:
            self._emit(spec, result)
        return result

    def _emit(self, spec: HealthCheckSpec, result: Result) -> None:
        state = _STATE_NAMES[result.up]
        severity = Severity.CRITICAL if result.up == DOWN else Severity.INFO
        kind = EventKind.RESOLVED if result.up == UP else EventKind.HEALTH
        labels = {"state": state, "type": spec.type}
        message = f"health check {spec.name} is {state}: {result.detail}"
        try:
            self.events.put_nowait(
                Event(result.checked_us, spec.name, kind, severity, None, labels, message)
            )
        except queue.Full:
            log.warning("health event queue full; dropped: %s", message)

"""Health checks of aisha-api: `http` and `systemd_unit`, run on their own thread so
they never block the journal loop. Changes of state become `health` events."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import threading
from dataclasses import dataclass

import requests

from monitor.config.schema import HealthCheckSpec
from monitor.config.secrets import redact
from monitor.core.clock import Clock, SystemClock
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
        return DOWN, f"{redact(spec.url)}: {type(e).__name__}"
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

    def __init__(
        self,
        checks: tuple[HealthCheckSpec, ...],
        metrics: Metrics,
        clock: Clock | None = None,
    ) -> None:
        self.checks = checks
        self.metrics = metrics
        self.clock = clock or SystemClock()
        self.events: queue.Queue[Event] = queue.Queue(maxsize=1000)
        self.results: dict[str, Result] = {}  # replaced, never changed: HTTP threads read it
        self._lock = threading.Lock()  # checks, results and metrics change together
        self._due_now: set[str] = set()  # checks new or changed by a reload
        self._started = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        for spec in checks:
            metrics.health_up.labels(spec.name).set(UNKNOWN)
            metrics.health_seconds.labels(spec.name).set(0)

    def start(self) -> None:
        self._started = True
        self._start_if_needed()

    def _start_if_needed(self) -> None:
        with self._lock:
            idle = self._started and bool(self.checks) and not self._thread.is_alive()
            if idle and not self._stop.is_set():
                self._thread.start()

    def drain(self) -> list[Event]:
        """The events of checks that changed state since the last call (main loop only)."""
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def reconfigure(self, checks: tuple[HealthCheckSpec, ...]) -> None:
        """After a reload: a new or changed check runs at once (its last result is kept, so a
        change of state is still an event); a removed one is forgotten, metrics included."""
        with self._lock:
            old = {spec.name: spec for spec in self.checks}
            new = {spec.name: spec for spec in checks}
            self.checks = checks
            self._due_now |= {name for name, spec in new.items() if old.get(name) != spec}
            for name in old.keys() - new.keys():
                self.metrics.health_up.remove(name)
                self.metrics.health_seconds.remove(name)
            self.results = {n: r for n, r in self.results.items() if n in new}
            for name in new.keys() - old.keys():
                self.metrics.health_up.labels(name).set(UNKNOWN)
                self.metrics.health_seconds.labels(name).set(0)
        self._start_if_needed()
        self._wake.set()

    def _run(self) -> None:
        due: dict[str, float] = {}
        while not self._stop.is_set():
            with self._lock:
                checks, fresh, self._due_now = self.checks, self._due_now, set()
            now = self.clock.monotonic()
            for spec in checks:
                if spec.name in fresh or due.get(spec.name, 0.0) <= now:
                    started = self.clock.monotonic()
                    up, detail = self._check(spec)
                    with self._lock:
                        if spec in self.checks:  # not removed or changed meanwhile
                            self._record(spec, up, detail, started)
                    due[spec.name] = self.clock.monotonic() + spec.interval_us / 1e6
            wait = (
                min((due[spec.name] for spec in checks), default=now + 1) - self.clock.monotonic()
            )
            self._wake.wait(max(0.05, wait))
            self._wake.clear()

    def run_one(self, spec: HealthCheckSpec) -> Result:
        started = self.clock.monotonic()
        up, detail = self._check(spec)
        with self._lock:
            return self._record(spec, up, detail, started)

    def _check(self, spec: HealthCheckSpec) -> tuple[int, str]:
        try:
            if spec.type == "http":
                return check_http(spec, self._session)
            return check_systemd_unit(spec)
        except Exception as e:  # noqa: BLE001 - a check must never kill its thread
            return UNKNOWN, f"check failed: {type(e).__name__}"

    def _record(self, spec: HealthCheckSpec, up: int, detail: str, started: float) -> Result:
        result = Result(
            spec.name, up, detail, self.clock.now_us(), self.clock.monotonic() - started
        )
        previous = self.results.get(spec.name)
        self.results = {**self.results, spec.name: result}
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

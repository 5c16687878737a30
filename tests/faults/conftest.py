"""Fault-injection fixtures: the daemon over a live journal (tests.integration.daemon_fixtures),
an aisha-api emulator and a real Alertmanager (tests.e2e.conftest), plus what breaking things
needs: aisha-api logging webhooks into the journal behind a stand-in server (tests.standins: it
can be down, slow or failing), a feeder that writes entries at a pace and measures how far
behind the daemon is, and tuned copies of the shipped config.

Every server and process started here is stopped here."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    Alertmanager,
    alertmanager,  # a fixture
    api_emulator,  # a fixture
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    API_UNIT,
    SHIPPED_CONFIG,
    LiveJournal,
    MonitorDaemon,
    daemon_env,
    tail,
    wait_for,
)
from tests.standins import Request

__all__ = ["Alertmanager", "alertmanager", "api_emulator"]

P = "aisha_monitor_"
ENTRIES = P + "journal_entries_total"
LAG = P + "journal_lag_seconds"
DELIVERIES = P + "alert_deliveries_total"
RELOAD_OK = P + "config_last_reload_successful"
HEARTBEAT = P + "loop_last_iteration_timestamp_seconds"
UNKNOWN = P + "unknown_status_total"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "faults: fault injection against the daemon (kill -9, rotation, peers down or slow, "
        "a read-only or full state directory, signals under load)",
    )


# --- configs -------------------------------------------------------------------------------------


def shipped() -> dict[str, Any]:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rule_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    (rule,) = [r for r in data["rules"] if r["name"] == name]
    assert isinstance(rule, dict)
    return rule


def tune(
    path: Path,
    edit: Callable[[dict[str, Any]], None] | None = None,
    *,
    start: str = "resume",
    deadline: str | None = None,
) -> Path:
    """The shipped config.yaml without health checks, `journal.start` and the training deadline
    set, handlers quick to retry and not rate-limited, then `edit` applied; written atomically."""
    data = shipped()
    data["journal"]["start"] = start
    data.pop("health_checks", None)
    if deadline is not None:
        rule_of(data, "training_stalled")["deadline"] = deadline
    for spec in data["handlers"].values():
        spec.update(backoff="1s", rate_limit=100_000, timeout="3s")
    if edit is not None:
        edit(data)
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100_000)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


# --- reading the daemon --------------------------------------------------------------------------


def entries(d: MonitorDaemon) -> float:
    return d.metric(ENTRIES, unit=API_UNIT) or 0.0


def caught_up_at(d: MonitorDaemon, n: int) -> bool:
    """The daemon counted at least `n` aisha-api entries and says it is caught up."""
    return entries(d) >= n and bool(d.state()["journal"]["caught_up"])


def wait_entries(d: MonitorDaemon, n: int, timeout: float = 30.0) -> None:
    """Until `n` entries are counted and the daemon is caught up; then exactly `n`."""
    wait_for(
        lambda: caught_up_at(d, n),
        timeout,
        lambda: f"{n} entries counted (have {entries(d)})\n{tail(d.log)}",
    )
    assert entries(d) == n


def events_of(d: MonitorDaemon, kind: str, key: str | None = None) -> list[dict[str, Any]]:
    return [e for e in d.events() if e["kind"] == kind and (key is None or e["key"] == key)]


def handler_outcomes(d: MonitorDaemon, key: str) -> list[str]:
    return [e["labels"]["outcome"] for e in events_of(d, "handler", key)]


def wait_loop_rounds(d: MonitorDaemon, seconds: float = 0.3) -> None:
    """Until the main loop went round `seconds` after now."""
    after = time.time() + seconds
    wait_for(lambda: (d.metric(HEARTBEAT) or 0) > after, 10, "the main loop to go round")


def handler_queue_empty(d: MonitorDaemon) -> bool:
    return d.state()["handler_queue"]["open"] == 0


# --- aisha-api -----------------------------------------------------------------------------------


def api_logger(lj: LiveJournal, rejected: set[str] | None = None) -> Callable[[Request], None]:
    """aisha-api after the fix, as the e2e ApiEmulator: a POSTed webhook logs the seed's lines
    into the journal (the training's end line for a known status)."""

    def on_request(req: Request) -> None:
        body = req.json()
        rid, status = body["request_id"], body["status"]
        lines = [
            lj.app(f"[WEBHOOK] Получен webhook от FAL AI: {body!r}"),
            lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}"),
        ]
        if status.lower() == "completed":
            lines.append(lj.app(f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"))
        elif status.lower() == "failed":
            lines.append(lj.app(f"[TRAINING FAILED] {rid}: ошибка обучения: provider error"))
        lj.send(lines)

    return on_request


# --- load ----------------------------------------------------------------------------------------


class Feeder(threading.Thread):
    """Writes `rate` aisha-api entries per second in small batches: an unknown-status pair
    (key f{i}) among access lines each batch. Records when each batch went out, so that
    `lag(counted)` says how long the oldest entry the daemon has not counted yet has waited."""

    def __init__(self, lj: LiveJournal, rate: float = 200.0, batch: int = 20) -> None:
        super().__init__(name="feeder", daemon=True)
        self.lj, self.rate, self.batch = lj, rate, batch
        self.stop_event = threading.Event()
        self.sent: list[tuple[float, int]] = []  # (monotonic, entries sent so far)
        self.written = 0
        self.keys: list[str] = []
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def make_batch(self, i: int) -> tuple[list[bytes], str]:
        lj, key = self.lj, f"f{i}"
        pid = 5101 + i % 3
        out = [lj.raw(ACCESS, pid=pid) for _ in range(self.batch - 2)]
        out += [
            lj.app(
                f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: bogus-{i % 7}", pid=pid
            ),
            lj.app(f"[WEBHOOK BACKGROUND] Неизвестный статус: bogus-{i % 7}", pid=pid),
        ]
        return out, key

    def run(self) -> None:
        try:
            period = self.batch / self.rate
            next_at = time.monotonic()
            i = 0
            while not self.stop_event.is_set():
                batch, key = self.make_batch(i)
                self.lj.send(batch)
                with self._lock:
                    self.written += len(batch)
                    self.keys.append(key)
                    self.sent.append((time.monotonic(), self.written))
                i += 1
                next_at += period
                self.stop_event.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - the test reports it
            self.error = e

    def lag(self, counted: float, now: float) -> float:
        """Seconds the oldest entry not yet counted has waited (0 when all are counted)."""
        with self._lock:
            for t, total in self.sent:
                if total > counted:
                    return max(0.0, now - t)
        return 0.0

    def finish(self) -> None:
        self.stop_event.set()
        self.join(10)
        assert self.error is None, repr(self.error)
        assert not self.is_alive()


@dataclass
class LagProbe:
    """Samples the daemon's lag while a Feeder writes: the worst measured from outside (oldest
    uncounted entry) and the worst journal_lag_seconds the daemon reported."""

    d: MonitorDaemon
    feeder: Feeder
    worst: float = 0.0
    worst_reported: float = 0.0
    samples: int = 0
    base: float = 0.0  # entries counted before the feeder started

    def sample(self) -> None:
        metrics = self.d.metrics()
        now = time.monotonic()
        counted = metrics.get((ENTRIES, (("unit", API_UNIT),)), 0.0) - self.base
        self.worst = max(self.worst, self.feeder.lag(counted, now))
        self.worst_reported = max(self.worst_reported, metrics.get((LAG, ()), 0.0))
        self.samples += 1

    def run_for(self, seconds: float, also: Callable[[], None] | None = None) -> None:
        """Sample every ~0.2 s for `seconds` (a deadline, not a sleep: each round polls)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.sample()
            if also is not None:
                also()
            self.feeder.stop_event.wait(0.2)


def spawn_daemon(
    workdir: Path, journal_dir: Path, config: Path, env: dict[str, str] | None = None
) -> MonitorDaemon:
    """A MonitorDaemon (not started) with its own state directory under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return MonitorDaemon(config, journal_dir, workdir / "state", workdir, daemon_env(env))

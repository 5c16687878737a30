"""End-to-end fixtures: an aisha-api emulator that logs into the live journal, and a real
Alertmanager on 127.0.0.1."""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.daemon_fixtures import (
    LiveJournal,
    free_port,
    tail,
    wait_for,
)
from tests.standins import StandIn

KNOWN_AFTER_FIX = {"in_progress", "completed", "failed"}


class ApiEmulator:
    """aisha-api's webhook endpoint, logging the seed's lines into the journal as the real one
    does. `buggy` is the router before the fix: it compared `status == "COMPLETED"`."""

    def __init__(self, journal: LiveJournal, buggy: bool = False) -> None:
        self.journal = journal
        self.buggy = buggy
        self.stand_in = StandIn(on_request=lambda req: self.log_webhook(req.json())).start()
        self.url = self.stand_in.url

    @property
    def received(self) -> list[dict[str, Any]]:
        """The webhook bodies POSTed to it, oldest first."""
        return [r.json() for r in self.stand_in.requests]

    def log_webhook(self, body: dict[str, Any], kind: str = "portrait") -> None:
        """The lines one webhook delivery produces (seed/README.md)."""
        lj, rid, status = self.journal, body["request_id"], body["status"]
        known = status == "COMPLETED" if self.buggy else status.lower() in KNOWN_AFTER_FIX
        lines = [
            lj.app(f"[WEBHOOK] Получен webhook от FAL AI: {body!r}"),
            lj.app(f"[WEBHOOK] Обработка статуса '{status}' для request_id: {rid}, тип: {kind}"),
            lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}"),
        ]
        if not known:
            lines.append(
                lj.app(f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}", level="WARNING")
            )
        elif status.lower() == "completed":
            lines.append(lj.app(f"[TRAINING COMPLETED] {rid}: обучение завершено успешно"))
        elif status.lower() == "failed":
            lines.append(lj.app(f"[TRAINING FAILED] {rid}: ошибка обучения: provider error"))
        lines.append(lj.app(f"[WEBHOOK BACKGROUND] Обработка завершена для {rid}"))
        lj.send(lines)

    def close(self) -> None:
        self.stand_in.stop()


@pytest.fixture
def api_emulator(live_journal: LiveJournal) -> Iterator[ApiEmulator]:
    api = ApiEmulator(live_journal)
    yield api
    api.close()


class Alertmanager:
    """prometheus-alertmanager on 127.0.0.1 with temporary storage, clustering off."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (workdir / "am.yml").write_text(
            "route: {receiver: blackhole, group_wait: 0s, group_interval: 1s}\n"
            "receivers: [{name: blackhole}]\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Alertmanager:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            pytest.fail(
                "prometheus-alertmanager is missing: apt-get install prometheus-alertmanager"
            )
        log = (self.workdir / "am.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.workdir / 'am.yml'}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 20, lambda: f"Alertmanager ready\n{tail(self.workdir / 'am.log')}")
        return self

    def _ready(self) -> bool:
        try:
            return requests.get(self.url + "/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        r = requests.get(self.url + "/api/v2/alerts", timeout=5)
        r.raise_for_status()
        return list(r.json())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path)
    try:
        yield am.start()
    finally:
        am.stop()


def payload_of(logged: str) -> dict[str, Any]:
    """The dict of a `Получен webhook` line, read back as the daemon reads it."""
    return dict(ast.literal_eval(logged.split("FAL AI: ", 1)[1]))

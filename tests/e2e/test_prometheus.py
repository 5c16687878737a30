"""Real Prometheus scraping the real daemon with the shipped alert rules loaded."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import ApiEmulator
from tests.integration.daemon_fixtures import LiveJournal, MakeDaemon, free_port, tail, wait_for

pytestmark = pytest.mark.e2e

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "aisha-monitor.rules.yml"


class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, workdir / "aisha-monitor.rules.yml")
        (workdir / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "rule_files: [aisha-monitor.rules.yml]\n"
            "scrape_configs:\n"
            f"  - job_name: aisha-monitor\n    static_configs: [{{targets: ['{target}']}}]\n",
            encoding="utf-8",
        )
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: apt-get install prometheus")
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def api(self, path: str, **params: str) -> Any:
        try:
            r = requests.get(self.url + path, params=params, timeout=5)
        except requests.RequestException:
            return None
        return r.json()["data"] if r.status_code == 200 else None

    def value(self, query: str) -> float | None:
        data = self.api("/api/v1/query", query=query)
        if not data or not data["result"]:
            return None
        return float(data["result"][0]["value"][1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_prometheus_scrapes_the_daemon_and_loads_the_rules(
    live_journal: LiveJournal, api_emulator: ApiEmulator, make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon().start()
    prom = Prometheus(tmp_path, d.url.removeprefix("http://"))
    try:
        wait_for(
            lambda: prom.value('up{job="aisha-monitor"}') == 1,
            30,
            lambda: f"up == 1\n{tail(prom.log)}",
        )
        groups = prom.api("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert {r["name"] for r in rules if r["type"] == "alerting"} >= {
            "AishaMonitorDown",
            "AishaMonitorLoopStuck",
        }
        assert all(r["health"] == "ok" for r in rules), [
            (r["name"], r.get("lastError")) for r in rules
        ]

        def not_quiet() -> list[str]:  # AishaMonitorAbsent may be pending until the first scrape
            groups = prom.api("/api/v1/rules")["groups"]
            return [
                r["name"]
                for g in groups
                for r in g["rules"]
                if r["type"] == "alerting" and r["state"] != "inactive"
            ]

        wait_for(lambda: not not_quiet(), 30, lambda: f"every alert rule quiet: {not_quiet()}")

        lj = live_journal
        lj.send(
            [
                lj.app("[WEBHOOK BACKGROUND] Начинаем обработку p1, статус: OK"),
                lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: OK", level="WARNING"),
            ]
        )
        query = 'aisha_monitor_unknown_status_total{status="OK",normalized="completed"}'
        wait_for(lambda: prom.value(query) == 1, 30, "the unknown status in Prometheus")
        assert prom.value('aisha_monitor_rule_matches_total{rule="unknown_status"}') == 1
    finally:
        prom.stop()

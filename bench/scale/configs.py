"""The configs replayed: a copy of the shipped one (start: head, no health checks, no
Alertmanager), and with 41 synthetic `match` rules added; each checked with `check-config`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent.parent
MONITOR = str(REPO / ".venv/bin/aisha-monitor")
PREFIX = r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - [\w.]+ - [A-Z]+ - )?"
# literals of ordinary aisha-api lines (bench/lines.py): these synthetic rules do match
HITTING = (
    r"Пул соединений: занято (?P<busy>\d+)/20",
    r"Получен список аватаров пользователя (?P<user_id>\d+)",
    r"Пользователь (?P<user_id>\d+) запросил баланс",
    r"HTTP Request: GET https://queue\.fal\.run/(?P<model>\S+)/requests/",
    r"Файл загружен в MinIO: (?P<path>\S+)",
    r"Генерация изображения (?P<id>\S+) для пользователя",
    r"FAL AI ответил медленно: (?P<sec>[\d.]+)s",
    r"Аватар (?P<id>\S+) не найден",
)
HITTING_ACCESS = (
    r'^INFO: +[\d.]+:\d+ - "GET /health HTTP/1\.1" (?P<status>\d+)',
    r'^INFO: +[\d.]+:\d+ - "POST /api/v1/generation/create HTTP/1\.1" (?P<status>\d+)',
)


def config_copy(dest: Path, extra_rules: list[dict[str, Any]] | None = None) -> Path:
    doc = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    doc["journal"]["start"] = "head"
    doc["health_checks"] = []
    doc["alerting"]["alertmanager_urls"] = []
    if extra_rules:
        doc["rules"] += extra_rules
    dest.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    check = subprocess.run(
        [MONITOR, "check-config", "-c", str(dest)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise SystemExit(f"{dest} is invalid:\n{check.stderr}")
    return dest


def synthetic_rules(n: int = 41) -> list[dict[str, Any]]:
    """n match rules with distinct literals: the first ones hit ordinary lines, the rest never."""
    rules: list[dict[str, Any]] = []
    hitting = [PREFIX + p for p in HITTING] + list(HITTING_ACCESS)
    for i in range(n):
        if i < len(hitting):
            pattern = hitting[i]
        else:
            pattern = (
                PREFIX + rf"\[SYNTH-{i:02d}\] операция (?P<op>\w+) не выполнена для "
                r"(?P<request_id>[^\s,]+)"
            )
        rules.append(
            {
                "name": f"synthetic_{i:02d}",
                "type": "match",
                "severity": "info",
                "metric": f"synthetic_{i:02d}",
                "pattern": pattern,
            }
        )
    return rules

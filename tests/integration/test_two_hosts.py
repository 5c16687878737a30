"""Two API hosts in one journal directory, with the same unit and deliberately the same _PID:
pairs are keyed by request_id across hosts; context joins are per host and _PID. Checked through
`python -m monitor replay` over real journal files, both with one file holding both hosts and
with one file per host (as systemd-journal-remote stores journals collected from machines)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.tools.export import export_entry
from tests.helpers import T0, S

pytestmark = pytest.mark.integration

WriteEntries = Callable[..., Path]
Replay = Callable[..., tuple[int, list[dict[str, Any]], str]]

PID = 4242  # the same worker PID on both machines: uvicorn workers start in the same order
INFO, WARNING = 6, 4


def iso(t_s: float) -> str:
    return datetime.fromtimestamp((T0 + round(t_s * S)) / S, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def on(host: str, t_s: float, text: str, priority: int = INFO) -> bytes:
    stamp = datetime.fromtimestamp((T0 + round(t_s * S)) / S, UTC).strftime("%Y-%m-%d %H:%M:%S")
    level = "INFO" if priority == INFO else "WARNING"
    message = f"{stamp},000 - app.routers.fal_webhook - {level} - {text}"
    return export_entry(message, T0 + round(t_s * S), hostname=host, pid=PID, priority=priority)


def two_hosts() -> dict[str, list[bytes]]:
    return {
        "api-1": [
            on("api-1", 0, "Запуск обучения аватара av-1 отправлен в FAL AI, request_id: req-x"),
            # api-1's worker has another request in flight at the very moment api-2 begins its own
            on("api-1", 100, "[WEBHOOK BACKGROUND] Начинаем обработку req-one, статус: OK"),
        ],
        "api-2": [
            # the completion webhook was routed to the other machine
            on("api-2", 60, "[TRAINING COMPLETED] req-x: обучение завершено успешно"),
            on("api-2", 100, "[WEBHOOK BACKGROUND] Начинаем обработку req-two, статус: completed"),
            on("api-2", 101, "[WEBHOOK BACKGROUND] Неизвестный статус: completed", WARNING),
        ],
    }


@pytest.mark.parametrize("layout", ["one-file", "file-per-host"])
def test_pairs_close_across_hosts_and_context_joins_its_own_host(
    layout: str, write_entries: WriteEntries, replay: Replay, journal_dir: Path
) -> None:
    entries = two_hosts()
    if layout == "one-file":
        a, b = entries["api-1"], entries["api-2"]
        merged = [a[0], b[0], b[1], a[1], b[2]]  # time order; api-2's begin logged first at t=100
        write_entries(merged, "remote.journal")
    else:
        for host, host_entries in entries.items():
            write_entries(host_entries, f"remote-{host}.journal")
    assert len(list(journal_dir.glob("*.journal"))) == (1 if layout == "one-file" else 2)

    rc, events, stderr = replay("--now", iso(3 * 3600))
    assert rc == 0, stderr
    got = [(e["time"], e["rule"], e["kind"], e["key"], e["labels"]) for e in events]
    assert got == [
        (iso(60), "training_stalled", "pair_closed", "req-x",
         {"avatar_id": "av-1", "outcome": "COMPLETED", "duration_seconds": "60.000"}),
        (iso(101), "unknown_status", "unknown_value", "req-two",
         {"status": "completed", "normalized": "completed"}),
        (iso(101 + 15 * 60), "api_silent", "absence", None, {}),
    ]  # fmt: skip
    assert "replay: 5 entries" in stderr
    assert not [e for e in events if e["kind"] == "stalled"]


def test_the_same_request_id_on_two_hosts_is_one_training(
    write_entries: WriteEntries, replay: Replay
) -> None:
    """fal.ai may deliver the in-progress webhook to either machine: a start seen on both hosts
    opens one pair, and its one end closes it."""
    in_progress = "[WEBHOOK] Обработка статуса 'IN_PROGRESS' для request_id: req-y, тип: portrait"
    write_entries(
        [
            on("api-1", 0, "Запуск обучения аватара av-2 отправлен в FAL AI, request_id: req-y"),
            on("api-2", 30, in_progress),
            on("api-1", 90, "[TRAINING COMPLETED] req-y: обучение завершено успешно"),
        ],
        "remote.journal",
    )
    rc, events, stderr = replay("--now", iso(3 * 3600))
    assert rc == 0, stderr
    assert [(e["rule"], e["kind"], e["key"]) for e in events] == [
        ("training_stalled", "pair_closed", "req-y"),
        ("api_silent", "absence", None),
    ]
    assert "duplicate_start=1" in stderr


def test_host_label_marks_events_with_their_host(
    write_entries: WriteEntries, replay: Replay, journal_dir: Path, tmp_path: Path
) -> None:
    """journal.host_label: true (the central layout): events say which host logged them; a
    pair's events name the host it started on."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8"))
    data["journal"]["host_label"] = True
    config = tmp_path / "central.yaml"
    config.write_text(yaml.safe_dump(data, allow_unicode=True, width=100_000), encoding="utf-8")
    entries = two_hosts()
    a, b = entries["api-1"], entries["api-2"]
    write_entries([a[0], b[0], b[1], a[1], b[2]], "remote.journal")
    rc, events, stderr = replay("-c", str(config), "--now", iso(3 * 3600))
    assert rc == 0, stderr
    hosts = {(e["kind"], e["key"]): e["labels"].get("host") for e in events}
    assert hosts[("pair_closed", "req-x")] == "api-1"  # started there, completed on api-2
    assert hosts[("unknown_value", "req-two")] == "api-2"

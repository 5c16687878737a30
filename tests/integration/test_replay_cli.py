"""`python -m monitor replay` with the shipped config over real journals that follow the seed's
log-line catalogue, asserting on the JSON events it prints."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.tools.export import export_entry
from tests.helpers import T0, S

ROOT = Path(__file__).resolve().parents[2]
WriteEntries = Callable[..., Path]
RunCli = Callable[..., subprocess.CompletedProcess[str]]
Replay = Callable[..., tuple[int, list[dict[str, Any]], str]]

pytestmark = pytest.mark.integration

A, B = 4101, 4102  # two uvicorn workers
LEVELS = {"INFO": 6, "WARNING": 4, "ERROR": 3}
ACCESS = 'INFO:     127.0.0.1:51234 - "GET /health HTTP/1.1" 200 OK'


def prefix(t_s: float, level: str) -> str:
    """aisha-api's logging prefix for a line logged at T0 + t_s."""
    t = T0 + round(t_s * S)
    stamp = datetime.fromtimestamp(t / S, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp},{t // 1000 % 1000:03d} - app.routers.fal_webhook - {level} - "


def app(t_s: float, text: str | bytes, pid: int = A, level: str = "INFO", **kw: Any) -> bytes:
    """An aisha-api entry at T0 + t_s, its message with the logging prefix."""
    head = prefix(t_s, level)
    message = head.encode() + text if isinstance(text, bytes) else head + text
    return export_entry(message, T0 + round(t_s * S), pid=pid, priority=LEVELS[level], **kw)


def iso(t_s: float) -> str:
    return datetime.fromtimestamp((T0 + round(t_s * S)) / S, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def begin(t_s: float, rid: str, status: str, pid: int, **kw: Any) -> bytes:
    return app(t_s, f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}", pid, **kw)


def unknown(t_s: float, status: str | bytes, pid: int, **kw: Any) -> bytes:
    text = "[WEBHOOK BACKGROUND] Неизвестный статус: "
    raw = text.encode() + status if isinstance(status, bytes) else text + status
    return app(t_s, raw, pid, "WARNING", **kw)


def submitted(t_s: float, rid: str, avatar: str, pid: int = A, **kw: Any) -> bytes:
    text = f"Запуск обучения аватара {avatar} отправлен в FAL AI, request_id: {rid}"
    return app(t_s, text, pid, **kw)


def completed(t_s: float, rid: str, pid: int = A) -> bytes:
    return app(t_s, f"[TRAINING COMPLETED] {rid}: обучение завершено успешно", pid)


def crashed(t_s: float, rid: str, trace: str = "KeyError: 'result'", **kw: Any) -> bytes:
    text = f"[WEBHOOK BACKGROUND] Ошибка обработки {rid}\nTraceback (most recent call last):\n"
    return app(t_s, text + trace, A, "ERROR", **kw)


def access(t_s: float) -> bytes:
    return export_entry(ACCESS, T0 + round(t_s * S), pid=A)


def summary(stderr: str) -> dict[str, tuple[str, dict[str, int]]]:
    rows = re.findall(r"^  (\w+) \((\w+)\): (.*)$", stderr, re.MULTILINE)
    return {n: (t, {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", c)}) for n, t, c in rows}


BODY_A = "{'request_id': 'req-a', 'status': 'COMPLETED', 'result': {}}"


def interleaved_workers() -> list[bytes]:
    # joining by "the latest line of any pid" would give req-b at 0.4 and req-c at 0.6
    return [
        app(0.0, "[WEBHOOK] Получен webhook от FAL AI: " + BODY_A, A),
        app(0.1, "[WEBHOOK] Обработка статуса 'OK' для request_id: req-b, тип: portrait", B),
        begin(0.2, "req-a", "COMPLETED", A),
        begin(0.3, "req-b", "OK", B),
        unknown(0.4, "COMPLETED", A),
        begin(0.5, "req-c", "weird", A),
        unknown(0.6, "OK", B),
        unknown(0.7, "weird", A),
    ]  # fmt: skip


def test_unknown_statuses_join_their_own_worker_and_the_summary_lists_every_rule(
    write_entries: WriteEntries, replay: Replay
) -> None:
    write_entries(interleaved_workers())
    rc, events, stderr = replay()
    assert rc == 0, stderr
    got = [(e["rule"], e["kind"], e["severity"], e["time"], e["key"], e["labels"]) for e in events]
    assert got == [
        ("unknown_status", "unknown_value", "critical", iso(0.4), "req-a",
         {"status": "COMPLETED", "normalized": "completed"}),
        ("unknown_status", "unknown_value", "critical", iso(0.6), "req-b",
         {"status": "OK", "normalized": "completed"}),
        ("unknown_status", "unknown_value", "critical", iso(0.7), "req-c",
         {"status": "weird", "normalized": ""}),
    ]  # fmt: skip
    assert all(e["cursor"] and e["cursor"].startswith("s=") for e in events)

    # the summary on stderr: totals, then every rule of the shipped config with its counters
    assert re.search(r"^replay: 8 entries in .*, 3 events$", stderr, re.MULTILINE), stderr
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))["rules"]
    rules = summary(stderr)
    assert {n: t for n, (t, _) in rules.items()} == {r["name"]: r["type"] for r in shipped}
    assert rules["unknown_status"][1] == {
        "matches": 3, "joined": 3, "unjoined": 0, "normalizable": 2, "unknown": 1,
    }  # fmt: skip
    assert rules["webhook_processing"][1] == {"matches": 3}


def test_unknown_status_joins_per_host(write_entries: WriteEntries, replay: Replay) -> None:
    write_entries([
        begin(0, "req-x", "OK", A, hostname="api-1"),
        begin(1, "req-y", "OK", A, hostname="api-2"),  # another machine, same worker PID
        unknown(2, "OK", A, hostname="api-1"),
    ])  # fmt: skip
    rc, events, stderr = replay()
    assert rc == 0, stderr
    assert [(e["time"], e["key"]) for e in events] == [(iso(2), "req-x")]


def test_other_units_are_ignored(write_entries: WriteEntries, replay: Replay) -> None:
    entries = []
    for i, unit in enumerate(("aisha-bot.service", "nginx.service")):
        entries += [
            submitted(i, f"req-{unit}", "a1", pid=A, unit=unit),
            begin(i + 0.1, f"req-{unit}", "OK", A, unit=unit),
            unknown(i + 0.2, "OK", A, unit=unit),
            crashed(i + 0.3, f"crash-{unit}", unit=unit),
        ]
    entries += [crashed(10, "r-api"), unknown(10.5, "OK", A)]  # joins nothing of the others
    entries += [app(7200 + i, ACCESS, unit="aisha-bot.service") for i in range(3)]
    write_entries(entries)
    rc, events, stderr = replay()
    assert rc == 0, stderr
    assert [(e["rule"], e["key"]) for e in events] == [
        ("webhook_processing_failed", "r-api"),
        ("unknown_status", None),
    ]
    assert "replay: 2 entries" in stderr


def test_stalled_resolved_and_closed_trainings(write_entries: WriteEntries, replay: Replay) -> None:
    entries = [submitted(0, "r-stall", "av1"), submitted(1, "r-late", "av2", B)]
    entries += [submitted(2, "r-ok", "av3"), completed(602, "r-ok")]
    entries += [access(t) for t in range(900, 5400, 600)]  # keeps api_silent quiet
    entries += [completed(5401, "r-late", B), access(6000), access(6600), access(7200)]
    write_entries(entries)
    rc, events, stderr = replay()
    assert rc == 0, stderr
    assert [(e["rule"], e["kind"], e["time"], e["key"], e["labels"]) for e in events] == [
        ("training_stalled", "pair_closed", iso(602), "r-ok",
         {"avatar_id": "av3", "outcome": "COMPLETED", "duration_seconds": "600.000"}),
        ("training_stalled", "stalled", iso(3600), "r-stall", {"avatar_id": "av1"}),
        ("training_stalled", "stalled", iso(3601), "r-late", {"avatar_id": "av2"}),
        ("training_stalled", "resolved", iso(5401), "r-late",
         {"avatar_id": "av2", "outcome": "COMPLETED", "duration_seconds": "5400.000"}),
    ]  # fmt: skip


def test_duplicate_deliveries_are_idempotent(write_entries: WriteEntries, replay: Replay) -> None:
    write_entries([
        submitted(0, "r-dup", "av1"),
        app(30, "[WEBHOOK] Обработка статуса 'in_progress' для request_id: r-dup, тип: portrait"),
        completed(60, "r-dup"),
        completed(120, "r-dup", B),  # fal.ai re-delivered COMPLETED
        app(180, "[WEBHOOK] Обработка статуса 'IN_PROGRESS' для request_id: r-dup, тип: portrait"),
        app(181, "[WEBHOOK BACKGROUND] Обучение в процессе для r-dup, прогресс: 50%"),
    ])  # fmt: skip
    rc, events, stderr = replay("--now", iso(4 * 3600))
    assert rc == 0, stderr
    stalled = [(e["kind"], e["time"], e["key"]) for e in events if e["rule"] == "training_stalled"]
    assert stalled == [("pair_closed", iso(60), "r-dup")]
    counters = summary(stderr)["training_stalled"][1]
    assert counters["duplicate_start"] == 3
    assert counters["unmatched_end"] == 1
    assert counters["open"] == 0


def test_traceback_entry_is_one_match(write_entries: WriteEntries, replay: Replay) -> None:
    trace = "  File \"fal_webhook.py\", line 88, in process\nKeyError: 'result'"
    write_entries([crashed(5, "r9", trace)])
    rc, events, stderr = replay()
    assert rc == 0, stderr
    whole = "[WEBHOOK BACKGROUND] Ошибка обработки r9\nTraceback (most recent call last):\n"
    assert [(e["rule"], e["kind"], e["severity"], e["key"], e["message"]) for e in events] == [
        ("webhook_processing_failed", "match", "warning", "r9", prefix(5, "ERROR") + whole + trace),
    ]


def test_huge_and_undecodable_messages_do_not_hide_events(
    write_entries: WriteEntries, replay: Replay
) -> None:
    write_entries([
        begin(0, "r-1", "OK", A),
        begin(0.5, "r-2", "OK", B),
        crashed(1, "r-big", "x" * 200_000),
        unknown(2, b"\xff\xfeOK", B),
        unknown(3, "OK", A),
        crashed(4, "r-after"),
    ])  # fmt: skip
    rc, events, stderr = replay()
    assert rc == 0, stderr
    assert [(e["rule"], e["time"], e["key"]) for e in events] == [
        ("webhook_processing_failed", iso(1), "r-big"),
        ("unknown_status", iso(2), "r-2"),
        ("unknown_status", iso(3), "r-1"),
        ("webhook_processing_failed", iso(4), "r-after"),
    ]
    assert len(events[0]["message"]) == 500
    assert events[1]["labels"] == {"status": "\ufffd\ufffdOK", "normalized": ""}
    assert events[2]["labels"] == {"status": "OK", "normalized": "completed"}
    assert "1 messages truncated" in stderr


def test_since_and_until_bound_the_entries(write_entries: WriteEntries, replay: Replay) -> None:
    write_entries([crashed(60 * i, f"k{i}") for i in range(4)])
    rc, events, stderr = replay("--since", iso(30), "--until", iso(150))
    assert rc == 0, stderr
    assert [(e["time"], e["key"]) for e in events] == [(iso(60), "k1"), (iso(120), "k2")]
    assert "replay: 2 entries" in stderr


def test_now_fires_pending_deadlines(write_entries: WriteEntries, replay: Replay) -> None:
    write_entries([submitted(0, "r-now", "av1"), access(60)])
    rc, events, stderr = replay()
    assert (rc, events) == (0, []), stderr
    rc, events, stderr = replay("--now", iso(7200))
    assert rc == 0, stderr
    assert [(e["rule"], e["kind"], e["time"], e["key"]) for e in events] == [
        ("api_silent", "absence", iso(960), None),
        ("training_stalled", "stalled", iso(3600), "r-now"),
    ]


def test_table_format(write_entries: WriteEntries, run_cli: RunCli, journal_dir: Path) -> None:
    write_entries([crashed(5, "r9"), submitted(6, "r-t", "av1")])
    proc = run_cli(
        "replay", "--journal-dir", str(journal_dir), "--format", "table", "--now", iso(3700)
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["TIME", "SEVERITY", "KIND", "RULE", "KEY", "MESSAGE"]
    assert [line.split(maxsplit=5) for line in lines[1:]] == [
        [iso(5), "warning", "match", "webhook_processing_failed", "r9",
         prefix(5, "ERROR") + "[WEBHOOK BACKGROUND] Ошибка обработки r9"],  # no traceback
        [iso(906), "warning", "absence", "api_silent", "-",
         f"no matching line for 15m (last seen {iso(6)})"],
        [iso(3606), "warning", "stalled", "training_stalled", "r-t",
         f"r-t: no end within 1h of its start at {iso(6)}"],
    ]  # fmt: skip


BAD_CONFIG = """\
journal:
  units: [aisha-api.service]
  max_mesage_bytes: 4096
rules:
  - name: unknown_status
    type: unknown_value
    severity: critical
    pattern: 'Неизвестный статус: (?P<value>[^\\n]*'
  - name: training_stalled
    type: pair
    severity: warning
    start: 'отправлен в FAL AI, request_id: (?P<request_id>\\S+)'
    end: '\\[TRAINING COMPLETED\\] (?P<request_id>[^\\s:]+):'
    deadline: soon
    handler: provider_status
"""


def test_check_config_reports_every_fault_with_its_position(
    run_cli: RunCli, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG, encoding="utf-8")
    proc = run_cli("check-config", "-c", str(bad))
    assert proc.returncode == 2
    assert proc.stdout == ""
    where = re.compile(rf"^{re.escape(str(bad))}:(\d+):(\d+): (\S+): (.*)$")
    problems = [m.groups() for line in proc.stderr.splitlines() if (m := where.match(line))]
    assert [(int(ln), int(col), path) for ln, col, path, _ in problems] == [
        (3, 3, "journal.max_mesage_bytes"),
        (8, 14, "rules[0].pattern"),
        (14, 15, "rules[1].deadline"),
        (15, 14, "rules[1].handler"),
    ]
    unknown_key, bad_regex, bad_duration, dangling = (m for *_, m in problems)
    assert unknown_key.startswith("unknown key (known keys: ")
    assert bad_regex.startswith("invalid regular expression")
    assert bad_duration.endswith("got 'soon'")
    assert dangling == "no handlers entry named 'provider_status'"
    assert proc.stderr.splitlines()[-1] == "4 problem(s) found"

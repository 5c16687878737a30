"""Hostile messages through the whole path, from real journal files (systemd-journal-remote) to
/metrics, /api/v1/events and the status page: 1 MB messages, NUL bytes, invalid UTF-8, control
characters; 10k distinct unknown statuses (label cardinality capped); 100k distinct
request_ids (memory bounded by the configured limits)."""

from __future__ import annotations

import gc
import json
import time
import tracemalloc
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.config.schema import load_config_text
from monitor.core.engine import _KEYED_LIMIT, _RECALL_LIMIT, Engine, build_rules
from monitor.core.model import Entry
from monitor.tools.export import export_entry, write_journal
from rules.pair import PairRule
from tests.helpers import PREFIX, T0
from tests.integration.daemon_fixtures import (
    API_UNIT,
    MonitorDaemon,
    daemon_env,
    tail,
    wait_for,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
P = "aisha_monitor_"
MB = 1 << 20


def daemon_over(tmp_path: Path, entries: list[bytes], made: list[MonitorDaemon]) -> MonitorDaemon:
    """The daemon (start: head) over one real journal file holding `entries`, caught up."""
    journal_dir = tmp_path / "journal"
    write_journal(journal_dir / "hostile.journal", entries)
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    config = write_config(workdir / "config.yaml", start="head")
    d = MonitorDaemon(config, journal_dir, workdir / "state", workdir, daemon_env())
    made.append(d)
    d.start()
    wait_for(
        lambda: (
            (d.metric(P + "journal_entries_total", unit=API_UNIT) or 0) >= len(entries)
            and d.state()["journal"]["caught_up"]
        ),
        60,
        lambda: f"{len(entries)} entries\n{tail(d.log)}",
    )
    return d


def line(t: int, text: bytes, priority: int = 6, pid: int = 4701) -> bytes:
    return export_entry(PREFIX.encode() + text, t, pid=pid, priority=priority)


def test_huge_nul_and_invalid_utf8_messages(tmp_path: Path, daemons: list[MonitorDaemon]) -> None:
    t = time.time_ns() // 1000 - 60_000_000
    begin = "[WEBHOOK BACKGROUND] Начинаем обработку {}, статус: x".format
    unknown = "[WEBHOOK BACKGROUND] Неизвестный статус: ".encode()
    hostile = [
        b"COMP\x00LETED",  # NUL inside the status
        b"\xff\xfe\xfd",  # not UTF-8 at all
        b"ok\xc3",  # a cut multibyte sequence
        b"<script>alert(1)</script>",
        b"\x1b[31mred\x1b[0m \r\x07",  # terminal escapes, CR, BEL
        b"x" * MB,  # 1 MB status: the message is truncated at max_message_bytes
        "ВЫПОЛНЕНО".encode() * 1000,
    ]
    entries = []
    for i, status in enumerate(hostile):
        entries.append(line(t + 2 * i, begin(f"h{i}").encode()))
        entries.append(line(t + 2 * i + 1, unknown + status, priority=4))
    body = b"{'request_id': 'big', 'status': 'OK', 'blob': '" + b"A" * MB + b"'}"
    entries.append(line(t + 100, "[WEBHOOK] Получен webhook от FAL AI: ".encode() + body))
    entries.append(line(t + 101, b"\x00" * 1000))
    entries.append(line(t + 102, b"multi\nline\ntraceback\n" * 1000))
    d = daemon_over(tmp_path, entries, daemons)

    assert d.metric(P + "journal_entries_total", unit=API_UNIT) == len(entries)
    assert d.metric(P + "journal_messages_truncated_total") == 2  # the 1 MB status and body
    assert d.metric(P + "journal_read_errors_total") == 0
    events = {e["key"]: e for e in d.events() if e["kind"] == "unknown_value"}
    assert sorted(events) == sorted(f"h{i}" for i in range(len(hostile)))
    assert events["h1"]["labels"]["status"] == "\ufffd\ufffd\ufffd"
    assert events["h2"]["labels"]["status"] == "ok\ufffd"
    assert events["h0"]["labels"]["status"] in ("COMP\x00LETED", "COMPLETED", "COMP\ufffdLETED")
    assert len(events["h5"]["labels"]["status"]) <= 200  # labels are bounded
    families = list(text_string_to_metric_families(d.get("/metrics")))  # still parses
    assert any(f.name == P + "unknown_status" for f in families)
    page = d.get("/")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    json.loads(d.get("/api/v1/state"))
    assert d.running()
    assert d.stop() == 0


def test_10k_distinct_statuses_cap_the_label_cardinality(
    tmp_path: Path, daemons: list[MonitorDaemon]
) -> None:
    n = 10_000
    t = time.time_ns() // 1000 - 600_000_000
    entries = []
    for i in range(n):
        status = f"st-{i:05d}" if i % 10 else "OK"  # most truly unknown, some normalizable
        pid = 5000 + i % 7
        begin = f"[WEBHOOK BACKGROUND] Начинаем обработку u{i}, статус: {status}"
        unknown = f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}"
        entries.append(line(t + 2 * i, begin.encode(), pid=pid))
        entries.append(line(t + 2 * i + 1, unknown.encode(), priority=4, pid=pid))
    d = daemon_over(tmp_path, entries, daemons)
    samples = [
        s
        for f in text_string_to_metric_families(d.get("/metrics"))
        if f.name == P + "unknown_status"
        for s in f.samples
        if s.name.endswith("_total")
    ]
    statuses = {s.labels["status"] for s in samples}
    max_values = 50  # the unknown_value rule's default max_label_values
    assert len(statuses) <= max_values + 1, len(statuses)
    assert "other" in statuses
    assert sum(s.value for s in samples) == n, "every line counted, under its own label or other"
    series = len(samples)
    print(f"\n{n} distinct statuses -> {series} unknown_status_total series")
    assert d.stop() == 0


# --- 100k distinct request_ids: bounded state ----------------------------------------------------

MAX_OPEN = 1000


def flood(engine: Engine, start: int, stop: int) -> None:
    """Per request_id: its webhook body, an in_progress webhook (a pair start), the background
    task's start and an unknown status from a worker, and for every other one its end."""
    for i in range(start, stop):
        rid = f"flood-{i:07d}"
        t = T0 + i * 1000
        pid = 10_000 + i  # every request on a new worker: (host, pid) slots pile up too
        for text in (
            f"[WEBHOOK] Получен webhook от FAL AI: {{'request_id': '{rid}', 'status': 'OK'}}",
            f"[WEBHOOK] Обработка статуса 'in_progress' для request_id: {rid}, тип: portrait",
            f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: OK",
            "[WEBHOOK BACKGROUND] Неизвестный статус: OK",
        ):
            engine.observe(Entry(t, PREFIX + text, API_UNIT, pid))
        if i % 2:
            engine.observe(Entry(t, PREFIX + f"[TRAINING COMPLETED] {rid}: ok", API_UNIT, pid))
        if i % 1000 == 999:  # a batch commit: the store takes the changed rows
            for rule in engine.rules:
                if isinstance(rule, PairRule):
                    rule.take_changes()


def flood_engine() -> tuple[Engine, PairRule]:
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    cfg = load_config_text(text.replace("max_open: 100000", f"max_open: {MAX_OPEN}"), "f", {})
    engine = Engine(build_rules(cfg), cfg.journal.max_message_bytes)
    engine.collect_ended = False
    (pair,) = [r for r in engine.rules if isinstance(r, PairRule)]
    return engine, pair


def test_100k_distinct_request_ids_keep_every_structure_within_its_limit() -> None:
    engine, pair = flood_engine()
    flood(engine, 0, 100_000)
    assert len(pair.open) <= MAX_OPEN
    assert len(pair.closed) <= MAX_OPEN
    assert len(engine.keyed) <= _KEYED_LIMIT
    assert len(engine.recall.snapshot()) <= _RECALL_LIMIT
    assert pair.counters()["evicted"] > 0


def test_distinct_request_ids_past_the_limits_keep_memory_flat() -> None:
    engine, _pair = flood_engine()
    # traced from the start: objects that replace cached ones must count as freed, too
    tracemalloc.start()
    try:
        flood(engine, 0, 20_000)  # past every limit (max_open 1000, 10k keyed and recall slots)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        flood(engine, 20_000, 40_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    print(f"\n20k more distinct request_ids: +{grown / 1e6:.1f} MB")
    assert grown < 1_000_000, f"+{grown / 1e6:.1f} MB for 20k more request_ids past every limit"

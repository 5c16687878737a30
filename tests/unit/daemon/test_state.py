"""The state store: a run split anywhere by a restart gives exactly the events of one run; a
batch the file refuses is kept and written again exactly as it was."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from monitor.config.schema import load_config
from monitor.core.engine import Engine, engine_for
from monitor.core.model import Entry, Event
from monitor.daemon.state import (
    EVENTS_KEPT,
    Position,
    StateError,
    StateStore,
    StateWriteError,
    WriteRetry,
)
from tests.helpers import T0, S

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


def entries(case: str) -> list[Entry]:
    out = []
    for line in (GOLDEN / case / "input.jsonl").read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        if raw.get("unit", "aisha-api.service") == "aisha-api.service":
            out.append(
                Entry(
                    T0 + int(raw["t"] * S),
                    raw["msg"],
                    "aisha-api.service",
                    raw.get("pid", 100),
                    raw.get("priority", 6),
                )
            )
    return out


def fresh_engine() -> Engine:
    cfg = load_config(None, env={})
    return engine_for(cfg)


def run(engine: Engine, items: list[Entry]) -> list[Event]:
    out: list[Event] = []
    for e in items:
        due, produced = engine.observe(e)
        out += due + produced
    return out


@pytest.mark.parametrize("case", ["seed_incident", "two_workers", "lookalikes"])
def test_restart_at_every_point_gives_the_same_events(case: str, tmp_path: Path) -> None:
    items = entries(case)
    end_us = items[-1].realtime_us + 24 * 3600 * S
    whole = fresh_engine()
    expected = run(whole, items) + whole.tick(end_us)
    for split in range(len(items) + 1):
        store = StateStore(tmp_path / f"s{split}")
        first = fresh_engine()
        got = run(first, items[:split])
        store.commit(Position(f"c{split}", 0, {}), first, got)
        store.close()
        store = StateStore(tmp_path / f"s{split}")
        second = fresh_engine()
        store.restore(second)
        got += run(second, items[split:]) + second.tick(end_us)
        assert [e.to_json() for e in got] == [e.to_json() for e in expected], f"split at {split}"
        assert second.counters() == whole.counters()
        assert store.position().cursor == f"c{split}"
        store.close()


def test_events_are_kept_in_order_and_bounded(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    eng = fresh_engine()
    events = run(eng, entries("two_workers"))
    store.commit(Position("c", 1, {"aisha-api.service": 9}), eng, events)
    got = store.recent_events(3)
    assert [e["key"] for e in got] == [e.key for e in events[-3:]]
    assert store.position().unit_entries == {"aisha-api.service": 9}


def test_a_renamed_rule_starts_empty_and_the_old_state_is_dropped(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    eng = fresh_engine()
    run(eng, entries("two_workers"))
    store.commit(Position("c", 1, {}), eng, [])
    store.drop_rules_except({"unknown_status"})
    restored = fresh_engine()
    store.restore(restored)
    counters = restored.counters()
    assert counters["unknown_status"]["matches"] == 3
    assert counters["training_stalled"]["opened"] == 0


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError) as info:
        StateStore(tmp_path)
    assert "corrupt" in str(info.value) and "mv " in str(info.value)


def test_state_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    StateStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.sqlite")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="schema 99"):
        StateStore(tmp_path)


def test_a_refused_commit_is_kept_and_written_again_as_it_was(tmp_path: Path) -> None:
    items = entries("seed_incident")
    end_us = items[-1].realtime_us + 24 * 3600 * S
    whole = fresh_engine()
    expected = run(whole, items) + whole.tick(end_us)
    split, later = len(items) // 3, 2 * len(items) // 3
    store = StateStore(tmp_path)
    eng = fresh_engine()
    got = run(eng, items[:split])
    store.commit(Position("c1", 1, {"u": split}), eng, got)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the file cannot grow: SQLITE_FULL
    batch = run(eng, items[split:later])
    padding = [*batch] * 2000  # more than the free pages hold
    ops = [("INSERT INTO meta (key, value) VALUES (?, ?)", ("probe", "1"))]
    with pytest.raises(StateWriteError, match="full"):
        store.commit(Position("c2", 2, {"u": later}), eng, batch + padding, ops=ops)
    assert store.unwritten
    assert store.position().cursor == "c1", "rolled back"
    with pytest.raises(RuntimeError):
        store.commit(Position("c3", 3, {}), eng, [])
    run(eng, items[later:])  # the engine moves on; the kept batch must not
    store.db.execute("PRAGMA max_page_count = 1073741823")
    store.retry()
    assert not store.unwritten
    assert store.position().cursor == "c2"
    assert store.meta("probe") == 1, "the outbox statements once (INSERT would fail twice)"
    kept = store.recent_events(EVENTS_KEPT)
    assert len(kept) == min(EVENTS_KEPT, len(got) + len(batch) * 2001)
    store.close()
    store = StateStore(tmp_path)
    resumed = fresh_engine()
    store.restore(resumed)
    got += batch + run(resumed, items[later:]) + resumed.tick(end_us)
    assert [e.to_json() for e in got] == [e.to_json() for e in expected]
    assert resumed.counters() == whole.counters()
    store.close()


def test_a_refused_write_is_retried_with_a_backoff_and_logged_once_a_minute() -> None:
    retry = WriteRetry(lambda: None, since=100.0)
    delays, logged = [], []
    for now in (100.0, 101.0, 103.0, 107.0, 115.0, 131.0, 161.0, 191.0):
        logged.append(retry.failed(now))
        delays.append(retry.retry_at - now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert logged == [True, False, False, False, False, False, True, False]
    assert retry.failures == 8

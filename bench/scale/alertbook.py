"""The cost of the daemon's alert book per committed batch, with many active keys."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.scale.configs import REPO


def alert_book_cost(sizes: tuple[int, ...] = (10, 100, 1000, 10_000)) -> list[dict[str, Any]]:
    """What the daemon does with its alert book on every committed batch (monitor/daemon/loop.py
    step(): book.expire, the JSON snapshot written into the state's meta table, book.firing and
    book.sendable for the alerter), timed with N active unknown-status keys (request_ids). An
    unknown status pages for one_off_ttl (1h), so N is the distinct request_ids with an unknown
    status in the last hour."""
    import sqlite3

    from monitor.config.schema import load_config
    from monitor.daemon.alerts import AlertBook

    config = load_config(REPO / "config.yaml")
    out = []
    for n in sizes:
        book = AlertBook(config)
        now = time.time_ns() // 1000
        held = _fill(book, n, now)
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(Path(tmp) / "s.sqlite", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            unchanged, size = _book_batches(book, db, now, new_keys=False)
            changed, _ = _book_batches(book, db, now, new_keys=True)
            db.close()
        out.append(
            {
                "keys": n,
                "ms_per_batch": 1000 * statistics.median(unchanged),
                "ms_per_batch_one_new_key": 1000 * statistics.median(changed),
                "json_bytes": size,
                "bytes_per_key": held / n,
            }
        )
    return out


def _fill(book: Any, n: int, now: int) -> int:
    """n unknown statuses of distinct request_ids into the book, 1 ms apart; the bytes it
    keeps for them (the events are gone once applied)."""
    import tracemalloc

    from monitor.core.model import Event, EventKind, Severity

    tracemalloc.start()
    book.apply(
        [
            Event(now - 1000 * i, "unknown_status", EventKind.UNKNOWN_VALUE,
                  Severity.CRITICAL, f"{i:08x}-c830-400c-a066-b8cf74cf1e9f",
                  {"status": "completed_x", "normalized": ""},
                  f"unknown status 'completed_x' for request_id {i:08x}-c830-400c-a066-"
                  "b8cf74cf1e9f: the service dropped it; it matches no known status")
            for i in range(n)
        ],
        now,
    )  # fmt: skip
    held = tracemalloc.get_traced_memory()[0]  # the events are gone: what the book keeps
    tracemalloc.stop()
    return held


def _book_batches(book: Any, db: Any, now: int, *, new_keys: bool) -> tuple[list[float], int]:
    """20 committed batches as the daemon does them (monitor/daemon/loop.py step()): expire, the
    book's JSON into the state only when it changed since the last commit, firing and sendable;
    with `new_keys`, every batch first brings one more unknown status (a new key)."""
    from monitor.core.model import Event, EventKind, Severity

    times, size = [], 0
    for i in range(20):
        t = time.perf_counter()
        if new_keys:
            rid = f"new-{i}-{now}"
            book.apply(
                [Event(now, "unknown_status", EventKind.UNKNOWN_VALUE, Severity.CRITICAL, rid,
                       {"status": "completed_x", "normalized": ""}, f"unknown status for {rid}")],
                now,
            )  # fmt: skip
        book.expire(now)
        if book.unsaved():
            version = book.version
            text = json.dumps(book.snapshot(), ensure_ascii=False)
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('alerts', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (text,),
            )
            db.execute("COMMIT")
            book.mark_saved(version)
            size = len(text.encode())
        book.firing()
        book.sendable()
        times.append(time.perf_counter() - t)
    return times, size

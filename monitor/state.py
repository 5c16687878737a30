"""The state store: SQLite in WAL mode. The journal cursor, every rule's state, open pairs and the
events a batch produced are committed in ONE transaction, so a crash at any moment resumes from
a cursor that matches the state exactly: no entry lost, none processed twice."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.engine import Engine
from monitor.model import Event
from rules.base import KeyedRule

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATE_FILE = "state.sqlite"
EVENTS_KEPT = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT PRIMARY KEY, type TEXT NOT NULL, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    rule TEXT NOT NULL, key TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS closed (
    rule TEXT NOT NULL, key TEXT NOT NULL, closed_us INTEGER NOT NULL, PRIMARY KEY (rule, key));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_us INTEGER NOT NULL, event TEXT NOT NULL);
"""


class StateError(Exception):
    """The state file cannot be used. The message says what to do; the daemon does not start
    over on its own, because that would lose open trainings and repeat handlers."""


@dataclass(slots=True)
class Position:
    cursor: str | None = None
    realtime_us: int = 0
    unit_entries: dict[str, int] = field(default_factory=dict)
    host_entries: dict[str, int] = field(default_factory=dict)  # with journal.host_label


def recovery(path: Path) -> str:
    return (
        f"move it aside to start afresh from the journal's tail (open trainings are forgotten): "
        f"mv {path} {path}.bad && rm -f {path}-wal {path}-shm"
    )


class StateStore:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / STATE_FILE
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a process crash
            check = self._db.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(
                    f"integrity check: {check[0] if check else 'no answer'}"
                )
            self._db.executescript(_SCHEMA)
            version = self._meta("schema_version")
            if version is None:
                self._set_meta("schema_version", SCHEMA_VERSION)
            elif int(version) != SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has schema {version}, this version needs {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as e:
            raise StateError(
                f"state file {self.path} is unreadable or corrupt ({e}); {recovery(self.path)}"
            ) from e
        except OSError as e:
            raise StateError(f"cannot use the state directory {directory}: {e}") from e

    # --- meta ----------------------------------------------------------------------------------

    def _meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )

    # --- load ----------------------------------------------------------------------------------

    def position(self) -> Position:
        return Position(
            self._meta("cursor"),
            int(self._meta("cursor_realtime_us") or 0),
            dict(self._meta("unit_entries") or {}),
            dict(self._meta("host_entries") or {}),
        )

    def restore(self, engine: Engine) -> None:
        """Give `engine` (fresh, built from the current config) the state stored for its rules.
        A rule whose name or type changed starts empty."""
        engine.restore(self._meta("engine") or {})
        saved = {
            rule: (rtype, state)
            for rule, rtype, state in self._db.execute("SELECT rule, type, state FROM rule_state")
        }
        for rule in engine.rules:
            name = rule.base.name
            stored = saved.get(name)
            if stored is None or stored[0] != rule.base.type:
                continue
            rule.restore(json.loads(stored[1]))
            if isinstance(rule, KeyedRule):
                open_rows = {
                    k: json.loads(r)
                    for k, r in self._db.execute(
                        "SELECT key, row FROM pairs WHERE rule = ? ORDER BY rowid", (name,)
                    )
                }
                closed = dict(
                    self._db.execute(
                        "SELECT key, closed_us FROM closed WHERE rule = ? ORDER BY rowid", (name,)
                    ).fetchall()
                )
                rule.load_rows(open_rows, closed)

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT event FROM events ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [json.loads(r[0]) for r in reversed(rows)]

    # --- commit --------------------------------------------------------------------------------

    def meta(self, key: str) -> Any:
        """A JSON value the daemon keeps beside the engine's (e.g. the alert book)."""
        return self._meta(key)

    def commit(
        self,
        position: Position,
        engine: Engine,
        events: list[Event],
        extra: dict[str, Any] | None = None,
        writers: tuple[Callable[[sqlite3.Connection], None], ...] = (),
    ) -> None:
        """One transaction: the position reached, every rule's state, the batch's events, and
        `extra` meta values (the alert book)."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            self._set_meta("cursor", position.cursor)
            self._set_meta("cursor_realtime_us", position.realtime_us)
            self._set_meta("unit_entries", position.unit_entries)
            self._set_meta("host_entries", position.host_entries)
            self._set_meta("engine", engine.snapshot())
            for key, value in (extra or {}).items():
                self._set_meta(key, value)
            for write in writers:
                write(db)
            db.executemany(
                "INSERT INTO rule_state (rule, type, state) VALUES (?, ?, ?) "
                "ON CONFLICT(rule) DO UPDATE SET type = excluded.type, state = excluded.state",
                [
                    (r.base.name, r.base.type, json.dumps(r.snapshot(), ensure_ascii=False))
                    for r in engine.rules
                ],
            )
            for rule in engine.rules:
                if isinstance(rule, KeyedRule):
                    self._write_rows(rule.base.name, rule)
            if events:
                db.executemany(
                    "INSERT INTO events (time_us, event) VALUES (?, ?)",
                    [(e.time_us, json.dumps(e.to_json(), ensure_ascii=False)) for e in events],
                )
                db.execute(
                    "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                    (EVENTS_KEPT,),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the outbox (main thread only)."""
        return self._db

    def write(self, writer: Callable[[sqlite3.Connection], None]) -> None:
        """One small transaction of its own (e.g. marking jobs running before they run)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            writer(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write_rows(self, name: str, rule: KeyedRule) -> None:
        open_rows, closed = rule.take_changes()
        db = self._db
        db.executemany(
            "INSERT INTO pairs (rule, key, row) VALUES (?, ?, ?) "
            "ON CONFLICT(rule, key) DO UPDATE SET row = excluded.row",
            [
                (name, k, json.dumps(r, ensure_ascii=False))
                for k, r in open_rows.items()
                if r is not None
            ],
        )
        db.executemany(
            "DELETE FROM pairs WHERE rule = ? AND key = ?",
            [(name, k) for k, r in open_rows.items() if r is None],
        )
        db.executemany(
            "INSERT INTO closed (rule, key, closed_us) VALUES (?, ?, ?) "
            "ON CONFLICT(rule, key) DO UPDATE SET closed_us = excluded.closed_us",
            [(name, k, t) for k, t in closed.items() if t is not None],
        )
        db.executemany(
            "DELETE FROM closed WHERE rule = ? AND key = ?",
            [(name, k) for k, t in closed.items() if t is None],
        )

    def drop_rules_except(self, names: set[str]) -> None:
        """Forget the state of rules no longer in the config (after a reload or restart)."""
        for table in ("rule_state", "pairs", "closed"):
            rows = self._db.execute(f"SELECT DISTINCT rule FROM {table}").fetchall()  # noqa: S608 - fixed names
            for (rule,) in rows:
                if rule not in names:
                    self._db.execute(f"DELETE FROM {table} WHERE rule = ?", (rule,))  # noqa: S608

    def close(self) -> None:
        self._db.close()

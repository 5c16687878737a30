"""The state store: SQLite in WAL mode. The journal cursor, every rule's state, open pairs and the
events a batch produced are committed in ONE transaction, so a crash at any moment resumes from
a cursor that matches the state exactly: no entry lost, none processed twice. A batch the file
refuses (disk full, read-only) is kept, serialized, and written again as it was by `retry()`."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.core.engine import Engine
from monitor.core.model import Event
from rules.base import KeyedRule

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATE_FILE = "state.sqlite"
EVENTS_KEPT = 10_000
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0  # a refused write is retried after 1 s, 2 s, … 30 s
LOG_EVERY_S = 60.0  # a write still refused is logged again at most this often

Statement = tuple[str, tuple[Any, ...]]
_Step = tuple[str, tuple[tuple[Any, ...], ...]]  # (sql, rows) for executemany
# primary result codes that mean "cannot write here now", not "the file is damaged"
_WRITE_CODES = frozenset(
    {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR,
     sqlite3.SQLITE_FULL}
)  # fmt: skip
_ACCESS_CODES = _WRITE_CODES | {sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN}
_UPSERT_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)

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


class StateWriteError(Exception):
    """A batch could not be written (disk full, read-only, I/O error, locked). The store keeps
    the batch: `retry()` writes exactly it again; nothing else may be written before."""


@dataclass(frozen=True, slots=True)
class _Batch:
    """One transaction, prepared: every value already serialized, so a retry writes the very
    same rows even though the engine and the outbox moved on from what they hand out once."""

    steps: tuple[_Step, ...]


@dataclass(slots=True)
class WriteRetry:
    """A batch the state file refused, retried with a backoff; `then` is what its commit lets
    happen (publish, hand out, dispatch). Logged once, then at most every LOG_EVERY_S."""

    then: Callable[[], None]
    since: float
    failures: int = 0
    retry_at: float = 0.0
    logged_at: float | None = None

    def failed(self, now: float) -> bool:
        """Count a refused attempt and schedule the next; True when it should be logged."""
        self.failures += 1
        self.retry_at = now + min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(self.failures - 1, 10))
        if self.logged_at is None or now - self.logged_at >= LOG_EVERY_S:
            self.logged_at = now
            return True
        return False


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


_FIX_ACCESS = (
    "fix the mount (remount it read-write once the file system is checked) or the permissions, "
    "then start again; the state file is kept as it is"
)
_FIX_OTHER = (
    "check the free space and I/O errors of its file system, and that no other process holds "
    "the file, then start again; the state file is kept as it is"
)


def _code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)  # absent on errors raised by this module
    return None if code is None else int(code) & 0xFF


def not_writable(directory: Path, path: Path) -> str | None:
    """Why SQLite cannot write the state here (read-only mount, permissions), or None."""
    for p in (directory, path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if p.exists() and not os.access(p, os.W_OK):
            where = "" if p == directory else f"{p}: "
            if os.statvfs(p).f_flag & os.ST_RDONLY:
                return f"{where}read-only file system"
            return f"{where}not writable by uid {os.geteuid()}"
    return None


def _unusable(directory: Path, path: Path, e: sqlite3.Error) -> str:
    """The start-up message: only real damage gets the advice to move the file aside."""
    why = not_writable(directory, path)
    if why is None and _code(e) == sqlite3.SQLITE_READONLY:  # e.g. a security module said no
        why = f"SQLite says {e}"
    if why is not None:
        return f"state directory {directory} is not writable ({why}); {_FIX_ACCESS}"
    if _code(e) in _ACCESS_CODES:
        return f"cannot use the state file {path} ({e}); {_FIX_OTHER}"
    return f"state file {path} is unreadable or corrupt ({e}); {recovery(path)}"


class StateStore:
    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / STATE_FILE
        self._unwritten: _Batch | None = None
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            why = not_writable(Path(directory), self.path)
            if why is not None:  # SQLite would say "unable to open database file" or less
                raise StateError(
                    f"state directory {directory} is not writable ({why}); {_FIX_ACCESS}"
                )
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
            raise StateError(_unusable(Path(directory), self.path, e)) from e
        except OSError as e:
            raise StateError(
                f"cannot use the state directory {directory}: {e}; {_FIX_ACCESS}"
            ) from e

    # --- meta ----------------------------------------------------------------------------------

    def _meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self._db.execute(_UPSERT_META, (key, json.dumps(value, ensure_ascii=False)))

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
            keyed = rule.keyed()
            if keyed is not None:
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
                keyed.load_rows(open_rows, closed)

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
        ops: Sequence[Statement] = (),
    ) -> None:
        """One transaction: the position reached, every rule's state, the batch's events,
        `extra` meta values (the alert book) and `ops` (the outbox's statements). Raises
        StateWriteError when the file refuses it, keeping the batch for `retry()`."""
        meta = {
            "cursor": position.cursor,
            "cursor_realtime_us": position.realtime_us,
            "unit_entries": position.unit_entries,
            "host_entries": position.host_entries,
            "engine": engine.snapshot(),
            **(extra or {}),
        }
        steps: list[_Step] = [(_UPSERT_META, tuple((k, _dumps(v)) for k, v in meta.items()))]
        steps += [(sql, (args,)) for sql, args in ops]
        steps.append(
            (
                "INSERT INTO rule_state (rule, type, state) VALUES (?, ?, ?) "
                "ON CONFLICT(rule) DO UPDATE SET type = excluded.type, state = excluded.state",
                tuple((r.base.name, r.base.type, _dumps(r.snapshot())) for r in engine.rules),
            )
        )
        for rule in engine.rules:
            keyed = rule.keyed()
            if keyed is not None:
                steps += _row_steps(rule.base.name, keyed)
        if events:
            steps.append(
                (
                    "INSERT INTO events (time_us, event) VALUES (?, ?)",
                    tuple((e.time_us, _dumps(e.to_json())) for e in events),
                )
            )
            steps.append(
                (
                    "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?",
                    ((EVENTS_KEPT,),),
                )
            )
        self._write(_Batch(tuple(steps)))

    def write(self, ops: Sequence[Statement]) -> None:
        """One small transaction of its own (e.g. marking jobs running before they run); a
        refusal raises StateWriteError and keeps it for `retry()`, like `commit`."""
        self._write(_Batch(tuple((sql, (args,)) for sql, args in ops)))

    @property
    def unwritten(self) -> bool:
        """A refused batch waits for `retry()`."""
        return self._unwritten is not None

    def retry(self) -> None:
        """Write the refused batch again, exactly as it was; StateWriteError if still refused."""
        if self._unwritten is not None:
            self._write(self._unwritten)

    def _write(self, batch: _Batch) -> None:
        if self._unwritten is not None and batch is not self._unwritten:
            raise RuntimeError("a refused batch must be written before the next one")
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            for sql, rows in batch.steps:
                db.executemany(sql, rows)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            if _code(e) not in _WRITE_CODES:
                raise
            self._unwritten = batch
            raise StateWriteError(f"cannot write the state file {self.path} ({e})") from e
        except BaseException:
            self._rollback()
            raise
        self._unwritten = None

    def _rollback(self) -> None:
        # SQLite may have rolled back already (SQLITE_FULL at COMMIT); a failing ROLLBACK must
        # not hide the error that caused it
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the outbox (main thread only)."""
        return self._db

    def adopt(self, engine: Engine) -> None:
        """`restore` the engine of a (new) config and forget the rules it no longer has: what a
        start and an applied reload both do."""
        self.restore(engine)
        self.drop_rules_except({r.base.name for r in engine.rules})

    def drop_rules_except(self, names: set[str]) -> None:
        """Forget the state of rules no longer in the config (after a reload or restart)."""
        for table in ("rule_state", "pairs", "closed"):
            rows = self._db.execute(f"SELECT DISTINCT rule FROM {table}").fetchall()  # noqa: S608 - fixed names
            for (rule,) in rows:
                if rule not in names:
                    self._db.execute(f"DELETE FROM {table} WHERE rule = ?", (rule,))  # noqa: S608

    def close(self) -> None:
        self._db.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _row_steps(name: str, rule: KeyedRule) -> list[_Step]:
    """The changed open and closed rows of a keyed rule (taken once: kept in the batch)."""
    open_rows, closed = rule.take_changes()
    return [
        (
            "INSERT INTO pairs (rule, key, row) VALUES (?, ?, ?) "
            "ON CONFLICT(rule, key) DO UPDATE SET row = excluded.row",
            tuple((name, k, _dumps(r)) for k, r in open_rows.items() if r is not None),
        ),
        (
            "DELETE FROM pairs WHERE rule = ? AND key = ?",
            tuple((name, k) for k, r in open_rows.items() if r is None),
        ),
        (
            "INSERT INTO closed (rule, key, closed_us) VALUES (?, ?, ?) "
            "ON CONFLICT(rule, key) DO UPDATE SET closed_us = excluded.closed_us",
            tuple((name, k, t) for k, t in closed.items() if t is not None),
        ),
        (
            "DELETE FROM closed WHERE rule = ? AND key = ?",
            tuple((name, k) for k, t in closed.items() if t is None),
        ),
    ]

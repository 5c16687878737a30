"""The journal source, and sd_notify: the only module that imports `systemd`.

Entries are read through systemd-python's low-level `_Reader` calls (`_next`, `_get`,
`_get_realtime`, `_get_cursor`): the public `Reader.get_next()` converts every field of every
entry and is several times slower. tests/integration/test_journal.py pins the behaviour of these
private calls, so an upgrade that changes them fails loudly.
"""

from __future__ import annotations

import codecs
import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from systemd import daemon, journal

from monitor.core.model import Entry, Gate
from monitor.journal.watch import Followed

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_ERRORS = 100
SKIP_RUN = 4096  # `gated` reports lines it turned away at least this often
_PRIORITY = {str(p).encode(): p for p in range(8)}


@dataclass(frozen=True, slots=True)
class Fields:
    """Which optional fields to read per entry (each costs a lookup on the hot path).

    `pid` and `hostname` are read eagerly when True; when False, entries come with pid -1 and
    `JournalSource.fill` reads both on demand while the reader still stands on the entry."""

    unit: bool = True
    pid: bool = True
    priority: bool = True
    hostname: bool = False


class JournalError(Exception):
    pass


class JournalSource:
    """Entries of the configured units (OR) and identifiers (OR), from the system journal, a
    directory, or files."""

    def __init__(
        self,
        *,
        units: tuple[str, ...] = ("aisha-api.service",),
        identifiers: tuple[str, ...] = (),
        directory: str | None = None,
        files: tuple[str, ...] = (),
        max_message_bytes: int = 64 * 1024,
        fields: Fields = Fields(),
        max_priority: int | None = None,
    ) -> None:
        # a directory can vanish under the reader: taken before it opens (journal/watch.py)
        self.followed = Followed.now(directory) if directory and not files else None
        try:
            if files:
                self._reader = journal.Reader(files=list(files))
            elif directory:
                self._reader = journal.Reader(path=directory)
            else:
                self._reader = journal.Reader()
        except (OSError, ValueError) as e:
            where = ", ".join(files) or directory or "the system journal"
            raise JournalError(f"cannot open {where}: {e}") from e
        self._max = max_message_bytes
        self._reader.data_threshold = max_message_bytes
        for unit in units:
            self._reader.add_match(_SYSTEMD_UNIT=unit)
        if units and identifiers:
            self._reader.add_disjunction()
        for ident in identifiers:
            self._reader.add_match(SYSLOG_IDENTIFIER=ident)
        if max_priority is not None:  # (units OR identifiers) AND priority <= max_priority
            self._reader.add_conjunction()
            for p in range(max_priority + 1):
                self._reader.add_match(PRIORITY=str(p))
        # with one unit and no identifiers every entry has that unit: no need to read it
        self._fixed_unit = units[0] if len(units) == 1 and not identifiers else None
        self._fields = fields
        self.read_errors = 0
        self.truncated = 0

    @property
    def fixed_unit(self) -> str | None:
        """The one unit every entry read has, when the source follows one unit only."""
        return self._fixed_unit

    # --- positioning -----------------------------------------------------------------------

    def seek_head(self) -> None:
        self._reader.seek_head()

    def seek_tail(self) -> None:
        """Position after the last entry: the next read returns only new entries."""
        self._reader.seek_tail()
        if not self._reader._previous():
            # nothing matches yet: after a failed _previous() the next _next() would skip the
            # first entry written later, so stand at the head instead (the same place, here)
            self._reader.seek_head()

    def seek_realtime_us(self, us: int) -> None:
        self._reader.seek_realtime(us / 1_000_000)

    def seek_cursor(self, cursor: str) -> bool:
        """Position after the entry at `cursor`; False when that entry no longer exists."""
        try:
            self._reader.seek_cursor(cursor)
            if not self._reader._next():
                return False
            return bool(self._reader.test_cursor(cursor))
        except (OSError, ValueError):  # ValueError: a cursor systemd cannot even parse
            return False

    def cursor(self) -> str:
        """The cursor of the entry read last."""
        return str(self._reader._get_cursor())

    # --- reading ---------------------------------------------------------------------------

    def _next(self) -> bool:
        """Advance; a read error skips the entry (counted) rather than ending the pass."""
        for _ in range(MAX_CONSECUTIVE_ERRORS):
            try:
                return bool(self._reader._next())
            except OSError as e:
                self.read_errors += 1
                log.warning("journal read error, skipping: %s", e)
        raise JournalError(f"{MAX_CONSECUTIVE_ERRORS} read errors in a row; giving up on this pass")

    def __iter__(self) -> Iterator[Entry]:
        """Entries from the current position to the end of what is written now.

        The hot path of catch-up: kept flat on purpose (no per-entry helper calls)."""
        r = self._reader
        get, next_, realtime, new = r._get, r._next, r._get_realtime, tuple.__new__
        fixed_unit, fields, limit = self._fixed_unit, self._fields, self._max
        read_unit = fixed_unit is None and fields.unit
        read_pid, read_priority, read_host = fields.pid, fields.priority, fields.hostname
        unit = fixed_unit or ""
        while True:
            try:
                if not next_():
                    return
            except OSError:
                if not self._next():  # counts and retries
                    return
            try:
                raw = get("MESSAGE")
            except KeyError:
                raw = b""
            except OSError as e:
                self.read_errors += 1
                log.warning("cannot read an entry's MESSAGE, skipping it: %s", e)
                continue
            try:  # the common case inline; a long or undecodable message goes to _decode
                message = raw.decode() if len(raw) <= limit else self._decode(raw, limit)
            except UnicodeDecodeError:
                message = self._decode(raw, limit)
            priority = 6
            if read_priority:
                try:  # noqa: SIM105 - contextlib.suppress would cost a context manager per entry
                    priority = _PRIORITY.get(get("PRIORITY"), 6)
                except (KeyError, OSError):
                    pass
            # tuple.__new__ skips NamedTuple's Python-level __new__: this runs once per entry
            yield new(Entry, (
                realtime(),
                message,
                _text(get, "_SYSTEMD_UNIT") if read_unit else unit,
                _int(get, "_PID", 0) if read_pid else -1,
                priority,
                _text(get, "_HOSTNAME") if read_host else "",
            ))  # fmt: skip

    def times(self) -> set[int]:
        """The times of the entries from the current position on (with `max_priority`: finding
        the few urgent entries through the journal's index costs less than reading PRIORITY of
        every entry)."""
        found = set()
        while self._next():
            found.add(int(self._reader._get_realtime()))
        return found

    def scan(
        self, gate: Gate, until_us: int | None = None, urgent: set[int] | None = None
    ) -> list[tuple[Any, ...]]:
        """`gated` to the end, for another process to evaluate: a run of lines the gate turns
        away as (how many, time of the last), a line it lets through as the fields of an Entry
        plus its cursor. The catch-up of a backlog: only the lines that reach a rule are
        decoded and sent. `urgent`: the times of the entries at the gate's priority or more
        urgent (`times`): PRIORITY is read only there."""
        cursor = self._reader._get_cursor
        out: list[tuple[Any, ...]] = []
        for skipped, last_us, entry in self.gated(gate, until_us, urgent):
            if skipped:
                out.append((skipped, last_us))
            if entry is not None:
                out.append((*entry, cursor()))
        return out

    def gated(
        self, gate: Gate, until_us: int | None = None, urgent: set[int] | None = None
    ) -> Iterator[tuple[int, int, Entry | None]]:
        """The entries from the current position to the end (or `until_us`), as (n, t, entry):
        `n` lines the gate turned away (the last at `t`), then `entry`, which it let through, or
        None (at the end, or after SKIP_RUN lines). The reader stands on the last line counted,
        so a consumer may stop after any item and resume from `cursor()`; lines that are not
        let through are neither decoded nor built into Entries."""
        r = self._reader
        get, next_, realtime, new = r._get, r._next, r._get_realtime, tuple.__new__
        lits, max_priority, quiet = gate.literals, gate.priority, gate.quiet_us
        fixed_unit, limit = self._fixed_unit, self._max
        read_pid, read_host = self._fields.pid, self._fields.hostname
        skipped, prev = 0, -quiet - 1
        while True:
            try:
                if not next_():
                    break
            except OSError:
                if not self._next():  # counts and retries
                    break
            try:
                t = realtime()
                raw = get("MESSAGE")
            except KeyError:
                raw = b""
            except OSError as e:
                self.read_errors += 1
                log.warning("cannot read an entry's MESSAGE, skipping it: %s", e)
                continue
            priority = 6
            if max_priority >= 0 and (urgent is None or t in urgent):
                try:  # noqa: SIM105 - contextlib.suppress would cost a context manager per entry
                    priority = _PRIORITY.get(get("PRIORITY"), 6)
                except (KeyError, OSError):
                    pass
            if until_us is not None and t > until_us:
                break
            # a line after a silence or a clock step back goes to the engine whatever it says
            if priority > max_priority and 0 <= t - prev <= quiet:
                for lit in lits:
                    if lit in raw:
                        break
                else:
                    skipped += 1
                    prev = t
                    if skipped >= SKIP_RUN:
                        yield skipped, t, None
                        skipped = 0
                    continue
            yield skipped, prev, new(Entry, (
                t,
                self._decode(raw, limit),
                fixed_unit or _text(get, "_SYSTEMD_UNIT"),
                _int(get, "_PID", 0) if read_pid else -1,
                priority,
                _text(get, "_HOSTNAME") if read_host else "",
            ))  # fmt: skip
            skipped, prev = 0, t
        if skipped:
            yield skipped, prev, None

    def _decode(self, raw: bytes, limit: int) -> str:
        if len(raw) > limit:
            self.truncated += 1
            # cut at the limit, dropping a character the cut split in two
            return codecs.getincrementaldecoder("utf-8")("replace").decode(raw[:limit])
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return raw.decode("utf-8", "replace")

    def fill(self, entry: Entry) -> Entry:
        """`entry` with its pid and hostname, read from the entry the reader stands on: call it
        only for the entry just yielded, before the next one is read."""
        get = self._reader._get
        return entry._replace(pid=_int(get, "_PID", 0), hostname=_text(get, "_HOSTNAME"))

    def wait(self, timeout_s: float) -> int:
        """Block until the journal changes or `timeout_s` passes (NOP, APPEND or INVALIDATE)."""
        return int(self._reader.wait(timeout_s))

    def close(self) -> None:
        self._reader.close()


def file_spans(directory: str) -> list[tuple[str, int, int]] | None:
    """The journal files of `directory` as (path, first time, last time), oldest first, when
    they follow each other in time (one journal, rotated); None when their times overlap (several
    machines or users in one directory) or a file cannot be read: then only a reader of the
    whole directory knows the order."""
    spans = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return None
    for name in names:
        if not name.endswith((".journal", ".journal~")):
            continue
        path = os.path.join(directory, name)
        try:
            reader = journal.Reader(files=[path])
            try:
                if not reader._next():
                    continue
                first = int(reader._get_realtime())
                reader.seek_tail()
                if not reader._previous():
                    return None
                spans.append((path, first, int(reader._get_realtime())))
            finally:
                reader.close()
        except (OSError, ValueError):
            return None
    spans.sort(key=lambda s: s[1])
    if any(a[2] > b[1] for a, b in itertools.pairwise(spans)):
        return None
    return spans


def _text(get: object, field: str) -> str:
    try:
        return get(field).decode("utf-8", "replace")  # type: ignore[operator, no-any-return]
    except (KeyError, OSError):
        return ""


def _int(get: object, field: str, default: int) -> int:
    try:
        return int(get(field))  # type: ignore[operator]
    except (KeyError, OSError, ValueError):
        return default


def notify(state: str) -> bool:
    """Tell systemd (`Type=notify`) something: READY=1, WATCHDOG=1, STATUS=…, RELOADING=1.
    False when there is no NOTIFY_SOCKET (not started by systemd): nothing to tell."""
    try:
        return bool(daemon.notify(state))
    except OSError as e:  # a vanished socket must never stop the loop
        log.debug("sd_notify failed: %s", e)
        return False

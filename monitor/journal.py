"""The journal source, and sd_notify: the only module that imports `systemd`.

Entries are read through systemd-python's low-level `_Reader` calls (`_next`, `_get`,
`_get_realtime`, `_get_cursor`): the public `Reader.get_next()` converts every field of every
entry and is several times slower. tests/integration/test_journal.py pins the behaviour of these
private calls, so an upgrade that changes them fails loudly.
"""

from __future__ import annotations

import codecs
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from systemd import daemon, journal

from monitor.model import Entry

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_ERRORS = 100
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
    ) -> None:
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
        # with one unit and no identifiers every entry has that unit: no need to read it
        self._fixed_unit = units[0] if len(units) == 1 and not identifiers else None
        self._fields = fields
        self.read_errors = 0
        self.truncated = 0

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
            if len(raw) > limit:
                # cut at the limit, dropping a character the cut split in two
                message = codecs.getincrementaldecoder("utf-8")("replace").decode(raw[:limit])
                self.truncated += 1
            else:
                try:
                    message = raw.decode()
                except UnicodeDecodeError:
                    message = raw.decode("utf-8", "replace")
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

"""The one way every command opens the journal: the followed units and identifiers, the
directory or files (a command-line choice over the config's), and only the fields some rule
reads. The daemon, replay and the tools all come through here, so an option means the same
everywhere."""

from __future__ import annotations

import logging

from monitor.config.schema import JournalConfig
from monitor.core.engine import Engine
from monitor.core.model import format_time, us_to_datetime
from monitor.journal.reader import Fields, JournalSource

log = logging.getLogger(__name__)


def fields_for(engine: Engine) -> Fields:
    """Read only what some rule looks at."""
    # pid and hostname (a context join is per host and pid) are read on demand (engine.fill),
    # unless every event is labelled with its host
    return Fields(unit=True, pid=False, priority=engine.uses_priority, hostname=engine.host_label)


def where(
    journal: JournalConfig, directory: str | None, files: tuple[str, ...]
) -> tuple[str | None, tuple[str, ...]]:
    """(directory, files) to read: a directory or files given on the command line replace the
    config's; neither given, the config's; none at all, the system journal."""
    if directory or files:
        return directory, files
    return journal.directory, journal.files


def open_source(
    journal: JournalConfig, engine: Engine, directory: str | None, files: tuple[str, ...]
) -> JournalSource:
    directory, files = where(journal, directory, files)
    return JournalSource(
        units=journal.units,
        identifiers=journal.identifiers,
        directory=directory,
        files=files,
        max_message_bytes=journal.max_message_bytes,
        fields=fields_for(engine),
    )


def open_at(
    journal: JournalConfig,
    engine: Engine,
    directory: str | None,
    files: tuple[str, ...],
    mode: str,
    cursor: str | None,
    realtime_us: int,
    why: str | None = None,
) -> tuple[JournalSource, bool]:
    """The journal positioned as `mode` (journal.start) says: after `cursor` for resume (and
    head, once there is one), else at the head or the tail. True with it when the cursor was
    no longer in the journal and reading resumes by time, just after `realtime_us`; `why`
    says in the log why the cursor may be gone."""
    source = open_source(journal, engine, directory, files)
    engine.fill = source.fill
    if mode in ("resume", "head") and cursor:
        if source.seek_cursor(cursor):
            return source, False
        when = format_time(us_to_datetime(realtime_us))
        why = why or "vacuumed, or another boot"
        log.warning("stored cursor no longer in the journal (%s); resuming at %s", why, when)
        source.seek_realtime_us(realtime_us + 1)
        return source, True
    if mode == "head":
        source.seek_head()
    else:
        source.seek_tail()
    return source, False

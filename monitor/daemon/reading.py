"""The reading stage: one batch of journal entries through the engine. What comes out is a
`Batch` (the events, how many entries of which unit and host, the time and cursor of the
last): the commit stage writes it, the effects stage publishes it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from monitor.core.clock import Clock
from monitor.core.engine import Engine
from monitor.core.model import Event
from monitor.journal.reader import JournalSource

BATCH_ENTRIES = 5000  # entries per committed batch at most …
BATCH_SECONDS = 0.5  # … and seconds


@dataclass(slots=True)
class Batch:
    units: dict[str, int]  # entries read so far, by unit (this batch's included)
    hosts: dict[str, int]  # … and by _HOSTNAME, with journal.host_label
    events: list[Event] = field(default_factory=list)
    read: int = 0
    last_us: int = 0  # realtime of the last entry read
    cursor: str | None = None  # of the last entry read
    caught_up: bool = False  # the batch reached the end of the journal


def read_batch(
    source: JournalSource,
    engine: Engine,
    batch: Batch,
    clock: Clock,
    *,
    by_host: bool,
) -> Batch:
    """Read until the journal's end, BATCH_ENTRIES or BATCH_SECONDS, whichever comes first;
    or up to a line on which a rule's search ran out of its time budget: that line is
    committed at once, and a stream of such lines cannot hold the loop for a whole batch."""
    deadline = clock.monotonic() + BATCH_SECONDS
    gate = engine.gate()
    unit = source.fixed_unit
    if gate is not None and unit is not None and not by_host:
        _read_gated(source, engine, batch, clock, deadline)
        if batch.read:
            batch.units[unit] = batch.units.get(unit, 0) + batch.read
    else:
        _read_each(source, engine, batch, clock, deadline, by_host)
    if batch.read:
        batch.cursor = source.cursor()
    return batch


def _read_each(
    source: JournalSource,
    engine: Engine,
    batch: Batch,
    clock: Clock,
    deadline: float,
    by_host: bool,
) -> None:
    """Every entry through the engine, counted by unit (and host)."""
    events, units, hosts = batch.events, batch.units, batch.hosts
    matcher, cut = engine.matcher, engine.matcher.total
    read = 0
    for entry in source:
        due, produced = engine.observe(entry)
        events += due
        if produced:
            cursor = source.cursor()
            events += [replace(e, cursor=cursor) for e in produced]
        units[entry.unit] = units.get(entry.unit, 0) + 1
        if by_host:
            hosts[entry.hostname] = hosts.get(entry.hostname, 0) + 1
        read += 1
        batch.last_us = entry.realtime_us
        if (
            read >= BATCH_ENTRIES
            or matcher.total != cut
            or (not read & 0xFF and clock.monotonic() > deadline)
        ):
            batch.read = read
            return
    batch.read, batch.caught_up = read, True


def _read_gated(
    source: JournalSource, engine: Engine, batch: Batch, clock: Clock, deadline: float
) -> None:
    """The same for one unit: lines that no rule can match are only counted (the engine's
    gate, as replay's workers use it), not decoded or evaluated one by one."""
    gate = engine.gate()
    if gate is None:
        raise RuntimeError("_read_gated without a gate")
    events = batch.events
    matcher, cut = engine.matcher, engine.matcher.total
    read = 0
    for skipped, last_skipped_us, entry in source.gated(gate):
        if skipped:
            events += engine.skip(skipped, last_skipped_us)
            read += skipped
            batch.last_us = last_skipped_us
        if entry is not None:
            due, produced = engine.observe(entry)
            events += due
            if produced:
                cursor = source.cursor()
                events += [replace(e, cursor=cursor) for e in produced]
            read += 1
            batch.last_us = entry.realtime_us
        if read >= BATCH_ENTRIES or matcher.total != cut or clock.monotonic() > deadline:
            batch.read = read
            return
    batch.read, batch.caught_up = read, True

"""`aisha-monitor replay`: evaluate journal history offline with the real engine; act on nothing."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from monitor.config.schema import Config
from monitor.core.engine import Engine, engine_for
from monitor.core.model import Entry, Event, Gate, format_time
from monitor.journal import backlog
from monitor.journal.source import fields_for, open_source, where
from monitor.matchbudget import TimeBudget


@dataclasses.dataclass(frozen=True, slots=True)
class ReplayOptions:
    directory: str | None = None
    files: tuple[str, ...] = ()
    since_us: int | None = None
    until_us: int | None = None
    now_us: int | None = None
    output_format: str = "jsonl"  # jsonl | table


@dataclasses.dataclass(slots=True)
class ReplayResult:
    entries: int
    events: int
    seconds: float
    engine: Engine
    read_errors: int
    truncated: int
    parallel_files: int = 0  # files read by worker processes (0: one reader, in this process)


def run_replay(
    config: Config, opts: ReplayOptions, out: TextIO, progress: TextIO | None = None
) -> ReplayResult:
    with TimeBudget() as budget:  # no line can hold replay either
        return _replay(config, opts, out, progress, engine_for(config, matcher=budget))


def _replay(
    config: Config, opts: ReplayOptions, out: TextIO, progress: TextIO | None, engine: Engine
) -> ReplayResult:
    write = _writer(opts.output_format, out)
    started = time.monotonic()
    bar = _Progress(progress, started) if progress is not None else None
    directory, _ = where(config.journal, opts.directory, opts.files)
    paths = backlog.plan(directory, opts.since_us, opts.until_us)
    try:
        if paths is None:
            n_events, errors, truncated = _read_one_by_one(config, opts, engine, write, bar)
        else:
            n_events, errors, truncated = _read_in_parallel(config, opts, engine, paths, write, bar)
        final = opts.now_us if opts.now_us is not None else engine.now_us
        if final:
            for e in engine.tick(final):
                write(e)
                n_events += 1
    finally:
        if bar is not None:
            bar.done()
    seconds = time.monotonic() - started
    files = len(paths) if paths else 0
    return ReplayResult(engine.entries, n_events, seconds, engine, errors, truncated, files)


Counts = tuple[int, int, int]  # events, read errors, truncated messages


def _read_one_by_one(
    config: Config,
    opts: ReplayOptions,
    engine: Engine,
    write: Callable[[Event], None],
    bar: _Progress | None,
) -> Counts:
    source = open_source(config.journal, engine, opts.directory, opts.files)
    engine.fill = source.fill
    n_events = 0
    try:
        if opts.since_us is not None:
            source.seek_realtime_us(opts.since_us)
        else:
            source.seek_head()
        until = opts.until_us
        for entry in source:
            if until is not None and entry.realtime_us > until:
                break
            due, produced = engine.observe(entry)
            for e in due:
                write(e)
            if produced:
                cursor = source.cursor()
                for e in produced:
                    write(dataclasses.replace(e, cursor=cursor))
                n_events += len(produced)
            n_events += len(due)
            if bar is not None and not engine.entries & 0x3FFF:
                bar.update(engine.entries)
    finally:
        source.close()
    return n_events, source.read_errors, source.truncated


def _read_in_parallel(
    config: Config,
    opts: ReplayOptions,
    engine: Engine,
    paths: list[str],
    write: Callable[[Event], None],
    bar: _Progress | None,
) -> Counts:
    """The same as `_read_one_by_one`, the files read by worker processes
    (monitor/journal/backlog.py): the engine gets every line that can reach a rule, and the
    count of the others."""
    j = config.journal
    fields = fields_for(engine)
    gate = engine.gate() or Gate((b"",), -1, 0)  # b"" is in every line: nothing is left out
    origin = engine.uses_origin or engine.host_label
    tasks = [
        backlog.Task(
            path,
            j.units,
            j.identifiers,
            j.max_message_bytes,
            dataclasses.replace(fields, pid=origin, hostname=origin),
            gate,
            opts.since_us,
            opts.until_us,
        )
        for path in paths
    ]
    n_events = errors = truncated = 0
    new = tuple.__new__
    for part in backlog.read(tasks):
        errors += part.read_errors
        truncated += part.truncated
        for item in part.items:
            if len(item) == 2:
                due: Sequence[Event] = engine.skip(*item)
                produced: Sequence[Event] = ()
            else:
                due, produced = engine.observe(new(Entry, item[:6]))
            for e in due:
                write(e)
            for e in produced:
                write(dataclasses.replace(e, cursor=item[6]))
            n_events += len(due) + len(produced)
        if bar is not None:
            bar.update(engine.entries)
    return n_events, errors, truncated


def _writer(fmt: str, out: TextIO) -> Callable[[Event], None]:
    if fmt == "table":
        out.write(f"{'TIME':<27} {'SEVERITY':<8} {'KIND':<13} {'RULE':<20} {'KEY':<24} MESSAGE\n")

        def table(e: Event) -> None:
            key = e.key if e.key is not None else "-"
            first_line = e.message.splitlines()[0] if e.message else ""
            out.write(
                f"{format_time(e.time):<27} {e.severity:<8} {e.kind:<13} {e.rule:<20} "
                f"{key:<24} {first_line}\n"
            )

        return table

    def jsonl(e: Event) -> None:
        out.write(json.dumps(e.to_json(), ensure_ascii=False) + "\n")

    return jsonl


class _Progress:
    """A one-line progress counter on a terminal."""

    def __init__(self, stream: TextIO, started: float) -> None:
        self.stream, self.started, self.last = stream, started, 0.0

    def update(self, entries: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.25:
            return
        self.last = now
        rate = entries / max(now - self.started, 1e-9)
        self.stream.write(f"\rreplay: {entries:,} entries, {rate:,.0f}/s ")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()


def print_summary(result: ReplayResult, stream: TextIO = sys.stderr) -> None:
    rate = result.entries / result.seconds if result.seconds > 0 else 0.0
    stream.write(
        f"replay: {result.entries} entries in {result.seconds:.2f}s ({rate:,.0f} entries/s), "
        f"{result.events} events"
        + (f", {result.read_errors} read errors" if result.read_errors else "")
        + (f", {result.truncated} messages truncated" if result.truncated else "")
        + (f", {result.parallel_files} files read in parallel" if result.parallel_files else "")
        + "\n"
    )
    timeouts = result.engine.matcher.by_rule
    for rule in result.engine.rules:
        counters = " ".join(f"{k}={v}" for k, v in rule.counters().items())
        cut = timeouts.get(rule.base.name, 0)
        counters += f" timeouts={cut}" if cut else ""  # lines its pattern ran out of time on
        stream.write(f"  {rule.base.name} ({rule.base.type}): {counters}\n")

"""A backlog of rotated journal files read by several processes at once (replay's catch-up).

One journal rotated into files that follow each other in time (`journal.file_spans`) can be
read file by file in parallel: each worker process reads one file and sends back only the lines
that reach a rule (the engine's `Gate`), with counts of the rest; the engine sees them in
journal order, file after file. Reading, not evaluating, is the cost of a catch-up, so this
uses the machine's cores where one reader would use one."""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from monitor.core.model import Gate
from monitor.journal.reader import Fields, JournalSource, file_spans

MIN_FILES = 2  # one file is read faster by the plain reader (no processes to start)


@dataclass(frozen=True, slots=True)
class Task:
    path: str
    units: tuple[str, ...]
    identifiers: tuple[str, ...]
    max_message_bytes: int
    fields: Fields
    gate: Gate
    since_us: int | None
    until_us: int | None


@dataclass(frozen=True, slots=True)
class Part:
    """What a worker read from one file: lines and skipped runs (`JournalSource.scan`)."""

    items: list[tuple[Any, ...]]
    read_errors: int
    truncated: int


def plan(directory: str | None, since_us: int | None, until_us: int | None) -> list[str] | None:
    """The files to read in parallel, in order, or None when the plain reader must do it."""
    if not directory or (os.cpu_count() or 1) < 2:
        return None
    spans = file_spans(directory)
    if spans is None:
        return None
    paths = [
        path
        for path, first, last in spans
        if (since_us is None or last >= since_us) and (until_us is None or first <= until_us)
    ]
    return paths if len(paths) >= MIN_FILES else None


def read(tasks: list[Task]) -> Iterator[Part]:
    """Each task's part, in the order of `tasks`, read by up to one process per core.

    Only one file per worker is read ahead of the part being evaluated: when the engine is the
    slower side (many lines let through), parts wait in memory, and a whole journal of them
    would be as large as the journal."""
    workers = min(os.cpu_count() or 1, len(tasks))
    todo = iter(tasks)
    # fork: the workers inherit the loaded modules (a spawn would import them again per worker)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        ahead = collections.deque(
            pool.apply_async(_read_one, (task,)) for task in itertools.islice(todo, workers)
        )
        while ahead:
            part = ahead.popleft().get()
            task = next(todo, None)
            if task is not None:
                ahead.append(pool.apply_async(_read_one, (task,)))
            yield part


def _read_one(task: Task) -> Part:
    urgent = None
    if task.gate.priority >= 0:
        urgent = _times(_open(task, task.gate.priority))
    source = _open(task)
    try:
        items = source.scan(task.gate, task.until_us, urgent)
        return Part(items, source.read_errors, source.truncated)
    finally:
        source.close()


def _open(task: Task, max_priority: int | None = None) -> JournalSource:
    source = JournalSource(
        units=task.units,
        identifiers=task.identifiers,
        files=(task.path,),
        max_message_bytes=task.max_message_bytes,
        fields=task.fields,
        max_priority=max_priority,
    )
    if task.since_us is not None:
        source.seek_realtime_us(task.since_us)
    else:
        source.seek_head()
    return source


def _times(source: JournalSource) -> set[int]:
    try:
        return source.times()
    finally:
        source.close()

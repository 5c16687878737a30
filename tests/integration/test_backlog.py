"""`replay --journal-dir` over a journal rotated into several files reads them in worker
processes (monitor/journal/backlog.py) and must print exactly what one reader of the same
files prints: events, their order, their cursors, and every rule's counters."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.journal.reader import file_spans
from monitor.tools.export import export_entry
from tests.helpers import T0, S
from tests.integration.test_replay_cli import (
    B,
    RunCli,
    WriteEntries,
    access,
    begin,
    completed,
    crashed,
    iso,
    submitted,
    summary,
    unknown,
)

pytestmark = pytest.mark.integration


def rotated_day() -> list[list[bytes]]:
    """Three files, one after the other in time, with every kind of line the shipped rules
    count: joins across a file boundary, a training that stalls in one file and ends in the
    next, errors (priority), a silence longer than api_silent's window, other units, a huge and
    an undecodable message."""
    first = [submitted(0, "r-stall", "av1"), submitted(1, "r-ok", "av2", B)]
    first += [access(t) for t in range(2, 600, 7)]
    first += [begin(600, "req-a", "COMPLETED", 4101), completed(601, "r-ok", B)]
    first += [export_entry("Неизвестный статус: OK", T0 + 602 * S, unit="aisha-bot.service")]
    second = [unknown(700, "COMPLETED", 4101)]  # joins the begin line of the first file
    second += [access(t) for t in range(701, 3000, 11)]
    second += [crashed(3000 + i, f"e{i}") for i in range(25)]  # 25 errors in 5 min: api_errors
    second += [access(t) for t in range(3030, 4000, 13)]
    third = [access(5500)]  # 25 min of silence before it: api_silent
    third += [access(t) for t in range(5501, 7000, 5)]
    third += [completed(7000, "r-stall"), crashed(7001, "big", "x" * 200_000)]
    third += [unknown(7002, b"\xff\xfeOK", B), access(7003)]
    return [first, second, third]


def write_rotated(write_entries: WriteEntries) -> list[Path]:
    return [write_entries(part, name=f"system@{i}.journal") for i, part in enumerate(rotated_day())]


def test_a_rotated_journal_read_in_parallel_gives_what_one_reader_gives(
    write_entries: WriteEntries, run_cli: RunCli, journal_dir: Path
) -> None:
    files = write_rotated(write_entries)
    parallel = run_cli("replay", "--journal-dir", str(journal_dir), "--now", iso(8000))
    one = run_cli("replay", *(f"--journal-file={f}" for f in files), "--now", iso(8000))
    assert parallel.returncode == one.returncode == 0, parallel.stderr + one.stderr
    assert "3 files read in parallel" in parallel.stderr
    assert "in parallel" not in one.stderr
    kinds = [line.split('"kind": "')[1].split('"')[0] for line in one.stdout.splitlines()]
    # not vacuous: the day has every kind of event the shipped rules give
    for kind in ("unknown_value", "pair_closed", "stalled", "resolved", "threshold", "absence"):
        assert kind in kinds, kinds
    assert parallel.stdout == one.stdout
    assert summary(parallel.stderr) == summary(one.stderr)
    assert "1 messages truncated" in parallel.stderr


def test_since_and_until_across_files(
    write_entries: WriteEntries, run_cli: RunCli, journal_dir: Path
) -> None:
    files = write_rotated(write_entries)
    bounds = ("--since", iso(650), "--until", iso(5600))
    parallel = run_cli("replay", "--journal-dir", str(journal_dir), *bounds)
    one = run_cli("replay", *(f"--journal-file={f}" for f in files), *bounds)
    assert parallel.returncode == one.returncode == 0, parallel.stderr + one.stderr
    assert "2 files read in parallel" in parallel.stderr, "the first file ends before --since"
    assert parallel.stdout == one.stdout
    assert summary(parallel.stderr) == summary(one.stderr)


def test_files_whose_times_overlap_are_read_by_one_reader(
    write_entries: WriteEntries, run_cli: RunCli, journal_dir: Path
) -> None:
    """Two machines' journals in one directory: only sd-journal's merge knows the order."""
    write_entries([access(t) for t in range(0, 100, 2)], name="api-1.journal")
    write_entries([access(t) for t in range(1, 100, 2)], name="api-2.journal")
    assert file_spans(str(journal_dir)) is None
    proc = run_cli("replay", "--journal-dir", str(journal_dir))
    assert proc.returncode == 0, proc.stderr
    assert "replay: 100 entries" in proc.stderr
    assert "in parallel" not in proc.stderr

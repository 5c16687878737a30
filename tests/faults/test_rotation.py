"""(b) The journal changes under the reader: rotation while following (the active file renamed
to an archived name, a second systemd-journal-remote output file appears, then the old file is
deleted while the reader still has it open), and a journal directory that is empty when the
daemon starts and fills later. Nothing is lost or counted twice, and the loop keeps going."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from tests.faults.conftest import (
    HEARTBEAT,
    events_of,
    spawn_daemon,
    tune,
    wait_entries,
)
from tests.integration.daemon_fixtures import (
    ACCESS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    wait_for,
)

pytestmark = pytest.mark.faults

P = "aisha_monitor_"


def phase(lj: LiveJournal, tag: str, pairs: int = 10, noise: int = 20) -> tuple[int, list[str]]:
    """Write `pairs` unknown-status incidents (keys `{tag}{i}`) among `noise` access lines and
    wait until they are in the directory; (entries written, keys)."""
    before = lj.count()
    batch, keys = [], []
    for i in range(pairs):
        key = f"{tag}{i}"
        keys.append(key)
        batch += [
            lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: bogus", pid=4200 + i),
            lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: bogus", pid=4200 + i, level="WARNING"),
        ]
    batch += [lj.raw(ACCESS) for _ in range(noise)]
    lj.send(batch)
    wait_for(lambda: lj.count() >= before + len(batch), 10, f"phase {tag} written")
    return len(batch), keys


def unknown_keys(d: MonitorDaemon) -> collections.Counter[str | None]:
    return collections.Counter(e["key"] for e in events_of(d, "unknown_value"))


def heartbeat_moves(d: MonitorDaemon) -> None:
    first = d.metric(HEARTBEAT) or 0.0
    wait_for(lambda: (d.metric(HEARTBEAT) or 0.0) > first, 5, "the loop to go round")


def test_rotation_while_following_loses_nothing(
    live_journal: LiveJournal, make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    lj = live_journal
    d = make_daemon()  # resume without a cursor: from the tail, the primed entry is not read
    tune(d.config)
    d.start()
    n1, keys1 = phase(lj, "a")
    wait_entries(d, n1)

    # rotation: journal-remote stops, its file is renamed to an archived name (what journald
    # does on rotation) and a new journal-remote writes a fresh file beside it
    lj.close()
    (active,) = lj.directory.glob("*.journal")
    archived = active.with_name(f"{active.stem}@00000000000000000000000000000001-1-1.journal")
    active.rename(archived)
    lj2 = LiveJournal(lj.directory, tmp_path / "journal-remote-2.log")
    try:
        n2, keys2 = phase(lj2, "b")
        assert sorted(p.name for p in lj.directory.glob("*.journal")) == sorted(
            [active.name, archived.name]
        ), "a second output file"
        wait_entries(d, n1 + n2)

        archived.unlink()  # deleted while the reader has it open (vacuum of archived files)
        n3, keys3 = phase(lj2, "c")
        wait_entries(d, n1 + n2 + n3)
        heartbeat_moves(d)
        assert unknown_keys(d) == collections.Counter(keys1 + keys2 + keys3)
        assert d.metric(P + "journal_read_errors_total") == 0

        # and a restart resumes in the new file: nothing read twice, no cursor reset
        assert d.stop() == 0
        n4, keys4 = phase(lj2, "d")
        d.start()
        total = n1 + n2 + n3 + n4
        wait_entries(d, total)
        assert d.metric(P + "journal_cursor_resets_total") == 0
        assert unknown_keys(d) == collections.Counter(keys1 + keys2 + keys3 + keys4)
        print(
            f"\nrotation: {total} entries written across 2 files (one deleted under the reader),"
            f" {total} counted, 0 read errors, {len(unknown_keys(d))} unknown statuses once each"
        )
    finally:
        lj2.close()


@pytest.mark.parametrize("start", ["resume", "head"])
def test_empty_journal_directory_that_fills_later(
    tmp_path: Path, daemons: list[MonitorDaemon], start: str
) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    workdir = tmp_path / "monitor"
    workdir.mkdir()
    d = spawn_daemon(workdir, journal_dir, tune(workdir / "config.yaml", start=start))
    daemons.append(d)
    d.start(wait=False)
    wait_for(lambda: d.status("/healthz") == 200, 30, "the daemon to answer")
    assert list(journal_dir.iterdir()) == []
    heartbeat_moves(d)
    assert d.state()["journal"]["entries"] == 0
    # up, but not ready: there is nothing to read
    assert d.status("/readyz") == 503
    assert d.state()["journal"]["problem"] == f"no journal files in {journal_dir}"

    lj = LiveJournal(journal_dir, tmp_path / "journal-remote.log")  # the first file appears
    try:
        n1, keys1 = phase(lj, "e", pairs=5, noise=5)
        wait_entries(d, n1)  # the very first entry too
        d.wait_ready(5)
        n2, keys2 = phase(lj, "f", pairs=5, noise=5)
        wait_entries(d, n1 + n2)
        assert unknown_keys(d) == collections.Counter(keys1 + keys2)
        assert d.stop() == 0
        d.start()
        wait_entries(d, n1 + n2)
        heartbeat_moves(d)
        assert unknown_keys(d) == collections.Counter(keys1 + keys2)
    finally:
        lj.close()

"""(b) The followed journal directory vanishes under the reader: journal-remote stops, the
directory is deleted, created again and written again. sd_journal drops its watch of a deleted
directory for good, so the daemon must notice by itself and open the journal again; while there
is nothing to read it must not say it is ready."""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.conftest import entries, events_of, tune, wait_entries
from tests.faults.test_rotation import phase
from tests.integration.daemon_fixtures import (
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    daemon_env,
    tail,
    wait_for,
)

pytestmark = pytest.mark.faults

P = "aisha_monitor_"
RECOVERY_BOUND_S = 10.0


def unknown_keys(d: MonitorDaemon) -> collections.Counter[str | None]:
    return collections.Counter(e["key"] for e in events_of(d, "unknown_value"))


def status_cli(d: MonitorDaemon) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "status", "--url", d.url],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        env=daemon_env(),
    )


def test_a_deleted_and_recreated_directory_is_read_again(
    live_journal: LiveJournal, make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    lj = live_journal
    d = make_daemon()
    tune(d.config)
    d.start()
    n1, keys1 = phase(lj, "a")
    wait_entries(d, n1)

    lj.close()
    shutil.rmtree(lj.directory)
    lj.directory.mkdir()
    lj2 = LiveJournal(lj.directory, tmp_path / "journal-remote-2.log")
    try:
        n2, keys2 = phase(lj2, "b")
        written_at = time.monotonic()
        wait_for(
            lambda: entries(d) >= n1 + n2,
            RECOVERY_BOUND_S,
            lambda: f"{n1 + n2} entries counted (have {entries(d)})\n{tail(d.log)}",
        )
        recovered_s = time.monotonic() - written_at
        wait_entries(d, n1 + n2)  # and exactly that many once caught up
        assert d.status("/readyz") == 200
        assert unknown_keys(d) == collections.Counter(keys1 + keys2)
        assert d.metric(P + "journal_cursor_resets_total") == 1
        assert d.metric(P + "journal_read_errors_total") == 0
        log = d.log_text()
        # noticed by the directory's new identity, or (its inode number given again) by its
        # new files that the reader does not hold: either way once, with the reason
        assert log.count("deleted and created again") == 2, log  # the reopen and the reset
        assert log.count("; reopening the journal") == 1
        assert log.count("stored cursor no longer in the journal (the ") == 1

        # a restart resumes in the new directory's files: nothing read twice, no reset
        assert d.stop() == 0
        n3, keys3 = phase(lj2, "c")
        d.start()
        wait_entries(d, n1 + n2 + n3)
        assert d.metric(P + "journal_cursor_resets_total") == 0
        assert unknown_keys(d) == collections.Counter(keys1 + keys2 + keys3)
        print(
            f"\nrecreated directory: the {n2} new entries counted {recovered_s:.2f} s after they "
            f"were written (bound {RECOVERY_BOUND_S:.0f} s), {n1 + n2 + n3} counted in all, "
            f"1 cursor reset, {len(unknown_keys(d))} unknown statuses once each"
        )
    finally:
        lj2.close()


def not_ready_because(d: MonitorDaemon, problem: str) -> float:
    """Until /readyz is 503 and every view names `problem`; the seconds it took."""
    began = time.monotonic()
    wait_for(
        lambda: d.status("/readyz") == 503 and d.state()["journal"].get("problem") == problem,
        5,
        lambda: f"/readyz 503 and {problem!r} in /api/v1/state\n{tail(d.log)}",
    )
    took = time.monotonic() - began
    assert d.status("/healthz") == 200, "the loop itself goes round"
    proc = status_cli(d)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"PROBLEM: reading nothing: {problem}" in proc.stdout
    assert f"CRITICAL: reading nothing: {problem}" in d.get("/")
    return took


def test_not_ready_while_the_directory_is_missing_or_empty(
    live_journal: LiveJournal, make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    lj = live_journal
    d = make_daemon()
    tune(d.config)
    d.start()
    n1, _ = phase(lj, "a", pairs=2, noise=2)
    wait_entries(d, n1)

    lj.close()
    shutil.rmtree(lj.directory)
    missing_s = not_ready_because(d, f"the journal directory {lj.directory} is missing")
    lj.directory.mkdir()
    empty_s = not_ready_because(d, f"no journal files in {lj.directory}")
    lj2 = LiveJournal(lj.directory, tmp_path / "journal-remote-2.log")
    try:
        n2, _ = phase(lj2, "b", pairs=2, noise=2)
        wait_entries(d, n1 + n2, timeout=RECOVERY_BOUND_S)
        wait_for(lambda: d.status("/readyz") == 200, 5, lambda: f"/readyz 200\n{tail(d.log)}")
        assert d.state()["journal"]["problem"] is None
        assert status_cli(d).returncode == 0
        print(
            f"\n/readyz 503 {missing_s:.2f} s after the directory was deleted and "
            f"{empty_s:.2f} s after it was created empty; 200 once a file was written"
        )
    finally:
        lj2.close()

"""monitor/journal/watch.py on real directories and files: what a look at the followed journal
directory finds (missing, empty, replaced, files the process holds no descriptor of). A file
is "held" when this process has it open, as sd_journal keeps every file it reads open."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.journal.watch import Followed, Look


@pytest.fixture
def held() -> Iterator[list[int]]:
    """Descriptors the test opens (standing in for a reader's); all closed afterwards."""
    fds: list[int] = []
    try:
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def journal_file(directory: Path, name: str, fds: list[int] | None = None) -> Path:
    path = directory / name
    path.write_bytes(b"LPKSHHRH")
    if fds is not None:
        fds.append(os.open(path, os.O_RDONLY))
    return path


def test_a_directory_with_held_files_is_fine(tmp_path: Path, held: list[int]) -> None:
    journal_file(tmp_path, "a.journal", held)
    (tmp_path / "notes.txt").write_text("not a journal")  # neither held nor counted
    f = Followed.now(str(tmp_path))
    assert f.look() == Look()
    assert f.look() == Look()


def test_missing_then_back_asks_for_a_reopen(tmp_path: Path, held: list[int]) -> None:
    d = tmp_path / "journal"
    d.mkdir()
    journal_file(d, "a.journal", held)
    f = Followed.now(str(d))
    shutil.rmtree(d)
    assert f.look() == Look(problem=f"the journal directory {d} is missing")
    d.mkdir()  # whatever inode number it gets, even the old one
    look = f.look()
    assert look.problem == f"no journal files in {d}"
    assert look.reopen == f"the journal directory {d} was deleted and created again"


def test_a_new_identity_asks_for_a_reopen(tmp_path: Path, held: list[int]) -> None:
    d = tmp_path / "journal"
    d.mkdir()
    f = Followed.now(str(d))
    d.rename(tmp_path / "old")  # kept, so that the new directory cannot get its inode number
    d.mkdir()
    journal_file(d, "a.journal", held)
    assert f.look() == Look(reopen=f"the journal directory {d} was deleted and created again")


def test_an_empty_directory_is_a_problem_until_a_file_appears(
    tmp_path: Path, held: list[int]
) -> None:
    f = Followed.now(str(tmp_path))
    assert f.look() == Look(problem=f"no journal files in {tmp_path}")
    assert f.look() == Look(problem=f"no journal files in {tmp_path}")  # unchanged: no listing
    journal_file(tmp_path, "a.journal~", held)
    assert f.look() == Look()


def test_a_file_not_held_at_two_looks_asks_for_a_reopen_once(tmp_path: Path) -> None:
    f = Followed.now(str(tmp_path))
    path = journal_file(tmp_path, "system.journal")  # nobody holds it: the reader went blind
    st = path.stat()
    unheld = frozenset({(st.st_dev, st.st_ino)})
    first = f.look()
    assert first == Look(unheld=unheld), "a file that just appeared gets time to be opened"
    second = f.look()
    assert second.problem is None
    assert second.reopen is not None and "does not hold 1 file(s)" in second.reopen
    assert "system.journal" in second.reopen
    # a reopen that did not make the reader take it: not asked again for the same file
    again = Followed.now(str(tmp_path))
    again.known_unheld = second.unheld
    assert [again.look().reopen for _ in range(3)] == [None, None, None]


def test_a_file_opened_in_time_asks_for_nothing(tmp_path: Path, held: list[int]) -> None:
    f = Followed.now(str(tmp_path))
    journal_file(tmp_path, "a.journal", held)
    path = journal_file(tmp_path, "b.journal")
    assert f.look().unheld != frozenset()
    held.append(os.open(path, os.O_RDONLY))  # the reader took it before the next look
    assert f.look() == Look()

"""Is the journal directory a reader follows still the one it holds?

sd_journal follows a directory through inotify. When the directory is deleted it drops its
watch for good: a directory created again at the same path is never looked at, and the reader
reads nothing, without an error, for as long as the process runs. `Followed.look` notices that
from outside the reader: the directory missing, the directory's identity (st_dev, st_ino)
changed since the reader opened it, or journal files in it that the process holds no
descriptor of (sd_journal keeps every file it reads open; a deleted and recreated directory
can get the old inode number back, its new files cannot be held by a reader that lost it).
It also says when there is nothing to read at all: no directory, or no journal file in it."""

from __future__ import annotations

import os
from dataclasses import dataclass

JOURNAL_SUFFIXES = (".journal", ".journal~")
_FDS = "/proc/self/fd"

Identity = tuple[int, int]  # (st_dev, st_ino)


@dataclass(frozen=True, slots=True)
class Look:
    """What one look found. `problem`: why nothing can be read now (None: all is well);
    `reopen`: why the reader must be opened again (None: it follows what is there)."""

    problem: str | None = None
    reopen: str | None = None
    unheld: frozenset[Identity] = frozenset()


def identity(path: str) -> Identity | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass(slots=True)
class Followed:
    """A directory as it was when a reader opened it (taken before the reader opens it: a
    directory replaced in between is then noticed, at the cost of one needless reopen)."""

    directory: str
    opened: Identity | None
    was_missing: bool = False
    known_unheld: frozenset[Identity] = frozenset()  # a reopen did not make the reader take them
    _mtime_ns: int = -1
    _settling: bool = False  # the directory changed at the last look: list it once more
    _has_files: bool = False
    _pending: frozenset[Identity] = frozenset()  # unheld at the last listing

    @classmethod
    def now(cls, directory: str) -> Followed:
        return cls(directory, identity(directory))

    def look(self) -> Look:
        """One stat of the directory; its listing only when it changed or a doubt is pending."""
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            self.was_missing = True
            return Look(problem=f"the journal directory {self.directory} is missing")
        except OSError as e:
            return Look(problem=f"cannot look at the journal directory {self.directory}: {e}")
        if self.was_missing or (st.st_dev, st.st_ino) != self.opened:
            return Look(
                problem=None if self._list() else self._empty(),
                reopen=f"the journal directory {self.directory} was deleted and created again",
            )
        changed = st.st_mtime_ns != self._mtime_ns
        if changed or self._settling or self._pending:
            # a change within the file system's timestamp granularity of the last listing
            # leaves the mtime as it was: the look after a change lists again
            self._mtime_ns, self._settling = st.st_mtime_ns, changed
            return self._listed()
        return Look(problem=None if self._has_files else self._empty())

    def _listed(self) -> Look:
        files = self._list()
        self._has_files = bool(files)
        held = _held()
        unheld = frozenset(
            i
            for i in (() if held is None else files.keys() - held)
            # a file this process may not read (another user's journal) is never held
            if os.access(os.path.join(self.directory, files[i]), os.R_OK)
        )
        # a file unheld at two listings in a row (a second apart: time for the reader to open a
        # file that just appeared), and not one a reopen already failed to make it take
        lost = unheld & self._pending
        self._pending = unheld
        problem = None if files else self._empty()
        if lost - self.known_unheld:
            names = sorted(files[i] for i in lost)
            why = (
                f"the journal reader does not hold {len(lost)} file(s) of {self.directory} "
                f"({', '.join(names[:3])}): the directory was deleted and created again, or "
                "the reader lost it"
            )
            return Look(problem=problem, reopen=why, unheld=unheld)
        return Look(problem=problem, unheld=unheld)

    def _list(self) -> dict[Identity, str]:
        """The journal files of the directory, by identity."""
        files = {}
        try:
            with os.scandir(self.directory) as entries:
                for e in entries:
                    if e.name.endswith(JOURNAL_SUFFIXES):
                        try:
                            st = e.stat(follow_symlinks=False)
                        except OSError:
                            continue  # deleted while listed
                        files[st.st_dev, st.st_ino] = e.name
        except OSError:
            return {}
        return files

    def _empty(self) -> str:
        return f"no journal files in {self.directory}"


def _held() -> set[Identity] | None:
    """The journal files this process holds a descriptor of; None where /proc cannot tell."""
    try:
        fds = os.listdir(_FDS)
    except OSError:
        return None
    held = set()
    for fd in fds:
        path = f"{_FDS}/{fd}"
        try:
            if not os.readlink(path).endswith(JOURNAL_SUFFIXES):
                continue
            st = os.stat(path)
        except OSError:
            continue  # closed meanwhile, or not a file
        held.add((st.st_dev, st.st_ino))
    return held

"""(d) The state store breaks: a read-only state directory (a read-only bind mount), a full one
(a small tmpfs filled up), a corrupt state file. Whatever happens, the daemon never starts over
silently: nothing is replayed twice and nothing is lost once the fault is fixed. A read-only or
corrupt state stops it at start (exit 3, saying which); a full one while running holds the
batch and writes it again until space returns.

The mounts live in a private mount namespace (`unshare --mount --propagation private`) run by a
small helper that takes commands on stdin; they vanish with it."""

from __future__ import annotations

import collections
import json
import queue
import random
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import ENTRIES, api_logger, tune
from tests.integration.daemon_fixtures import (
    API_UNIT,
    LiveJournal,
    MonitorDaemon,
    daemon_env,
    free_port,
    parse_metrics,
    tail,
    wait_for,
)
from tests.standins import StandIn

pytestmark = pytest.mark.faults

WRITE_ERRORS = "aisha_monitor_state_write_errors_total"
STOP_BOUND_S = 5.0

HELPER = r"""
import os, signal, subprocess, sys
state, log = sys.argv[1], sys.argv[2]
proc = None
def reply(msg):
    print(msg, flush=True)
def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    try:
        if cmd == "tmpfs":
            sh("mount", "-n", "-t", "tmpfs", "-o", "size=" + arg, "tmpfs", state)
        elif cmd == "ro":
            sh("mount", "-n", "--bind", state, state)
            sh("mount", "-n", "-o", "remount,bind,ro", state)
        elif cmd == "fill":
            n = 0
            fd = os.open(os.path.join(state, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                while True:
                    n += os.write(fd, b"\0" * 4096)
            except OSError:
                pass
            os.close(fd)
            reply("filled %d" % n)
            continue
        elif cmd == "unfill":
            os.remove(os.path.join(state, "filler"))
        elif cmd == "start":
            out = open(log, "ab")
            proc = subprocess.Popen(arg.split("\x1f"), stdout=out, stderr=subprocess.STDOUT)
            reply("pid %d" % proc.pid)
            continue
        elif cmd == "wait":
            try:
                reply("exit %d" % proc.wait(float(arg)))
            except subprocess.TimeoutExpired:
                reply("running")
            continue
        elif cmd == "term":
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                reply("exit %d" % proc.wait(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                reply("exit %d" % proc.wait())
            continue
        reply("ok")
    except Exception as e:
        reply("error %s" % e)
if proc is not None and proc.poll() is None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
"""


class Namespace:
    """The helper in its private mount namespace; `do(cmd)` sends a command, returns its reply."""

    def __init__(self, workdir: Path, state_dir: Path, env: dict[str, str]) -> None:
        workdir = workdir / "ns"  # its cwd holds nothing named like a package
        workdir.mkdir()
        script = workdir / "ns_helper.py"
        script.write_text(HELPER, encoding="utf-8")
        self.log = workdir / "daemon-ns.log"
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", sys.executable, str(script),
             str(state_dir), str(self.log)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=workdir,
        )  # fmt: skip
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._replies.put(line.strip())

    def do(self, cmd: str, timeout: float = 30.0) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no answer to {cmd.split()[0]!r} from the namespace helper")
        assert not reply.startswith("error"), f"{cmd.split()[0]}: {reply}"
        return reply

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class NsDaemon:
    """`aisha-monitor run` started by the helper inside the namespace; HTTP on 127.0.0.1."""

    def __init__(self, ns: Namespace, config: Path, journal_dir: Path, state_dir: Path) -> None:
        self.ns, self.config, self.journal_dir, self.state_dir = ns, config, journal_dir, state_dir
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "monitor", "run", "-c", str(self.config),
                "--journal-dir", str(self.journal_dir), "--state-dir", str(self.state_dir),
                "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        self.ns.do("start " + "\x1f".join(argv))

    def wait(self, timeout: float) -> int | None:
        reply = self.ns.do(f"wait {timeout}", timeout + 10)
        return None if reply == "running" else int(reply.split()[1])

    def get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return str(r.read().decode("utf-8"))
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def entries(self) -> float:
        text = self.get("/metrics")
        return parse_metrics(text).get((ENTRIES, (("unit", API_UNIT),)), 0.0) if text else -1.0

    def events(self) -> list[dict[str, Any]]:
        text = self.get("/api/v1/events?limit=1000")
        return list(json.loads(text)) if text else []


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[Callable[..., Namespace]]:
    made: list[Namespace] = []

    def make(state_dir: Path, env: dict[str, str]) -> Namespace:
        ns = Namespace(tmp_path, state_dir, env)
        made.append(ns)
        return ns

    try:
        yield make
    finally:
        for ns in made:
            ns.close()
            print(tail(ns.log, 80))


def unknown_pair(lj: LiveJournal, key: str, status: str = "COMPLETED") -> list[bytes]:
    return [
        lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {status}", pid=4401),
        lj.app(f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}", pid=4401, level="WARNING"),
    ]


def received(api: StandIn) -> collections.Counter[str]:
    return collections.Counter(r.json()["request_id"] for r in api.requests)


@pytest.fixture
def api(live_journal: LiveJournal) -> Iterator[StandIn]:
    stand_in = StandIn(on_request=api_logger(live_journal)).start()
    yield stand_in
    stand_in.stop()


def first_run(
    tmp_path: Path, lj: LiveJournal, api: StandIn, daemons: list[MonitorDaemon]
) -> MonitorDaemon:
    """A normal run with `start: head` that replays one unknown status and is stopped: the
    state a broken state directory must not silently throw away."""
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    config = tune(workdir / "config.yaml", start="head")
    d = MonitorDaemon(config, lj.directory, workdir / "state", workdir, daemon_env(
        {"AISHA_API_URL": api.url}))  # fmt: skip
    daemons.append(d)
    lj.send(unknown_pair(lj, "st-1"))
    d.start()
    wait_for(lambda: any(e["labels"].get("outcome") == "verified" for e in d.events()), 20,
             "the replay of st-1 verified")  # fmt: skip
    assert d.stop() == 0
    assert received(api) == {"st-1": 1}
    return d


def run_once(ns: Namespace, d: MonitorDaemon) -> tuple[int | None, str]:
    nd = NsDaemon(ns, d.config, d.journal_dir, d.state_dir)
    nd.start()
    rc = nd.wait(30)
    return rc, ns.log.read_text(encoding="utf-8", errors="replace")


# --- read-only ---------------------------------------------------------------------------------


def test_read_only_state_directory_exits_3_and_replays_nothing(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    daemons: list[MonitorDaemon],
    namespace: Callable[..., Namespace],
) -> None:
    d = first_run(tmp_path, live_journal, api, daemons)
    before = (d.state_dir / "state.sqlite").read_bytes()
    ns = namespace(d.state_dir, d.env)
    ns.do("ro")
    rc, log = run_once(ns, d)
    assert rc == 3, log
    assert "Traceback" not in log
    assert str(d.state_dir) in log
    assert received(api) == {"st-1": 1}, "nothing replayed again"
    assert (d.state_dir / "state.sqlite").read_bytes() == before


def test_read_only_state_directory_error_names_the_cause(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    daemons: list[MonitorDaemon],
    namespace: Callable[..., Namespace],
) -> None:
    d = first_run(tmp_path, live_journal, api, daemons)
    ns = namespace(d.state_dir, d.env)
    ns.do("ro")
    rc, log = run_once(ns, d)
    assert rc == 3
    assert "read-only" in log.lower() or "not writable" in log.lower(), log
    assert "corrupt" not in log and "mv " not in log, log
    assert len(log.strip().splitlines()) == 1, log
    print(f"\nread-only state directory: {log.strip()}")


# --- full ----------------------------------------------------------------------------------------


def fill_while_running(
    tmp_path: Path, lj: LiveJournal, api: StandIn, namespace: Callable[..., Namespace]
) -> tuple[Namespace, NsDaemon, int, str]:
    """A daemon on a 2 MiB tmpfs state directory reads a first batch; the tmpfs is filled; an
    unknown status (to be replayed) and noise arrive. (namespace, daemon, entries before the
    fill, what the daemon did: 'exit N' or 'running')."""
    workdir = tmp_path / "daemon"
    workdir.mkdir()
    state_dir = workdir / "state"
    state_dir.mkdir()
    config = tune(workdir / "config.yaml", start="head")
    ns = namespace(state_dir, daemon_env({"AISHA_API_URL": api.url}))
    ns.do("tmpfs 2m")
    nd = NsDaemon(ns, config, lj.directory, state_dir)
    lj.send([lj.raw(f"before the fill {i}") for i in range(50)])
    lj.wait_written()  # n1 must be every entry sent, not what journal-remote wrote so far
    nd.start()
    n1 = lj.count()
    wait_for(lambda: nd.entries() >= n1, 30, lambda: f"{n1} entries\n{tail(ns.log)}")
    ns.do("fill")
    rng = random.Random(7)  # noqa: S311 - reproducible noise
    noise = [lj.raw("x" * rng.randrange(500, 3000)) for _ in range(300)]
    lj.send([*noise, *unknown_pair(lj, "full-1")])
    wait_for(lambda: lj.count() >= n1 + 302, 10, "written")
    reply = ns.do("wait 10", 25)  # the daemon's answer to a full disk, within 10 s
    return ns, nd, n1, reply


def everything_once(
    ns: Namespace, nd: NsDaemon, lj: LiveJournal, api: StandIn, timeout: float
) -> tuple[int, float]:
    """After the space came back: every entry counted exactly, full-1 reported once, replayed
    once and verified. (entries counted, seconds until the backlog was read)"""
    freed = time.monotonic()
    total = lj.count()
    wait_for(lambda: nd.entries() >= total, timeout, lambda: f"{total} entries\n{tail(ns.log)}")
    caught_up = time.monotonic() - freed
    wait_for(lambda: received(api) == {"full-1": 1}, 20, "the replay of full-1")
    wait_for(lambda: any(e["labels"].get("outcome") == "verified" for e in nd.events()), 20,
             "the replay verified")  # fmt: skip
    total = lj.count()  # with the lines the emulated aisha-api logged for the replay
    wait_for(lambda: nd.entries() >= total, 30, f"{total} entries")
    assert nd.entries() == total
    assert received(api) == {"full-1": 1}
    keys = [e["key"] for e in nd.events() if e["kind"] == "unknown_value"]
    assert keys == ["full-1"]
    return total, caught_up


def test_full_state_directory_loses_nothing_and_replays_once_when_space_returns(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    namespace: Callable[..., Namespace],
) -> None:
    lj = live_journal
    ns, nd, _, reply = fill_while_running(tmp_path, lj, api, namespace)
    log = ns.log.read_text(encoding="utf-8", errors="replace")
    assert "full" in log, log  # it noticed
    assert reply == "running", (reply, log)
    assert received(api) == {}, "no handler runs on a batch that could not be committed"
    began = time.monotonic()
    stopped = ns.do("term")  # while the batch waits to be written again
    took = time.monotonic() - began
    assert stopped == "exit 0", (stopped, tail(ns.log))
    assert took < STOP_BOUND_S, f"{took:.1f} s to exit"
    ns.do("unfill")
    nd.start()
    total, _ = everything_once(ns, nd, lj, api, 30)
    assert ns.do("term") == "exit 0"
    print(f"\nfull state directory: SIGTERM while retrying: exit 0 after {took:.2f} s; after "
          f"space returned and a restart: {total} entries counted exactly, full-1 reported once "
          f"and replayed once")  # fmt: skip


def test_full_state_directory_keeps_the_daemon_up_retrying_the_same_batch(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    namespace: Callable[..., Namespace],
) -> None:
    """No traceback, no exit: one error line, a counter, not ready; the same batch is written
    once space returns, and the same process goes on with nothing lost or counted twice."""
    lj = live_journal
    ns, nd, n1, reply = fill_while_running(tmp_path, lj, api, namespace)
    log = ns.log.read_text(encoding="utf-8", errors="replace")
    assert reply == "running", (reply, log)
    assert "Traceback" not in log, log
    assert log.count("cannot write the state file") == 1, log  # once, not once per retry
    assert "database or disk is full" in log, log
    metrics = parse_metrics(nd.get("/metrics") or "")
    refused = metrics[(WRITE_ERRORS, ())]
    assert refused >= 2, "retried"
    assert nd.get("/readyz") is None, "not ready (503) while the state cannot be written"
    assert nd.get("/healthz") == "ok\n", "alive: the loop goes round"
    assert metrics[(ENTRIES, (("unit", API_UNIT),))] == n1, "nothing published past the commit"
    assert received(api) == {}, "no handler runs on a batch that could not be committed"
    ns.do("unfill")
    total, caught_up = everything_once(ns, nd, lj, api, 60)
    assert nd.get("/readyz") == "ok\n"
    log = ns.log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log
    assert "the state file took the batch" in log, log
    assert ns.do("term") == "exit 0"
    print(f"\nfull state directory: stayed up, {refused:.0f} refused commits in the first 10 s, "
          f"one error line; space freed: the same batch written and {total} entries counted "
          f"exactly {caught_up:.1f} s later, full-1 reported once and replayed once")  # fmt: skip


# --- corrupt -------------------------------------------------------------------------------------


def corrupt_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(11)  # noqa: S311 - reproducible garbage
    for i in range(4096, min(len(data), 3 * 4096)):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [corrupt_pages, truncate_half], ids=["pages", "truncated"])
def test_corrupt_state_file_exits_3_and_replays_nothing(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    daemons: list[MonitorDaemon],
    damage: Callable[[Path], None],
) -> None:
    d = first_run(tmp_path, live_journal, api, daemons)
    state = d.state_dir / "state.sqlite"
    damage(state)
    damaged = state.read_bytes()
    d.start(wait=False)
    assert d.proc is not None
    rc = d.proc.wait(30)
    log = d.log.read_text(encoding="utf-8")
    assert rc == 3, log
    assert "Traceback" not in log
    assert f"mv {state}" in log
    assert state.read_bytes() == damaged, "left as it is"
    assert received(api) == {"st-1": 1}, "nothing replayed again"


def set_meta_cursor(db: sqlite3.Connection) -> None:
    db.execute("UPDATE meta SET value = '{not json' WHERE key = 'cursor'")


def set_rule_state(db: sqlite3.Connection) -> None:
    db.execute("UPDATE rule_state SET state = '[1, 2]' WHERE rule = 'training_stalled'")


@pytest.mark.parametrize("damage", [set_meta_cursor, set_rule_state], ids=["cursor", "rule-state"])
def test_damaged_values_in_the_state_file_exit_3(
    tmp_path: Path,
    live_journal: LiveJournal,
    api: StandIn,
    daemons: list[MonitorDaemon],
    damage: Callable[[sqlite3.Connection], None],
) -> None:
    d = first_run(tmp_path, live_journal, api, daemons)
    db = sqlite3.connect(d.state_dir / "state.sqlite")
    damage(db)
    db.commit()
    db.close()
    d.start(wait=False)
    assert d.proc is not None
    rc = d.proc.wait(30)
    log = d.log.read_text(encoding="utf-8")
    assert received(api) == {"st-1": 1}, "nothing replayed again"
    assert rc == 3, log
    assert "Traceback" not in log

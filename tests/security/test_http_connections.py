"""Idle connections cannot exhaust the daemon: 200 sockets that connect and send nothing keep
its threads within `http.max_connections`, /healthz answers within a second meanwhile, and the
server closes every one of them by `http.idle_timeout`. SIGTERM does not wait for them."""

from __future__ import annotations

import http.client
import select
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.daemon_fixtures import (
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    live_journal_fixture,  # noqa: F401 - a fixture
    make_daemon_fixture,  # noqa: F401 - a fixture
    tail,
    wait_for,
)

IDLE = 200
IDLE_TIMEOUT_S = 2.0
MAX_CONNECTIONS = 64  # the default
SLACK_THREADS = 8  # connections closed to make room whose threads are on their way out
HEALTHZ_WITHIN_S = 1.0
STOP_BOUND_S = 5.0


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no Threads: line for {pid}")


def pid_of(d: MonitorDaemon) -> int:
    assert d.proc is not None
    return d.proc.pid


def set_http(path: Path, **http: Any) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.setdefault("http", {}).update(http)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def timed_healthz(d: MonitorDaemon) -> float:
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"ok\n")
    finally:
        conn.close()
    return time.monotonic() - started


@pytest.fixture(name="idle_sockets")
def idle_sockets_fixture() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def open_idle(d: MonitorDaemon, stack: ExitStack, n: int) -> list[socket.socket]:
    """`n` connections to the daemon that send nothing."""
    socks = []
    for _ in range(n):
        s = stack.enter_context(socket.create_connection(("127.0.0.1", d.port), timeout=5))
        socks.append(s)
    return socks


def closed_by_peer(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def wait_all_closed(socks: list[socket.socket], timeout: float) -> list[float]:
    """Until the server has closed every socket; when each was seen closed (monotonic)."""
    deadline = time.monotonic() + timeout
    pending, closed_at = list(socks), [0.0] * len(socks)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"{len(pending)} of {len(socks)} idle sockets still open after {timeout}s")
        readable, _, _ = select.select(pending, [], [], min(left, 0.5))
        for s in readable:
            assert closed_by_peer(s), "the server sent something to a silent client"
            closed_at[socks.index(s)] = time.monotonic()
            pending.remove(s)
    return closed_at


def test_idle_connections_keep_threads_bounded_and_are_closed_after_the_timeout(
    make_daemon: MakeDaemon, idle_sockets: ExitStack
) -> None:
    d = make_daemon()
    set_http(d.config, idle_timeout=f"{IDLE_TIMEOUT_S:.0f}s")
    d.start()
    pid = pid_of(d)
    base = threads_of(pid)

    opened = time.monotonic()
    socks = open_idle(d, idle_sockets, IDLE)
    # the connection after them is accepted after them: once it is answered, all 200 were
    healthz_s = timed_healthz(d)
    threads = threads_of(pid)
    assert threads <= base + MAX_CONNECTIONS + SLACK_THREADS, (
        f"{threads} threads with {IDLE} idle connections (from {base})\n{tail(d.log)}"
    )
    assert healthz_s <= HEALTHZ_WITHIN_S, f"/healthz took {healthz_s:.2f} s"

    closed_at = wait_all_closed(socks, IDLE_TIMEOUT_S + 10)
    last_s = max(closed_at) - opened
    by_timeout = sum(1 for t in closed_at if t - opened >= IDLE_TIMEOUT_S * 0.9)
    assert by_timeout >= 1 and last_s >= IDLE_TIMEOUT_S * 0.9, (last_s, by_timeout)
    wait_for(
        lambda: threads_of(pid) <= base,
        10,
        lambda: f"the threads back to {base} (have {threads_of(pid)})",
    )
    assert d.status("/healthz") == 200
    print(
        f"\n{IDLE} idle connections: {threads} threads (from {base}, cap "
        f"{MAX_CONNECTIONS}); /healthz in {healthz_s * 1000:.0f} ms; "
        f"{IDLE - by_timeout} closed to make room, {by_timeout} by the {IDLE_TIMEOUT_S:.0f} s "
        f"idle timeout, the last after {last_s:.1f} s; threads back to {threads_of(pid)}"
    )


def test_sigterm_does_not_wait_for_idle_connections(
    live_journal: LiveJournal, make_daemon: MakeDaemon, idle_sockets: ExitStack
) -> None:
    d = make_daemon().start()  # the default idle timeout (10 s), longer than the stop bound
    open_idle(d, idle_sockets, 5)
    assert timed_healthz(d) <= HEALTHZ_WITHIN_S
    started = time.monotonic()
    code = d.stop(timeout=STOP_BOUND_S + 5)
    took = time.monotonic() - started
    assert code == 0 and took <= STOP_BOUND_S, f"exit {code} after {took:.1f} s"
    print(f"\nSIGTERM with 5 idle connections open: exit 0 after {took:.2f} s")

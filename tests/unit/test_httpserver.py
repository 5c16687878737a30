"""The HTTP server's connections, over real sockets on 127.0.0.1: at most `max_connections`
at once; a new one closes the connection idle longest, and is refused at once (503) only when
every one is in the middle of a request; a silent connection is closed after `idle_timeout`."""

from __future__ import annotations

import http.client
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from monitor.config.schema import HttpConfig
from monitor.daemon.httpserver import Backend, HttpServer
from monitor.daemon.metrics import Metrics

WAIT_S = 5.0


@pytest.fixture(name="serve")
def serve_fixture() -> Iterator[Callable[..., tuple[str, int]]]:
    servers: list[HttpServer] = []

    def serve(limits: HttpConfig, state: Callable[[], dict[str, Any]] = dict) -> tuple[str, int]:
        backend = Backend(Metrics(), state, lambda n: [], lambda: True, lambda: True, None, limits)
        server = HttpServer("127.0.0.1:0", backend)
        server.start()
        servers.append(server)
        host, _, port = server.address.rpartition(":")
        return host, int(port)

    try:
        yield serve
    finally:
        for server in servers:
            server.stop()


def get(address: tuple[str, int], path: str) -> int:
    conn = http.client.HTTPConnection(*address, timeout=WAIT_S)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def closed(s: socket.socket, within: float) -> bool:
    """The server closed `s` within `within` seconds (it sent nothing before)."""
    readable, _, _ = select.select([s], [], [], within)
    return bool(readable) and s.recv(1) == b""


def test_a_new_connection_closes_the_one_idle_longest(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(HttpConfig(max_connections=2, idle_timeout_us=60_000_000))
    with socket.create_connection(address) as first, socket.create_connection(address) as second:
        assert get(address, "/healthz") == 200  # a third: the first is closed for it
        assert closed(first, WAIT_S)
        assert not closed(second, 0)


def test_beyond_the_cap_with_every_connection_busy_a_new_one_is_refused_at_once(
    serve: Callable[..., tuple[str, int]],
) -> None:
    inside, release = threading.Semaphore(0), threading.Event()

    def slow_state() -> dict[str, Any]:
        inside.release()
        release.wait(WAIT_S)
        return {}

    address = serve(HttpConfig(max_connections=2, idle_timeout_us=60_000_000), slow_state)
    statuses: list[int] = []
    busy = [
        threading.Thread(target=lambda: statuses.append(get(address, "/api/v1/state")))
        for _ in range(2)
    ]
    try:
        for t in busy:
            t.start()
        for _ in busy:
            assert inside.acquire(timeout=WAIT_S), "a request in the handler"
        with socket.create_connection(address, timeout=WAIT_S) as s:
            answer = b"".join(iter(lambda: s.recv(4096), b""))
        # both slots are still held (released below): a 503 now is one that did not wait
        assert answer.startswith(b"HTTP/1.0 503 "), answer
    finally:
        release.set()
        for t in busy:
            t.join(WAIT_S)
    assert statuses == [200, 200]
    assert get(address, "/healthz") == 200


def test_a_silent_connection_is_closed_after_the_idle_timeout(
    serve: Callable[..., tuple[str, int]],
) -> None:
    address = serve(HttpConfig(idle_timeout_us=300_000))
    with socket.create_connection(address) as s:
        started = time.monotonic()
        assert closed(s, WAIT_S)
        assert time.monotonic() - started >= 0.25

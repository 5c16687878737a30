"""HTTP: /metrics, /healthz, /readyz, /api/v1/state, /api/v1/events and the status page.

Runs in its own threads; it reads what the main loop publishes and never blocks the loop for
long (the state view takes the engine lock for as long as it takes to copy what it shows)."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.config.schema import HttpConfig
from monitor.daemon.metrics import Metrics
from monitor.daemon.statuspage import render_status_page

log = logging.getLogger(__name__)


class Backend:
    """What the HTTP side asks of the daemon."""

    def __init__(
        self,
        metrics: Metrics,
        state: Callable[[], dict[str, Any]],
        events: Callable[[int], list[dict[str, Any]]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        token: str | None = None,
        limits: HttpConfig | None = None,
    ) -> None:
        self.metrics, self.state, self.events = metrics, state, events
        self.healthy, self.ready = healthy, ready
        self.token = token  # replaced by a reload; each request reads it once
        self.limits = limits or HttpConfig()  # replaced by a reload; read per connection

    def replace_token(self, token: str | None) -> None:
        """A reload's token: requests from now on must carry it (None: no token needed)."""
        self.token = token

    def replace_limits(self, limits: HttpConfig) -> None:
        """A reload's `http.idle_timeout` and `max_connections`, for connections from now on."""
        self.limits = limits


def _handler(backend: Backend, connections: _Connections) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "aisha-monitor"
        sys_version = ""

        def setup(self) -> None:
            super().setup()
            # bounds every read and write: a silent or stalled client is let go after it
            self.connection.settimeout(backend.limits.idle_timeout_us / 1e6)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http %s " + format, self.client_address[0], *args)

        def do_GET(self) -> None:
            if not connections.busy(self.connection):
                return  # closed to make room for another while its request came in
            url = urlsplit(self.path)
            try:
                self._route(url.path, parse_qs(url.query))
            except BrokenPipeError:
                pass
            except Exception:
                log.exception("http %s failed", url.path)
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

        def _route(self, path: str, query: dict[str, list[str]]) -> None:
            if path == "/metrics":
                self._send(
                    HTTPStatus.OK, generate_latest(backend.metrics.registry), CONTENT_TYPE_LATEST
                )
            elif path in ("/healthz", "/readyz"):
                ok = backend.healthy() if path == "/healthz" else backend.ready()
                status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, b"ok\n" if ok else b"not ok\n", "text/plain; charset=utf-8")
            elif path in ("/", "/api/v1/state", "/api/v1/events"):
                if not self._authorized():
                    return
                if path == "/":
                    page = render_status_page(backend.state(), backend.events(50))
                    self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
                elif path == "/api/v1/state":
                    self._json(backend.state())
                else:
                    self._json(backend.events(_limit(query)))
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")

        def _authorized(self) -> bool:
            token = backend.token
            if token is None:
                return True
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return True
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Bearer realm="aisha-monitor"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False

        def _json(self, data: Any) -> None:
            body = json.dumps(data, ensure_ascii=False, indent=1).encode()
            self._send(HTTPStatus.OK, body, "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _limit(query: dict[str, list[str]]) -> int:
    try:
        return max(1, min(1000, int(query.get("limit", ["100"])[0])))
    except ValueError:
        return 100


_REFUSED = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n"
    b"Connection: close\r\n\r\nbusy\n"
)


class _Connections:
    """The connections being served (a thread each), at most `http.max_connections`. Each is
    idle until its request has come in: a connection that sends nothing is closed to make
    room for a new one (the one idle longest first), so that idle sockets can neither pile up
    threads nor lock out /healthz; only when every one is in the middle of a request is a new
    connection refused, at once."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._idle: dict[socket.socket, None] = {}  # oldest first

    def admit(self, sock: socket.socket) -> bool:
        with self._lock:
            if len(self._open) >= self._backend.limits.max_connections:
                oldest = next(iter(self._idle), None)
                if oldest is None:
                    return False
                self._drop(oldest)
                with contextlib.suppress(OSError):  # its thread reads the end and goes
                    oldest.shutdown(socket.SHUT_RDWR)
            self._open.add(sock)
            self._idle[sock] = None
            return True

    def busy(self, sock: socket.socket) -> bool:
        """Its request came in: no longer closed to make room. False: it was, just now."""
        with self._lock:
            self._idle.pop(sock, None)
            return sock in self._open

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        self._open.discard(sock)
        self._idle.pop(sock, None)


class _Server4(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits to be accepted rather than dropped
    connections: _Connections

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.connections.admit(request):
            super().process_request(request, client_address)
            return
        with contextlib.suppress(OSError):  # a new socket's send buffer is empty: no wait
            request.setblocking(False)
            request.send(_REFUSED)
        self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        self.connections.closed(request)
        super().shutdown_request(request)


class _Server6(_Server4):
    address_family = socket.AF_INET6


class HttpServer:
    def __init__(self, listen: str, backend: Backend) -> None:
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        server_class = _Server6 if ":" in host else _Server4
        connections = _Connections(backend)
        self._server = server_class((host, int(port)), _handler(backend, connections))
        self._server.connections = connections
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

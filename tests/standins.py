"""Stand-ins on 127.0.0.1 for the daemon's HTTP peers: `StandIn`, one server that records every
request and answers as the test says (and can be down, slow or failing), and the peers built on
it that several groups of tests use: aisha-api's webhook endpoint (`WebhookApi`) and the fal.ai
queue (`FalQueue`). The `stand_ins` fixture stops every server it started."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest

WEBHOOK_PATH = "/api/v1/avatar/status_update"
# a "slow" answer: 30 s by default (longer than every client timeout of the daemon), FAULT_SLOW_S
# to change it; never more than MAX_SLOW_S, and at once when the stand-in stops
SLOW_S = min(float(os.environ.get("FAULT_SLOW_S", "30")), 120.0)
MAX_SLOW_S = 120.0
POLL_S = 0.05  # how soon a stopped server lets go of its port


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Responder = Callable[[Request], tuple[int, bytes]]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client killed between two requests on a kept-alive connection (kill -9 of the
        # daemon) is what the fault tests do, not a failure of the stand-in
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class StandIn:
    """A 127.0.0.1 HTTP server standing in for a peer (aisha-api, fal.ai, Alertmanager, a chat
    hook). It records every request, calls `on_request` as it arrives (the emulated service
    doing its work), then answers with `respond` at once, or after `slow_s` in mode "slow"
    (bounded: it answers at once when it stops), or HTTP 503 in mode "error". A request is
    recorded before it is answered, so a client's call has been recorded when it returns; one
    whose body was cut short (the client killed) is not a request.
    `stop()` takes it off its port (down); `start()` puts it back on the same port."""

    respond: Responder = field(default=lambda r: (200, b"{}"))
    on_request: Callable[[Request], None] | None = None
    port: int = 0
    mode: str = "ok"  # ok | slow | error
    slow_s: float = SLOW_S
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandIn:
        self._release.clear()
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_S,), daemon=True
        )
        self._thread.start()
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    return  # the client died mid-request (kill -9): nothing arrived
                req = Request(self.command, self.path, dict(self.headers.items()), body)
                stand_in.requests.append(req)
                if stand_in.on_request is not None:
                    stand_in.on_request(req)
                mode = stand_in.mode
                if mode == "slow":
                    stand_in._release.wait(min(stand_in.slow_s, MAX_SLOW_S))
                status, answer = (503, b"busy") if mode == "error" else stand_in.respond(req)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client gave up waiting

            do_GET = do_POST = _any  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


@pytest.fixture
def stand_ins() -> Iterator[Callable[..., StandIn]]:
    """stand_ins(**kwargs) -> a started StandIn; all of them are stopped afterwards."""
    made: list[StandIn] = []

    def make(**kwargs: Any) -> StandIn:
        s = StandIn(**kwargs)
        made.append(s)
        return s.start()

    try:
        yield make
    finally:
        for s in made:
            s.stop()


# An answer of the emulated peers: (HTTP status, JSON body or None for an empty one).
Answer = tuple[int, Any]


def json_responder(answer: Callable[[Request], Answer]) -> Responder:
    def respond(req: Request) -> tuple[int, bytes]:
        code, body = answer(req)
        return code, b"" if body is None else json.dumps(body).encode()

    return respond


class WebhookApi:
    """aisha-api's webhook endpoint: records bodies, answers `status` (settable). It logs
    nothing: the tests that need the journal lines of a webhook use `api_logger` or the e2e
    ApiEmulator."""

    def __init__(self) -> None:
        self.status = 200
        self.stand_in = StandIn(respond=json_responder(self._answer)).start()
        self.url = self.stand_in.url + WEBHOOK_PATH

    def _answer(self, req: Request) -> Answer:
        if req.method != "POST" or req.path != WEBHOOK_PATH:
            return 404, {"detail": "not found"}
        return self.status, {"ok": self.status < 300}

    @property
    def requests(self) -> list[Request]:
        return self.stand_in.requests

    @property
    def bodies(self) -> list[Any]:
        return [r.json() for r in self.stand_in.requests]

    def close(self) -> None:
        self.stand_in.stop()


class FalQueue:
    """The fal.ai queue API: GET /{model}/requests/{id}/status and GET /{model}/requests/{id}.
    `states[(model, id)]` is a status string (IN_QUEUE, IN_PROGRESS, COMPLETED …) or an HTTP
    code; unknown requests are 404. Every call must carry `Authorization: Key <key>`."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.states: dict[tuple[str, str], str | int] = {}
        self.results: dict[tuple[str, str], Any] = {}
        self.result_status = 200
        self.stand_in = StandIn(respond=json_responder(self._answer)).start()
        self.url = self.stand_in.url

    def _answer(self, req: Request) -> Answer:
        if req.headers.get("Authorization") != f"Key {self.key}":
            return 401, {"detail": "Unauthorized"}
        model, sep, rest = req.path.lstrip("/").partition("/requests/")
        if req.method != "GET" or not sep:
            return 404, {"detail": "not found"}
        is_status = rest.endswith("/status")
        rid = unquote(rest.removesuffix("/status"))
        state = self.states.get((model, rid), 404)
        if isinstance(state, int):
            return state, {"detail": f"HTTP {state}"}
        if is_status:
            return 200, {"status": state, "request_id": rid}
        if state != "COMPLETED":
            return 400, {"detail": "Request is still in progress"}
        return self.result_status, self.results.get((model, rid), {})

    @property
    def requests(self) -> list[Request]:
        return self.stand_in.requests

    def close(self) -> None:
        self.stand_in.stop()


class HealthApi:
    """aisha-api's GET /health at `url` + "/health", answering `status` (settable; 200 until
    told otherwise)."""

    def __init__(self) -> None:
        self.status = 200
        self.stand_in = StandIn(respond=self._answer).start()
        self.url = self.stand_in.url

    def _answer(self, req: Request) -> tuple[int, bytes]:
        if req.path != "/health":
            return 404, b"not found"
        return self.status, b'{"status": "ok"}' if self.status == 200 else b""

    def close(self) -> None:
        self.stand_in.stop()


@dataclass(frozen=True)
class Post:
    """One POST Alertmanager accepted: when it arrived (monotonic, and the wall clock in
    microseconds) and its alerts."""

    at: float
    wall_us: int
    alerts: list[dict[str, Any]]


class AlertReceiver:
    """Alertmanager's POST /api/v2/alerts: answers 503 to the first `refuse` POSTs, then 200,
    keeping every accepted one (`posts`) with when it arrived."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.posts: list[Post] = []
        self.stand_in = StandIn(respond=self._answer).start()
        self.url = self.stand_in.url

    def _answer(self, req: Request) -> tuple[int, bytes]:
        if req.path != "/api/v2/alerts":
            return 404, b""
        if self.refuse > 0:
            self.refuse -= 1
            return 503, b""
        self.posts.append(Post(req.at, time.time_ns() // 1000, req.json()))
        return 200, b""

    def received(self, since: float = 0.0) -> list[tuple[float, list[dict[str, Any]]]]:
        """(arrival, alerts) of the POSTs accepted at or after `since` (monotonic), oldest
        first."""
        return [(p.at, p.alerts) for p in self.posts if p.at >= since]

    def close(self) -> None:
        self.stand_in.stop()


@pytest.fixture(name="api_stand_in")
def api_stand_in_fixture() -> Iterator[str]:
    """aisha-api's GET /health answering 200. Its URL (without /health)."""
    api = HealthApi()
    try:
        yield api.url
    finally:
        api.close()


@pytest.fixture(name="alert_receiver")
def alert_receiver_fixture() -> Iterator[AlertReceiver]:
    receiver = AlertReceiver()
    try:
        yield receiver
    finally:
        receiver.close()

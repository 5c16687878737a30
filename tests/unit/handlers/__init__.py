"""Handler tests: real HTTP stand-ins on 127.0.0.1 for aisha-api and the fal.ai queue, real
specs built from YAML, a real `requests.Session`."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import requests

from handlers.base import HandlerSpec, Job, RunContext
from monitor.config.schema import Config, load_config_text
from monitor.core.model import Event, EventKind, Severity
from tests.helpers import T0

WEBHOOK_PATH = "/api/v1/avatar/status_update"
FAL_KEY = "fal-key-Zq9-UNIQUE-4c1d8e"  # distinctive: must never show up in a Result.detail
PORTRAIT = "fal-ai/flux-lora-portrait-trainer"
STYLE = "fal-ai/flux-lora-fast-training"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


# An answer: (HTTP status, JSON body or None).
Answer = tuple[int, Any]


@dataclass
class StandIn:
    """A ThreadingHTTPServer on 127.0.0.1, port 0, that records every request before it answers
    (so a handler's synchronous call has been recorded by the time it returns)."""

    answer: Callable[[Request], Answer]
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)  # for `hold`
    hold: bool = False  # answer only once `release` is set (a slow server)

    def __post_init__(self) -> None:
        stand_in = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                with lock:
                    stand_in.requests.append(req)
                if stand_in.hold:
                    stand_in.release.wait(10)
                code, body = stand_in.answer(req)
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class WebhookApi:
    """aisha-api's webhook endpoint: records bodies, answers `status` (settable)."""

    def __init__(self) -> None:
        self.status = 200
        self.stand_in = StandIn(self._answer)
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
        self.stand_in.close()


class FalQueue:
    """The fal.ai queue API: GET /{model}/requests/{id}/status and GET /{model}/requests/{id}.
    `states[(model, id)]` is a status string (IN_QUEUE, IN_PROGRESS, COMPLETED …) or an HTTP
    code; unknown requests are 404. Every call must carry `Authorization: Key <key>`."""

    def __init__(self, key: str = FAL_KEY) -> None:
        self.key = key
        self.states: dict[tuple[str, str], str | int] = {}
        self.results: dict[tuple[str, str], Any] = {}
        self.result_status = 200
        self.stand_in = StandIn(self._answer)
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
        self.stand_in.close()


@contextmanager
def refused_url() -> Iterator[str]:
    """A URL on 127.0.0.1 where nothing listens: the port is bound (so no one else takes it)
    but not listening, so a connection is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{WEBHOOK_PATH}"
    finally:
        sock.close()


def load_handlers(yaml_handlers: str, env: dict[str, str] | None = None) -> Config:
    """A config holding only the given `handlers:` section (indented YAML mapping)."""
    text = "handlers:\n" + textwrap.indent(textwrap.dedent(yaml_handlers).strip("\n"), "  ")
    return load_config_text(text + "\n", "test.yaml", env or {})


def context(
    session: requests.Session,
    handlers: Mapping[str, HandlerSpec] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    dry_run: bool = False,
) -> RunContext:
    return RunContext(session, dry_run, handlers or {}, env or {})


def unknown_value(
    key: str | None = "req-42",
    normalized: str = "completed",
    raw: str = "OK",
    t_us: int = T0,
    rule: str = "unknown_status",
) -> Event:
    labels = {"status": raw, "normalized": normalized}
    if key:
        labels["request_id"] = key
    return Event(
        t_us,
        rule,
        EventKind.UNKNOWN_VALUE,
        Severity.CRITICAL,
        key,
        labels,
        f"unknown status {raw!r}",
    )


def stalled(
    key: str = "req-42",
    training_type: str | None = None,
    t_us: int = T0,
    rule: str = "training_stalled",
) -> Event:
    labels = {"request_id": key}
    if training_type:
        labels["training_type"] = training_type
    return Event(t_us, rule, EventKind.STALLED, Severity.WARNING, key, labels, "no end within 1h")


def job(event: Event, handler: str, payload: str | None = None, attempt: int = 1) -> Job:
    return Job(1, handler, event.key or "-", event.to_json(), attempt, payload)

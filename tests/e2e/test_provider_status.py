"""A stalled training that fal.ai finished: provider_status asks the queue, delivers the result
through the webhook path, and the training ends (the stall resolves)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import ApiEmulator
from tests.integration.daemon_fixtures import LiveJournal, MakeDaemon, wait_for

pytestmark = pytest.mark.e2e

KEY = "fal-key-7f3a9c"  # distinctive: it must never show up in events or logs
RESULT = {"diffusers_lora_file": {"url": "https://v3.fal.media/files/x/lora.safetensors"}}


class FalQueue:
    """The fal.ai queue API for one request: status COMPLETED, and its result."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        fal = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fal.calls.append((self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != f"Key {KEY}":
                    body, code = {"detail": "unauthorized"}, 401
                elif self.path.endswith("/status"):
                    body, code = {"status": "COMPLETED"}, 200
                else:
                    body, code = RESULT, 200
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fal() -> Iterator[FalQueue]:
    queue = FalQueue()
    yield queue
    queue.close()


def test_stalled_training_finished_at_the_provider_heals(
    live_journal: LiveJournal, api_emulator: ApiEmulator, fal: FalQueue, make_daemon: MakeDaemon
) -> None:
    env = {"AISHA_API_URL": api_emulator.url, "FAL_QUEUE_URL": fal.url, "FAL_KEY": KEY}
    d = make_daemon(deadline="2s", env=env).start()
    lj = live_journal
    lj.send([lj.app("Запуск обучения аватара av-9 отправлен в FAL AI, request_id: lost-9")])

    def outcomes() -> list[str]:
        return [e["labels"]["outcome"] for e in d.events() if e["kind"] == "handler"]

    wait_for(lambda: "done" in outcomes(), 30, "provider_status done")
    kinds = [(e["kind"], e["rule"]) for e in d.events() if e["key"] == "lost-9"]
    assert ("stalled", "training_stalled") in kinds
    wait_for(
        lambda: (
            ("resolved", "training_stalled")
            in [(e["kind"], e["rule"]) for e in d.events() if e["key"] == "lost-9"]
        ),
        10,
        "resolved",
    )
    (delivered,) = api_emulator.received
    assert delivered == {"request_id": "lost-9", "status": "completed", "result": RESULT}
    assert all(auth == f"Key {KEY}" for _, auth in fal.calls)
    assert fal.calls[0][0].endswith("/requests/lost-9/status")
    assert "AishaTrainingStalled" not in {a["alertname"] for a in d.state()["alerts"]}
    assert KEY not in json.dumps(d.events()) and KEY not in d.log_text()

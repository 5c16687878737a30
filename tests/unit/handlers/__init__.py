"""Handler tests: real HTTP stand-ins on 127.0.0.1 for aisha-api and the fal.ai queue
(tests/standins.py), real specs built from YAML, a real `requests.Session`."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import requests

from handlers.base import HandlerSpec, Job, RunContext
from monitor.config.schema import Config, load_config_text
from monitor.core.model import Event, EventKind, Severity
from tests.helpers import T0
from tests.standins import WEBHOOK_PATH

FAL_KEY = "fal-key-Zq9-UNIQUE-4c1d8e"  # distinctive: must never show up in a Result.detail
PORTRAIT = "fal-ai/flux-lora-portrait-trainer"
STYLE = "fal-ai/flux-lora-fast-training"


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

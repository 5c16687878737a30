"""Fixtures of the handler and outbox tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.standins import WebhookApi


@pytest.fixture
def api() -> Iterator[WebhookApi]:
    """aisha-api's webhook endpoint on 127.0.0.1, answering 200 until told otherwise."""
    server = WebhookApi()
    yield server
    server.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s

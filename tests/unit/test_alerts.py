"""The alert book (events -> alerts) and the Alertmanager sender against a stand-in server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.alerter import Alerter
from monitor.alerts import AlertBook
from monitor.config import load_config
from monitor.metrics import Metrics
from monitor.model import Event, EventKind, Severity
from tests.helpers import T0, S

H = 3600 * S


def book() -> AlertBook:
    return AlertBook(load_config(None, env={}))


def ev(kind: EventKind, rule: str, key: str | None, t: int, **labels: str) -> Event:
    sev = Severity.CRITICAL if rule == "unknown_status" else Severity.WARNING
    return Event(t, rule, kind, sev, key, dict(labels), f"{rule} {kind} {key}")


def active(b: AlertBook) -> dict[str, list[str]]:
    return {a.alertname: list(a.keys) for a in b.sendable() if a.keys}


def test_one_alert_per_rule_with_request_ids_as_instances() -> None:
    b = book()
    events = [
        ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0),
        ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r2", T0 + S),
        ev(EventKind.STALLED, "training_stalled", "t1", T0 + 2 * S),
        ev(EventKind.PAIR_CLOSED, "training_stalled", "t2", T0 + 3 * S),
    ]
    b.apply(events, T0 + 3 * S)
    assert active(b) == {"AishaUnknownWebhookStatus": ["r1", "r2"], "AishaTrainingStalled": ["t1"]}
    assert b.firing()["AishaUnknownWebhookStatus"] == 1
    b.apply([ev(EventKind.RESOLVED, "training_stalled", "t1", T0 + 4 * S)], T0 + 4 * S)
    (stalled,) = [a for a in b.sendable() if a.alertname == "AishaTrainingStalled"]
    assert stalled.keys == () and stalled.resolved_us == T0 + 4 * S


def test_stale_one_off_events_are_history_not_pages() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "old", T0)], T0 + 2 * H)
    b.apply([ev(EventKind.STALLED, "training_stalled", "t-old", T0)], T0 + 2 * H)
    assert active(b) == {"AishaTrainingStalled": ["t-old"]}  # still true now: alerted


def test_one_off_alerts_expire_and_resolved_ones_are_forgotten() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    assert not b.expire(T0 + H - 1)
    assert b.expire(T0 + H)
    assert active(b) == {}
    assert b.expire(T0 + H + 16 * 60 * S)  # resolved 15 min ago: no longer re-sent
    assert b.sendable() == ()


def test_verified_fallback_heals_and_failed_one_raises() -> None:
    b = book()
    b.apply(
        [
            ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0),
            ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r2", T0),
        ],
        T0,
    )
    b.apply(
        [
            ev(
                EventKind.HANDLER,
                "unknown_status",
                "r1",
                T0 + S,
                handler="replay_webhook",
                outcome="verified",
                source_rule="unknown_status",
            ),
            ev(
                EventKind.HANDLER,
                "unknown_status",
                "r2",
                T0 + S,
                handler="replay_webhook",
                outcome="verify_failed",
                source_rule="unknown_status",
            ),
        ],
        T0 + S,
    )
    assert active(b) == {"AishaUnknownWebhookStatus": ["r2"], "AishaFallbackFailed": ["r2"]}


def test_health_check_alert() -> None:
    b = book()
    b.apply([ev(EventKind.HEALTH, "aisha_api_http", None, T0, state="down")], T0)
    assert active(b) == {"AishaApiUnhealthy": ["-"]}
    b.apply([ev(EventKind.RESOLVED, "aisha_api_http", None, T0 + S, state="up")], T0 + S)
    assert active(b) == {}


def test_snapshot_round_trip() -> None:
    b = book()
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "r1", T0)], T0)
    c = book()
    c.restore(json.loads(json.dumps(b.snapshot())))
    assert c.sendable() == b.sendable()


class _AM(BaseHTTPRequestHandler):
    received: list[list[dict[str, Any]]]
    fail_first: int

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
        else:
            cls.received.append(body)
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def am() -> Iterator[tuple[str, type[_AM]]]:
    handler = type("AM", (_AM,), {"received": [], "fail_first": 1})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_alerter_posts_v2_payload_and_retries(am: tuple[str, type[_AM]]) -> None:
    url, handler = am
    cfg = load_config(None, env={"ALERTMANAGER_URL": url}).alerting
    metrics = Metrics()
    b = book()
    now = time.time_ns() // 1000
    b.apply([ev(EventKind.UNKNOWN_VALUE, "unknown_status", "test_completed", now)], now)
    alerter = Alerter(cfg, metrics, "http://127.0.0.1:9817/")
    alerter.start()
    try:
        alerter.publish(b.sendable())
        wait_for(lambda: handler.received, 10)  # the first POST got 503: retried after backoff
    finally:
        alerter.stop()
    (alert,) = handler.received[0]
    assert alert["labels"] == {
        "alertname": "AishaUnknownWebhookStatus",
        "severity": "critical",
        "service": "aisha-api",
        "instance": cfg.instance,
        "rule": "unknown_status",
    }
    assert alert["annotations"]["request_ids"] == "test_completed"
    assert alert["annotations"]["summary"] == "aisha-api dropped a webhook with an unknown status"
    assert alert["generatorURL"] == "http://127.0.0.1:9817/"
    assert alert["endsAt"] > alert["startsAt"]
    sample = metrics.registry.get_sample_value
    assert sample("aisha_monitor_alert_deliveries_total", {"outcome": "failed"}) == 1
    assert sample("aisha_monitor_alert_deliveries_total", {"outcome": "sent"}) == 1


def test_unknown_health_is_not_down() -> None:
    b = book()
    b.apply([ev(EventKind.HEALTH, "aisha_api_unit", None, T0, state="unknown")], T0)
    b.apply([ev(EventKind.HEALTH, "aisha_api_http", None, T0, state="unknown")], T0)
    assert active(b) == {}


def test_the_alert_says_what_the_provider_answered() -> None:
    b = book()
    b.apply([ev(EventKind.STALLED, "training_stalled", "t1", T0)], T0)
    pending = ev(
        EventKind.HANDLER,
        "training_stalled",
        "t1",
        T0 + S,
        handler="provider_status",
        outcome="pending",
        source_rule="training_stalled",
    )
    b.apply([pending], T0 + S)
    (alert,) = b.sendable()
    assert alert.details[0].endswith("| training_stalled handler t1")
    assert alert.details[0].startswith("training_stalled stalled t1")

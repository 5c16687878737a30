"""Sends the alert book to Alertmanager (API v2 only), from its own thread.

Each send carries the whole current state, so a queue cannot overflow and nothing is lost while
Alertmanager is down: once it answers again it gets what is true now. Active alerts are re-sent
every `resend_interval` with endsAt = now + 4 x resend_interval; a resolved one is sent with
endsAt = its resolution time for 15 minutes. Every configured URL gets every alert (an HA pair
dedups itself); each URL has its own backoff."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import requests

from monitor.config.schema import AlertingConfig
from monitor.config.secrets import Auth, redact
from monitor.core.clock import Clock, SystemClock
from monitor.core.model import format_time, us_to_datetime
from monitor.daemon.alerts import SHOWN_KEYS, Sendable
from monitor.daemon.metrics import Metrics

log = logging.getLogger(__name__)

TICK_S = 0.2
MAX_BACKOFF_S = 60.0
TIMEOUT_S = (2.0, 5.0)  # connect, read


@dataclass(slots=True)
class _Target:
    url: str
    sent_version: int = -1
    sent_at: float = 0.0
    retry_at: float = 0.0
    backoff_s: float = 0.0


class Alerter:
    def __init__(
        self,
        cfg: AlertingConfig,
        metrics: Metrics,
        generator_url: str,
        clock: Clock | None = None,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.generator_url = generator_url
        self.clock = clock or SystemClock()
        self._targets = [_Target(u.rstrip("/") + "/api/v2/alerts") for u in cfg.alertmanager_urls]
        self._lock = threading.Lock()
        self._published: tuple[Sendable, ...] = ()
        self._version = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._started = False
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="alerter", daemon=True)

    def publish(self, alerts: tuple[Sendable, ...]) -> None:
        """Called by the main loop after a commit, once caught up."""
        with self._lock:
            if alerts != self._published:
                self._published = alerts
                self._version += 1
                self._wake.set()

    def reconfigure(self, cfg: AlertingConfig) -> None:
        """After a reload: everything is sent again under the new settings (specs, labels,
        resend_interval). A URL kept keeps its backoff; a removed one gets nothing from the next
        round on (a round in flight finishes under the settings it started with); the first URL
        starts the sending thread."""
        with self._lock:
            kept = {t.url: t for t in self._targets}
            urls = [u.rstrip("/") + "/api/v2/alerts" for u in cfg.alertmanager_urls]
            self._targets = [kept.get(url) or _Target(url) for url in urls]
            self.cfg = cfg
            self._version += 1
        self._start_if_needed()
        self._wake.set()

    def start(self) -> None:
        self._started = True
        self._start_if_needed()

    def _start_if_needed(self) -> None:
        """The thread runs once started with a URL to send to (never after a stop)."""
        with self._lock:
            idle = self._started and bool(self._targets) and not self._thread.is_alive()
            if idle and not self._stop.is_set():
                self._thread.start()

    def stop(self, grace_s: float = 3.0) -> None:
        self.request_stop()
        self.join(self.clock.monotonic() + grace_s)

    def request_stop(self) -> None:
        """No delivery starts after this; `join` waits for the one in flight."""
        self._stop.set()
        self._wake.set()

    def join(self, deadline: float) -> None:
        """Wait for the delivery in flight until `deadline` (monotonic); one still waiting on a
        slow Alertmanager is left to die with the process (a daemon thread): the alert book is
        in the state store, and the next start sends it whole."""
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, deadline - self.clock.monotonic()))

    def payload(
        self, alerts: tuple[Sendable, ...], now_us: int, cfg: AlertingConfig | None = None
    ) -> list[dict[str, Any]]:
        cfg = cfg or self.cfg
        out = []
        for a in alerts:
            spec = cfg.alerts.get(a.alertname)
            labels = {
                "alertname": a.alertname,
                "severity": a.severity,
                "service": cfg.service,
                "instance": cfg.instance,
                "rule": a.rule,
                **(spec.labels if spec else {}),
            }
            keys = [k for k in a.keys if k != "-"]
            shown = ", ".join(keys[:SHOWN_KEYS]) + (
                f" (+{len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else ""
            )
            description = (spec.description if spec else "").strip()
            if a.details:
                description += ("\n" if description else "") + "\n".join(a.details[:5])
            annotations = {
                "summary": spec.summary if spec else a.alertname,
                "description": description,
            }
            if shown:
                annotations["request_ids"] = shown
            if spec and spec.runbook_url:
                annotations["runbook_url"] = spec.runbook_url
            resolved = a.resolved_us is not None and not a.keys
            ends_us = (
                a.resolved_us if resolved and a.resolved_us else now_us + 4 * cfg.resend_interval_us
            )
            out.append({
                "labels": labels,
                "annotations": annotations,
                "startsAt": format_time(us_to_datetime(a.starts_us)),
                "endsAt": format_time(us_to_datetime(ends_us)),
                "generatorURL": self.generator_url,
            })  # fmt: skip
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_S)
            self._wake.clear()
            # one round sees one configuration: a reload lands between rounds, never inside one
            with self._lock:
                alerts, version = self._published, self._version
                cfg, targets = self.cfg, self._targets
            resend_s = cfg.resend_interval_us / 1e6
            now = self.clock.monotonic()
            for target in targets:
                due = target.sent_version != version or now - target.sent_at >= resend_s
                if (
                    due
                    and now >= target.retry_at
                    and not self._stop.is_set()
                    and (alerts or target.sent_version != version)
                ):
                    body = self.payload(alerts, self.clock.now_us(), cfg)
                    self._send(target, body, version, cfg.auth)

    def _send(self, target: _Target, body: list[dict[str, Any]], version: int, auth: Auth) -> None:
        ok, why = self._post(target.url, body, auth)
        now = self.clock.monotonic()
        if ok:
            target.sent_version, target.sent_at, target.backoff_s, target.retry_at = (
                version,
                now,
                0.0,
                0.0,
            )
            self.metrics.alert_deliveries.labels("sent").inc()
            return
        target.backoff_s = min(MAX_BACKOFF_S, max(1.0, target.backoff_s * 2))
        target.retry_at = now + target.backoff_s
        self.metrics.alert_deliveries.labels("failed").inc()
        log.warning(
            "alert delivery to %s failed (%s); retrying in %.0fs",
            redact(target.url),
            why,
            target.backoff_s,
        )

    def _post(self, url: str, body: list[dict[str, Any]], auth: Auth) -> tuple[bool, str]:
        """One delivery: (delivered, why not). The token is read at each send: a rotated one is
        used at once; one that cannot be read or sent is said, never shown."""
        try:
            headers = auth.headers(os.environ)
        except OSError as e:
            return False, f"cannot read {auth.source}: {e.strerror}"
        except ValueError as e:
            return False, str(e)
        try:
            r = self._session.post(url, json=body, headers=headers, timeout=TIMEOUT_S)
        except requests.RequestException as e:
            return False, type(e).__name__
        return r.status_code == 200, f"HTTP {r.status_code}"

"""SIGHUP changes where alerts go: a daemon started with no Alertmanager gets its first one on a
reload (a real Alertmanager, read back over its API), and a URL a reload removes gets nothing
more."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Alertmanager
from tests.integration.daemon_fixtures import (
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    begin,
    unknown,
    wait_for,
)
from tests.integration.test_daemon import replace_text
from tests.standins import AlertReceiver

pytestmark = pytest.mark.e2e

RELOADED_AT = "aisha_monitor_config_last_reload_success_timestamp_seconds"
ALERT = "AishaUnknownWebhookStatus"


def set_alerting(d: MonitorDaemon, **keys: Any) -> None:
    data = yaml.safe_load(d.config.read_text(encoding="utf-8"))
    data["alerting"].update(keys)
    (rule,) = [r for r in data["rules"] if r["name"] == "unknown_status"]
    rule.pop("handler", None)  # no handler runs: the alert changes only when the config does
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100_000)
    replace_text(d.config, text)


def reload_applied(d: MonitorDaemon) -> None:
    before = d.metric(RELOADED_AT)
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metric(RELOADED_AT) != before, 10, "the reload applied")


def paged(am: Alertmanager) -> list[dict[str, Any]]:
    return [a for a in am.alerts() if a["labels"]["alertname"] == ALERT]


def first_post_with(receiver: AlertReceiver, instance: str) -> float | None:
    """When the stand-in first got the alert with this `instance` label (monotonic)."""
    for t, body in receiver.received():
        if any(
            a["labels"]["instance"] == instance for a in body if a["labels"]["alertname"] == ALERT
        ):
            return t
    return None


def test_sighup_adds_the_first_alertmanager_and_removes_one(
    live_journal: LiveJournal,
    make_daemon: MakeDaemon,
    alert_receiver: AlertReceiver,
    tmp_path: Path,
) -> None:
    lj = live_journal
    am = Alertmanager(tmp_path).start()
    try:
        d = make_daemon()
        set_alerting(d, alertmanager_urls=[], resend_interval="1s", instance="before")
        d.start()
        lj.send([lj.app(begin("r-am", "weird")), lj.app(unknown("weird"), level="WARNING")])
        wait_for(
            lambda: [a for a in d.state()["alerts"] if a["alertname"] == ALERT],
            10,
            "the alert active in the daemon",
        )

        # the first URL: the sender starts, and the alert reaches the real Alertmanager
        set_alerting(d, alertmanager_urls=[am.url], resend_interval="1s", instance="before")
        reload_applied(d)
        (alert,) = wait_for(lambda: paged(am), 10, "the alert in Alertmanager")
        assert alert["labels"]["instance"] == "before"
        assert alert["annotations"]["request_ids"] == "r-am"
        # re-sent every second: Alertmanager's updatedAt moves while its URL is configured
        first = alert["updatedAt"]
        wait_for(lambda: paged(am)[0]["updatedAt"] > first, 10, "a re-send to Alertmanager")

        # its URL replaced by the stand-in's, the instance label changed with it: once the
        # stand-in has the new label, every send under the old config is over (one thread,
        # one round, one config), and Alertmanager must get nothing more
        set_alerting(d, alertmanager_urls=[alert_receiver.url], instance="after")
        reload_applied(d)
        switched = wait_for(
            lambda: first_post_with(alert_receiver, "after"), 10, "the alert at the stand-in"
        )
        seen: set[tuple[str, str]] = set()

        def expired() -> bool:
            alerts = paged(am)
            seen.update((a["labels"]["instance"], a["updatedAt"]) for a in alerts)
            return not alerts

        # sent with endsAt = now + 4 x resend_interval: only a re-send would keep it active
        wait_for(expired, 15, lambda: f"the alert in Alertmanager to expire (seen {seen})")
        assert len(seen) <= 1 and {i for i, _ in seen} <= {"before"}, seen
        # … while the stand-in, the URL that stayed, gets it every second
        wait_for(
            lambda: len(alert_receiver.received(switched)) >= 3, 10, "re-sends to the stand-in"
        )
    finally:
        am.stop()

"""(e) A reload of a large config: SIGHUP with a 10 MB config file (the shipped config and a
10 MB comment: ~7 s to parse on the test machine) while lines are written. The loop reads on
while the file is parsed in a thread: the next line is counted within a second, before the
reload applies; then the reload applies whole. A second SIGHUP while the first is prepared is
not lost: the file as it is then wins. systemd hears RELOADING=1, then READY=1 once settled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import RELOAD_OK, entries, tune
from tests.integration.daemon_fixtures import (
    ACCESS,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    parse_metrics,
    tail,
    wait_for,
)

pytestmark = pytest.mark.faults

P = "aisha_monitor_"
RELOADED_AT = P + "config_last_reload_success_timestamp_seconds"
ENTRIES = P + "journal_entries_total"
BIG_BYTES = 10_000_000
COUNTED_WITHIN_S = 1.0
RELOAD_TIMEOUT_S = 120.0  # the parse takes ~7 s alone; the machine is shared


class Notifications:
    """What the daemon tells systemd: the datagrams sent to NOTIFY_SOCKET, one per message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.got: list[str] = []

    def poll(self) -> list[str]:
        """Every message so far (those waiting on the socket read now)."""
        with contextlib.suppress(BlockingIOError):
            while True:
                self.got.append(self.sock.recv(4096).decode())
        return self.got

    def lines(self, prefix: str) -> list[int]:
        """Indexes of the messages that carry a line starting with `prefix`."""
        self.poll()
        return [
            i for i, m in enumerate(self.got) if any(s.startswith(prefix) for s in m.splitlines())
        ]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(name="notifications")
def notifications_fixture(tmp_path: Path) -> Iterator[Notifications]:
    n = Notifications(tmp_path / "notify.sock")
    try:
        yield n
    finally:
        n.close()


def add_rule(name: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["rules"].append({"name": name, "type": "match", "pattern": f"never-{name}"})

    return edit


def write_big(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """The tuned config with `edit`, and a 10 MB comment after it; written atomically."""
    small = tune(path.with_name("small.yaml"), edit)
    line = "# " + "padding " * 12 + "\n"
    text = small.read_text(encoding="utf-8") + line * (BIG_BYTES // len(line))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def rule_names(d: MonitorDaemon) -> set[str]:
    return {r["name"] for r in d.state()["rules"]}


def ready_again(notifications: Notifications) -> None:
    """One RELOADING=1, and after it one READY=1 (the daemon sends it once the reload is
    applied: it may come just after the reload shows in /metrics)."""
    (reloading,) = notifications.lines("RELOADING=1")
    wait_for(
        lambda: [i for i in notifications.lines("READY=1") if i > reloading],
        5,
        lambda: f"READY=1 after RELOADING=1: {notifications.got}",
    )
    assert len([i for i in notifications.lines("READY=1") if i > reloading]) == 1, notifications.got


def started(make_daemon: MakeDaemon, notifications: Notifications) -> MonitorDaemon:
    d = make_daemon(env={"NOTIFY_SOCKET": str(notifications.path)})
    tune(d.config)
    d.start()
    wait_for(lambda: notifications.lines("READY=1"), 10, "READY=1 at the start")
    return d


def test_a_large_config_is_parsed_while_the_loop_reads_on(
    live_journal: LiveJournal, make_daemon: MakeDaemon, notifications: Notifications
) -> None:
    lj = live_journal
    d = started(make_daemon, notifications)
    write_big(d.config, add_rule("big_only"))
    before, reloaded_at = entries(d), d.metric(RELOADED_AT)
    (ready_at_start,) = notifications.lines("READY=1")

    d.signal(signal.SIGHUP)
    wait_for(lambda: notifications.lines("RELOADING=1"), 5, "RELOADING=1 after the SIGHUP")
    lj.send([lj.raw(ACCESS)])
    sent = time.monotonic()
    # one scrape says both: the line counted, and whether the reload had applied by then
    scrape = wait_for(
        lambda: (
            (m := parse_metrics(d.get("/metrics")))
            and (m.get((ENTRIES, (("unit", "aisha-api.service"),))) or 0) >= before + 1
            and m
        ),
        RELOAD_TIMEOUT_S,
        lambda: f"the line counted\n{tail(d.log)}",
        interval=0.01,
    )
    counted_s = time.monotonic() - sent
    assert scrape[(RELOADED_AT, ())] == reloaded_at, (
        f"the line was counted only once the reload had applied ({counted_s:.2f} s)"
    )
    assert counted_s <= COUNTED_WITHIN_S, f"the line took {counted_s:.2f} s to be counted"

    wait_for(
        lambda: d.metric(RELOADED_AT) != reloaded_at,
        RELOAD_TIMEOUT_S,
        lambda: f"the reload applied\n{tail(d.log)}",
    )
    applied_s = time.monotonic() - sent
    assert d.metric(RELOAD_OK) == 1
    assert "big_only" in rule_names(d)
    assert d.log_text().count("config reloaded") == 1
    assert notifications.lines("READY=1")[0] == ready_at_start
    ready_again(notifications)
    lj.send([lj.raw(ACCESS)])
    wait_for(lambda: entries(d) >= before + 2, 10, "a line counted after the reload")
    print(
        f"\nSIGHUP with a {BIG_BYTES / 1e6:.0f} MB config: the next line counted after "
        f"{counted_s:.2f} s, the reload applied after {applied_s:.1f} s"
    )


def test_a_sighup_while_a_reload_is_prepared_is_not_lost(
    make_daemon: MakeDaemon, notifications: Notifications
) -> None:
    d = started(make_daemon, notifications)
    write_big(d.config, add_rule("big_only"))
    reloaded_at = d.metric(RELOADED_AT)

    d.signal(signal.SIGHUP)
    wait_for(lambda: notifications.lines("RELOADING=1"), 5, "RELOADING=1 after the SIGHUP")
    tune(d.config, add_rule("latest_only"))  # changed again while the big one is parsed
    assert d.metric(RELOADED_AT) == reloaded_at, "the big config was parsed already"
    d.signal(signal.SIGHUP)
    wait_for(
        lambda: d.metric(RELOADED_AT) != reloaded_at,
        RELOAD_TIMEOUT_S,
        lambda: f"a reload applied\n{tail(d.log)}",
    )
    names = rule_names(d)
    assert "latest_only" in names and "big_only" not in names, names
    assert d.metric(RELOAD_OK) == 1
    assert d.log_text().count("config reloaded") == 1  # the file as it was at the last SIGHUP
    # systemd: reloading from the first SIGHUP until the latest file applied, then ready
    ready_again(notifications)

"""SIGHUP applies every reloadable setting, or refuses the whole reload with a reason: the daemon
as a subprocess over a live journal, with real HTTP on 127.0.0.1 on every side (README, "Signals
and systemd", has the table these tests hold it to)."""

from __future__ import annotations

import http.client
import itertools
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.daemon_fixtures import (
    API_UNIT,
    LiveJournal,
    MakeDaemon,
    MonitorDaemon,
    begin,
    closed_url,
    daemon_env,
    free_port,
    unknown,
    wait_for,
    write_config,
)
from tests.integration.test_daemon import replace_text
from tests.standins import AlertReceiver

pytestmark = pytest.mark.integration

P = "aisha_monitor_"
RELOAD_OK = P + "config_last_reload_successful"
RELOADED_AT = P + "config_last_reload_success_timestamp_seconds"
HEALTH_UP = P + "health_up"
CHECK = "aisha_api_http"  # the one health check write_config(health_url=...) sets up
ALERT = "AishaUnknownWebhookStatus"

Posts = list[tuple[float, list[dict[str, Any]]]]


# --- helpers -------------------------------------------------------------------------------------


def edit_config(path: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Change the YAML at `path` in place (atomically: a reload never reads half a file)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    replace_text(path, yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100_000))


def rule(data: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in data["rules"] if r["name"] == name]
    return found  # type: ignore[no-any-return]


def reload_applied(d: MonitorDaemon) -> None:
    """SIGHUP, then until the daemon has applied a config after it (its success time moved)."""
    before = d.metric(RELOADED_AT)
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metric(RELOADED_AT) != before, 10, "the reload applied")
    assert d.metric(RELOAD_OK) == 1


def raise_alert(lj: LiveJournal, rid: str) -> None:
    """The seed's incident: a background task drops an unknown status (AishaUnknownWebhookStatus
    fires)."""
    lj.send([lj.app(begin(rid, "weird")), lj.app(unknown("weird"), level="WARNING")])


def with_alert(posts: Posts) -> Posts:
    return [p for p in posts if any(a["labels"]["alertname"] == ALERT for a in p[1])]


def status_with_token(d: MonitorDaemon, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request("GET", "/api/v1/state", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def entries_of(d: MonitorDaemon) -> float:
    return d.metric(P + "journal_entries_total", unit=API_UNIT) or 0.0


def health_result(d: MonitorDaemon) -> dict[str, Any] | None:
    return next((h for h in d.state()["health"] if h["check"] == CHECK), None)


# --- alerting ------------------------------------------------------------------------------------


def test_sighup_applies_a_new_resend_interval(
    live_journal: LiveJournal, make_daemon: MakeDaemon, alert_receiver: AlertReceiver
) -> None:
    lj, am = live_journal, alert_receiver
    d = make_daemon(env={"ALERTMANAGER_URL": am.url})

    def slow(data: dict[str, Any]) -> None:
        data["alerting"]["resend_interval"] = "1h"
        rule(data, "unknown_status").pop("handler")  # no handler runs: no other reason to send

    edit_config(d.config, slow)
    d.start()
    raise_alert(lj, "r-resend")
    wait_for(lambda: with_alert(am.received()), 10, "the alert at the Alertmanager stand-in")

    edit_config(d.config, lambda data: data["alerting"].update(resend_interval="1s"))
    reload_applied(d)
    applied = wait_for(lambda: with_alert(am.received()), 1, "a post")[-1][0]
    # the reload itself sends once; after that, a re-send every second (not every hour)
    posts = wait_for(
        lambda: len(p := with_alert(am.received(applied))) >= 4 and p,
        10,
        lambda: f"3 re-sends 1 s apart (got {len(with_alert(am.received(applied)))} posts)",
    )
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(posts)]
    assert all(0.5 <= g <= 3.0 for g in gaps), gaps


# --- health checks -------------------------------------------------------------------------------


def test_sighup_applies_a_changed_health_check(make_daemon: MakeDaemon, api_stand_in: str) -> None:
    down_url = closed_url() + "/health"
    d = make_daemon(health_url=down_url).start()
    wait_for(lambda: d.metric(HEALTH_UP, check=CHECK) == 0, 10, "the check down (closed port)")

    config = d.config
    write_config(config, health_url=api_stand_in + "/health")
    reload_applied(d)
    wait_for(lambda: d.metric(HEALTH_UP, check=CHECK) == 1, 10, "the check up at its new URL")
    result = health_result(d)
    assert result is not None and result["detail"] == "HTTP 200"
    # the check's last result survived the reload: down -> up is news (the alert resolves)
    resolved = wait_for(
        lambda: [e for e in d.events() if e["kind"] == "resolved" and e["rule"] == CHECK],
        5,
        "a resolved event",
    )
    assert len(resolved) == 1, resolved


# --- the HTTP token ------------------------------------------------------------------------------


def test_sighup_reads_the_token_file_again(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("old-token\n", encoding="utf-8")
    d = make_daemon()
    edit_config(d.config, lambda data: data["http"].update(token_file=str(token_file)))
    d.start()
    assert status_with_token(d, "old-token") == 200
    assert status_with_token(d, "new-token") == 401

    replace_text(token_file, "new-token\n")
    reload_applied(d)
    assert status_with_token(d, "new-token") == 200
    assert status_with_token(d, "old-token") == 401
    assert d.status("/api/v1/state") == 401  # still a token, just another one

    # another file, and no token file at all
    other = tmp_path / "other-token"
    other.write_text("third-token\n", encoding="utf-8")
    edit_config(d.config, lambda data: data["http"].update(token_file=str(other)))
    reload_applied(d)
    assert (status_with_token(d, "third-token"), status_with_token(d, "new-token")) == (200, 401)
    edit_config(d.config, lambda data: data["http"].pop("token_file"))
    reload_applied(d)
    assert d.status("/api/v1/state") == 200


# --- what only a restart applies -----------------------------------------------------------------


class PlacedByConfig(MonitorDaemon):
    """Reads the journal, keeps its state and listens where its config says (no --journal-dir,
    --state-dir or --listen on the command line), so that a reload can try to change them."""

    listen_port = 0

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "monitor", "run", "-c", str(self.config)]

    def start(self, wait: bool = True) -> PlacedByConfig:
        super().start(wait=False)
        self.port = self.listen_port
        if wait:
            self.wait_ready()
        return self


@pytest.fixture(name="placed_daemon")
def placed_daemon_fixture(
    tmp_path: Path, live_journal: LiveJournal, daemons: list[MonitorDaemon]
) -> Callable[..., PlacedByConfig]:
    """placed_daemon(health_url=...): a PlacedByConfig daemon, not started; stopped afterwards
    by `daemons`."""

    def make(health_url: str | None = None) -> PlacedByConfig:
        workdir = tmp_path / "placed"
        workdir.mkdir()
        config = write_config(workdir / "config.yaml", health_url=health_url)
        d = PlacedByConfig(config, live_journal.directory, workdir / "state", workdir, daemon_env())
        d.listen_port = free_port()

        def place(data: dict[str, Any]) -> None:
            data["journal"]["directory"] = str(live_journal.directory)
            data["state"]["directory"] = str(workdir / "state")
            data["http"]["listen"] = f"127.0.0.1:{d.listen_port}"

        edit_config(config, place)
        daemons.append(d)
        return d

    return make


def test_sighup_refuses_a_restart_only_change_and_keeps_the_old_config_whole(
    placed_daemon: Callable[..., PlacedByConfig], api_stand_in: str, tmp_path: Path
) -> None:
    down_url = closed_url() + "/health"
    d = placed_daemon(health_url=down_url).start()
    wait_for(lambda: d.metric(HEALTH_UP, check=CHECK) == 0, 10, "the check down (closed port)")
    original = d.config.read_text(encoding="utf-8")
    new_port = free_port()

    def restart_only(data: dict[str, Any]) -> None:
        data["http"]["listen"] = f"127.0.0.1:{new_port}"
        data["state"]["directory"] = str(tmp_path / "elsewhere")
        data["journal"]["start"] = "tail"
        data["health_checks"][0]["url"] = api_stand_in + "/health"  # reloadable: must wait too

    edit_config(d.config, restart_only)
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metric(RELOAD_OK) == 0, 10, "config_last_reload_successful 0")
    problems = d.state()["config"]["problems"]
    for key in ("http.listen", "state.directory", "journal.start"):
        (problem,) = [p for p in problems if f": {key}: changed from " in p]
        assert problem.startswith(f"{d.config}: ") and "restart the daemon" in problem, problem
        assert f"reload refused: {problem}" in d.log_text()
    assert len(problems) == 3, problems

    # the old config runs on, all of it: the health check stays on its old URL (a reload that
    # applied it would have run it at once on the new one), HTTP stays where it was
    refused_at = wait_for(lambda: health_result(d), 5, "a health result")["checked_at"]
    later = wait_for(
        lambda: (h := health_result(d)) and h["checked_at"] > refused_at and h,
        10,
        "the health check to run again",
    )
    assert later["up"] == 0 and later["detail"].startswith(down_url), later
    assert d.metric(HEALTH_UP, check=CHECK) == 0
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", new_port, timeout=2).connect()

    # back to the start-up values with only the health check changed: applied
    replace_text(d.config, original)
    edit_config(
        d.config, lambda data: data["health_checks"][0].update(url=api_stand_in + "/health")
    )
    reload_applied(d)
    assert d.state()["config"]["problems"] == []
    wait_for(lambda: d.metric(HEALTH_UP, check=CHECK) == 1, 10, "the check up at its new URL")


def test_sighup_refuses_a_journal_it_cannot_open(
    placed_daemon: Callable[..., PlacedByConfig], live_journal: LiveJournal, tmp_path: Path
) -> None:
    d = placed_daemon().start()
    lj = live_journal
    missing = tmp_path / "no-such-journal"
    edit_config(d.config, lambda data: data["journal"].update(directory=str(missing)))
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metric(RELOAD_OK) == 0, 10, "config_last_reload_successful 0")
    (problem,) = d.state()["config"]["problems"]
    assert problem.startswith(f"{d.config}: journal: cannot open {missing}"), problem

    # still reading the journal it had
    before = d.metric(P + "journal_entries_total", unit="aisha-api.service") or 0
    raise_alert(lj, "r-journal")
    wait_for(
        lambda: (
            (d.metric(P + "journal_entries_total", unit="aisha-api.service") or 0) >= before + 2
        ),
        10,
        "the new lines counted",
    )
    assert d.running()


def test_sighup_with_a_rule_on_priority_reads_the_journal_priority(
    live_journal: LiveJournal, make_daemon: MakeDaemon
) -> None:
    lj = live_journal
    d = make_daemon()

    def no_priority(data: dict[str, Any]) -> None:
        data["rules"].remove(rule(data, "api_errors"))  # no rule looks at PRIORITY: not read
        # two units: every entry is read one by one (one unit's reader reads PRIORITY itself
        # for the lines its gate lets through)
        data["journal"]["units"] = [API_UNIT, "aisha-worker.service"]

    edit_config(d.config, no_priority)
    d.start()

    def add_rule(data: dict[str, Any]) -> None:
        data["rules"].append(
            {"name": "errors_logged", "type": "match", "priority": "err", "pattern": "."}
        )

    edit_config(d.config, add_rule)
    reload_applied(d)
    before = entries_of(d)
    lj.send([lj.app("[WEBHOOK] all fine"), lj.app("[WEBHOOK] it broke", level="ERROR")])
    matches = P + "rule_matches_total"
    wait_for(lambda: d.metric(matches, rule="errors_logged") == 1, 10, "the error line matched")
    lj.send([lj.app("[WEBHOOK] fine again")])
    wait_for(lambda: entries_of(d) >= before + 3, 10, "the last line read")
    assert d.metric(matches, rule="errors_logged") == 1  # the INFO lines did not match

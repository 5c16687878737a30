"""The files in deploy/ for Prometheus, Alertmanager and Grafana: checked with the real tools
(promtool, amtool) and against the metric names the daemon really exposes, taken from its own
registry built on the shipped config (nothing is started)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest

from monitor.config.schema import Config, load_config
from monitor.core.engine import Engine, build_rules
from monitor.daemon.metrics import Metrics, build_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "aisha-monitor.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "aisha-monitor.rules.test.yml"
SCRAPE = DEPLOY / "prometheus" / "scrape.example.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.example.yml"
DASHBOARD = DEPLOY / "grafana" / "aisha-monitor.json"

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian package: prometheus)"
)
needs_amtool = pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (Debian package: prometheus-alertmanager)"
)

JOB = "aisha-monitor"
RUNBOOK_BASE = "https://github.com/aisha/aisha-monitor#"
# Documented as coming with the handlers and the Alertmanager client (some may already exist).
COMING = frozenset(
    {
        "aisha_monitor_handler_runs_total",
        "aisha_monitor_alert_deliveries_total",
        "aisha_monitor_alerts_firing",
    }
)
# What the daemon raises itself through the Alertmanager API: Prometheus must never duplicate.
DAEMON_ALERTS = frozenset(
    {
        "AishaUnknownWebhookStatus",
        "AishaTrainingStalled",
        "AishaFallbackFailed",
        "AishaApiUnhealthy",
    }
)


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def shown(p: subprocess.CompletedProcess[str]) -> str:
    return f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


# ------------------------------------------------------------------ what the daemon exposes

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def _shipped_configs() -> list[Config]:
    return [load_config(None), load_config(ROOT / "config.yaml")]


@cache
def daemon_metric_names() -> frozenset[str]:
    """Every sample name the daemon's registry can expose, for the shipped config: families
    without a series yet (labelled counters before their first increment) count by their type."""
    names: set[str] = set()
    for config in _shipped_configs():
        metrics = Metrics()
        metrics.published = build_families(Engine(build_rules(config)), {}, config.journal.units)
        for family in metrics.registry.collect():
            names.update(s.name for s in family.samples)
            names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        text = generate_latest(metrics.registry).decode()
        names.update(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))
        names.update(re.findall(r"^([a-zA-Z_:][\w:]*)[{ ]", text, flags=re.MULTILINE))
    return frozenset(names)


# ------------------------------------------------------------------ metric names in PromQL

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "inf", "nan"}
    | {"by", "without", "on", "ignoring", "group_left", "group_right"}
)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, labels, keywords or variables)."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    out = set()
    for m in _IDENT.finditer(text):
        if text[m.end() :].lstrip().startswith("("):
            continue  # a function call
        if m.group().lower() in _KEYWORDS:
            continue
        out.add(m.group())
    return out


def test_promql_metric_names_finds_selectors_only() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, rule) (rate(x_bucket{instance=~"$instance", '
        'rule="a b"}[$__rate_interval]))) / on (rule) group_left y_total '
        "or vector(0) and time() - z:rec:rate5m offset 5m > bool 1e3"
    )
    assert promql_metric_names(expr) == {"x_bucket", "y_total", "z:rec:rate5m"}


def test_the_daemon_registry_has_the_documented_metrics() -> None:
    names = daemon_metric_names()
    for name in (
        "aisha_monitor_journal_entries_total",
        "aisha_monitor_journal_lag_seconds",
        "aisha_monitor_journal_read_errors_total",
        "aisha_monitor_loop_last_iteration_timestamp_seconds",
        "aisha_monitor_config_last_reload_successful",
        "aisha_monitor_unknown_status_total",
        "aisha_monitor_training_duration_seconds_bucket",
        "aisha_monitor_events_total",
        "aisha_monitor_health_up",
    ):
        assert name in names


# ------------------------------------------------------------------ the rules


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def all_rules() -> Iterator[dict[str, Any]]:
    for group in load_yaml(RULES)["groups"]:
        yield from group["rules"]


def alerting_rules() -> list[dict[str, Any]]:
    return [r for r in all_rules() if "alert" in r]


@needs_promtool
def test_promtool_check_rules() -> None:
    p = run(str(PROMTOOL), "check", "rules", str(RULES))
    print(p.stdout, p.stderr)
    assert p.returncode == 0, shown(p)
    assert "SUCCESS" in p.stdout, shown(p)


@needs_promtool
def test_promtool_test_rules() -> None:
    p = run(str(PROMTOOL), "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, shown(p)
    assert "SUCCESS" in p.stdout, shown(p)


def test_the_expected_alerts_and_nothing_the_daemon_raises() -> None:
    names = [r["alert"] for r in alerting_rules()]
    assert len(names) == len(set(names))
    assert set(names) == {
        "AishaMonitorDown",
        "AishaMonitorAbsent",
        "AishaMonitorLoopStuck",
        "AishaMonitorJournalLagging",
        "AishaMonitorConfigReloadFailed",
        "AishaMonitorHandlerFailures",
        "AishaMonitorJournalReadErrors",
        "AishaMonitorStateWriteFailing",
        "AishaMonitorRuleTimeouts",
    }
    raised_by_daemon = set(DAEMON_ALERTS)
    for config in _shipped_configs():  # and whatever the shipped config makes it raise
        raised_by_daemon |= set(config.alerting.alerts)
        raised_by_daemon |= {c.alert for c in config.health_checks if c.alert}
    assert not set(names) & raised_by_daemon


def test_every_alert_is_labelled_and_annotated() -> None:
    services = {c.alerting.service for c in _shipped_configs()}
    for rule in alerting_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert {rule["labels"]["service"]} == services, name
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook_url"] == RUNBOOK_BASE + name.lower(), name
        if name != "AishaMonitorAbsent":  # absent() has no instance to name, and its value is 1
            assert "$labels.instance" in notes["description"], name
            assert "$value" in notes["description"], name


def test_rules_use_only_metrics_the_daemon_exposes() -> None:
    known = daemon_metric_names() | COMING | {"up"}  # up: Prometheus's own, per target
    for rule in all_rules():
        unknown = promql_metric_names(rule["expr"]) - known
        assert not unknown, (rule.get("alert") or rule.get("record"), unknown)
        if "alert" in rule:
            assert f'job="{JOB}"' in rule["expr"], rule["alert"]


def test_the_unit_tests_cover_every_alert_both_ways() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alerting_rules()}
    assert names <= fired, names - fired
    assert names <= quiet, names - quiet


# ------------------------------------------------------------------ scrape configuration

_COMMENTED_YAML = re.compile(r"^(\s*)# ((?:- )?targets:|(?:  )?labels:|(?:  )*instance:)")


@needs_promtool
def test_promtool_check_config_on_a_copy(tmp_path: Path) -> None:
    config = load_yaml(SCRAPE)
    assert config["rule_files"] == [RULES.name]
    shutil.copy(RULES, tmp_path / RULES.name)
    shutil.copy(SCRAPE, tmp_path / SCRAPE.name)
    p = run(str(PROMTOOL), "check", "config", str(tmp_path / SCRAPE.name))
    print(p.stdout, p.stderr)
    assert p.returncode == 0, shown(p)
    assert "1 rule files found" in p.stdout, shown(p)
    assert "11 rules found" in p.stdout, shown(p)
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs[JOB]["scrape_interval"] == "15s"
    assert jobs[JOB]["static_configs"][0]["targets"] == ["127.0.0.1:9817"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]


@needs_promtool
def test_the_commented_multi_host_example_is_valid_too(tmp_path: Path) -> None:
    lines = SCRAPE.read_text(encoding="utf-8").splitlines()
    uncommented = [_COMMENTED_YAML.sub(r"\1\2", line) for line in lines]
    assert uncommented != lines
    shutil.copy(RULES, tmp_path / RULES.name)
    (tmp_path / SCRAPE.name).write_text("\n".join(uncommented) + "\n", encoding="utf-8")
    p = run(str(PROMTOOL), "check", "config", str(tmp_path / SCRAPE.name))
    assert p.returncode == 0, shown(p)
    job = load_yaml(tmp_path / SCRAPE.name)["scrape_configs"][0]
    assert [g["labels"]["instance"] for g in job["static_configs"]] == ["api-1", "api-1", "api-2"]


# ------------------------------------------------------------------ Alertmanager


@needs_amtool
def test_amtool_check_config() -> None:
    p = run(str(AMTOOL), "check-config", str(ALERTMANAGER))
    print(p.stdout, p.stderr)
    assert p.returncode == 0, shown(p)
    assert "SUCCESS" in p.stdout, shown(p)


@needs_amtool
@pytest.mark.parametrize(
    ("severity", "receiver"),
    [("critical", "telegram-oncall"), ("warning", "telegram-team"), ("info", "telegram-team")],
)
def test_alertmanager_routes_by_severity(severity: str, receiver: str) -> None:
    p = run(
        str(AMTOOL),
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER}",
        f"severity={severity}",
        "alertname=AishaMonitorDown",
        "service=aisha-api",
    )
    assert p.returncode == 0, shown(p)
    assert p.stdout.strip() == receiver, shown(p)


def test_alertmanager_grouping_inhibition_and_secrets_note() -> None:
    config = load_yaml(ALERTMANAGER)
    route = config["route"]
    assert route["group_by"] == ["alertname", "service", "instance"]
    intervals = {r["receiver"]: r["repeat_interval"] for r in route["routes"]}
    assert intervals == {"telegram-oncall": "1h", "telegram-team": "4h"}
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["service", "instance"],
        }
    ]
    for receiver in config["receivers"]:
        for telegram in receiver["telegram_configs"]:
            placeholder = "REPLACE_WITH_BOT_TOKEN"  # never a real token in git
            assert telegram["bot_token"] == placeholder
            assert isinstance(telegram["chat_id"], int)
    text = ALERTMANAGER.read_text(encoding="utf-8")
    assert "bot_token_file" in text and "0.26" in text and "0600" in text


# ------------------------------------------------------------------ Grafana


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def test_dashboard_is_valid_and_uses_only_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["type"] == "query"

    known = daemon_metric_names() | COMING
    used: set[str] = set()
    query = variables["instance"]["query"]
    selector = re.fullmatch(r"label_values\((.+),\s*instance\)", query["query"])
    assert selector, query
    used |= promql_metric_names(selector.group(1))

    panels = list(dashboard_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])
            names = promql_metric_names(target["expr"])
            assert names, (panel["title"], target["expr"])
            assert not names - known, (panel["title"], names - known)
            used |= names

    for wanted in (
        "aisha_monitor_journal_entries_total",
        "aisha_monitor_journal_lag_seconds",
        "aisha_monitor_unknown_status_total",
        "aisha_monitor_trainings_open",
        "aisha_monitor_trainings_stalled",
        "aisha_monitor_training_duration_seconds_bucket",
        "aisha_monitor_rule_matches_total",
        "aisha_monitor_events_total",
        "aisha_monitor_health_up",
        "aisha_monitor_config_last_reload_successful",
        *COMING,
    ):
        assert wanted in used, wanted
    kinds = {p["type"] for p in panels}
    assert {"heatmap", "table", "timeseries", "stat"} <= kinds

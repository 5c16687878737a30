"""The config loader: the shipped file, and every problem reported at once with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config.schema import ConfigError, default_config_text, load_config, load_config_text
from rules.pair import PairSpec

ROOT = Path(__file__).resolve().parents[3]


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "c.yaml", env or {})
    return [str(p) for p in info.value.problems]


def test_shipped_config_is_embedded_and_valid() -> None:
    assert default_config_text() == (ROOT / "config.yaml").read_text(encoding="utf-8")
    cfg = load_config(None, env={})
    names = {r.base.name: r for r in cfg.rules}
    assert names["unknown_status"].base.type == "unknown_value"
    assert names["unknown_status"].base.severity == "critical"
    stalled = names["training_stalled"]
    assert isinstance(stalled, PairSpec) and stalled.deadline_us == 3600 * 1_000_000
    assert cfg.journal.units == ("aisha-api.service",)
    assert cfg.http.listen == "127.0.0.1:9817"
    aliases = {
        "ok": "completed",
        "success": "completed",
        "succeeded": "completed",
        "error": "failed",
        "in_queue": "queued",
        "running": "in_progress",
    }
    for alias, want in aliases.items():
        assert cfg.statuses.normalize(alias) == want


def test_env_expansion_with_defaults() -> None:
    cfg = load_config(None, env={"AISHA_API_URL": "http://10.0.0.5:8000"})
    assert cfg.handlers["replay_webhook"].url == "http://10.0.0.5:8000/api/v1/avatar/status_update"  # type: ignore[attr-defined]
    cfg = load_config(None, env={})
    assert cfg.alerting.alertmanager_urls == ("http://127.0.0.1:9093",)


def test_every_problem_at_once_with_line_and_column() -> None:
    text = """\
journal:
  untis: [x]
rules:
  - name: a
    type: pair
    start: 'S (?P<request_id>\\w+'
    end: 'E (?P<request_id>\\w+)'
    deadline: soon
    handler: missing
  - name: b
    type: threshold
    count: many
    window: 5m
    priority: loud
"""
    got = problems(text)
    known = "directory, files, host_label, identifiers, max_message_bytes, start, units"
    assert got[0] == f"c.yaml:2:3: journal.untis: unknown key (known keys: {known})"
    assert got[1].startswith("c.yaml:6:12: rules[0].start: invalid regular expression")
    duration = 'expected a duration like "30s", "15m" or "2h"'
    assert got[2] == f"c.yaml:8:15: rules[0].deadline: {duration}, got 'soon'"
    assert got[3] == "c.yaml:9:14: rules[0].handler: no handlers entry named 'missing'"
    assert got[4] == "c.yaml:12:12: rules[1].count: expected an integer, got 'many'"
    priority = "expected a syslog priority (emerg … debug, or 0-7)"
    assert got[5] == f"c.yaml:14:15: rules[1].priority: {priority}, got 'loud'"
    assert len(got) == 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "c.yaml:1:1: the file is empty"),
        ("- a\n", "c.yaml:1:1: the top level must be a mapping, got a list"),
        ("rules: [\n", "c.yaml:2:1: YAML syntax"),
        ("http: {listen: 9817}\n", "c.yaml:1:16: http.listen: expected HOST:PORT"),
        (
            "journal: {units: a}\njournal: {}\n",
            "c.yaml:2:1: journal: duplicate key (first at line 1)",
        ),
        (
            "rules: [{name: x, type: match, pattern: '(a+)+b'}]\n",
            "rules[0].pattern: an unbounded quantifier",
        ),
        (
            "rules: [{name: X, type: match, pattern: a}]\n",
            "rules[0].name: rule names are lower_snake_case",
        ),
        (
            "rules: [{name: x, type: nope}]\n",
            "unknown rule type 'nope' (known: match, unknown_value, pair",
        ),
        (
            "rules: [{name: x, type: unknown_value, pattern: 'a'}]\n",
            "needs a named group (?P<value>...)",
        ),
        (
            "rules: [{name: x, type: match, pattern: a, labels: [g]}]\n",
            "label 'g' is not a named group",
        ),
        (
            "statuses: {aliases: {ok: finished}}\n",
            "alias target 'finished' is not a canonical status",
        ),
        (
            "rules: [{name: x, type: match, pattern: '${NOPE}'}]\n",
            "environment variable NOPE is not set",
        ),
        (
            "rules: [{name: x, type: match, pattern: a, alert: Nope}]\n",
            "no alerting.alerts entry named 'Nope'",
        ),
        ("handlers: {h: {type: exec, argv: [sh, -c, x]}}\n", "first item is an absolute path"),
        (
            "handlers: {h: {type: http, url: 'file:///etc/passwd'}}\n",
            "expected an http:// or https:// URL",
        ),
        (
            "handlers: {h: {type: replay_webhook, url: 'http://a', payload_rule: r}}\n",
            "no rule named 'r'",
        ),
    ],
)
def test_planted_faults(text: str, expected: str) -> None:
    got = problems(text)
    assert any(expected in p for p in got), got


def test_merge_keys_and_dollar_escape() -> None:
    text = """\
rules:
  - &b {name: x, type: match, severity: info, pattern: a}
  - {<<: *b, name: y, pattern: 'cost \\$$5'}
"""
    cfg = load_config_text(text, "c.yaml", {})
    y = cfg.rules[1]
    assert (y.base.name, y.base.severity) == ("y", "info")
    assert y.pattern.source == "cost \\$5"  # type: ignore[attr-defined]


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "-c", str(ROOT / "config.yaml")]) == 0
    assert "OK: 9 rules" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: a\n    type: match\n    pattern: '['\n", encoding="utf-8")
    assert main(["check-config", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:14: rules[0].pattern: invalid regular expression" in err
    assert main(["check-config", "-c", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_http_connection_limits() -> None:
    shipped = load_config(None, env={}).http
    assert (shipped.idle_timeout_us, shipped.max_connections) == (10_000_000, 64)
    cfg = load_config_text("http: {idle_timeout: 500ms, max_connections: 3}\n", "c.yaml", {})
    assert (cfg.http.idle_timeout_us, cfg.http.max_connections) == (500_000, 3)
    got = problems("http:\n  idle_timeout: forever\n  max_connections: 0\n")
    assert got == [
        'c.yaml:2:17: http.idle_timeout: expected a duration like "30s", "15m" or "2h", '
        "got 'forever'",
        "c.yaml:3:20: http.max_connections: must be at least 1, got 0",
    ]

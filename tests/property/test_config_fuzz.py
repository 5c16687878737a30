"""Hostile configs: any YAML gives a Config or a ConfigError whose every problem reads
`FILE:LINE:COL: …` with a line and column inside the file, never another exception. Documents
are built from the schema's own words (so they reach deep into the parsers), from random
structures, and by mutating the shipped config.yaml (keys deleted, types swapped, bad regexes,
broken text)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config, ConfigError, load_config_text
from tests.property import examples

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TEXT = (ROOT / "config.yaml").read_text(encoding="utf-8")
SHIPPED = yaml.safe_load(SHIPPED_TEXT)
FILE = "fuzz.yaml"
_WHERE = re.compile(rf"^{re.escape(FILE)}:(\d+):(\d+): ")

TOP = ["journal", "state", "http", "statuses", "rules", "handlers", "alerting", "health_checks"]
WORDS = [
    *TOP, "units", "identifiers", "directory", "files", "start", "max_message_bytes",
    "host_label", "listen", "token_file", "canonical", "aliases", "name", "type", "severity",
    "description", "priority", "alert", "handler", "metric", "prefilter", "pattern", "labels",
    "allow", "max_label_values", "emit", "key", "context", "rule", "fields", "window", "end",
    "deadline", "max_open", "forget_after", "count", "url", "status_case", "verify_within",
    "payload_rule", "base", "models", "api_key_file", "api_key_env", "recheck_interval",
    "replay_handler", "argv", "token_env", "timeout", "max_attempts", "backoff", "rate_limit",
    "dry_run", "max_event_age", "alertmanager_urls", "resend_interval", "service", "instance",
    "alerts", "summary", "runbook_url", "one_off_ttl", "expect_status", "unit", "interval",
]  # fmt: skip
TYPES = [
    "match", "unknown_value", "pair", "absence", "threshold", "replay_webhook",
    "provider_status", "http", "exec", "systemd_unit", "bogus",
]  # fmt: skip
PATTERNS = [
    r"(?P<request_id>\w+) (?P<value>\S+)", r"(a+)+", r"(\w+\s?)*$", r"(", r"[z-a]",
    r"(?P<x>a)(?P<x>b)", r"(?P<value>.*)", "", r"\d{4}", r"(?i:x)(?P<request_id>y)",
    r"(?P<payload>\{.*\})", "Неизвестный статус: (?P<value>.*)", r"\\", "${UNSET}", "$$x",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(TYPES + PATTERNS + ["1h", "30s", "0s", "soon", "250ms", "1h30m", "err", "7"]),
    st.sampled_from(["http://127.0.0.1:1/x", "127.0.0.1:9817", "/bin/true", "::1", "${X:-y}"]),
)
KEYS = st.one_of(st.sampled_from(WORDS), st.text(max_size=8))


def values(depth_leaves: int = 25) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=6)
        ),
        max_leaves=depth_leaves,
    )


RULE_KEYS = [
    "severity", "description", "priority", "alert", "handler", "metric", "prefilter", "labels",
    "allow", "max_label_values", "emit", "key", "context", "window", "deadline", "max_open",
    "forget_after", "count",
]  # fmt: skip
HANDLER_KEYS = [
    "url", "status_case", "verify_within", "payload_rule", "base", "models", "api_key_file",
    "api_key_env", "recheck_interval", "replay_handler", "argv", "token_env", "token_file",
    "timeout", "max_attempts", "backoff", "rate_limit", "dry_run", "max_event_age", "alert",
]  # fmt: skip
JOURNAL_KEYS = ["units", "identifiers", "directory", "files", "start", "max_message_bytes",
                "host_label"]  # fmt: skip
ALERTING_KEYS = ["alertmanager_urls", "resend_interval", "service", "instance", "alerts",
                 "one_off_ttl", "max_event_age"]  # fmt: skip
NAMES = st.one_of(st.sampled_from(["a", "b", "Bad-Name", "unknown_status"]), st.text(max_size=6))
RULE = st.fixed_dictionaries(
    {"name": NAMES, "type": st.sampled_from(TYPES)},
    optional={w: values(6) for w in RULE_KEYS} | {"pattern": st.sampled_from(PATTERNS),
                                                 "start": st.sampled_from(PATTERNS),
                                                 "end": st.sampled_from(PATTERNS)},
)  # fmt: skip
HANDLER = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)}, optional={w: values(4) for w in HANDLER_KEYS}
)
DOCS = st.one_of(
    st.dictionaries(st.sampled_from(TOP), values(), max_size=8),
    st.fixed_dictionaries(
        {},
        optional={
            "rules": st.lists(RULE, max_size=4),
            "handlers": st.dictionaries(st.sampled_from(["h", "replay_webhook", "X"]), HANDLER),
            "journal": st.dictionaries(st.sampled_from(JOURNAL_KEYS), values(4)),
            "alerting": st.dictionaries(st.sampled_from(ALERTING_KEYS), values(6)),
            "statuses": st.dictionaries(st.sampled_from(["canonical", "aliases"]), values(6)),
            "http": st.dictionaries(st.sampled_from(["listen", "token_file"]), values(2)),
        },
    ),
    values(),
)


def check(text: str) -> Config | ConfigError:
    """The loader's answer; fails the test on anything but Config/ConfigError with
    well-formed problem positions."""
    try:
        return load_config_text(text, FILE, env={})
    except ConfigError as e:
        lines = text.splitlines() or [""]
        assert e.problems, "a ConfigError without problems"
        for problem in e.problems:
            shown = str(problem)
            m = _WHERE.match(shown)
            assert m, f"not FILE:LINE:COL: {shown!r}"
            line, col = int(m.group(1)), int(m.group(2))
            assert 1 <= line <= len(lines) + 1, (shown, len(lines))
            width = len(lines[line - 1]) if line <= len(lines) else 0
            assert 1 <= col <= width + 2, (shown, width)
        return e


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(DOCS)
def test_any_yaml_document_gives_a_config_or_positioned_problems(doc: Any) -> None:
    check(dump(doc))


@settings(max_examples=examples(300), deadline=None)
@given(st.text(alphabet=st.sampled_from([*" \t\n:-[]{}'\"#&*!|>%@`,?x1", "\\"]), max_size=80))
def test_any_text_gives_a_config_or_positioned_problems(text: str) -> None:
    check(text)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a YAML structure (dict keys, list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


# spliced into documents as copies: a later mutation of the same example may edit inside one,
# and an edited original would make every later example (and hypothesis's replays) differ
SWAPS = (
    None,
    0,
    -1,
    2**64,
    1.5,
    True,
    "",
    "soon",
    [],
    {},
    ["x"],
    {"x": 1},
    "(a+)+",
    "(",
    "${NOPE}",
)


@settings(max_examples=examples(500), deadline=None)
@given(st.data())
def test_mutations_of_the_shipped_config(data: st.DataObject) -> None:
    doc = copy.deepcopy(SHIPPED)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        all_paths = paths(doc)
        if not all_paths:
            break
        path = data.draw(st.sampled_from(all_paths), label="path")
        parent, last = at(doc, path[:-1]), path[-1]
        op = data.draw(st.sampled_from(["delete", "swap", "regex", "rename"]), label="op")
        if op == "delete":
            del parent[last]
        elif op == "swap":
            parent[last] = copy.deepcopy(data.draw(st.sampled_from(SWAPS), label="value"))
        elif op == "regex":
            parent[last] = data.draw(st.sampled_from(PATTERNS), label="pattern")
        elif isinstance(parent, dict):
            parent[data.draw(st.sampled_from(WORDS), label="new key")] = parent.pop(last)
    check(dump(doc))


@settings(max_examples=examples(300), deadline=None)
@given(st.data())
def test_text_edits_of_the_shipped_config(data: st.DataObject) -> None:
    lines = SHIPPED_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        op = data.draw(st.sampled_from(["drop", "indent", "dedent", "insert", "dup"]), label="op")
        if op == "drop":
            del lines[i]
        elif op == "indent":
            lines[i] = " " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:]
        elif op == "insert":
            col = data.draw(st.integers(0, len(lines[i])), label="col")
            ch = data.draw(st.sampled_from([*":'\"[]{}#&*!|>-\t", "\\", "\x00"]))
            lines[i] = lines[i][:col] + ch + lines[i][col:]
        else:
            lines.insert(i, lines[i])
    check("\n".join(lines) + "\n")


def test_the_shipped_config_itself_loads() -> None:
    assert isinstance(check(SHIPPED_TEXT), Config)

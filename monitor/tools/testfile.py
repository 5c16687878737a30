"""The test files of `aisha-monitor test-rules`: YAML with log lines in and expected events out,
read with every problem reported at once as `file:line:col: path: message`."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from monitor.config.schema import Config, ConfigError, load_config
from monitor.config.yamlview import Problem, Problems, View, load_root, parse_duration_us
from monitor.core.model import Entry, EventKind, datetime_to_us
from rules.base import PRIORITIES, human_duration

DEFAULT_START = "2026-11-27T10:00:00Z"
DEFAULT_UNIT = "aisha-api.service"
DEFAULT_PID, DEFAULT_HOST = 4242, "api-1"
_NULL_TAG = "tag:yaml.org,2002:null"


@dataclass(frozen=True, slots=True)
class InputEntry:
    entry: Entry
    identifier: str = ""


@dataclass(frozen=True, slots=True)
class Expected:
    kind: str
    rule: str
    key: str | None
    labels: dict[str, str]
    at_us: int | None  # an offset from the file's start, or None: any time


@dataclass(frozen=True, slots=True)
class RuleTest:
    name: str
    line: int
    entries: tuple[InputEntry, ...]
    eval_at_us: int | None  # absolute; None: the last entry's time
    expect: tuple[Expected, ...]
    expect_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleTestFile:
    path: str
    config: Config
    start_us: int
    tests: tuple[RuleTest, ...]


class _Literal(View):
    """A View taking strings as written: log lines are samples, not templates (no ${VAR})."""

    def scalar_str(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
            self.problems.add(node, path, "expected a string")
            return None
        return str(node.value)

    def map(self, key: str, *, required: bool = False) -> _Literal | None:
        node = self._get(key, required)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.error(key, "expected a mapping")
            return None
        return _Literal(node, self.sub(key), self.problems)

    def views(self, key: str, *, required: bool = False) -> Iterator[_Literal]:
        for path, node in self.seq(key, required=required):
            if not isinstance(node, yaml.MappingNode):
                self.problems.add(node, path, "expected a mapping")
                continue
            yield _Literal(node, path, self.problems)

    def offset_us(self, key: str, *, required: bool = False) -> int | None:
        """`30s`, `1h2m`, `250ms` or `0`: a time from the file's start."""
        if not self.has(key):
            self.text(key, required=required)
            return None
        text = self.text(key).strip()
        value = 0 if text == "0" else parse_duration_us(text)
        if value is None:
            self.error(key, f'expected an offset like "0s", "30s" or "1h2m", got {text!r}')
        return value


class RuleTestFileError(Exception):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(dict.fromkeys(problems))  # the root view is composed twice
        super().__init__("\n".join(str(p) for p in self.problems))


def load_test_file(path: str | Path) -> RuleTestFile:
    """Parse a test file and the config it names. Raises RuleTestFileError with every problem."""
    path = Path(path)
    problems = Problems(str(path), env={})
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleTestFileError([Problem(str(path), 1, 1, "", f"cannot read the file: {e}")]) from e
    root_view = load_root(text, problems)
    if root_view is None:
        raise RuleTestFileError(problems.items)
    root = _Literal(root_view.node, "", problems)
    config = _config(root, path)
    start_us = _start(root)
    tests = tuple(_test(v, start_us, config) for v in root.views("tests", required=True))
    if not tests and root.has("tests"):
        root.error("tests", "no tests: give at least one")
    root.finish()
    if problems.items or config is None:
        raise RuleTestFileError(problems.items)
    return RuleTestFile(str(path), config, start_us, tests)


def _config(root: _Literal, path: Path) -> Config | None:
    rel = root.opt_str("config")
    try:
        return load_config(path.parent / rel if rel else None, read_secrets=False)
    except ConfigError as e:
        root.error("config", f"the config {rel or '(embedded)'} is invalid (problems follow)")
        root.problems.items.extend(e.problems)
        return None


def _start(root: _Literal) -> int:
    text = root.text("start", DEFAULT_START)
    try:
        when = datetime.fromisoformat(text)
        if when.tzinfo is not None:
            return datetime_to_us(when)
    except ValueError:
        pass
    root.error("start", f"expected an RFC 3339 time with an offset like {DEFAULT_START}")
    return 0


def _test(view: _Literal, start_us: int, config: Config | None) -> RuleTest:
    name = view.text("name", required=True)
    entries: list[InputEntry] = []
    last_at = 0
    for ev in view.views("input", required=True):
        expanded = list(_entries(ev, start_us))
        if expanded and expanded[0][0] < last_at:
            first, last = human_duration(expanded[0][0]), human_duration(last_at)
            ev.error("at", f"entries go in journal order: {first} comes after {last}")
        last_at = max([last_at, *(offset for offset, _ in expanded)])
        entries += [te for _, te in expanded]
    eval_at = view.offset_us("eval_at")
    if eval_at is not None and eval_at < last_at:
        last = human_duration(last_at)
        view.error("eval_at", f"must not be before the last input entry (at {last})")
    rules = {r.base.name for r in config.rules} if config else None
    expect = tuple(_expected(e, rules) for e in view.views("expect"))
    if not view.has("expect"):
        view.error("expect", "required key is missing (an empty list [] expects no event)")
    counts = _counts(view, rules)
    view.finish()
    at = None if eval_at is None else start_us + eval_at
    return RuleTest(name, view.node.start_mark.line + 1, tuple(entries), at, expect, counts)


def _entries(view: _Literal, start_us: int) -> Iterator[tuple[int, InputEntry]]:
    message = view.text("message", required=True)
    unit = view.text("unit", DEFAULT_UNIT)
    identifier = view.text("identifier")
    pid = view.integer("pid", DEFAULT_PID, minimum=0)
    host = view.text("host", DEFAULT_HOST)
    prio_text = view.text("priority", "6").lower()
    priority = PRIORITIES.get(prio_text, int(prio_text) if prio_text.isdigit() else -1)
    if not 0 <= priority <= 7:
        view.error("priority", f"expected 0-7 or a syslog name (err, info …), got {prio_text!r}")
    at = view.offset_us("at", required=True) or 0
    repeat = view.integer("repeat", 1, minimum=1)
    every = view.offset_us("every")
    view.finish()
    for i in range(repeat):
        offset = at + i * (1_000_000 if every is None else every)
        entry = Entry(start_us + offset, message, unit, pid, priority, host)
        yield offset, InputEntry(entry, identifier)


def _expected(view: _Literal, rules: set[str] | None) -> Expected:
    kind = view.text("kind", required=True)
    if kind and kind not in tuple(EventKind):
        view.error("kind", f"expected one of {', '.join(EventKind)}, got {kind!r}")
    rule = view.text("rule", required=True)
    if rules is not None and rule and rule not in rules:
        view.error("rule", _no_rule(rule, rules))
    key = view.opt_str("key")
    labels = view.str_map("labels")
    at = view.offset_us("at")
    view.finish()
    return Expected(kind, rule, key, labels, at)


def _no_rule(name: str, rules: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(rules), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"the config has no rule named {name!r}{hint}"


def _counts(view: _Literal, rules: set[str] | None) -> dict[str, dict[str, int]]:
    cview = view.map("expect_counts")
    if cview is None:
        return {}
    out: dict[str, dict[str, int]] = {}
    for rule in cview.names():
        if rules is not None and rule not in rules:
            cview.error(rule, _no_rule(rule, rules))
        inner = cview.map(rule) if isinstance(cview.node_of(rule), yaml.MappingNode) else None
        if inner is not None:
            out[rule] = {c: inner.integer(c, 0, minimum=0) for c in inner.names()}
            inner.finish()
        else:
            out[rule] = {"matches": cview.integer(rule, 0, minimum=0)}
    cview.finish()
    return out

"""`aisha-monitor test-rules`: rule unit tests in YAML (log lines in, expected events out), run on
the real engine on event time, in the spirit of `promtool test rules`."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

import yaml

from monitor.config import Config, ConfigError, load_config
from monitor.engine import Engine, build_rules
from monitor.model import Entry, Event, EventKind, datetime_to_us
from monitor.yamlview import Problem, Problems, View, load_root, parse_duration_us
from rules.base import PRIORITIES, human_duration

EXIT_FAILED, EXIT_INVALID = 1, 2
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


@dataclass(frozen=True, slots=True)
class Outcome:
    test: RuleTest
    diff: tuple[str, ...]  # empty when the test passed

    @property
    def passed(self) -> bool:
        return not self.diff


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
        return load_config(path.parent / rel if rel else None)
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


# --- running ------------------------------------------------------------------------------------


def followed(config: Config, te: InputEntry) -> bool:
    """Whether the journal source would return the entry (units OR identifiers)."""
    j = config.journal
    return te.entry.unit in j.units or (bool(te.identifier) and te.identifier in j.identifiers)


def evaluate(config: Config, test: RuleTest) -> tuple[list[Event], dict[str, dict[str, int]]]:
    """The events the real engine produces for the test's input, and every rule's counters."""
    engine = Engine(build_rules(config), config.journal.max_message_bytes)
    events: list[Event] = []
    for te in test.entries:
        if followed(config, te):
            due, produced = engine.observe(te.entry)
            events += due
            events += produced
    final = test.eval_at_us if test.eval_at_us is not None else engine.now_us
    if final:
        events += engine.tick(final)
    return events, engine.counters()


def _fits(exp: Expected, ev: Event, start_us: int) -> bool:
    return (
        exp.kind == ev.kind
        and exp.rule == ev.rule
        and exp.key == ev.key
        and all(ev.labels.get(k) == v for k, v in exp.labels.items())
        and (exp.at_us is None or start_us + exp.at_us == ev.time_us)
    )


def pair_up(expect: Sequence[Expected], events: Sequence[Event], start_us: int) -> list[int]:
    """For each expected event the index of the produced event it stands for, or -1: a maximum
    matching (Kuhn's augmenting paths), so a loose expectation never takes a strict one's event."""
    owner = [-1] * len(events)
    fits = [[j for j, ev in enumerate(events) if _fits(e, ev, start_us)] for e in expect]

    def augment(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] < 0 or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expect)):
        augment(i, set())
    taken = [-1] * len(expect)
    for j, i in enumerate(owner):
        if i >= 0:
            taken[i] = j
    return taken


def run_test(tf: RuleTestFile, test: RuleTest) -> Outcome:
    events, counters = evaluate(tf.config, test)
    taken = pair_up(test.expect, events, tf.start_us)
    used = set(taken)
    rows: list[tuple[int, str]] = []
    for exp, j in zip(test.expect, taken, strict=True):
        if j < 0:
            t = tf.start_us + exp.at_us if exp.at_us is not None else 1 << 62
            rows.append((t, "- " + _describe_expected(exp)))
    rows += [(e.time_us, "+ " + _describe_event(e, tf.start_us))
             for j, e in enumerate(events) if j not in used]  # fmt: skip
    diff = [line for _, line in sorted(rows, key=lambda r: r[0])]
    if diff:  # context: what did match, so the diff reads as a whole
        diff += ["  " + _describe_event(events[j], tf.start_us) for j in taken if j >= 0]
    for rule, want in test.expect_counts.items():
        for counter, n in want.items():
            got = counters.get(rule, {}).get(counter)
            if got != n:
                diff += [f"- counter {rule}.{counter} = {n}", f"+ counter {rule}.{counter} = {got}"]
    return Outcome(test, tuple(diff))


def _labels(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v!r}" for k, v in labels.items()) + "}"


def _describe_expected(exp: Expected) -> str:
    at = f" at {human_duration(exp.at_us)}" if exp.at_us is not None else ""
    labels = f" labels ⊇ {_labels(exp.labels)}" if exp.labels else ""
    return f"{exp.kind} {exp.rule} key={exp.key!r}{labels}{at}"


def _describe_event(ev: Event, start_us: int) -> str:
    at = human_duration(ev.time_us - start_us) if ev.time_us >= start_us else "before start"
    return f"{ev.kind} {ev.rule} key={ev.key!r} labels={_labels(ev.labels)} at {at}"


def positive_samples(tf: RuleTestFile) -> set[str]:
    """Rules some test of the file expects to fire, or expects to count a match."""
    out: set[str] = set()
    for test in tf.tests:
        out.update(e.rule for e in test.expect if e.kind != EventKind.RESOLVED)
        out.update(r for r, c in test.expect_counts.items() if c.get("matches", 0) > 0)
    return out


def main(files: Sequence[str], out: TextIO, err: TextIO) -> int:
    invalid = failed = passed = 0
    for path in files:
        try:
            tf = load_test_file(path)
        except RuleTestFileError as e:
            invalid += 1
            err.write("".join(f"{p}\n" for p in e.problems))
            continue
        for test in tf.tests:
            outcome = run_test(tf, test)
            if outcome.passed:
                passed += 1
                out.write(f"PASS {test.name}\n")
                continue
            failed += 1
            out.write(f"FAIL {test.name} ({tf.path}:{test.line})\n")
            out.write("".join(f"    {line}\n" for line in outcome.diff))
    err.write(
        f"test-rules: {passed} passed, {failed} failed"
        + (f", {invalid} invalid file(s)" if invalid else "")
        + "\n"
    )
    return EXIT_INVALID if invalid else (EXIT_FAILED if failed else 0)

"""`aisha-monitor test-rules`: rule unit tests in YAML (log lines in, expected events out), run on
the real engine on event time, in the spirit of `promtool test rules`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from monitor.config.schema import Config
from monitor.core.engine import engine_for
from monitor.core.model import Event, EventKind
from monitor.tools.testfile import (
    Expected,
    InputEntry,
    RuleTest,
    RuleTestFile,
    RuleTestFileError,
    load_test_file,
)
from rules.base import human_duration

EXIT_FAILED, EXIT_INVALID = 1, 2


@dataclass(frozen=True, slots=True)
class Outcome:
    test: RuleTest
    diff: tuple[str, ...]  # empty when the test passed

    @property
    def passed(self) -> bool:
        return not self.diff


def followed(config: Config, te: InputEntry) -> bool:
    """Whether the journal source would return the entry (units OR identifiers)."""
    j = config.journal
    return te.entry.unit in j.units or (bool(te.identifier) and te.identifier in j.identifiers)


def evaluate(config: Config, test: RuleTest) -> tuple[list[Event], dict[str, dict[str, int]]]:
    """The events the real engine produces for the test's input, and every rule's counters."""
    engine = engine_for(config)
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

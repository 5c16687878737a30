"""`aisha-monitor test-rules`: the shipped rule tests pass and cover every rule of config.yaml
(as fail2ban keeps its filters honest), and the runner itself reports failures and bad files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from monitor import cli
from monitor.config.schema import load_config
from monitor.core.engine import engine_for
from monitor.tools.testfile import RuleTestFile, load_test_file
from monitor.tools.testrules import followed, positive_samples, run_test

ROOT = Path(__file__).resolve().parents[3]
RULE_TESTS = sorted((ROOT / "tests" / "rules").glob("*.yaml"))


# --- the shipped tests/rules files ---------------------------------------------------------------


@pytest.mark.parametrize("path", RULE_TESTS, ids=[p.name for p in RULE_TESTS])
def test_rules_file_passes(path: Path) -> None:
    tf = load_test_file(path)
    failures = [
        f"FAIL {o.test.name} ({path.name}:{o.test.line})\n" + "\n".join(o.diff)
        for o in (run_test(tf, t) for t in tf.tests)
        if not o.passed
    ]
    assert not failures, "\n\n".join(failures)


def near_misses(tf: RuleTestFile) -> set[str]:
    """Rules that some test shows a look-alike: a line carrying the rule's prefilter literal (any
    line, for rules without one) that the rule did not count, whether the journal would not
    return it (another unit), its priority was filtered out, or its regex did not match."""
    out: set[str] = set()
    for test in tf.tests:
        engine = engine_for(tf.config)
        for te in test.entries:
            before = engine.counters()
            if followed(tf.config, te):
                engine.observe(te.entry)
            after = engine.counters()
            for rule in engine.rules:
                name, lits = rule.base.name, rule.prefilter
                looks_alike = not lits or any(lit in te.entry.message for lit in lits)
                if looks_alike and after[name]["matches"] == before[name]["matches"]:
                    out.add(name)
    return out


def test_every_rule_of_config_yaml_has_a_sample_and_a_look_alike() -> None:
    assert RULE_TESTS, "tests/rules/*.yaml is empty"
    rules = {r.base.name for r in load_config(ROOT / "config.yaml", env={}).rules}
    files = [load_test_file(p) for p in RULE_TESTS]
    positive = set().union(*(positive_samples(tf) for tf in files))
    negative = set().union(*(near_misses(tf) for tf in files))
    assert not rules - positive, (
        f"rules of config.yaml without a positive sample in tests/rules: {sorted(rules - positive)}"
        " (expect an event of the rule, or `expect_counts: {rule: n}` with n > 0)"
    )
    assert not rules - negative, (
        f"rules of config.yaml without a look-alike in tests/rules: {sorted(rules - negative)}"
    )


def test_the_rule_tests_use_the_repository_config() -> None:
    for path in RULE_TESTS:
        assert Path(load_test_file(path).config.source).resolve() == ROOT / "config.yaml", path


# --- the runner ----------------------------------------------------------------------------------

UNKNOWN = "[WEBHOOK BACKGROUND] Неизвестный статус: "
BEGIN = "[WEBHOOK BACKGROUND] Начинаем обработку {}, статус: OK"


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str, str]:
    rc = cli.main(["test-rules", *map(str, files)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_passing_tests_print_one_line_each_and_exit_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"""
        tests:
          - name: joined
            input:
              - {{at: 0s, pid: 7, message: "{BEGIN.format("r-1")}"}}
              - {{at: 2s, pid: 7, message: "{UNKNOWN}completed"}}
            expect:
              - {{kind: unknown_value, rule: unknown_status, key: r-1, at: 2s,
                  labels: {{normalized: completed}}}}
          - name: nothing
            input: [{{at: 0s, message: "hello"}}]
            expect: []
    """)  # fmt: skip
    rc, out, err = run(capsys, path)
    assert (rc, out) == (0, "PASS joined\nPASS nothing\n"), err
    assert "2 passed, 0 failed" in err


def test_a_failing_test_prints_a_diff_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"""
        tests:
          - name: wrong key
            input:
              - {{at: 0s, message: "{UNKNOWN}OK"}}
              - {{at: 1s, message: "[WEBHOOK BACKGROUND] Ошибка обработки r-9"}}
            expect:
              - {{kind: unknown_value, rule: unknown_status, key: r-1, at: 0s}}
              - {{kind: match, rule: webhook_processing_failed, key: r-9}}
            expect_counts: {{webhook_processing: 1}}
    """)  # fmt: skip
    rc, out, _ = run(capsys, path)
    assert rc == 1
    assert out.splitlines() == [
        f"FAIL wrong key ({path}:2)",
        "    - unknown_value unknown_status key='r-1' at 0s",
        "    + unknown_value unknown_status key=None "
        "labels={status: 'OK', normalized: 'completed'} at 0s",
        "      match webhook_processing_failed key='r-9' labels={} at 1s",
        "    - counter webhook_processing.matches = 1",
        "    + counter webhook_processing.matches = 0",
    ]


def test_an_invalid_file_exits_2_with_every_problem_and_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, """
        start: yesterday
        tests:
          - name: broken
            input:
              - {at: soon, message: x}
              - {at: 1s, mesage: x}
            expect:
              - {kind: stalled, rule: no_such_rule}
              - {kind: exploded, rule: api_silent}
            expect_counts: {webhook: 1}
          - input: []
            expect: []
            eval_at: 1h
        extra: 1
    """)  # fmt: skip
    rc, out, err = run(capsys, path)
    assert rc == 2
    assert out == ""
    problems = err.splitlines()[:-1]
    for want in (
        f"{path}:1:8: start: expected an RFC 3339 time",
        f"{path}:5:14: tests[0].input[0].at: expected an offset like",
        f"{path}:6:9: tests[0].input[1].message: required key is missing",
        f"{path}:6:18: tests[0].input[1].mesage: unknown key",
        f"{path}:8:31: tests[0].expect[0].rule: the config has no rule named 'no_such_rule'",
        f"{path}:9:16: tests[0].expect[1].kind: expected one of match,",
        f"{path}:10:30: tests[0].expect_counts.webhook: the config has no rule named 'webhook' "
        "(did you mean 'webhooks'?)",
        f"{path}:11:5: tests[1].name: required key is missing",
        f"{path}:14:1: extra: unknown key",
    ):
        assert any(p.startswith(want) for p in problems), f"{want!r} not in:\n{err}"
    assert "1 invalid file(s)" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("tests: [\n", ":2:1: YAML syntax"),
        ("- a list\n", ":1:1: the top level must be a mapping"),
        ("tests: []\n", ":1:8: tests: no tests"),
        ("config: missing.yaml\ntests: []\n", "missing.yaml:1:1: cannot read the file"),
        (
            "tests:\n  - name: x\n    input: [{at: 5s, message: a}, {at: 1s, message: b}]\n"
            "    expect: []\n",
            ":3:40: tests[0].input[1].at: entries go in journal order: 1s comes after 5s",
        ),
        (
            "tests:\n  - name: x\n    input: [{at: 5s, message: a}]\n    eval_at: 1s\n"
            "    expect: []\n",
            ":4:14: tests[0].eval_at: must not be before the last input entry",
        ),
    ],
)
def test_bad_files_are_reported_with_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, want: str
) -> None:
    rc, _, err = run(capsys, write(tmp_path, text))
    assert rc == 2
    assert want in err, err


def test_an_invalid_config_is_reported_with_its_own_positions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, "rules:\n  - name: x\n    type: pair\n", "bad-config.yaml")
    path = write(tmp_path, "config: bad-config.yaml\ntests: []\n")
    rc, _, err = run(capsys, path)
    assert rc == 2
    assert f"{path}:1:9: config: the config bad-config.yaml is invalid" in err
    assert f"{tmp_path / 'bad-config.yaml'}:2:5: rules[0].start: required key is missing" in err


def test_one_invalid_file_does_not_stop_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path, "tests: [{name: ok, input: [], expect: []}]\n", "good.yaml")
    bad = write(tmp_path, "tests: 3\n", "bad.yaml")
    rc, out, _ = run(capsys, bad, good)
    assert (rc, out) == (2, "PASS ok\n")


def test_events_are_a_multiset_and_loose_expectations_do_not_steal_strict_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f"""
        tests:
          - name: two alike, both expected
            input:
              - {{at: 0s, message: "{UNKNOWN}weird"}}
              - {{at: 1s, message: "{UNKNOWN}OK"}}
            expect:
              - {{kind: unknown_value, rule: unknown_status}}
              - {{kind: unknown_value, rule: unknown_status, labels: {{status: weird}}}}
          - name: one expected twice
            input: [{{at: 0s, message: "{UNKNOWN}OK"}}]
            expect:
              - {{kind: unknown_value, rule: unknown_status}}
              - {{kind: unknown_value, rule: unknown_status}}
    """)  # fmt: skip
    rc, out, _ = run(capsys, path)
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == "PASS two alike, both expected"
    assert lines[1].startswith("FAIL one expected twice")
    assert lines[2] == "    - unknown_value unknown_status key=None"
    assert lines[3].startswith("      unknown_value unknown_status key=None labels=")


def test_units_the_config_does_not_read_are_dropped_and_messages_are_literal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write(tmp_path, """
        journal: {units: [a.service], identifiers: [worker]}
        rules:
          - {name: hits, type: match, pattern: 'cost \\$\\{X\\}', emit: true}
    """, "c.yaml")  # fmt: skip
    assert load_config(cfg, env={}).rules
    path = write(tmp_path, """
        config: c.yaml
        tests:
          - name: units, identifiers and ${X}
            input:
              - {at: 0s, unit: a.service, message: "cost ${X}"}
              - {at: 1s, unit: b.service, message: "cost ${X}"}
              - {at: 2s, unit: b.service, identifier: worker, message: "cost ${X}"}
            expect:
              - {kind: match, rule: hits, at: 0s}
              - {kind: match, rule: hits, at: 2s}
    """)  # fmt: skip
    rc, out, err = run(capsys, path)
    assert (rc, out) == (0, "PASS units, identifiers and ${X}\n"), out + err


def test_repeat_every_priority_and_eval_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, """
        start: 2026-01-01T00:00:00+03:00
        tests:
          - name: threshold
            input: [{at: 1m, repeat: 21, every: 2s, priority: err, message: boom}]
            eval_at: 20m
            expect:
              - {kind: threshold, rule: api_errors, at: 1m40s}
              - {kind: resolved, rule: api_errors, at: 6m}
              - {kind: absence, rule: api_silent, at: 16m40s}
            expect_counts: {api_errors: {matches: 21, fired: 1}}
    """)  # fmt: skip
    rc, out, err = run(capsys, path)
    assert (rc, out) == (0, "PASS threshold\n"), out + err

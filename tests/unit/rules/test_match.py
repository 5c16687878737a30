"""match: counting by labels, folding cardinality, events only when asked."""

from __future__ import annotations

from rules.match import MatchRule
from tests.helpers import engine, entry, feed

RULES = r"""
rules:
  - name: webhooks
    type: match
    pattern: 'status ''(?P<status>[^'']*)'' type (?P<kind>\w+)'
    labels: [status, kind]
    allow: {kind: [portrait, style]}
    max_label_values: 2
  - name: crashed
    type: match
    pattern: 'crash (?P<request_id>\w+) (?P<where>\w+)'
    key: request_id
    emit: true
"""


def test_counts_by_labels_with_allow_list_and_cap() -> None:
    eng = engine(RULES)
    lines = [
        "status 'a' type portrait",
        "status 'b' type style",
        "status 'c' type evil",
        "status 'a' type portrait",
    ]
    assert feed(eng, [entry(m) for m in lines]) == []  # counting emits no events
    rule = eng.rules[0]
    assert isinstance(rule, MatchRule)
    assert rule.by_labels == {("a", "portrait"): 2, ("b", "style"): 1, ("other", "other"): 1}
    assert rule.counters() == {"matches": 4}


def test_emit_gives_an_event_with_key_and_labels() -> None:
    (ev,) = feed(engine(RULES), [entry("crash r7 db")])
    assert (ev.kind, ev.rule, ev.key, ev.labels) == ("match", "crashed", "r7", {"where": "db"})


def test_non_matching_line_with_the_prefilter_literal() -> None:
    eng = engine(RULES)
    assert feed(eng, [entry("crash !!"), entry("status 'x' nope")]) == []
    assert [r.counters()["matches"] for r in eng.rules] == [0, 0]

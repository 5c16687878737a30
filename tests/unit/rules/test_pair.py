"""The pair rule: deadlines on event time, stalled once, resolved late, bounded state."""

from __future__ import annotations

from unittest.mock import patch

from hypothesis import example, given, settings
from hypothesis import strategies as st

import rules.pair as pair_module
from monitor.core.model import EventKind
from rules.pair import PairRule
from tests.helpers import T0, S, engine, entry, feed, kinds

RULES = """
rules:
  - name: training
    type: pair
    start: 'START (?P<request_id>\\w+)'
    end: ['DONE (?P<request_id>\\w+)', 'FAIL (?P<request_id>\\w+) (?P<why>\\w+)']
    deadline: 1h
    max_open: 3
    forget_after: 2h
"""


def test_close_in_time_reports_duration() -> None:
    ev = feed(engine(RULES), [entry("START a", 0), entry("DONE a", 90)])
    assert kinds(ev) == [("pair_closed", "a")]
    assert ev[0].labels["duration_seconds"] == "90.000"
    assert ev[0].time_us == T0 + 90 * S


def test_deadline_fires_at_its_own_time_between_entries() -> None:
    eng = engine(RULES)
    ev = feed(eng, [entry("START a", 0), entry("unrelated", 7200)])
    assert kinds(ev) == [("stalled", "a")]
    assert ev[0].time_us == T0 + 3600 * S  # not the time of the entry that revealed it


def test_stalled_once_then_resolved_by_late_end() -> None:
    eng = engine(RULES)
    ev = feed(
        eng, [entry("START a", 0), entry("x", 3700), entry("x", 3800), entry("FAIL a oom", 4000)]
    )
    assert kinds(ev) == [("stalled", "a"), ("resolved", "a")]
    assert ev[1].labels == {"why": "oom", "duration_seconds": "4000.000"}


def test_tick_without_entries_fires() -> None:
    eng = engine(RULES)
    feed(eng, [entry("START a", 0)])
    assert eng.tick(T0 + 3599 * S) == []
    assert kinds(eng.tick(T0 + 3600 * S)) == [("stalled", "a")]
    assert eng.tick(T0 + 3700 * S) == []


def test_duplicate_deliveries_do_not_reopen_or_double_close() -> None:
    eng = engine(RULES)
    ev = feed(
        eng,
        [
            entry("START a", 0),
            entry("START a", 10),
            entry("DONE a", 20),
            entry("DONE a", 30),
            entry("START a", 40),
        ],
        now_s=10_000,
    )
    assert kinds(ev) == [("pair_closed", "a")]
    c = eng.rules[0].counters()
    assert (c["duplicate_start"], c["unmatched_end"], c["open"]) == (2, 1, 0)


def test_a_duplicate_start_does_not_push_the_deadline_back() -> None:
    """The deadline counts from the first start: the same start logged again half an hour
    later (a re-delivered submission) must not give the training another hour."""
    eng = engine(RULES)
    assert feed(eng, [entry("START a", 0), entry("START a", 1800)]) == []
    assert eng.tick(T0 + 3600 * S - 1) == []
    ev = eng.tick(T0 + 3600 * S)
    assert kinds(ev) == [("stalled", "a")]
    assert ev[0].time_us == T0 + 3600 * S  # not T0 + 5400 s
    assert eng.tick(T0 + 5400 * S) == []  # once
    c = eng.rules[0].counters()
    assert (c["opened"], c["duplicate_start"], c["stalled"]) == (1, 1, 1)


def test_open_pairs_are_bounded_and_evictions_counted() -> None:
    eng = engine(RULES)
    ev = feed(eng, [entry(f"START k{i}", i) for i in range(5)], now_s=4000)
    c = eng.rules[0].counters()
    assert (c["open"], c["evicted"]) == (3, 2)
    assert sorted(k for _, k in kinds(ev)) == ["k2", "k3", "k4"]  # evicted ones never stall


def test_stalled_pair_is_forgotten_after_forget_after() -> None:
    eng = engine(RULES)
    feed(eng, [entry("START a", 0)], now_s=2 * 3600 + 1)
    c = eng.rules[0].counters()
    assert (c["stalled"], c["expired"], c["open"], c["stalled_open"]) == (1, 1, 0, 0)
    assert feed(eng, [entry("DONE a", 7300)]) == []


def test_events_are_in_time_order_across_keys() -> None:
    eng = engine(RULES)
    ev = feed(eng, [entry("START b", 10), entry("START a", 20)], now_s=5000)
    assert [e.key for e in ev] == ["b", "a"]
    assert all(e.kind is EventKind.STALLED for e in ev)


def test_end_logged_exactly_at_the_deadline_is_in_time() -> None:
    eng = engine(RULES)
    ev = feed(eng, [entry("START a", 0), entry("START b", 1), entry("DONE b", 3601)])
    assert kinds(ev) == [("stalled", "a"), ("pair_closed", "b")]


def test_the_heap_follows_max_open_not_the_starts() -> None:
    eng = engine(RULES)
    feed(eng, [entry(f"START k{i}", i) for i in range(5000)])  # all within one deadline
    feed(eng, [entry(f"{'START' if i % 2 else 'DONE'} k{i}", 5000 + i) for i in range(5000)])
    (rule,) = eng.rules
    assert isinstance(rule, PairRule)
    assert len(rule._heap) <= 2 * 3 + pair_module._HEAP_SLACK + 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["START", "DONE", "x"]), st.integers(0, 6), st.integers(-60, 3000)
        ),
        max_size=60,
    )
)
@example(  # ended pairs' entries pile up beside a stalled one, then a start rebuilds the heap
    [
        ("START", 0, 0),
        ("START", 1, 3000),
        ("DONE", 1, 1),
        ("START", 2, 1),
        ("DONE", 2, 1),
        ("START", 3, 1),
        ("DONE", 3, 1),
        ("x", 0, 700),  # k0 stalls
        ("START", 4, 100),
    ]
)
def test_compacting_the_heap_changes_no_event(steps: list[tuple[str, int, int]]) -> None:
    """A heap rebuilt at every start gives the events of one never rebuilt; time may step back."""
    t, entries = 0, []
    for word, k, step in steps:
        t = max(0, t + step)
        entries.append(entry(f"{word} k{k}", t))
    runs = []
    for slack in (0, 10**9):
        with patch.object(pair_module, "_HEAP_SLACK", slack):
            eng = engine(RULES)
            runs.append((feed(eng, entries, now_s=t + 20_000), eng.rules[0].counters()))
    assert runs[0] == runs[1]

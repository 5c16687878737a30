"""absence and threshold: windows on event time, fire once, resolve."""

from __future__ import annotations

from monitor.core.model import Entry
from tests.helpers import T0, S, engine, entry, feed, kinds

RULES = """
rules:
  - name: silent
    type: absence
    pattern: heartbeat
    window: 10m
  - name: errors
    type: threshold
    priority: err
    count: 2
    window: 1m
"""


def test_absence_fires_once_at_window_end_and_resolves() -> None:
    eng = engine(RULES)
    ev = feed(
        eng,
        [
            entry("heartbeat", 0),
            entry("noise", 1000),
            entry("noise", 2000),
            entry("heartbeat", 2100),
        ],
    )
    assert kinds(ev) == [("absence", None), ("resolved", None)]
    assert ev[0].time_us == T0 + 600 * S
    assert ev[1].time_us == T0 + 2100 * S


def test_absence_window_counts_from_first_entry_seen() -> None:
    eng = engine(RULES)
    ev = feed(eng, [entry("noise", 0)], now_s=599)
    assert ev == []
    assert kinds(eng.tick(T0 + 600 * S)) == [("absence", None)]


def test_threshold_counts_only_selected_priority_in_sliding_window() -> None:
    eng = engine(RULES)
    lines = [
        entry("e", 0, priority=3),
        entry("w", 1, priority=4),
        entry("e", 30, priority=3),
        entry("e", 61, priority=2),
    ]
    assert feed(eng, lines) == []  # 0 has slid out when 61 arrives: 2 in the window
    ev = feed(eng, [entry("e", 62, priority=3)])
    assert kinds(ev) == [("threshold", None)]
    assert ev[0].labels == {"count": "2", "window": "1m"}


def test_threshold_resolves_when_count_drops() -> None:
    eng = engine(RULES)
    fired = feed(eng, [entry("e", t, priority=3) for t in (0, 1, 2, 3)])
    assert kinds(fired) == [("threshold", None)]
    ev = feed(eng, [], now_s=200)
    assert kinds(ev) == [("resolved", None)]
    assert ev[0].time_us == T0 + 61 * S  # with t=1 gone at 61 s, only 2 and 3 remain


def error_at(offset_us: int) -> Entry:
    return Entry(T0 + offset_us, "e", "aisha-api.service", 100, 3, "")


def test_threshold_window_excludes_its_start_and_resolves_at_that_instant() -> None:
    """At time t the window holds the matches of (t - window, t]: a match exactly one window
    older than the newest has slid out, and a firing threshold resolves at the very instant its
    oldest match is one window old."""
    at_boundary = [error_at(0), error_at(30 * S), error_at(60 * S)]
    assert feed(engine(RULES), at_boundary) == []  # 0 is out at 60: 2 in the window, not 3

    eng = engine(RULES)
    just_within = [error_at(0), error_at(30 * S), error_at(60 * S - 1)]
    fired = feed(eng, just_within)
    assert kinds(fired) == [("threshold", None)]
    assert fired[0].time_us == T0 + 60 * S - 1
    assert eng.tick(T0 + 60 * S - 1) == []
    resolved = eng.tick(T0 + 60 * S)
    assert kinds(resolved) == [("resolved", None)]
    assert resolved[0].time_us == T0 + 60 * S

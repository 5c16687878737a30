"""unknown_value: normalization, and the request_id joined from the same _PID's context line."""

from __future__ import annotations

from tests.helpers import PREFIX, engine, entry, feed

RULES = r"""
rules:
  - name: unknown_status
    type: unknown_value
    severity: critical
    pattern: '\[WEBHOOK BACKGROUND\] Неизвестный статус: (?P<value>[^\n]*)'
    context: {rule: processing, fields: [request_id], window: 1m}
  - name: processing
    type: match
    pattern: 'Начинаем обработку (?P<request_id>[^\s,]+), статус: (?P<status>\S+)'
"""


def start(rid: str, status: str, t: float, pid: int) -> object:
    return entry(f"{PREFIX}[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}", t, pid)


def unknown(status: str, t: float, pid: int) -> object:
    return entry(f"{PREFIX}[WEBHOOK BACKGROUND] Неизвестный статус: {status}", t, pid)


def test_seed_incident_line_is_joined_and_normalized() -> None:
    ev = feed(
        engine(RULES), [start("test_completed", "COMPLETED", 0, 7), unknown("COMPLETED", 0.1, 7)]
    )
    assert len(ev) == 1
    e = ev[0]
    assert (e.kind, e.key, e.severity) == ("unknown_value", "test_completed", "critical")
    assert e.labels == {"status": "COMPLETED", "normalized": "completed"}


def test_join_uses_the_same_pid_not_the_latest_line() -> None:
    lines = [start("r-a", "OK", 0, 1), start("r-b", "completed", 0.1, 2), unknown("OK", 0.2, 1)]
    ev = feed(engine(RULES), lines)  # type: ignore[arg-type]
    assert [(e.key, e.labels["normalized"]) for e in ev] == [("r-a", "completed")]


def test_truly_unknown_value_normalizes_to_empty() -> None:
    ev = feed(engine(RULES), [start("r1", "weird", 0, 1), unknown("weird", 0, 1)])  # type: ignore[list-item]
    assert ev[0].labels == {"status": "weird", "normalized": ""}


def test_context_outside_the_window_is_not_joined() -> None:
    ev = feed(engine(RULES), [start("r1", "OK", 0, 1), unknown("OK", 61, 1)])  # type: ignore[list-item]
    assert ev[0].key is None
    assert "no context line" in ev[0].message


def test_aliases_and_case_folding() -> None:
    eng = engine(RULES)
    cases = {
        "OK": "completed",
        " Succeeded ": "completed",
        "IN-PROGRESS": "in_progress",
        "In Queue": "queued",
        "ERROR": "failed",
        "running": "in_progress",
        "cancelled": "",
    }
    for raw, want in cases.items():
        (ev,) = feed(eng, [unknown(raw, 0, 1)])  # type: ignore[list-item]
        assert ev.labels["normalized"] == want, raw


def test_value_label_is_bounded() -> None:
    (ev,) = feed(engine(RULES), [unknown("x" * 10_000, 0, 1)])  # type: ignore[list-item]
    assert len(ev.labels["status"]) == 200

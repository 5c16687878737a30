"""The engine's fast path and a reader's gate change nothing: for any journal, an engine that
turns lines away by its gate literals (in `observe`), and an engine fed only the lines a reader
following `Engine.gate()` would send (the rest as `skip` runs), give exactly the events and
counters of an engine that puts every line through every rule."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, given, settings

from monitor.config.schema import Config
from monitor.core.engine import Engine, build_rules, gate_literals
from monitor.core.model import Entry, Event, Gate
from tests.helpers import PREFIX, T0, S
from tests.property import examples
from tests.property.test_engine_props import LARGE, SMALL, journals

END_US = 48 * 3600 * S


def engine(cfg: Config, *, fast_path: bool) -> Engine:
    return Engine(
        build_rules(cfg), cfg.journal.max_message_bytes, host_label=True, fast_path=fast_path
    )


def observing(cfg: Config, entries: list[Entry], *, fast_path: bool) -> tuple[list[Event], Engine]:
    e = engine(cfg, fast_path=fast_path)
    out: list[Event] = []
    for entry in entries:
        due, produced = e.observe(entry)
        out += [*due, *produced]
    return out + e.tick(_end(entries)), e


def every_line(cfg: Config, entries: list[Entry]) -> tuple[list[Event], Engine]:
    return observing(cfg, entries, fast_path=False)


def gated(cfg: Config, entries: list[Entry]) -> tuple[list[Event], Engine]:
    return observing(cfg, entries, fast_path=True)


def skipping(cfg: Config, entries: list[Entry]) -> tuple[list[Event], Engine]:
    """What the parallel replay does (monitor/journal/reader.py JournalSource.scan), written
    from the Gate's contract: the engine sees only the lines the gate keeps."""
    e = engine(cfg, fast_path=True)
    gate = e.gate()
    assert gate is not None, "the shipped rules all have literals, a priority, or are heartbeats"
    out: list[Event] = []
    run, prev = 0, None
    for entry in entries:
        t = entry.realtime_us
        if prev is not None and _left_out(gate, entry, t - prev):
            run, prev = run + 1, t
            continue
        if run:
            out += e.skip(run, prev or 0)
            run = 0
        prev = t
        due, produced = e.observe(entry)
        out += [*due, *produced]
    if run:
        out += e.skip(run, prev or 0)
    return out + e.tick(_end(entries)), e


def _left_out(gate: Gate, entry: Entry, step_us: int) -> bool:
    raw = entry.message.encode()
    return (
        entry.priority > gate.priority
        and 0 <= step_us <= gate.quiet_us
        and not any(lit in raw for lit in gate.literals)
    )


def _end(entries: Sequence[Entry]) -> int:
    return max((e.realtime_us for e in entries), default=T0) + END_US


def same(a: tuple[list[Event], Engine], b: tuple[list[Event], Engine]) -> None:
    assert [e.to_json() for e in a[0]] == [e.to_json() for e in b[0]]
    assert a[1].counters() == b[1].counters()
    assert a[1].entries == b[1].entries


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals(backwards=True))
def test_the_fast_path_gives_the_events_of_the_full_path(entries: list[Entry]) -> None:
    for cfg in (LARGE, SMALL):
        same(gated(cfg, entries), every_line(cfg, entries))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals(backwards=True))
def test_lines_a_reader_leaves_out_by_the_gate_change_nothing(entries: list[Entry]) -> None:
    for cfg in (LARGE, SMALL):
        same(skipping(cfg, entries), every_line(cfg, entries))


def test_the_gate_leaves_out_ordinary_lines_and_keeps_the_rules_lines() -> None:
    """Not vacuous: the shipped rules' gate does turn lines away."""
    gate = engine(LARGE, fast_path=True).gate()
    assert gate is not None
    access = Entry(T0, 'INFO:     127.0.0.1:5 - "GET /health HTTP/1.1" 200 OK', priority=6)
    unknown = Entry(T0, "[WEBHOOK BACKGROUND] Неизвестный статус: ok", priority=6)
    error = Entry(T0, "boom", priority=3)
    assert _left_out(gate, access, S)
    assert not _left_out(gate, unknown, S)
    assert not _left_out(gate, error, S)
    assert not _left_out(gate, access, gate.quiet_us + 1), "a silence longer than api_silent's"
    assert not _left_out(gate, access, -1), "a step back in time"


def test_gate_literals_stand_for_every_literal_with_few_checks() -> None:
    lits = [
        "[WEBHOOK] Обработка статуса '",
        "[WEBHOOK BACKGROUND] Неизвестный статус: ",
        "[WEBHOOK BACKGROUND] Начинаем обработку ",
        "[TRAINING COMPLETED] ",
        "[TRAINING FAILED] ",
        " отправлен в FAL AI, request_id: ",
        "abc",
    ]
    gate = gate_literals(lits)
    assert gate == ("[TRAINING ", "[WEBHOOK", "abc", "отправлен в FAL AI, request_id: ")
    for lit in lits:
        assert any(g in lit for g in gate), lit
    assert gate_literals([]) == ()


START = PREFIX + "Запуск обучения аватара av-1 отправлен в FAL AI, request_id: r1"
END = PREFIX + "[TRAINING COMPLETED] r1: обучение завершено успешно"
NOISE = 'INFO:     127.0.0.1:5 - "GET /health HTTP/1.1" 200 OK'


def test_a_deadline_passed_among_left_out_lines_fires_before_a_step_back() -> None:
    """The training's deadline (2m) passes on a line the gate leaves out; the clock then steps
    back and the training ends: it was stalled first (stalled, then resolved), as a reader of
    every line sees it."""
    for back in (T0 + 1 * S, T0 + 2 * S):
        entries = [
            Entry(T0, START, priority=6),
            Entry(T0 + 130 * S, NOISE, priority=6),  # past the deadline
            Entry(T0 + 131 * S, NOISE, priority=6),
            Entry(back, NOISE, priority=6),  # the clock steps back
            Entry(back + S, END, priority=6),
        ]
        expected = every_line(LARGE, entries)
        assert [e.kind for e in expected[0]][:2] == ["stalled", "resolved"], expected[0]
        same(skipping(LARGE, entries), expected)
        same(gated(LARGE, entries), expected)

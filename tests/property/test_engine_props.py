"""The engine under any sequence of entries: messages drawn from the shipped rules' own literals
(so every rule type fires: unknown statuses, pairs, thresholds, absences) plus noise, random
workers, hosts and priorities, and times that mostly go forward. No exception, state bounded by
the configured limits, and a restart at any point (commit, then restore into a fresh engine, as
tests/unit/daemon/test_state.py does) gives exactly the events of one run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config.schema import Config, load_config_text
from monitor.core.engine import Engine, RecentMatches, build_rules
from monitor.core.model import Entry, Event
from monitor.daemon.state import Position, StateStore
from rules.pair import PairRule
from tests.helpers import PREFIX, T0, S
from tests.property import examples

ROOT = Path(__file__).resolve().parents[2]
RECALL = 4


def config(max_open: int) -> Config:
    """The shipped config, with limits small enough for short inputs to reach them."""
    text = (
        (ROOT / "config.yaml")
        .read_text(encoding="utf-8")
        .replace("max_open: 100000", f"max_open: {max_open}")
        .replace("deadline: 1h", "deadline: 2m\n    forget_after: 10m")
        .replace("count: 20", "count: 3")
        .replace("window: 5m", "window: 1m")
        .replace("window: 15m", "window: 4m")
    )
    return load_config_text(text, "props.yaml", env={})


SMALL = config(3)  # pairs are evicted
LARGE = config(1000)  # they are not, with these inputs

RIDS = st.sampled_from(["r1", "r2", "r3", "r4", "r5", "..", "r 6", "r'7", "r,8", "Ж"])
STATUSES = st.sampled_from(
    [
        "COMPLETED",
        "completed",
        "OK",
        "in_progress",
        "IN_PROGRESS",
        "bogus",
        "",
        " failed ",
        "x" * 300,
    ]
)
TEMPLATES = [
    "[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: {status}",
    "[WEBHOOK BACKGROUND] Неизвестный статус: {status}",
    "Запуск обучения аватара av-1 отправлен в FAL AI, request_id: {rid}",
    "[WEBHOOK] Обработка статуса '{status}' для request_id: {rid}, тип: portrait",
    "[WEBHOOK BACKGROUND] Обучение в процессе для {rid}, 50%",
    "[TRAINING COMPLETED] {rid}: обучение завершено успешно",
    "[TRAINING FAILED] {rid}: ошибка",
    "[WEBHOOK] Получен webhook от FAL AI: {{'request_id': '{rid}', 'status': '{status}'}}",
    "[TRAINING START] Запуск обучения аватара av-2 для пользователя 7, тип: {status}",
    "[WEBHOOK BACKGROUND] Ошибка обработки {rid}: boom",
]


@st.composite
def messages(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, len(TEMPLATES) + 1))
    if kind >= len(TEMPLATES):  # noise, sometimes carrying a rule's literal in the wrong place
        noise = draw(st.text(max_size=40))
        literal = draw(st.sampled_from(["", "[TRAINING COMPLETED] r1:", "Неизвестный статус: "]))
        return noise + literal + draw(st.text(max_size=10))
    text = TEMPLATES[kind].format(rid=draw(RIDS), status=draw(STATUSES))
    return (PREFIX if draw(st.booleans()) else "") + text


@st.composite
def journals(draw: st.DrawFn, backwards: bool = True) -> list[Entry]:
    """Up to 40 entries. Time mostly goes forward (often past a deadline or a window); with
    `backwards`, it also stands still or steps back (clock steps, several hosts)."""
    n = draw(st.integers(0, 40))
    t = T0
    out = []
    for _ in range(n):
        forward = st.one_of(st.integers(1, 5 * S), st.integers(1, 900 * S))
        step = draw(st.one_of(forward, st.integers(-3 * S, 0)) if backwards else forward)
        t = max(T0, t + step)
        out.append(
            Entry(
                t,
                draw(messages()),
                "aisha-api.service",
                draw(st.sampled_from([4101, 4102, 4103, 4104, 4105])),
                draw(st.integers(0, 7)),
                draw(st.sampled_from(["api-1", "api-2", ""])),
            )
        )
    return out


def fresh(cfg: Config) -> Engine:
    engine = Engine(build_rules(cfg), cfg.journal.max_message_bytes, host_label=True)
    engine.recall = RecentMatches(limit=RECALL)
    return engine


def run(engine: Engine, entries: list[Entry]) -> list[Event]:
    out: list[Event] = []
    for e in entries:
        due, produced = engine.observe(e)
        out += due + produced
        check_bounds(engine)
    return out


def check_bounds(engine: Engine) -> None:
    for rule in engine.rules:
        if isinstance(rule, PairRule):
            assert len(rule.open) <= rule.spec.max_open
            assert len(rule.closed) <= rule.spec.max_open
            assert 0 <= rule.stalled_open <= len(rule.open)
    assert len(engine.recall.snapshot()) <= RECALL


def restart_gives_the_same_events(cfg: Config, entries: list[Entry], split: int) -> None:
    end_us = (max((e.realtime_us for e in entries), default=T0)) + 48 * 3600 * S
    whole = fresh(cfg)
    expected = run(whole, entries) + whole.tick(end_us)
    with tempfile.TemporaryDirectory() as tmp:
        first = fresh(cfg)
        got = run(first, entries[:split])
        store = StateStore(tmp)
        store.commit(Position("c", 0, {}), first, got)
        store.close()
        store = StateStore(tmp)
        second = fresh(cfg)
        store.restore(second)
        store.close()
        got += run(second, entries[split:]) + second.tick(end_us)
    assert [e.to_json() for e in got] == [e.to_json() for e in expected], f"restart at {split}"
    assert second.counters() == whole.counters()


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals(backwards=False), st.data())
def test_forward_journals_are_safe_bounded_and_restartable(
    entries: list[Entry], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(entries)), label="restart after entry")
    restart_gives_the_same_events(LARGE, entries, split)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals(backwards=True), st.data())
def test_journals_with_clock_steps_are_safe_bounded_and_restartable(
    entries: list[Entry], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(entries)), label="restart after entry")
    restart_gives_the_same_events(LARGE, entries, split)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journals(backwards=True))
def test_evictions_keep_every_structure_bounded(entries: list[Entry]) -> None:
    """max_open 3: pairs are evicted all the time; every bound holds after every entry."""
    engine = fresh(SMALL)
    run(engine, entries)
    engine.tick((entries[-1].realtime_us if entries else T0) + 48 * 3600 * S)
    check_bounds(engine)


def test_eviction_after_a_restart_picks_the_same_pairs() -> None:
    """max_open 50: 50 trainings open in one batch (one commit), a restart, then one more
    start: without the restart the first one opened is evicted. Five independent key sets, so
    that a random order passes by chance with probability 0.02**5."""
    cfg = config(50)
    start = "Запуск обучения аватара av-1 отправлен в FAL AI, request_id: {}"
    for prefix in ("a", "b", "c", "d", "e"):
        entries = [
            Entry(T0 + i, start.format(f"{prefix}{i:02d}"), "aisha-api.service", 4101)
            for i in range(51)
        ]
        restart_gives_the_same_events(cfg, entries, 50)


@settings(max_examples=examples(100), deadline=None)
@given(journals(backwards=False), st.lists(st.integers(0, 40), max_size=5))
def test_ticks_between_entries_change_nothing(entries: list[Entry], at: list[int]) -> None:
    """Ticking on the wall clock between entries (the daemon does, once caught up) gives the
    same events as a run that ticks only at the end, once `now` never runs ahead of the
    entries (the daemon ticks at now - 2 s)."""
    end_us = (entries[-1].realtime_us if entries else T0) + 48 * 3600 * S
    plain = fresh(SMALL)
    expected = run(plain, entries) + plain.tick(end_us)
    ticked = fresh(SMALL)
    got: list[Event] = []
    for i, e in enumerate(entries):
        if i in at and i > 0:
            got += ticked.tick(entries[i - 1].realtime_us)
        due, produced = ticked.observe(e)
        got += due + produced
    got += ticked.tick(end_us)
    key = [(e.rule, e.kind, e.key or "", e.time_us) for e in expected]
    assert sorted(key) == sorted((e.rule, e.kind, e.key or "", e.time_us) for e in got)

"""The engine: every rule sees each entry (cheap literal prefilter first) and deadlines fire at
their own time. Pure: no I/O, no wall clock; time comes from the entries and from `tick`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from monitor.config import Config
from monitor.model import Entry, Event
from rules.base import BuildContext, Rule

_RECALL_LIMIT = 10_000  # (rule, host, pid) slots kept for context joins


class RecentMatches:
    """The latest groups of each remembered rule per (host, pid), for `context:` joins."""

    def __init__(self, limit: int = _RECALL_LIMIT) -> None:
        self._limit = limit
        self._slots: OrderedDict[tuple[str, str, int], tuple[int, Mapping[str, str]]] = (
            OrderedDict()
        )

    def remember(self, rule: str, entry: Entry, groups: Mapping[str, str]) -> None:
        slot = (rule, entry.hostname, entry.pid)
        self._slots[slot] = (entry.realtime_us, groups)
        self._slots.move_to_end(slot)
        if len(self._slots) > self._limit:
            self._slots.popitem(last=False)

    def recall(self, rule: str, entry: Entry, window_us: int) -> Mapping[str, str] | None:
        hit = self._slots.get((rule, entry.hostname, entry.pid))
        if hit is None or entry.realtime_us - hit[0] > window_us:
            return None
        return hit[1]

    def snapshot(self) -> list[list[Any]]:
        return [
            [rule, host, pid, t, dict(groups)]
            for (rule, host, pid), (t, groups) in self._slots.items()
        ]

    def restore(self, rows: list[list[Any]]) -> None:
        for rule, host, pid, t, groups in rows[-self._limit :]:
            self._slots[(str(rule), str(host), int(pid))] = (int(t), dict(groups))


def build_rules(config: Config) -> list[Rule]:
    remembered = frozenset(
        c.rule for spec in config.rules if (c := getattr(spec, "context", None)) is not None
    )
    ctx = BuildContext(statuses=config.statuses, remembered=remembered)
    return [spec.build(ctx) for spec in config.rules]


class Engine:
    """Feed entries in journal order with `observe`; call `tick(now)` when time passes without
    entries. Both return the events due, in time order per call."""

    def __init__(self, rules: Iterable[Rule], max_message_chars: int = 64 * 1024) -> None:
        self.rules = list(rules)
        self.max_message_chars = max_message_chars
        self.recall = RecentMatches()
        self.now_us = 0
        self.entries = 0
        self._timed = [r for r in self.rules if r.timed]
        self._next_deadline: int | None = 0 if self._timed else None
        # (rule, literals, max priority) in config order: the per-entry loop touches only these
        self._dispatch = [(r, r.prefilter, r.base.priority) for r in self.rules]
        self.uses_priority = any(r.base.priority is not None for r in self.rules)

    def observe(self, entry: Entry) -> tuple[list[Event], list[Event]]:
        """(deadlines that fell due up to this entry's time, events this entry produced)."""
        t = entry.realtime_us
        # deadlines strictly before this entry: an end logged exactly at its deadline is in time
        due = []
        if self._next_deadline is not None and t > self._next_deadline:
            due = self.tick(t - 1)
        if t > self.now_us:
            self.now_us = t
        self.entries += 1
        message = entry.message
        if len(message) > self.max_message_chars:
            entry = entry._replace(message=message[: self.max_message_chars])
            message = entry.message
        produced: list[Event] = []
        recall = self.recall
        for rule, literals, priority in self._dispatch:
            if priority is not None and entry.priority > priority:
                continue
            if literals:
                for literal in literals:
                    if literal in message:
                        break
                else:
                    continue
            out = rule.observe(entry, recall)
            if out:
                produced.extend(out)
            if rule.timed:
                self._note_deadline(rule.next_deadline())
        return due, produced

    def _note_deadline(self, deadline: int | None) -> None:
        if deadline is not None and (self._next_deadline is None or deadline < self._next_deadline):
            self._next_deadline = deadline

    def tick(self, now_us: int) -> list[Event]:
        """Fire everything due at or before `now_us`, each at its own time."""
        if now_us > self.now_us:
            self.now_us = now_us
        events: list[Event] = []
        for rule in self._timed:
            events.extend(rule.tick(now_us))
        events.sort(key=lambda e: e.time_us)
        self._next_deadline = None
        for rule in self._timed:
            self._note_deadline(rule.next_deadline())
        return events

    def counters(self) -> dict[str, dict[str, int]]:
        return {r.base.name: r.counters() for r in self.rules}

    def snapshot(self) -> dict[str, Any]:
        """The engine's own state; each rule has its own snapshot."""
        return {"now_us": self.now_us, "entries": self.entries, "recall": self.recall.snapshot()}

    def restore(self, state: Mapping[str, Any]) -> None:
        self.now_us = int(state.get("now_us", 0))
        self.entries = int(state.get("entries", 0))
        self.recall.restore(state.get("recall", []))
        self._next_deadline = 0 if self._timed else None  # recomputed at the next entry or tick

"""The engine: every rule sees each entry (cheap literal prefilter first) and deadlines fire at
their own time. Pure: no I/O, no wall clock; time comes from the entries and from `tick`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from monitor.config.schema import Config
from monitor.core.model import Entry, Event, Gate
from rules.base import UNBOUNDED, BuildContext, Heartbeat, Matcher, Rule

_RECALL_LIMIT = 10_000  # (rule, host, pid) slots kept for context joins
_KEYED_LIMIT = 10_000  # (rule, key) payloads kept for handlers
_GATE_MIN_CHARS = 6  # a gate literal shorter than this would let too many lines through
_NEVER = 1 << 62  # a deadline later than any journal time


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


def gate_literals(literals: Iterable[str]) -> tuple[str, ...]:
    """Few short literals one of which every line containing any of `literals` contains.

    Rules' literals often share a prefix (`[WEBHOOK] ...`, `[WEBHOOK BACKGROUND] ...`): a common
    prefix of at least _GATE_MIN_CHARS stands for them all, so a line that matches no rule is
    turned away by a couple of substring checks instead of one per rule."""
    left = {lit.lstrip() or lit for lit in literals}
    gate: list[str] = []
    while left:
        covers: dict[str, int] = {}
        for lit in left:
            for end in range(min(_GATE_MIN_CHARS, len(lit)), len(lit) + 1):
                covers[lit[:end]] = covers.get(lit[:end], 0) + 1
        # the prefix that stands for the most literals; the longest of those (fewest false hits)
        best = max(sorted(covers), key=lambda p: (covers[p], len(p)))
        gate.append(best)
        left = {lit for lit in left if not lit.startswith(best)}
    return tuple(sorted(gate))


def build_rules(config: Config, matcher: Matcher = UNBOUNDED) -> list[Rule]:
    remembered = frozenset(name for spec in config.rules for name in spec.context_rules())
    keyed = frozenset(r for h in config.handlers.values() if (r := h.payload_source()) is not None)
    ctx = BuildContext(config.statuses, remembered, keyed, matcher)
    return [spec.build(ctx) for spec in config.rules]


def engine_for(config: Config, *, fast_path: bool = True, matcher: Matcher = UNBOUNDED) -> Engine:
    """The engine of a config, the same for the daemon, replay and every tool; `matcher` runs
    the rules' regexes (the daemon and replay give it a time budget)."""
    return Engine(
        build_rules(config, matcher),
        config.journal.max_message_bytes,
        host_label=config.journal.host_label,
        fast_path=fast_path,
        matcher=matcher,
    )


Fill = Callable[[Entry], Entry]


class Engine:
    """Feed entries in journal order with `observe`; call `tick(now)` when time passes without
    entries. Both return the events due, in time order per call.

    An entry may come without its origin (`pid` < 0): the source reads `_PID` and `_HOSTNAME`
    only when a rule that joins context looks at the line, through `fill`, which must be called
    before the source moves on (the engine calls it synchronously inside `observe`)."""

    def __init__(
        self,
        rules: Iterable[Rule],
        max_message_chars: int = 64 * 1024,
        *,
        host_label: bool = False,
        fast_path: bool = True,
        matcher: Matcher = UNBOUNDED,
    ) -> None:
        self.rules = list(rules)
        self.matcher = matcher  # what the rules' searches were bound with: its timeouts
        self.max_message_chars = max_message_chars
        self.recall = RecentMatches()
        self.now_us = 0
        self.entries = 0
        self.fill: Fill | None = None
        self.host_label = host_label  # every event gets labels.host (the entry's _HOSTNAME)
        self._timed = [r for r in self.rules if r.timed]
        self._next_deadline = 0 if self._timed else _NEVER
        # per rule in config order: (rule, the single literal or None, all literals, max priority)
        self._dispatch = [
            (r, r.prefilter[0] if len(r.prefilter) == 1 else None, r.prefilter, r.base.priority,
             r.needs_origin)
            for r in self.rules
        ]  # fmt: skip
        self.uses_priority = any(r.base.priority is not None for r in self.rules)
        gate, self._gate_priority, self._heartbeats = _fast_path(self.rules)
        self._gated = gate is not None and fast_path
        self._gate = gate or ()
        self._fast = False  # decided at the first full observe (after a restore, too)
        self.uses_origin = any(r.needs_origin for r in self.rules)
        self._context = _EngineContext(self)
        self.ended: list[tuple[str, str, int]] = []
        self.collect_ended = False  # the daemon drains them; replay does not want them
        # the latest groups per (rule, key) of rules that handlers read payloads from; bounded,
        # and not persisted: after a restart a replay falls back to {request_id, status}
        self.keyed: OrderedDict[tuple[str, str], Mapping[str, str]] = OrderedDict()

    def take_ended(self) -> list[tuple[str, str, int]]:
        """(rule, key, time) of every pair end seen since the last call (fallback verification)."""
        ended, self.ended = self.ended, []
        return ended

    def keyed_groups(self, rule: str, key: str) -> Mapping[str, str] | None:
        return self.keyed.get((rule, key))

    def schedule(self, deadline_us: int) -> None:
        """Tick no later than `deadline_us` (rules call it through their Context)."""
        if deadline_us < self._next_deadline:
            self._next_deadline = deadline_us

    def gate(self) -> Gate | None:
        """What a reader may leave out, or None when every line must come to `observe`."""
        if not self._gated:
            return None
        windows = [r.window_us for r in self._heartbeats]
        return Gate(
            tuple(lit.encode() for lit in self._gate),
            self._gate_priority,
            min(windows) if windows else _NEVER,
        )

    def skip(self, count: int, last_us: int) -> list[Event]:
        """`count` lines that `gate()` let a reader leave out, the last of them at `last_us`;
        the deadlines that fell due among them.

        Only heartbeat rules look at such lines, and the gate sends the engine every line after
        a longer silence than their window or a step back in time: so the run's times go
        forward, its last is its latest, and what falls due among them is what falls due
        before the last (the deadline of a line that ends a pair comes with that line)."""
        self.entries += count
        if last_us > self.now_us:
            self.now_us = last_us
        for rule in self._heartbeats:
            rule.pulse(last_us, count)
        return self.tick(last_us - 1) if last_us > self._next_deadline else []

    def observe(self, entry: Entry) -> tuple[Sequence[Event], Sequence[Event]]:
        """(deadlines that fell due up to this entry's time, events this entry produced)."""
        # the fast path: most lines match no rule's literals and nothing is due; such a line
        # only counts, and tells the heartbeat rules (absence of any line) that it was seen
        if self._fast:
            t = entry.realtime_us
            if t <= self._next_deadline and entry.priority > self._gate_priority:
                message = entry.message
                for lit in self._gate:
                    if lit in message:
                        break
                else:
                    self.entries += 1
                    if t > self.now_us:
                        self.now_us = t
                    for rule in self._heartbeats:
                        rule.pulse(t, 1)
                    return _NOTHING
        due, produced = self._observe(entry)
        self._fast = self._fast_path_open()
        return due, produced

    def _fast_path_open(self) -> bool:
        """Lines may skip the rules while every heartbeat rule only needs their time."""
        return self._gated and all(r.pulsing for r in self._heartbeats)

    def _observe(self, entry: Entry) -> tuple[list[Event], list[Event]]:
        t = entry.realtime_us
        # deadlines strictly before this entry: an end logged exactly at its deadline is in time
        due: list[Event] = []
        if t > self._next_deadline:
            due = self.tick(t - 1)
        if t > self.now_us:
            self.now_us = t
        self.entries += 1
        message = entry.message
        if len(message) > self.max_message_chars:
            entry = entry._replace(message=message[: self.max_message_chars])
            message = entry.message
        produced: list[Event] = []
        ctx = self._context
        for rule, literal, literals, priority, needs_origin in self._dispatch:
            if priority is not None and entry.priority > priority:
                continue
            if literal is not None:
                if literal not in message:
                    continue
            elif literals:
                for lit in literals:  # a plain loop: any() with a generator costs twice as much
                    if lit in message:
                        break
                else:
                    continue
            if needs_origin and entry.pid < 0 and self.fill is not None:
                entry = self.fill(entry)
            out = rule.observe(entry, ctx)
            if out:
                if self.host_label and entry.hostname:
                    for e in out:
                        e.labels.setdefault("host", entry.hostname)
                produced.extend(out)
        return due, produced

    def tick(self, now_us: int) -> list[Event]:
        """Fire everything due at or before `now_us`, each at its own time."""
        if now_us > self.now_us:
            self.now_us = now_us
        events: list[Event] = []
        for rule in self._timed:
            events.extend(rule.tick(now_us))
        events.sort(key=lambda e: e.time_us)
        self._next_deadline = _NEVER
        for rule in self._timed:
            deadline = rule.next_deadline()
            if deadline is not None:
                self.schedule(deadline)
        self._fast = self._fast_path_open()
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
        self._next_deadline = 0 if self._timed else _NEVER  # recomputed at the next entry or tick
        self._fast = False  # rules were restored, too: the next entry takes the full path


_NOTHING: tuple[Sequence[Event], Sequence[Event]] = ((), ())


def _fast_path(rules: list[Rule]) -> tuple[tuple[str, ...] | None, int, list[Heartbeat]]:
    """(gate literals, or None when some rule must see every line; the lowest priority that
    must take the full path, -1 for none; the heartbeat rules).

    A heartbeat rule (`pulse`/`pulsing`) looks at every line but only notes its time while
    `pulsing`; any other rule without literals must see each line: no fast path."""
    literals: list[str] = []
    heartbeats: list[Heartbeat] = []
    gate_priority = -1
    for rule in rules:
        heartbeat = rule.heartbeat()
        if rule.prefilter:
            literals += rule.prefilter
        elif rule.base.priority is not None and heartbeat is None:
            gate_priority = max(gate_priority, rule.base.priority)
        elif heartbeat is not None and rule.base.priority is None:
            heartbeats.append(heartbeat)
        else:
            return None, -1, []
    return gate_literals(literals), gate_priority, heartbeats


class _EngineContext:
    """The engine as rules see it (rules.base.Context)."""

    __slots__ = ("_engine",)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def host_label(self) -> bool:
        return self._engine.host_label

    def remember(self, rule: str, entry: Entry, groups: Mapping[str, str]) -> None:
        self._engine.recall.remember(rule, entry, groups)

    def recall(self, rule: str, entry: Entry, window_us: int) -> Mapping[str, str] | None:
        return self._engine.recall.recall(rule, entry, window_us)

    def schedule(self, deadline_us: int) -> None:
        self._engine.schedule(deadline_us)

    def remember_keyed(self, rule: str, key: str, groups: Mapping[str, str]) -> None:
        keyed = self._engine.keyed
        keyed[(rule, key)] = groups
        keyed.move_to_end((rule, key))
        if len(keyed) > _KEYED_LIMIT:
            keyed.popitem(last=False)

    def ended(self, rule: str, key: str, t_us: int) -> None:
        if self._engine.collect_ended:
            self._engine.ended.append((rule, key, t_us))

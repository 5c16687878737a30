"""What every rule shares: the common config keys, compiled patterns with their prefilter, and
the Rule protocol the engine drives."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client.core import Metric

from monitor.config.regexutil import check_pattern, required_literal
from monitor.config.yamlview import View
from monitor.core.model import Entry, Event, EventKind, Severity
from monitor.core.statuses import Statuses

MAX_LABEL_CHARS = 200

PRIORITIES = {
    "emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
    "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7,
}  # fmt: skip

Search = Callable[[str], "re.Match[str] | None"]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled regex and the literals one of which every match contains (its prefilter)."""

    source: str
    regex: re.Pattern[str]
    literals: tuple[str, ...]

    def search(self, message: str) -> re.Match[str] | None:
        for literal in self.literals:
            if literal in message:
                return self.regex.search(message)
        return None if self.literals else self.regex.search(message)

    def bound(self, search: Search) -> Search:
        """`search` (this pattern's regex run by a Matcher) behind the literal prefilter."""
        literals = self.literals
        if not literals:
            return search

        def prefiltered(message: str) -> re.Match[str] | None:
            for literal in literals:
                if literal in message:
                    return search(message)
            return None

        return prefiltered


class Matcher(Protocol):
    """How rules run their regexes. The daemon and `replay` give every search a time budget
    (monitor/matchbudget.py): one that runs out is counted and taken as no match for that rule,
    so no pattern can hold the loop whatever the line. Tools and tests run them as they are."""

    @property
    def total(self) -> int:
        """Searches cut short so far, all rules together."""
        ...

    @property
    def by_rule(self) -> Mapping[str, int]:
        """Searches cut short so far, by rule."""
        ...

    def bind(self, rule: str, regex: re.Pattern[str]) -> Search:
        """The search `rule` calls for `regex`."""
        ...


class Unbounded:
    """Searches run to their end (tools that stop on Ctrl-C, tests)."""

    total = 0

    @property
    def by_rule(self) -> Mapping[str, int]:
        return {}

    def bind(self, rule: str, regex: re.Pattern[str]) -> Search:
        return regex.search


UNBOUNDED = Unbounded()


@dataclass(frozen=True, slots=True)
class RuleBase:
    """Keys every rule has: name, type, severity, alert, handler, metric, priority, description."""

    name: str
    type: str
    severity: Severity
    alert: str | None = None
    handler: str | None = None
    metric: str | None = None
    priority: int | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What rules may need from outside their own config when they are built."""

    statuses: Statuses = field(default_factory=Statuses)
    remembered: frozenset[str] = frozenset()  # rules that others join context from
    keyed: frozenset[str] = frozenset()  # rules whose groups are kept by key (handler payloads)
    matcher: Matcher = field(default_factory=Unbounded)  # runs the rules' regexes


@dataclass(frozen=True, slots=True)
class ParseContext:
    rule_names: frozenset[str]


class Context(Protocol):
    """What a rule may ask of the engine while it observes an entry."""

    @property
    def host_label(self) -> bool:
        """Events carry the entry's _HOSTNAME as labels.host (journal.host_label)."""
        ...

    def remember(self, rule: str, entry: Entry, groups: Mapping[str, str]) -> None:
        """Keep `groups` as this rule's latest match on the entry's (host, pid)."""
        ...

    def recall(self, rule: str, entry: Entry, window_us: int) -> Mapping[str, str] | None:
        """The latest remembered groups of `rule` on the entry's (host, pid), if recent enough."""
        ...

    def schedule(self, deadline_us: int) -> None:
        """Ask for a tick at `deadline_us` (a rule calls it when it sets a new deadline)."""
        ...

    def remember_keyed(self, rule: str, key: str, groups: Mapping[str, str]) -> None:
        """Keep `groups` as this rule's latest match for `key` (e.g. a request_id)."""
        ...

    def ended(self, rule: str, key: str, t_us: int) -> None:
        """A pair rule saw an end line for `key`, whether or not the pair was open."""
        ...


@dataclass(frozen=True, slots=True)
class OpenItem:
    """Something a rule holds open (a training waiting for its end line)."""

    key: str
    start_us: int
    stalled: bool
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class OpenItems:
    total: int
    stalled: int
    first: tuple[OpenItem, ...]  # the oldest few, in opening order


@dataclass(frozen=True, slots=True)
class ExplainContext:
    """What `explain` tells a rule spec about a line that changed it."""

    delta: Mapping[str, int]  # the rule's counters that the line changed
    events: Sequence[Event]  # the events the line produced
    groups: Sequence[Mapping[str, str]]  # the named groups of each pattern that matched
    canonical: tuple[str, ...]  # the config's canonical statuses


class Rule(Protocol):
    """A rule as the engine drives it, and as the state store, the metrics and the status page
    read it (through these members only, whatever its type)."""

    @property
    def base(self) -> RuleBase: ...

    prefilter: tuple[str, ...]  # the engine calls observe only if one of these is in the message
    timed: bool  # has deadlines: tick() is called when one is due
    needs_origin: bool  # reads entry.pid / entry.hostname (context joins)

    def observe(self, entry: Entry, ctx: Context) -> list[Event]: ...

    def tick(self, now_us: int) -> list[Event]: ...

    def next_deadline(self) -> int | None: ...

    def counters(self) -> dict[str, int]: ...

    def snapshot(self) -> dict[str, Any]:
        """The rule's state as JSON-able data (keyed rows of a KeyedRule excluded)."""
        ...

    def restore(self, state: Mapping[str, Any]) -> None:
        """Take back what `snapshot` gave, possibly from a rule of an older config."""
        ...

    def collect(self) -> Iterable[Metric]:
        """The rule's metric families; one named like a family the daemon declares for all
        rules (unknown_status, trainings_open, …) adds its samples to it."""
        ...

    def open_items(self, limit: int) -> OpenItems | None:
        """What it holds open, for the status page; None for a rule that holds nothing."""
        ...

    def heartbeat(self) -> Heartbeat | None:
        """Itself, when lines no other rule wants only need `pulse` (the fast path)."""
        ...

    def keyed(self) -> KeyedRule | None:
        """Itself, when its state is keyed rows the store writes one by one."""
        ...


class RuleDefaults:
    """What a rule that does not say otherwise does: no deadlines, no metric of its own,
    nothing open, no heartbeat, no keyed rows."""

    timed = False

    def tick(self, now_us: int) -> list[Event]:
        return []

    def next_deadline(self) -> int | None:
        return None

    def collect(self) -> Iterable[Metric]:
        return ()

    def open_items(self, limit: int) -> OpenItems | None:
        return None

    def heartbeat(self) -> Heartbeat | None:
        return None

    def keyed(self) -> KeyedRule | None:
        return None


class Heartbeat(Protocol):
    """A rule that looks at every line but, while `pulsing`, only notes the time of a line that
    no other rule wants: the engine then calls `pulse` instead of `observe` (the fast path)."""

    window_us: int  # a silence longer than this needs the full path

    @property
    def pulsing(self) -> bool: ...

    def pulse(self, t_us: int, count: int) -> None:
        """`count` lines, the last at `t_us`."""
        ...


class KeyedRule(Protocol):
    """A rule whose state is many keyed rows (open pairs): the store writes only what changed."""

    def take_changes(self) -> tuple[dict[str, dict[str, Any] | None], dict[str, int | None]]:
        """(open rows changed since the last call, None = deleted; closed keys likewise)."""
        ...

    def load_rows(
        self, open_rows: Mapping[str, Mapping[str, Any]], closed: Mapping[str, int]
    ) -> None: ...


class RuleSpec(Protocol):
    """A configured rule: builds the rule, and says what `explain` and config validation need."""

    @property
    def base(self) -> RuleBase: ...

    def build(self, ctx: BuildContext) -> Rule: ...

    def patterns(self) -> tuple[tuple[str, Pattern], ...]:
        """(role, pattern) of each regex, as `explain` names them (`pattern`, `start[0]`, …)."""
        ...

    def context_rules(self) -> tuple[str, ...]:
        """The rules whose matches this one joins (remembered per host and _PID)."""
        ...

    def explain(self, ctx: ExplainContext) -> list[str]:
        """What a line that changed the rule did, one sentence each."""
        ...


class SpecDefaults:
    """A rule spec that joins no other rule's matches."""

    __slots__ = ()

    def context_rules(self) -> tuple[str, ...]:
        return ()


def parse_pattern(
    view: View,
    key: str,
    groups: tuple[str, ...] = (),
    *,
    required: bool = True,
    prefilter: tuple[str, ...] | None = None,
) -> Pattern | None:
    """One regex at `key`; problems are reported at its line."""
    if not view.has(key):
        view.text(key, required=required)
        return None
    text = view.text(key)
    return _compile(view, key, text, groups, prefilter)


def parse_patterns(view: View, key: str, groups: tuple[str, ...]) -> tuple[Pattern, ...]:
    """A regex or a list of them at `key` (any of them matches)."""
    out = []
    for path, node in view.seq(key, required=True):
        text = view.scalar_str(node, path)
        if text is None:
            continue
        compiled, problems = check_pattern(text, groups)
        for p in problems:
            view.problems.add(node, path, p)
        if compiled is not None:
            out.append(Pattern(text, compiled, _literals(text)))
    return tuple(out)


def _compile(
    view: View, key: str, text: str, groups: tuple[str, ...], prefilter: tuple[str, ...] | None
) -> Pattern | None:
    compiled, problems = check_pattern(text, groups)
    for p in problems:
        view.error(key, p)
    if compiled is None:
        return None
    return Pattern(text, compiled, prefilter if prefilter is not None else _literals(text))


def _literals(text: str) -> tuple[str, ...]:
    lit = required_literal(text)
    return (lit,) if lit else ()


def parse_prefilter(view: View) -> tuple[str, ...] | None:
    """`prefilter:` declares literals (any of them) a line must contain before the regex runs."""
    if not view.has("prefilter"):
        return None
    lits = view.str_list("prefilter")
    if any(not lit for lit in lits):
        view.error("prefilter", "prefilter literals must not be empty")
    return lits


def union_prefilter(patterns: tuple[Pattern, ...]) -> tuple[str, ...]:
    """Literals for a rule with several patterns: empty (no prefilter) if any pattern has none."""
    if not patterns or any(not p.literals for p in patterns):
        return ()
    return tuple(dict.fromkeys(lit for p in patterns for lit in p.literals))


def labels_of(match: re.Match[str], skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Named groups that matched, bounded in length (log content comes from outside)."""
    return {
        k: v[:MAX_LABEL_CHARS]
        for k, v in match.groupdict().items()
        if v is not None and k not in skip
    }


def event(
    base: RuleBase,
    kind: EventKind,
    time_us: int,
    key: str | None,
    labels: dict[str, str],
    message: str,
) -> Event:
    return Event(time_us, base.name, kind, base.severity, key, labels, message)


def human_duration(us: int) -> str:
    """Microseconds as `1h30m`, `45s`: the form the config uses."""
    s = us // 1_000_000
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or f"{us / 1e6:g}s"


def restore_counts(counts: dict[str, int], state: Mapping[str, Any]) -> None:
    """Counters by name from a snapshot; names this version does not know are dropped."""
    for name, value in state.get("counts", {}).items():
        if name in counts:
            counts[name] = int(value)

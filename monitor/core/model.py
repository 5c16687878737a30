"""The data that flows through the pipeline: journal entries in, events out."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

METRIC_PREFIX = "aisha_monitor_"  # every metric's name starts with it


class Severity(enum.StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class EventKind(enum.StrEnum):
    MATCH = "match"
    UNKNOWN_VALUE = "unknown_value"
    STALLED = "stalled"
    PAIR_CLOSED = "pair_closed"
    ABSENCE = "absence"
    THRESHOLD = "threshold"
    HEALTH = "health"
    HANDLER = "handler"
    RESOLVED = "resolved"


def us_to_datetime(us: int) -> datetime:
    """Journal realtime (microseconds since the epoch) as an aware UTC datetime."""
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def datetime_to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("naive datetime: aware UTC datetimes only")
    return int(when.timestamp() * 1_000_000)


def format_time(when: datetime) -> str:
    """RFC 3339 with microseconds and a Z, the form every event and log line uses."""
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Gate:
    """What a reader may leave out: a line that contains none of `literals` (UTF-8), has a
    priority above `priority` (-1: any) and follows the line before it by 0 to `quiet_us`
    reaches no rule; the engine only needs to know that it was there (`Engine.skip`)."""

    literals: tuple[bytes, ...]
    priority: int
    quiet_us: int


class Entry(NamedTuple):
    """One journal entry, reduced to what rules look at.

    A NamedTuple rather than a dataclass: one is built per journal entry on the hot path, and a
    tuple is both immutable and the cheapest object to build. Time is kept as the journal's own
    integer microseconds; `time` gives the aware datetime.
    """

    realtime_us: int
    message: str
    unit: str = ""
    pid: int = 0
    priority: int = 6
    hostname: str = ""

    @property
    def time(self) -> datetime:
        return us_to_datetime(self.realtime_us)


@dataclass(frozen=True, slots=True)
class Event:
    """What a rule, health check or handler reports (the README, "Events", has the format)."""

    time_us: int
    rule: str
    kind: EventKind
    severity: Severity
    key: str | None
    labels: dict[str, str] = field(default_factory=dict)
    message: str = ""
    cursor: str | None = None

    @property
    def time(self) -> datetime:
        return us_to_datetime(self.time_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "rule": self.rule,
            "kind": str(self.kind),
            "severity": str(self.severity),
            "key": self.key,
            "labels": dict(self.labels),
            "message": self.message,
            "cursor": self.cursor,
        }

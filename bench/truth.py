"""What the shipped rules must report for a generated journal, worked out from what the generator
wrote (never from the product's code): the training pairs, the unknown statuses, the crashes.

The pair semantics follow the README's rule reference: a training's first start opens it; an end
at or before start + deadline closes it (`pair_closed`: an end logged exactly at its deadline is
in time); no end by then is `stalled`, at the deadline, when that is not after the last
aisha-api entry (replay evaluates pending deadlines there); an end after the deadline is
`resolved`; a second start for an open or recently closed key and an end without a start are
ignored. Ties at the microsecond are rare here (timestamps are random to the microsecond)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEADLINE_US = 3600 * 1_000_000  # training_stalled: deadline 1h
FORGET_US = 24 * 3600 * 1_000_000  # pair forget_after default


def load_statuses(config: Path) -> tuple[tuple[str, ...], dict[str, str]]:
    """`statuses.canonical` and `statuses.aliases` of a config file (the shipped one has both)."""
    doc = yaml.safe_load(config.read_text(encoding="utf-8"))
    statuses = doc.get("statuses") or {}
    if "aliases" not in statuses or "canonical" not in statuses:
        raise SystemExit(f"{config}: the bench expects explicit statuses.canonical and aliases")
    return tuple(statuses["canonical"]), dict(statuses["aliases"])


def normalize(raw: str, canonical: tuple[str, ...], aliases: dict[str, str]) -> str:
    """README: case-fold, trim, `-` and spaces to `_`, then the alias table; "" when unknown."""
    folded = "_".join(raw.strip().casefold().replace("-", " ").split())
    if folded in canonical:
        return folded
    return aliases.get(folded, "")


@dataclass(slots=True)
class _Open:
    start_us: int


@dataclass(slots=True)
class Truth:
    canonical: tuple[str, ...]
    aliases: dict[str, str]
    open: dict[str, _Open] = field(default_factory=dict)
    closed_at: dict[str, int] = field(default_factory=dict)
    pair_closed: int = 0
    stalled: dict[str, int] = field(default_factory=dict)  # request_id -> when it stalled
    resolved: dict[str, int] = field(default_factory=dict)  # request_id -> its late end
    unknown: list[dict[str, Any]] = field(default_factory=list)
    crashed: list[str] = field(default_factory=list)
    duplicate_starts: int = 0
    unmatched_ends: int = 0

    def start(self, rid: str, t: int) -> None:
        pair = self.open.get(rid)
        if pair is not None and t > pair.start_us + FORGET_US:
            self._expire(rid, pair)  # a stalled pair forgotten: this start opens a new one
            pair = None
        closed = self.closed_at.get(rid)
        if pair is not None or (closed is not None and t - closed < FORGET_US):
            self.duplicate_starts += 1
            return
        self.open[rid] = _Open(t)

    def end(self, rid: str, t: int) -> None:
        pair = self.open.get(rid)
        if pair is not None and t > pair.start_us + FORGET_US:
            self._expire(rid, pair)
            pair = None
        if pair is None:
            self.unmatched_ends += 1
            return
        del self.open[rid]
        self.closed_at[rid] = t
        if t <= pair.start_us + DEADLINE_US:
            self.pair_closed += 1
        else:  # the deadline passed first
            self.stalled[rid] = pair.start_us + DEADLINE_US
            self.resolved[rid] = t

    def _expire(self, rid: str, pair: _Open) -> None:
        self.stalled[rid] = pair.start_us + DEADLINE_US
        del self.open[rid]

    def unknown_status(self, rid: str, raw: str, t: int) -> None:
        self.unknown.append(
            {
                "time_us": t,
                "request_id": rid,
                "status": raw,
                "normalized": normalize(raw, self.canonical, self.aliases),
            }
        )

    def crash(self, rid: str) -> None:
        self.crashed.append(rid)

    def finish(self, final_us: int) -> dict[str, Any]:
        """The expected events of a replay whose deadlines are evaluated at `final_us`."""
        pending = []
        for rid, pair in self.open.items():
            if pair.start_us + DEADLINE_US <= final_us:
                self.stalled[rid] = pair.start_us + DEADLINE_US
            else:
                pending.append(rid)
        return {
            "unknown_statuses": self.unknown,
            "stalled": dict(sorted(self.stalled.items())),  # request_id -> event time (µs)
            "resolved": dict(sorted(self.resolved.items())),
            "still_stalled": sorted(self.stalled.keys() - self.resolved.keys()),
            "pending": sorted(pending),
            "pair_closed": self.pair_closed,
            "processing_failed": self.crashed,
            "duplicate_starts": self.duplicate_starts,
            "unmatched_ends": self.unmatched_ends,
            "expected_events": {
                "unknown_value": len(self.unknown),
                "stalled": len(self.stalled),
                "resolved": len(self.resolved),
                "pair_closed": self.pair_closed,
                "match": len(self.crashed),  # webhook_processing_failed emits one per crash
                "threshold": 0,
                "absence": 0,
            },
        }

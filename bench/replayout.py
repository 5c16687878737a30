"""What `aisha-monitor replay` prints: its summary line and each rule's counters on stderr, and
its events on stdout checked against the generator's truth.json."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

SUMMARY = re.compile(r"replay: (\d+) entries in ([\d.]+)s")


def parse_time_us(text: str) -> int:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def _unknown(e: dict[str, Any]) -> tuple[int, str, str, str]:
    labels = e["labels"]
    return (parse_time_us(e["time"]), e["key"], labels.get("status"), labels.get("normalized"))


def check(events_path: Path, truth: dict[str, Any], summary_entries: int | None) -> list[str]:
    """Every way the replay's events differ from truth.json; empty when they agree."""
    problems: list[str] = []
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line]
    if summary_entries != truth["aisha_api_entries"]:
        problems.append(
            f"replay read {summary_entries} entries, truth has {truth['aisha_api_entries']}"
        )

    def same(what: str, got: Counter[Any], want: Counter[Any]) -> None:
        if got != want:
            missing, extra = want - got, got - want
            problems.append(
                f"{what}: {sum(got.values())} events, expected {sum(want.values())}; "
                f"missing {sorted(missing.elements())[:5]} ({sum(missing.values())}), "
                f"unexpected {sorted(extra.elements())[:5]} ({sum(extra.values())})"
            )

    def of(rule: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["rule"] == rule and e["kind"] == kind]

    same(
        "unknown_value (time, request_id, status, normalized)",
        Counter(_unknown(e) for e in of("unknown_status", "unknown_value")),
        Counter(
            (u["time_us"], u["request_id"], u["status"], u["normalized"])
            for u in truth["unknown_statuses"]
        ),
    )
    for kind in ("stalled", "resolved"):
        same(
            f"{kind} (request_id, time)",
            Counter((e["key"], parse_time_us(e["time"])) for e in of("training_stalled", kind)),
            Counter(truth[kind].items()),
        )
    closed = len(of("training_stalled", "pair_closed"))
    if closed != truth["pair_closed"]:
        problems.append(f"pair_closed: {closed} events, expected {truth['pair_closed']}")
    same(
        "webhook_processing_failed match (request_id)",
        Counter(e["key"] for e in of("webhook_processing_failed", "match")),
        Counter(truth["processing_failed"]),
    )
    kinds = Counter(e["kind"] for e in events)
    for kind, want in truth["expected_events"].items():
        if want is not None and kinds.get(kind, 0) != want:
            problems.append(f"{kind}: {kinds.get(kind, 0)} events in all, expected {want}")
    for kind in sorted(set(kinds) - set(truth["expected_events"])):
        problems.append(f"{kind}: {kinds[kind]} unexpected events")
    return problems


_COUNTERS = re.compile(r"^  (\w+) \((\w+)\): (.*)$", re.MULTILINE)


def replay_counters(stderr: str) -> dict[str, int]:
    """Each rule's `matches` from replay's summary on stderr."""
    out = {}
    for name, _, rest in _COUNTERS.findall(stderr):
        fields = dict(kv.split("=", 1) for kv in rest.split())
        if "matches" in fields:
            out[name] = int(fields["matches"])
    return out

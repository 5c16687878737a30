"""`aisha-monitor status`: ask a running daemon (`/api/v1/state`) and print a table for people.
Exit 0 healthy, 1 when the daemon reports a problem, 3 when its state cannot be had."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import requests

from monitor.config.secrets import redact
from monitor.core.model import datetime_to_us

EXIT_OK, EXIT_PROBLEM, EXIT_UNREACHABLE = 0, 1, 3
DEFAULT_URL = "http://127.0.0.1:9817"
MAX_LAG_S = 60.0  # catching up with more lag than this is a problem
SHOWN_STALLED, SHOWN_OPEN = 10, 5


@dataclass(frozen=True, slots=True)
class StatusOptions:
    url: str = DEFAULT_URL
    timeout_s: float = 5.0
    token_file: str | None = None
    as_json: bool = False


class StatusError(Exception):
    """The state could not be had: unreachable, refused, or not a state document."""


@dataclass(frozen=True, slots=True)
class Pair:
    rule: str
    key: str
    stalled: bool
    labels: dict[str, str]
    started: str
    age_s: float


@dataclass(frozen=True, slots=True)
class Health:
    check: str
    up: int  # 1 up, 0 down, -1 unknown
    detail: str


@dataclass(frozen=True, slots=True)
class RuleCounters:
    name: str
    type: str
    counters: dict[str, int]


@dataclass(frozen=True, slots=True)
class State:
    generated_at: str
    version: str
    uptime_s: float
    entries: int
    by_unit: dict[str, int]
    last_entry_time: str | None
    lag_s: float
    caught_up: bool
    journal_problem: str | None  # nothing can be read: the directory is missing or empty
    config_source: str
    reload_ok: bool
    reload_problems: tuple[str, ...]
    pairs: tuple[Pair, ...]
    open_total: int
    stalled_total: int
    health: tuple[Health, ...]
    rules: tuple[RuleCounters, ...]


def fetch(opts: StatusOptions) -> Any:
    """The JSON of URL/api/v1/state. Raises StatusError with a message for people."""
    url = opts.url.rstrip("/") + "/api/v1/state"
    headers = {"Accept": "application/json"}
    if opts.token_file:
        try:
            token = Path(opts.token_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise StatusError(f"cannot read the token file: {e}") from e
        headers["Authorization"] = f"Bearer {token}"
    with requests.Session() as session:
        try:
            r = session.get(url, headers=headers, timeout=opts.timeout_s, allow_redirects=False)
        except requests.Timeout:
            raise StatusError(f"{url}: no answer within {opts.timeout_s:g}s") from None
        except requests.ConnectionError:
            raise StatusError(f"{url}: cannot connect: is aisha-monitor running?") from None
        except requests.RequestException as e:
            raise StatusError(f"{url}: {type(e).__name__}: {e}") from None
    if r.status_code in (401, 403):
        hint = " (give --token-file)" if not opts.token_file else " (wrong token?)"
        raise StatusError(f"{url}: HTTP {r.status_code}: the daemon wants a bearer token{hint}")
    if r.status_code != 200:
        raise StatusError(f"{url}: HTTP {r.status_code}")
    try:
        return r.json()
    except ValueError:
        raise StatusError(f"{url}: the answer is not JSON") from None


def parse_state(data: Any) -> State:
    """The state document as typed data; StatusError when it is not one."""
    try:
        j, c = data["journal"], data["config"]
        return State(
            generated_at=str(data["generated_at"]),
            version=str(data.get("version", "?")),
            uptime_s=float(data.get("uptime_seconds", 0.0)),
            entries=int(j["entries"]),
            by_unit={str(k): int(v) for k, v in j.get("by_unit", {}).items()},
            last_entry_time=j.get("last_entry_time"),
            lag_s=float(j["lag_seconds"]),
            caught_up=bool(j["caught_up"]),
            journal_problem=str(j["problem"]) if j.get("problem") else None,
            config_source=str(c["source"]),
            reload_ok=bool(c["last_reload_ok"]),
            reload_problems=tuple(str(p) for p in c.get("problems", [])),
            pairs=tuple(_pair(p) for p in data.get("open_pairs", [])),
            open_total=sum(int(n) for n in data.get("open_total", {}).values()),
            stalled_total=sum(int(n) for n in data.get("stalled_total", {}).values()),
            health=tuple(
                Health(str(h["check"]), int(h["up"]), str(h.get("detail", "")))
                for h in data.get("health", [])
            ),
            rules=tuple(
                RuleCounters(
                    str(r["name"]), str(r["type"]), {k: int(v) for k, v in r["counters"].items()}
                )
                for r in data.get("rules", [])
            ),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise StatusError(f"the answer is not an aisha-monitor state ({e!r})") from None


def _pair(p: Mapping[str, Any]) -> Pair:
    labels = {str(k): str(v) for k, v in p.get("labels", {}).items()}
    return Pair(
        str(p["rule"]), str(p["key"]), bool(p["stalled"]), labels, str(p["started"]),
        float(p["age_seconds"]),
    )  # fmt: skip


def problems(s: State) -> list[str]:
    """What a person should look at; empty when the daemon is healthy."""
    out = []
    if s.journal_problem:
        out.append(f"reading nothing: {s.journal_problem}")
    if s.stalled_total:
        out.append(f"{s.stalled_total} stalled training(s)")
    out += [f"health check {h.check} is down: {h.detail}" for h in s.health if h.up == 0]
    if not s.reload_ok:
        out.append(f"the last config reload was refused ({len(s.reload_problems)} problem(s))")
    if not s.caught_up and s.lag_s > MAX_LAG_S:
        out.append(f"catching up with the journal: {age(s.lag_s)} behind")
    return out


def age(seconds: float) -> str:
    """`3d4h`, `1h05m`, `4m10s`, `12s`: two units at most."""
    s = max(0, int(seconds))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def _seconds_between(earlier: str, later: str) -> float | None:
    try:
        a, b = datetime.fromisoformat(earlier), datetime.fromisoformat(later)
        return (datetime_to_us(b) - datetime_to_us(a)) / 1e6
    except ValueError:
        return None


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in rows
    ]


def _pairs_table(pairs: list[Pair]) -> list[str]:
    rows = [["RULE", "KEY", "AGE", "STARTED", "LABELS"]]
    rows += [
        [p.rule, p.key, age(p.age_s), p.started, " ".join(f"{k}={v}" for k, v in p.labels.items())]
        for p in pairs
    ]
    return _table(rows)


def render(s: State, url: str) -> str:
    lines = [f"aisha-monitor {s.version} at {url}: up {age(s.uptime_s)}, state at {s.generated_at}"]
    last = "no entry yet"
    if s.last_entry_time:
        since = _seconds_between(s.last_entry_time, s.generated_at)
        last = f"last entry {age(since)} ago" if since is not None else s.last_entry_time
    units = ", ".join(f"{u} {n}" for u, n in s.by_unit.items())
    caught = "caught up" if s.caught_up else "CATCHING UP"
    entries = f"{s.entries} {'entry' if s.entries == 1 else 'entries'}" + (
        f" ({units})" if units else ""
    )
    reload = "last reload ok" if s.reload_ok else "RELOAD REFUSED"
    lines += _table(
        [
            ["journal", entries, last, f"lag {s.lag_s:.1f}s", caught],
            ["config", s.config_source, reload, "", ""],
        ],
        indent="",
    )
    lines += [f"  ! {p}" for p in s.reload_problems]
    stalled = [p for p in s.pairs if p.stalled]
    lines += ["", f"STALLED TRAININGS: {s.stalled_total}"]
    if stalled:
        lines += _pairs_table(stalled[:SHOWN_STALLED])
    opened = sorted((p for p in s.pairs if not p.stalled), key=lambda p: -p.age_s)
    lines += ["", f"OPEN TRAININGS: {s.open_total - s.stalled_total} in time"]
    if opened:
        lines += _pairs_table(opened[:SHOWN_OPEN])
    lines += ["", "HEALTH CHECKS" + ("" if s.health else ": none")]
    names = {1: "up", 0: "DOWN", -1: "unknown"}
    if s.health:
        lines += _table([[h.check, names.get(h.up, str(h.up)), h.detail] for h in s.health])
    lines += ["", "RULES"]
    lines += _table(
        [
            [r.name, r.type, " ".join(f"{k}={v}" for k, v in r.counters.items() if v) or "-"]
            for r in s.rules
        ]
    )
    return "\n".join(lines) + "\n"


def main(opts: StatusOptions, out: TextIO, err: TextIO) -> int:
    try:
        data = fetch(opts)
        state = parse_state(data)
    except StatusError as e:
        err.write(f"aisha-monitor status: {redact(str(e))}\n")
        return EXIT_UNREACHABLE
    found = problems(state)
    if opts.as_json:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(render(state, redact(opts.url)))
        out.write("\n" + ("PROBLEM: " + "; ".join(found) if found else "OK: healthy") + "\n")
    return EXIT_PROBLEM if found else EXIT_OK

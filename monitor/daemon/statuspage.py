"""The status page: what an on-call person needs at a glance, as plain HTML (no JavaScript)."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

RECENT = timedelta(hours=1)
_NEWS = {
    "unknown_value",
    "stalled",
    "absence",
    "threshold",
    "health",
    "match",
}  # coloured rows  # what the page calls "recent": older events are history, not news

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1b1b;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .4em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:40em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0} .num{text-align:right;font-variant-numeric:tabular-nums}
.nowrap{white-space:nowrap}
.banner{display:block;padding:.7em 1em;border-radius:4px;font-size:1.25em;font-weight:600}
.ok{background:#dff3e0;color:#1d5e20} .warn{background:#fff1cc;color:#6b4d00}
.crit{background:#fbdcdc;color:#8a1111} .muted{color:#555} code{font-size:.95em}
tr.critical td{background:#fdeeee} tr.warning td{background:#fff8e1}
"""


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _age(seconds: float) -> str:
    s = int(max(0, seconds))
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d"


def _when(text: str | None, now: datetime) -> str:
    """`2026-11-27 10:15:02Z · 5m ago`, in a cell that does not wrap."""
    if not text:
        return "-"
    t = _parse(text)
    ago = _age((now - t).total_seconds())
    return f'<span class="nowrap">{t:%Y-%m-%d %H:%M:%S}Z · {ago} ago</span>'


def _table(headers: list[str], rows: list[tuple[str, list[str]]], empty: str) -> str:
    """rows: (css class of the row, cells already escaped)."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for css, cells in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(state: dict[str, Any], unknown: list[dict[str, Any]]) -> tuple[str, str]:
    stalled = sum(state.get("stalled_total", {}).values())
    down = [h["check"] for h in state.get("health", []) if h.get("up") == 0]
    problems = []
    if state.get("journal", {}).get("problem"):
        problems.append(f"reading nothing: {state['journal']['problem']}")
    if unknown:
        problems.append(f"{len(unknown)} unknown webhook status(es) in the last hour")
    if stalled:
        problems.append(f"{stalled} stalled training(s)")
    if down:
        problems.append("health check down: " + ", ".join(down))
    if not state.get("config", {}).get("last_reload_ok", True):
        problems.append("the last config reload was refused (the previous config runs)")
    if not problems:
        return "ok", "OK: nothing needs attention"
    if unknown or down or state.get("journal", {}).get("problem"):
        return "crit", "CRITICAL: " + "; ".join(problems)
    return "warn", "WARNING: " + "; ".join(problems)


def render_status_page(state: dict[str, Any], events: list[dict[str, Any]]) -> str:
    now = (
        _parse(state["generated_at"]) if state.get("generated_at") else datetime.now().astimezone()
    )
    recent = [e for e in events if now - _parse(e["time"]) <= RECENT]
    unknown = [e for e in recent if e.get("kind") == "unknown_value"]
    css, verdict = _verdict(state, unknown)
    journal, config = state.get("journal", {}), state.get("config", {})
    pairs = state.get("open_pairs", [])

    def pair_row(p: dict[str, Any]) -> tuple[str, list[str]]:
        labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in p.get("labels", {}).items())
        cells = [
            f"<code>{escape(p['key'])}</code>",
            escape(p["rule"]),
            _when(p["started"], now),
            f'<span class="num">{_age(p["age_seconds"])}</span>',
            labels,
        ]
        return ("warning" if p.get("stalled") else "", cells)

    stalled_rows = [pair_row(p) for p in pairs if p.get("stalled")]
    open_rows = [pair_row(p) for p in pairs if not p.get("stalled")]
    unknown_rows = [
        (
            "critical",
            [
                _when(e["time"], now),
                f"<code>{escape(str(e.get('key')))}</code>",
                escape(e["labels"].get("status", "")),
                escape(e["labels"].get("normalized", "") or "(truly unknown)"),
            ],
        )
        for e in reversed(unknown)
    ]
    health_rows = [
        (
            "critical" if h.get("up") == 0 else "",
            [
                escape(h["check"]),
                {1: "up", 0: "<b>down</b>"}.get(h.get("up", -1), "unknown"),
                escape(h.get("detail", "")),
                _when(h.get("checked_at"), now),
            ],
        )
        for h in state.get("health", [])
    ]
    rule_rows = [
        (
            "",
            [
                escape(r["name"]),
                escape(r["type"]),
                escape(r["severity"]),
                escape(" ".join(f"{k}={v}" for k, v in r["counters"].items())),
            ],
        )
        for r in state.get("rules", [])
    ]
    event_rows = [
        (
            e["severity"] if e["kind"] in _NEWS else "",
            [
                _when(e["time"], now),
                escape(e["kind"]),
                escape(e["rule"]),
                f"<code>{escape(str(e.get('key') or '-'))}</code>",
                escape(e["message"].splitlines()[0][:200] if e["message"] else ""),
            ],
        )
        for e in reversed(events[-20:])
    ]

    def alert_row(a: dict[str, Any]) -> tuple[str, list[str]]:
        keys = escape(", ".join(a["keys"][:10]))
        cells = [escape(a["alertname"]), escape(a["severity"]), escape(a["rule"]),
                 _when(a["since"], now), keys, escape(a["summary"])]  # fmt: skip
        return (a["severity"], cells)

    alert_rows = [alert_row(a) for a in state.get("alerts", [])]
    open_count = sum(state.get("open_total", {}).values()) - sum(
        state.get("stalled_total", {}).values()
    )
    caught_up = "caught up" if journal.get("caught_up") else "catching up"
    refused = " · <b>last reload refused</b>" if not config.get("last_reload_ok", True) else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>{escape(verdict)} · aisha-monitor</title><style>{_STYLE}</style></head><body>
<h1>aisha-monitor</h1>
<p class="banner {css}">{escape(verdict)}</p>
<p class="muted">Journal: {caught_up}, lag {journal.get("lag_seconds", 0):.1f}s, last entry
 {_when(journal.get("last_entry_time"), now)}, {journal.get("entries", 0)} entries read
 · config <code>{escape(config.get("source", ""))}</code>{refused}
 · version {escape(state.get("version", ""))}</p>
<h2>Firing alerts ({len(alert_rows)})</h2>
{_table(["alert", "severity", "rule", "since", "request_ids", "summary"], alert_rows, "None.")}
<h2>Stalled trainings ({len(stalled_rows)})</h2>
{_table(["request_id", "rule", "started", "age", "labels"], stalled_rows, "None.")}
<h2>Unknown webhook statuses, last hour ({len(unknown_rows)})</h2>
{_table(["time", "request_id", "status", "normalizes to"], unknown_rows, "None.")}
<h2>Open trainings ({open_count})</h2>
{_table(["request_id", "rule", "started", "age", "labels"], open_rows, "None open.")}
<h2>Health checks</h2>
{_table(["check", "state", "detail", "checked"], health_rows, "No health checks configured.")}
<h2>Recent events</h2>
{_table(["time", "kind", "rule", "key", "message"], event_rows, "No events yet.")}
<h2>Rules</h2>{_table(["rule", "type", "severity", "counters"], rule_rows, "No rules.")}
</body></html>
"""

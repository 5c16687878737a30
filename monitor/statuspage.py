"""The status page: what an on-call person needs at a glance, as plain HTML (no JavaScript)."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1b1b;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse;background:#fff;min-width:40em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f0f0f0} .num{text-align:right;font-variant-numeric:tabular-nums}
.banner{padding:.6em 1em;border-radius:4px;font-weight:600;display:inline-block}
.ok{background:#dff3e0;color:#1d5e20} .warn{background:#fff1cc;color:#6b4d00}
.crit{background:#fbdcdc;color:#8a1111} .muted{color:#666} code{font-size:.95em}
"""


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(state: dict[str, Any], unknown: list[dict[str, Any]]) -> tuple[str, str]:
    stalled = sum(state.get("stalled_total", {}).values())
    down = [h["check"] for h in state.get("health", []) if h.get("up") == 0]
    firing = state.get("alerts", [])
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} recent unknown status(es)")
    if stalled:
        problems.append(f"{stalled} stalled training(s)")
    if down:
        problems.append("health check down: " + ", ".join(down))
    if firing:
        problems.append(f"{len(firing)} alert(s) firing")
    if not state.get("config", {}).get("last_reload_ok", True):
        problems.append("last config reload was refused")
    if not problems:
        return "ok", "All clear"
    severe = bool(unknown or down or firing)
    return ("crit" if severe else "warn"), "; ".join(problems)


def render_status_page(state: dict[str, Any], events: list[dict[str, Any]]) -> str:
    unknown = [e for e in events if e.get("kind") == "unknown_value"]
    css, verdict = _verdict(state, unknown)
    journal = state.get("journal", {})
    config = state.get("config", {})
    pairs = state.get("open_pairs", [])

    def pair_row(p: dict[str, Any]) -> list[str]:
        labels = ", ".join(f"{escape(k)}={escape(v)}" for k, v in p.get("labels", {}).items())
        return [
            f"<code>{escape(p['key'])}</code>",
            escape(p["rule"]),
            escape(p["started"]),
            f'<span class="num">{_age(p["age_seconds"])}</span>',
            labels,
        ]

    stalled_rows = [pair_row(p) for p in pairs if p.get("stalled")]
    open_rows = [pair_row(p) for p in pairs if not p.get("stalled")]
    unknown_rows = [
        [
            escape(e["time"]),
            f"<code>{escape(str(e.get('key')))}</code>",
            escape(e["labels"].get("status", "")),
            escape(e["labels"].get("normalized", "") or "(unknown)"),
        ]
        for e in reversed(unknown)
    ]
    alert_rows = [
        [
            escape(a.get("alertname", "")),
            escape(a.get("severity", "")),
            escape(a.get("summary", "")),
        ]
        for a in state.get("alerts", [])
    ]
    health_rows = [
        [
            escape(h["check"]),
            {1: "up", 0: "<b>down</b>"}.get(h.get("up", -1), "unknown"),
            escape(h.get("detail", "")),
            escape(h.get("checked_at", "")),
        ]
        for h in state.get("health", [])
    ]
    rule_rows = [
        [
            escape(r["name"]),
            escape(r["type"]),
            escape(r["severity"]),
            escape(" ".join(f"{k}={v}" for k, v in r["counters"].items())),
        ]
        for r in state.get("rules", [])
    ]
    event_rows = [
        [
            escape(e["time"]),
            escape(e["severity"]),
            escape(e["kind"]),
            escape(e["rule"]),
            f"<code>{escape(str(e.get('key') or '-'))}</code>",
            escape(e["message"].splitlines()[0][:200] if e["message"] else ""),
        ]
        for e in reversed(events[-20:])
    ]
    open_total = sum(state.get("open_total", {}).values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>aisha-monitor: {escape(verdict)}</title><style>{_STYLE}</style></head><body>
<h1>aisha-monitor</h1>
<p class="banner {css}">{escape(verdict)}</p>
<p class="muted">Generated {escape(state.get("generated_at", ""))}
 · version {escape(state.get("version", ""))}
 · journal lag {journal.get("lag_seconds", 0):.1f}s · {journal.get("entries", 0)} entries read
 · config <code>{escape(config.get("source", ""))}</code>
 {"(last reload refused)" if not config.get("last_reload_ok", True) else ""}</p>
<h2>Firing alerts</h2>{_table(["alert", "severity", "summary"], alert_rows, "None.")}
<h2>Stalled trainings ({len(stalled_rows)})</h2>
{_table(["request_id", "rule", "started", "age", "labels"], stalled_rows, "None.")}
<h2>Recent unknown statuses ({len(unknown_rows)})</h2>
{_table(["time", "request_id", "status", "normalizes to"], unknown_rows, "None recently.")}
<h2>Open trainings ({open_total})</h2>
{_table(["request_id", "rule", "started", "age", "labels"], open_rows, "None open.")}
<h2>Health checks</h2>
{_table(["check", "state", "detail", "checked"], health_rows, "No health checks configured.")}
<h2>Recent events</h2>
{_table(["time", "severity", "kind", "rule", "key", "message"], event_rows, "No events yet.")}
<h2>Rules</h2>{_table(["rule", "type", "severity", "counters"], rule_rows, "No rules.")}
</body></html>
"""

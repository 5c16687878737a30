"""The report's section on catching up: each tool's speed, memory and check against truth.json."""

from __future__ import annotations

from typing import Any

from bench.report.text import fmt, table


def catchup_section(c: dict[str, Any], w: Any, out: list[str]) -> None:
    w(f"## Catch-up: {c['entries']:,} aisha-api entries ({c['total_entries']:,} in all)\n")
    w(
        f'{c["runs"]} interleaved runs, median (a tool marked "1 run" is too slow to '
        "repeat). entries/s = aisha-api entries / wall-clock seconds of the whole process. "
        "The text-file tools read the output of `journalctl -o cat` (the baseline's own "
        'command, written to a file): "with export" adds the two times. Spread = (max - '
        "min) / median of the runs. Peak RSS from GNU time; the journal readers mmap the "
        "files, so the anonymous part (sampled RssAnon) is shown too. CPU s = user + system "
        "seconds of the process and its worker processes (GNU time): replay reads a rotated "
        "journal with one worker per core, journalctl with one thread, so the ratio of CPU "
        "seconds says what each entry costs, the ratio of entries/s what a user waits.\n"
    )
    out += _tools_table(c)
    w("")
    w(
        "What each tool was checked on: replay - every event against truth.json (unknown "
        "statuses with request_id and normalization, stalled, resolved, pair_closed, crashes); "
        "mtail - unknown statuses by status, trainings ended, and webhooks and trainings "
        "started against replay's counters; fail2ban-regex - the statuses of its matches "
        "(`-o id`); sec - unknown statuses by status, and pairs closed = pair_closed + "
        "resolved. None of the peers joins the unknown-status line to the request_id of the "
        "`Начинаем обработку` line before it on the same pid, normalizes the status, or keeps "
        "deadlines on journal time (sec's windows run on the wall clock: offline, nothing "
        "can stall).\n"
    )
    if c["problems"]:
        w("**Problems:**\n")
        out.extend(f"- {p}" for p in c["problems"])
        w("")


def _tools_table(c: dict[str, Any]) -> list[str]:
    rows = []
    for r in c["rows"]:
        runs = "" if r["runs"] == c["runs"] else f" ({r['runs']} run)"
        rows.append(
            [
                r["tool"] + runs,
                r["reads"],
                f"{r['entries_per_s']:,.0f}",
                f"{r['ratio']:.2f}",
                fmt(r["with_export_per_s"], ",.0f"),
                fmt(r["spread"], ".0%"),
                fmt(r.get("cpu_s"), ".2f"),
                f"{fmt(r['max_rss_mb'], '.0f')} ({r['max_anon_mb']:.0f})",
                check_text(r),
            ]
        )
    return table(
        [
            "tool",
            "reads",
            "entries/s",
            "ratio to journalctl",
            "with export, entries/s",
            "spread",
            "CPU s",
            "peak RSS MB (anon)",
            "checked against truth.json",
        ],
        "llrrrrrrl",
        rows,
    )


def check_text(row: dict[str, Any]) -> str:
    if row["key"] == "journalctl":
        return "-"
    if row["problems"]:
        return "**FAIL**: " + "; ".join(p.split(": ", 2)[-1] for p in row["problems"][:2])
    counts = row.get("counts") or {}
    if row["key"] == "replay":
        return "PASS (all events)"
    if "unknown_status_total" in counts:
        n = int(sum(counts["unknown_status_total"].values()))
        return f"PASS ({n} unknown statuses)"
    if counts.get("lines", {}).get("closed"):
        return f"PASS ({counts['lines']['closed']:,} pairs closed)"
    unknown = counts.get("unknown", {})
    return f"PASS ({sum(unknown.values())} unknown statuses)"

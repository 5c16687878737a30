"""`bench/results/<date>.md` and `.json`, and PNG plots, from the results of `python -m bench`.

`python -m bench.report RESULTS.json` re-renders the Markdown and the plots from a saved JSON
(matplotlib: `pip install matplotlib`, the `bench` extra)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench import live as L  # noqa: N812
from bench import scale as scale_mod

PHASE_COLORS = {"1k": "#4c72b0", "10k": "#55a868", "30k": "#c44e52"}


def fmt(x: float | None, spec: str = ",.1f") -> str:
    return "-" if x is None else format(x, spec)


# --- plots ------------------------------------------------------------------------------------


def _phase_color(name: str) -> str:
    return PHASE_COLORS.get(name, "#8172b2")


def _shade(ax: Any, plan: list[dict[str, Any]], label: bool = True) -> None:
    for p in plan:
        if p["name"] == "warm-up":
            continue
        ax.axvspan(p["start"], p["end"], color=_phase_color(p["name"]), alpha=0.10, lw=0)
        if label:
            ax.text(
                (p["start"] + p["end"]) / 2,
                0.98,
                f"{p['name']}/s",
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=10,
                color=_phase_color(p["name"]),
                weight="bold",
            )


def plot_latency(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, what, title in (
        (axes[0], "metrics", "write → /metrics (marker counter)"),
        (axes[1], "events", "write → /api/v1/events (marker event)"),
    ):
        for p in live["phases"]:
            xs = sorted(p["latency_samples_ms"].get(what, []))
            if not xs:
                continue
            ys = [100 * (i + 1) / len(xs) for i in range(len(xs))]
            p50, p99 = L.percentile(xs, 50), L.percentile(xs, 99)
            label = f"{p['phase']}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms (n={len(xs)})"
            ax.step(xs, ys, where="post", color=_phase_color(p["phase"]), lw=2, label=label)
        ax.axvline(100, color="black", ls="--", lw=1)
        ax.text(100, 3, " 100 ms target\n (p99 at 10k/s)", fontsize=9, va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize=9)
    axes[0].set_ylabel("markers seen within that latency, %")
    axes[0].set_ylim(0, 101)
    fig.suptitle("aisha-monitor run: latency of a marker line, by offered load (CDF)", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _rate_series(series: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    ts, rates = [], []
    prev = None
    for r in series:
        if r.get("entries") is None:
            continue
        if prev is not None and r["t"] > prev[0]:
            ts.append(r["t"])
            rates.append((r["entries"] - prev[1]) / (r["t"] - prev[0]))
        prev = (r["t"], r["entries"])
    return ts, rates


def plot_lag(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, plan = live["series"], live["plan"]
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(15, 7.5), sharex=True, gridspec_kw={"height_ratios": [1, 1.4]}
    )
    ts, rates = _rate_series(s)
    top.plot(
        ts, [r / 1000 for r in rates], color="#333333", lw=1.2, label="entries read by the daemon"
    )
    for p in plan:
        if p["name"] != "warm-up":
            top.hlines(
                p["rate"] / 1000, p["start"], p["end"], color=_phase_color(p["name"]), lw=2, ls="--"
            )
    top.plot([], [], color="gray", ls="--", lw=2, label="offered")
    top.set_ylabel("thousand entries/s")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    top.grid(True, alpha=0.3)
    _shade(top, plan)
    busy = [p for p in plan if p["name"] != "warm-up"]
    in_load = [r for r in s if any(p["start"] <= r["t"] <= p["end"] for p in busy)]
    bottom.plot(
        [r["t"] for r in s if r.get("lag_reported") is not None],
        [r["lag_reported"] for r in s if r.get("lag_reported") is not None],
        color="#c44e52",
        lw=1.5,
        label="aisha_monitor_journal_lag_seconds\n(the daemon's: 0 when caught up)",
    )
    bottom.plot(
        [r["t"] for r in in_load if r.get("lag_in_load") is not None],
        [r["lag_in_load"] for r in in_load if r.get("lag_in_load") is not None],
        ".",
        color="#4c72b0",
        ms=3,
        label="true lag: age of the oldest\nentry not yet read (during loads)",
    )
    bottom.axhline(1.0, color="black", ls="--", lw=1)
    bottom.text(plan[0]["start"], 1.02, "1 s target (at 30k/s)", fontsize=9, va="bottom")
    top_lag = max(
        [1.2]
        + [r.get("lag_reported") or 0 for r in s]
        + [r.get("lag_in_load") or 0 for r in in_load]
    )
    bottom.set_ylim(0, top_lag * 1.1)
    bottom.set_ylabel("lag, s")
    bottom.set_xlabel("seconds since the warm-up began (scraped every 0.5 s)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    bottom.grid(True, alpha=0.3)
    _shade(bottom, plan, label=False)
    fig.suptitle(
        "aisha-monitor run following systemd-journal-remote: read rate and journal lag", fontsize=13
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rss(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, plan = live["series"], live["plan"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(15, 7.5), sharex=True)

    def col(key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
        pts = [(r["t"], r[key] / scale) for r in s if r.get(key) is not None]
        return [t for t, _ in pts], [v for _, v in pts]

    top.plot(
        *col("daemon_anon_kb", 1024), color="#4c72b0", lw=2, label="daemon RssAnon\n(its own heap)"
    )
    top.plot(
        *col("daemon_rss_kb", 1024),
        color="#8c8c8c",
        lw=1.2,
        label="daemon VmRSS\n(incl. mmapped journal files)",
    )
    top.set_ylabel("MB")
    top.set_ylim(bottom=0)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    top.grid(True, alpha=0.3)
    _shade(top, plan)
    for key, color, label in (
        ("machine_cpu", "#bbbbbb", "whole machine\n(2 cores = 200%)"),
        ("daemon_cpu", "#4c72b0", "aisha-monitor run"),
        ("remote_cpu", "#dd8452", "systemd-journal-remote"),
        ("writer_cpu", "#55a868", "bench writer"),
    ):
        bottom.plot(*col(key), color=color, lw=1.3 if key != "machine_cpu" else 2.5, label=label)
    bottom.set_ylabel("CPU %, 0.5 s samples")
    bottom.set_ylim(0, 210)
    bottom.set_xlabel("seconds since the warm-up began")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    bottom.grid(True, alpha=0.3)
    _shade(bottom, plan, label=False)
    r = live["rss_anon_mb"]
    fig.suptitle(
        f"aisha-monitor run: memory and CPU over time (RssAnon {fmt(r['first'])} → "
        f"{fmt(r['last'])} MB, {fmt(r['slope_mb_per_min'], '.2f')} MB/min)",
        fontsize=13,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- markdown ---------------------------------------------------------------------------------


def table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    """A Markdown table; `align` has one letter per column: l or r."""
    marks = {"l": "---", "r": "---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(res: dict[str, Any], pngs: dict[str, str]) -> str:
    out: list[str] = []
    w = out.append
    env = res["env"]
    w(f"# aisha-monitor benchmark, {res['date']}{' (quick)' if res['quick'] else ''}\n")
    w(
        f"`{res['command']}` on {env['host']}: {env['cpus']} cores, {env['mem_gb']:.0f} GB, "
        f"{env['kernel']}; aisha-monitor {env['version']} at commit `{env['commit']}`; "
        f"Python {env['python']}; {env['tools']}. Load average before the run: "
        f"{' '.join(env['load_before'])}. The machine is shared with other people's test runs: "
        f"every figure carries their noise. The whole run took {res['seconds'] / 60:.1f} min.\n"
    )
    c = res.get("catchup")
    if c:
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
        out += table(
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
    lv = res.get("live")
    if lv:
        live_section(lv, res, pngs, w, out)
    sc = res.get("scale")
    if sc:
        scale_section(sc, w, out)
    w("## Commands\n")
    w("```sh")
    out.extend(res["commands"])
    w("```")
    return "\n".join(out) + "\n"


def live_section(
    lv: dict[str, Any], res: dict[str, Any], pngs: dict[str, str], w: Any, out: list[str]
) -> None:
    w("## Live: `aisha-monitor run` following `systemd-journal-remote --listen-raw`\n")
    w((L.__doc__ or "").split("\n\n", 1)[1].strip() + "\n")
    n_runs = lv.get("runs", 1)
    if n_runs > 1:
        w(
            f"{n_runs} runs of the three loads, one after the other, each with a fresh daemon and "
            "journal; the soak in the last run only. Latency percentiles pool the markers of all "
            'runs ("p99 of each run" shows the spread); every other figure is the median of '
            "the runs (each run's figures are in the JSON). The targets are judged on the median "
            "of the runs. The plots show the last run.\n"
        )
    rows = []
    for p in lv["phases"]:
        m, e = p["metrics_ms"], p["events_ms"]
        rows.append(
            [
                f"{p['phase']}/s",
                fmt(p["written_rate"], ",.0f"),
                fmt(p["daemon_read_rate"], ",.0f"),
                f"{m['n']} ({p['missed']['metrics']})",
                f"{fmt(m['p50'])} / {fmt(m['p99'])} / {fmt(m['max'])}",
                " / ".join(fmt(x, ".0f") for x in m.get("p99_per_run", [m["p99"]])),
                f"{fmt(e['p50'])} / {fmt(e['p99'])}",
                f"{fmt(p['lag_reported_max_s'], '.2f')} / {fmt(p['lag_true_max_s'], '.2f')}",
                fmt(p["caught_up_after_end_s"], ".1f"),
                f"{fmt(p.get('batches_per_s'), '.0f')} / {fmt(p.get('batch_ms_mean'), '.1f')}",
                f"{fmt(p['daemon_cpu_mean'], '.0f')} ({fmt(p['daemon_cpu_max'], '.0f')})",
                fmt(p["remote_cpu_mean"], ".0f"),
                fmt(p["others_cpu_mean"], ".0f"),
                f"{fmt(p['daemon_anon_mb_start'])} → {fmt(p['daemon_anon_mb_end'])}",
            ]
        )
    out += table(
        [
            "load",
            "written/s",
            "read/s",
            "markers (missed)",
            "write→/metrics p50 / p99 / max ms",
            "p99 of each run, ms",
            "write→event p50 / p99 ms",
            "max lag s, reported / true",
            "caught up after the load, s",
            "batches/s / mean batch ms",
            "daemon CPU % mean (max)",
            "journal-remote CPU %",
            "others' CPU %",
            "RssAnon MB start → end",
        ],
        "lrrrrrrrrrrrrr",
        rows,
    )
    r = lv["rss_anon_mb"]
    w(
        f"\nWritten {lv['written']:,} entries, read {fmt(lv['read'], ',.0f')}; the daemon had "
        f"read everything {fmt(lv['drain_after_last_phase_s'], '.2f')} s after the last load. "
        f"RssAnon {fmt(r['first'])} → {fmt(r['last'])} MB over the loads (max {fmt(r['max'])}, "
        f"least-squares {fmt(r['slope_mb_per_min'], '.2f')} MB/min). Poll requests: "
        f"{lv['poll_requests']}. \"Others' CPU\" = the machine's busy CPU minus this "
        "benchmark's processes (daemon, journal-remote, writer, the measuring process): other "
        'people\'s runs. "Caught up after the load" has the 0.5 s resolution of the scrape.\n'
    )
    w(
        "Targets: p99 write→/metrics < 100 ms at 10k/s; lag < 1 s at 30k/s; RSS flat (the "
        f"second half of the last load grows < {L.RSS_FLAT_MB_PER_MIN} MB/min).\n"
    )
    missed = res.get("live_missed", [])
    out.extend(f"- **MISSED**: {v}" for v in missed)
    if not missed:
        w("- all met")
    w("")
    prof = res.get("profile")
    if prof:
        w(f"### Profile: py-spy on the daemon at {prof['phase']}/s ({prof['samples']} samples)\n")
        w(prof["note"] + "\n")
        for kind in ("self", "inclusive"):
            rows = [[f"{share:.1f}%", f"`{frame}`"] for share, frame in prof[kind][:15]]
            out += table(["share of samples", f"function ({kind} time)"], "rl", rows)
            w("")
    for key, title in (("latency", "Latency"), ("lag", "Lag"), ("rss", "Memory and CPU")):
        if key in pngs:
            w(f"![{title}]({pngs[key]})\n")


def scale_section(sc: dict[str, Any], w: Any, out: list[str]) -> None:
    o, d = sc["open"], sc["open"]["delta"]
    w(f"## Scale of state: {sc['open_trainings']:,} trainings open at once\n")
    if sc.get("commit"):
        w(f"(This part was run again at commit `{sc['commit']}`, after the rest of the run.)\n")
    w(
        f"Three journals from bench/simulate.py at {sc['api_rate']:.0f} aisha-api entries/s of "
        f"simulated time (seed {sc['seed']}): base ({o['base']['entries']:,} entries), mass "
        f"(the same plus {sc['open_trainings']:,} submissions in its first 5 minutes, never "
        "ended), bulk (the submissions alone). Replay with the shipped config, "
        f"{sc['runs']} interleaved runs, median; µs/entry from the replay's own loop time "
        "(start-up excluded).\n"
    )
    rows = []
    for k in ("base", "mass", "bulk"):
        x = o[k]
        rows.append(
            [
                k,
                f"{x['entries']:,}",
                f"{x['entries_per_s']:,.0f}",
                f"{x['us_per_entry']:.2f}",
                f"{x['max_rss_mb']:.0f} ({x['max_anon_mb']:.0f})",
                str(x["pair"].get("open", "-")),
                str(x["pair"].get("evicted", "-")),
            ]
        )
    out += table(
        [
            "journal",
            "entries",
            "replay entries/s",
            "µs/entry",
            "peak RSS MB (anon)",
            "open at the end",
            "evicted",
        ],
        "lrrrrrr",
        rows,
    )
    w(
        f"\n- RssAnon **+{d['anon_mb']:.0f} MB** with 100k open, "
        f"~{d['bytes_per_open_training']:.0f} bytes per open training."
    )
    w(
        f"- Per ordinary entry with 100k open: {d['extra_us_per_ordinary_entry']:+.2f} µs "
        f"((mass - base - bulk) / base entries; base {d['us_per_entry_base']:.2f} µs/entry); "
        f"a submission line itself costs {d['us_per_bulk_start']:.2f} µs."
    )
    w(
        "- `max_open: 100000` caps the open pairs: the ordinary trainings push out as many bulk "
        f"ones (`evicted` {o['mass']['pair'].get('evicted', '-')})."
    )
    for k, x in o["daemon"].items():
        w(
            f"- The daemon catching up on {k} (`start: head`, once): {x['entries']:,} entries "
            f"in {x['seconds']:.1f} s ({x['entries_per_s']:,.0f}/s), peak RssAnon "
            f"{x['peak_anon_mb']:.0f} MB, state file {x['state_file_mb']:.1f} MB."
        )
    book = sc.get("alert_book")
    if book:
        w(
            "\n### The alert book, per committed batch\n\n"
            + " ".join((scale_mod.alert_book_cost.__doc__ or "").split())
            + " Median of 20, in this process.\n"
        )
        out += table(
            ["active unknown-status keys", "ms per batch, book unchanged",
             "ms per batch, one new key", "JSON written when it changed", "bytes/key"],
            "rrrrr",
            [
                [f"{b['keys']:,}", f"{b['ms_per_batch']:.3f}",
                 f"{b.get('ms_per_batch_one_new_key', float('nan')):.2f}",
                 f"{b['json_bytes']:,} B", f"{b['bytes_per_key']:.0f}"]
                for b in book
            ],
        )  # fmt: skip
    s9, s50, dd = sc["rules"]["shipped"], sc["rules"]["fifty"], sc["rules"]["delta"]
    w(f"\n## Scale of rules: 50 instead of 9, on {sc['big']}\n")
    hits = dd["synthetic_matches"]
    n_hit = sum(1 for v in hits.values() if v)
    w(
        f"41 `match` rules added to a copy of the shipped config, each with its own literal: "
        f"{n_hit} of them match ordinary aisha-api lines ({sum(hits.values()):,} matches in "
        f"all), the rest never. {sc['runs']} interleaved runs, median.\n"
    )
    out += table(
        ["config", "replay entries/s", "µs/entry", "peak RSS MB (anon)"],
        "lrrr",
        [
            [
                name,
                f"{x['entries_per_s']:,.0f}",
                f"{x['us_per_entry']:.2f}",
                f"{x['max_rss_mb']:.0f} ({x['max_anon_mb']:.0f})",
            ]
            for name, x in (("shipped, 9 rules", s9), ("50 rules", s50))
        ],
    )
    w(
        f"\nThe loop is {dd['loop_slowdown']:.2f}x slower: +{dd['extra_us_per_entry']:.2f} µs "
        f"per entry, {dd['extra_us_per_entry_per_rule']:.3f} µs per entry per added rule.\n"
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


def write(res: dict[str, Any], out_dir: Path) -> Path:
    """DATE.md, DATE.json and DATE-*.png into out_dir; returns the Markdown's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = res["date"] + ("-quick" if res["quick"] else "")
    pngs: dict[str, str] = {}
    lv = res.get("live")
    if lv:
        for key, fn in (("latency", plot_latency), ("lag", plot_lag), ("rss", plot_rss)):
            name = f"{stem}-{key}.png"
            fn(lv, out_dir / name)
            pngs[key] = name
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    md = out_dir / f"{stem}.md"
    md.write_text(markdown(res, pngs), encoding="utf-8")
    return md


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--out", type=Path, help="default: the JSON's directory")
    args = parser.parse_args(argv)
    res = json.loads(args.results.read_text())
    print(write(res, args.out or args.results.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())

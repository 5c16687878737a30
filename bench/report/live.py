"""The report's section on the live run: the table per load, the targets, the profile, the plots."""

from __future__ import annotations

from typing import Any

from bench import live as L  # noqa: N812
from bench.report.text import fmt, table


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
    out += _loads_table(lv["phases"])
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
        _profile(prof, w, out)
    for key, title in (("latency", "Latency"), ("lag", "Lag"), ("rss", "Memory and CPU")):
        if key in pngs:
            w(f"![{title}]({pngs[key]})\n")


def _loads_table(phases: list[dict[str, Any]]) -> list[str]:
    rows = []
    for p in phases:
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
    return table(
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


def _profile(prof: dict[str, Any], w: Any, out: list[str]) -> None:
    w(f"### Profile: py-spy on the daemon at {prof['phase']}/s ({prof['samples']} samples)\n")
    w(prof["note"] + "\n")
    for kind in ("self", "inclusive"):
        rows = [[f"{share:.1f}%", f"`{frame}`"] for share, frame in prof[kind][:15]]
        out += table(["share of samples", f"function ({kind} time)"], "rl", rows)
        w("")

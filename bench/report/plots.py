"""The live run's PNG plots: latency (CDF of the markers), read rate and lag, memory and CPU
(matplotlib, the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import live as L  # noqa: N812
from bench.report.text import fmt

PHASE_COLORS = {"1k": "#4c72b0", "10k": "#55a868", "30k": "#c44e52"}


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
    _read_rate(top, s, plan)
    _lag(bottom, s, plan)
    fig.suptitle(
        "aisha-monitor run following systemd-journal-remote: read rate and journal lag", fontsize=13
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_rate(ax: Any, s: list[dict[str, Any]], plan: list[dict[str, Any]]) -> None:
    """Entries read per second between samples, against each load's offered rate."""
    ts, rates = _rate_series(s)
    ax.plot(
        ts, [r / 1000 for r in rates], color="#333333", lw=1.2, label="entries read by the daemon"
    )
    for p in plan:
        if p["name"] != "warm-up":
            ax.hlines(
                p["rate"] / 1000, p["start"], p["end"], color=_phase_color(p["name"]), lw=2, ls="--"
            )
    ax.plot([], [], color="gray", ls="--", lw=2, label="offered")
    ax.set_ylabel("thousand entries/s")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    ax.grid(True, alpha=0.3)
    _shade(ax, plan)


def _lag(ax: Any, s: list[dict[str, Any]], plan: list[dict[str, Any]]) -> None:
    """The lag the daemon reports, and the true lag during the loads, against the target."""
    busy = [p for p in plan if p["name"] != "warm-up"]
    in_load = [r for r in s if any(p["start"] <= r["t"] <= p["end"] for p in busy)]
    ax.plot(
        [r["t"] for r in s if r.get("lag_reported") is not None],
        [r["lag_reported"] for r in s if r.get("lag_reported") is not None],
        color="#c44e52",
        lw=1.5,
        label="aisha_monitor_journal_lag_seconds\n(the daemon's: 0 when caught up)",
    )
    ax.plot(
        [r["t"] for r in in_load if r.get("lag_in_load") is not None],
        [r["lag_in_load"] for r in in_load if r.get("lag_in_load") is not None],
        ".",
        color="#4c72b0",
        ms=3,
        label="true lag: age of the oldest\nentry not yet read (during loads)",
    )
    ax.axhline(1.0, color="black", ls="--", lw=1)
    ax.text(plan[0]["start"], 1.02, "1 s target (at 30k/s)", fontsize=9, va="bottom")
    top_lag = max(
        [1.2]
        + [r.get("lag_reported") or 0 for r in s]
        + [r.get("lag_in_load") or 0 for r in in_load]
    )
    ax.set_ylim(0, top_lag * 1.1)
    ax.set_ylabel("lag, s")
    ax.set_xlabel("seconds since the warm-up began (scraped every 0.5 s)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    ax.grid(True, alpha=0.3)
    _shade(ax, plan, label=False)


def plot_rss(live: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, plan = live["series"], live["plan"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(15, 7.5), sharex=True)
    _memory(top, s, plan)
    _cpu(bottom, s, plan)
    r = live["rss_anon_mb"]
    fig.suptitle(
        f"aisha-monitor run: memory and CPU over time (RssAnon {fmt(r['first'])} → "
        f"{fmt(r['last'])} MB, {fmt(r['slope_mb_per_min'], '.2f')} MB/min)",
        fontsize=13,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _col(s: list[dict[str, Any]], key: str, scale: float = 1.0) -> tuple[list[float], list[float]]:
    pts = [(r["t"], r[key] / scale) for r in s if r.get(key) is not None]
    return [t for t, _ in pts], [v for _, v in pts]


def _memory(ax: Any, s: list[dict[str, Any]], plan: list[dict[str, Any]]) -> None:
    ax.plot(
        *_col(s, "daemon_anon_kb", 1024),
        color="#4c72b0",
        lw=2,
        label="daemon RssAnon\n(its own heap)",
    )
    ax.plot(
        *_col(s, "daemon_rss_kb", 1024),
        color="#8c8c8c",
        lw=1.2,
        label="daemon VmRSS\n(incl. mmapped journal files)",
    )
    ax.set_ylabel("MB")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    ax.grid(True, alpha=0.3)
    _shade(ax, plan)


def _cpu(ax: Any, s: list[dict[str, Any]], plan: list[dict[str, Any]]) -> None:
    for key, color, label in (
        ("machine_cpu", "#bbbbbb", "whole machine\n(2 cores = 200%)"),
        ("daemon_cpu", "#4c72b0", "aisha-monitor run"),
        ("remote_cpu", "#dd8452", "systemd-journal-remote"),
        ("writer_cpu", "#55a868", "bench writer"),
    ):
        ax.plot(*_col(s, key), color=color, lw=1.3 if key != "machine_cpu" else 2.5, label=label)
    ax.set_ylabel("CPU %, 0.5 s samples")
    ax.set_ylim(0, 210)
    ax.set_xlabel("seconds since the warm-up began")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    ax.grid(True, alpha=0.3)
    _shade(ax, plan, label=False)

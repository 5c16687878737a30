"""What a run prints: one row per load, the totals, and the targets it missed."""

from __future__ import annotations

from typing import Any

RSS_FLAT_MB_PER_MIN = 0.5  # "flat": the last load's second half grows slower than this
TARGETS = {"p99_metrics_ms_at_10k": 100.0, "max_lag_s_at_30k": 1.0}


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def print_table(result: dict[str, Any]) -> None:
    print(
        "| load | written/s | read/s | markers | /metrics p50 / p99 / max ms "
        "| event p50 / p99 ms | max lag s (reported / true) | daemon CPU % | machine CPU % "
        "| anon MB start→end |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in result["phases"]:
        m, e = p["metrics_ms"], p["events_ms"]
        print(
            f"| {p['phase']}/s | {fmt(p['written_rate'], 0)} | {fmt(p['daemon_read_rate'], 0)} "
            f"| {m['n']} ({p['missed']['metrics']} missed) | {fmt(m['p50'])} / {fmt(m['p99'])} "
            f"/ {fmt(m['max'])} | {fmt(e['p50'])} / {fmt(e['p99'])} "
            f"| {fmt(p['lag_reported_max_s'], 2)} / {fmt(p['lag_true_max_s'], 2)} "
            f"| {fmt(p['daemon_cpu_mean'], 0)} (max {fmt(p['daemon_cpu_max'], 0)}) "
            f"| {fmt(p['machine_cpu_mean'], 0)} | {fmt(p['daemon_anon_mb_start'])}→"
            f"{fmt(p['daemon_anon_mb_end'])} |"
        )
    r = result["rss_anon_mb"]
    print(
        f"\nwritten {result['written']:,}, read {result['read']:,}; drained "
        f"{fmt(result['drain_after_last_phase_s'], 2)} s after the last load; RSS anon "
        f"{fmt(r['first'])} → {fmt(r['last'])} MB (max {fmt(r['max'])}, "
        f"{fmt(r['slope_mb_per_min'], 2)} MB/min)"
    )


def verdicts(result: dict[str, Any]) -> list[str]:
    """Which targets were missed, in words (empty: all met)."""
    by = {p["phase"]: p for p in result["phases"]}
    out = _latency_missed(by.get("10k")) + _lag_missed(by.get("30k"))
    slope = result["rss_anon_mb"]["slope_mb_per_min"]
    last = by.get(list(by)[-1]) if by else None
    tail_slope = last["daemon_anon_mb_per_min_2nd_half"] if last else None
    if tail_slope is not None and tail_slope > RSS_FLAT_MB_PER_MIN:
        out.append(
            f"RSS (anon) still grows at {tail_slope:.2f} MB/min in the second half of the last "
            f"load ({last['phase'] if last else '-'}; whole run {fmt(slope, 2)} MB/min)"
        )
    return out


def _latency_missed(p10: dict[str, Any] | None) -> list[str]:
    if not p10:
        return []
    # with several runs: the median of the runs' p99
    p99 = p10["metrics_ms"].get("p99_median_of_runs", p10["metrics_ms"]["p99"])
    if p99 is None or p99 >= TARGETS["p99_metrics_ms_at_10k"] or p10["missed"]["metrics"]:
        return [f"p99 write→/metrics at 10k/s is {fmt(p99)} ms (target < 100 ms)"]
    return []


def _lag_missed(p30: dict[str, Any] | None) -> list[str]:
    if not p30:
        return []
    out = []
    lag = max(p30["lag_true_max_s"] or 0, p30["lag_reported_max_s"] or 0)  # median of runs
    if lag >= TARGETS["max_lag_s_at_30k"]:
        out.append(f"max lag at 30k/s is {lag:.2f} s (target < 1 s)")
    if p30["written_rate"] < 0.95 * p30["offered_rate"]:
        out.append(
            f"the 30k/s load was not offered in full: journal-remote accepted "
            f"{p30['written_rate']:,.0f}/s (the writer was blocked "
            f"{p30['writer_blocked_s']:.1f} s)"
        )
    return out

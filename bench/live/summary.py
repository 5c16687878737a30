"""One run's figures per load, from the writer's log, the sampler's rows and the marker pollers:
latency, lag, catching up, batches, CPU and RSS; and the run's whole RSS trend and time series."""

from __future__ import annotations

from typing import Any

from bench.live.plan import GAP_S, Phase
from bench.live.stats import col, mean, percentile, slope_mb, slope_per_min, stats
from bench.live.watch import MarkerPoller

OURS = ("daemon", "remote", "writer", "bench")


def summarize(
    plan: list[Phase],
    log: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    pollers: list[MarkerPoller],
    *,
    written: int,
    read: int | None,
    drain_s: float | None,
    work: str | None,
) -> dict[str, Any]:
    markers = {x["k"]: x for x in log if "k" in x}
    sent = {x["done"]: x["sent"] for x in log if "done" in x}
    t0 = plan[0].start
    phases = []
    cumulative = sum(sent.get(p.name, 0) for p in plan[:1])
    for p in plan[1:]:
        ks = [k for k, m in markers.items() if m["phase"] == p.name]
        cumulative += sent.get(p.name, 0) + 2 * len(ks)
        latency, missed = _latency([markers[k] for k in ks], pollers)
        phases.append(
            {
                "phase": p.name,
                "offered_rate": p.rate,
                "seconds": p.seconds,
                "written": sent.get(p.name),
                "written_rate": (sent.get(p.name) or 0) / p.seconds,
                **_load(p, rows, log, cumulative, len(ks), latency, missed),
            }
        )
    series = [
        {"t": round(r["t"] - t0, 3), **{k: v for k, v in r.items() if k != "t"}} for r in rows
    ]
    return {
        "phases": phases,
        "plan": [
            {"name": p.name, "rate": p.rate, "start": p.start - t0, "end": p.end - t0} for p in plan
        ],
        "written": written,
        "read": read,
        "drain_after_last_phase_s": drain_s,
        "poll_requests": {p.what: p.requests for p in pollers},
        "rss_anon_mb": _rss_anon(rows, plan[1].start),
        "series": series,
        "work": work,
    }


def _latency(
    markers: list[dict[str, Any]], pollers: list[MarkerPoller]
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Each poller's write → seen latencies (ms) of a load's markers, and how many it missed."""
    latency: dict[str, list[float]] = {}
    missed: dict[str, int] = {}
    for poller in pollers:
        seen = [(poller.seen_at(m), m["t"]) for m in markers]
        lat = [1000 * (at - t) for at, t in seen if at is not None]
        latency[poller.what], missed[poller.what] = lat, len(markers) - len(lat)
    return latency, missed


def _load(
    p: Phase,
    rows: list[dict[str, Any]],
    log: list[dict[str, Any]],
    cumulative: int,
    n_markers: int,
    latency: dict[str, list[float]],
    missed: dict[str, int],
) -> dict[str, Any]:
    """A load's figures from the samples taken during it (and, for the lag the daemon reports,
    the gap after it); `cumulative`: entries written by its end, markers included."""
    caught = [r["t"] for r in rows if r["t"] >= p.end and (r.get("entries") or 0) >= cumulative]
    blocked = next((x.get("blocked_s") for x in log if x.get("done") == p.name), None)
    inside = [r for r in rows if p.start <= r["t"] <= p.end + GAP_S]
    during = [r for r in rows if p.start <= r["t"] <= p.end]
    for r in during:  # the oldest entry not yet read is at most as old as the load
        if r.get("lag_true") is not None:
            r["lag_in_load"] = r["t"] - max(r["t"] - r["lag_true"], p.start)
    anon = col(during, "daemon_anon_kb")
    return {
        "daemon_read_rate": _read_rate(during),
        "markers": n_markers,
        "metrics_ms": stats(latency.get("metrics", [])),
        "events_ms": stats(latency.get("events", [])),
        "missed": missed,
        "lag_reported_max_s": max(col(inside, "lag_reported"), default=None),
        "lag_true_max_s": max(col(during, "lag_in_load"), default=None),
        "caught_up_after_end_s": (caught[0] - p.end) if caught else None,
        "writer_blocked_s": blocked,
        "lag_true_p50_s": percentile(col(during, "lag_in_load"), 50),
        **_batches(during),
        **_cpu(during),
        "daemon_anon_mb_start": anon[0] / 1024 if anon else None,
        "daemon_anon_mb_end": anon[-1] / 1024 if anon else None,
        "daemon_anon_mb_per_min_2nd_half": slope_mb(
            [r for r in during if r["t"] >= p.start + p.seconds / 2], "daemon_anon_kb"
        ),
        "daemon_rss_mb_max": max(col(during, "daemon_rss_kb"), default=0) / 1024,
        "latency_samples_ms": {k: [round(x, 2) for x in v] for k, v in latency.items()},
    }


def _read_rate(during: list[dict[str, Any]]) -> float | None:
    """Entries the daemon read per second during the load."""
    reads = [(r["t"], r["entries"]) for r in during if r.get("entries") is not None]
    if len(reads) > 1 and reads[-1][0] > reads[0][0]:
        rate: float = (reads[-1][1] - reads[0][1]) / (reads[-1][0] - reads[0][0])
        return rate
    return None


def _batches(during: list[dict[str, Any]]) -> dict[str, float | None]:
    """Batches per second and their mean duration, from the batch histogram's count and sum."""
    batches = [r for r in during if r.get("batch_count") is not None]
    n_batches = batches[-1]["batch_count"] - batches[0]["batch_count"] if batches else 0
    batch_s = batches[-1]["batch_sum"] - batches[0]["batch_sum"] if batches else 0.0
    span = batches[-1]["t"] - batches[0]["t"] if len(batches) > 1 else 0.0
    return {
        "batches_per_s": n_batches / span if span else None,
        "batch_ms_mean": 1000 * batch_s / n_batches if n_batches else None,
    }


def _cpu(during: list[dict[str, Any]]) -> dict[str, float | None]:
    """CPU% of ours and of the whole machine; what is left is the other runs'."""
    return {
        "daemon_cpu_mean": mean(col(during, "daemon_cpu")),
        "daemon_cpu_max": max(col(during, "daemon_cpu"), default=None),
        "remote_cpu_mean": mean(col(during, "remote_cpu")),
        "writer_cpu_mean": mean(col(during, "writer_cpu")),
        "machine_cpu_mean": mean(col(during, "machine_cpu")),
        "others_cpu_mean": mean(
            [
                r["machine_cpu"] - sum(r.get(f"{n}_cpu", 0) for n in OURS)
                for r in during
                if r.get("machine_cpu") is not None
            ]
        ),
    }


def _rss_anon(rows: list[dict[str, Any]], after: float) -> dict[str, float | None]:
    """The daemon's RssAnon after the warm-up: first, last, max and its trend."""
    anon_all = [(r["t"], r["daemon_anon_kb"]) for r in rows if r.get("daemon_anon_kb")]
    after_warm = [(t, a) for t, a in anon_all if t >= after]
    return {
        "first": after_warm[0][1] / 1024 if after_warm else None,
        "last": after_warm[-1][1] / 1024 if after_warm else None,
        "max": max((a for _, a in after_warm), default=0) / 1024,
        "slope_mb_per_min": (
            slope_per_min([t for t, _ in after_warm], [a / 1024 for _, a in after_warm])
        ),
    }

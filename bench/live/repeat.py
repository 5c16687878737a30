"""Several runs one after the other, each with a fresh daemon and journal, and per load their
figures side by side and combined."""

from __future__ import annotations

from typing import Any

from bench.live.rig import run
from bench.live.stats import median, stats
from bench.live.table import print_table

# a load's figures that are the median of the runs (each run's also kept, as KEY_per_run)
MEDIAN_OF_RUNS = (
    "written_rate", "daemon_read_rate", "lag_reported_max_s", "lag_true_max_s",
    "caught_up_after_end_s", "batches_per_s", "batch_ms_mean", "daemon_cpu_mean",
    "remote_cpu_mean", "writer_cpu_mean", "machine_cpu_mean", "others_cpu_mean",
    "writer_blocked_s",
)  # fmt: skip


def run_repeated(
    quick: bool = False, runs: int | None = None, seconds: float | None = None
) -> dict[str, Any]:
    """`run` `runs` times (3; 1 with quick), the soak only in the last; per load, each run's
    figures and their median, the latency percentiles of all runs' markers pooled. The time
    series (plots) are the last run's."""
    runs = runs or (1 if quick else 3)
    results = []
    for i in range(runs):
        last = i == runs - 1
        print(f"live run {i + 1} of {runs}", flush=True)
        results.append(run(quick=quick, seconds=seconds, soak_s=None if last else 0.0))
        print_table(results[-1])
    combined = dict(results[-1])
    combined["phases"] = [
        _merge(p, [q for r in results for q in r["phases"] if q["phase"] == p["phase"]])
        for p in results[-1]["phases"]
    ]
    combined["runs"] = runs
    combined["per_run"] = [
        {k: v for k, v in r.items() if k not in ("series", "phases")} for r in results
    ]
    return combined


def _merge(p: dict[str, Any], same: list[dict[str, Any]]) -> dict[str, Any]:
    """The last run's figures of a load `p`, combined with `same`: that load in every run."""
    merged = dict(p)
    merged["runs"] = len(same)
    pooled: dict[str, list[float]] = {}
    for what in ("metrics", "events"):
        pooled[what] = [x for q in same for x in q["latency_samples_ms"].get(what, [])]
        merged[f"{what}_ms"] = stats(pooled[what])
        merged[f"{what}_ms"]["p99_per_run"] = [q[f"{what}_ms"]["p99"] for q in same]
        merged[f"{what}_ms"]["p50_per_run"] = [q[f"{what}_ms"]["p50"] for q in same]
        merged[f"{what}_ms"]["p99_median_of_runs"] = median([q[f"{what}_ms"]["p99"] for q in same])
    merged["latency_samples_ms"] = pooled
    merged["missed"] = {w: sum(q["missed"][w] for q in same) for w in ("metrics", "events")}
    for key in MEDIAN_OF_RUNS:
        values = [q.get(key) for q in same]
        merged[f"{key}_per_run"] = values
        merged[key] = median([v for v in values if v is not None])
    merged["daemon_cpu_max"] = max((q["daemon_cpu_max"] or 0) for q in same)
    return merged

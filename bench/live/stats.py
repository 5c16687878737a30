"""Percentiles, means, medians and slopes of the samples (None where there is nothing)."""

from __future__ import annotations

import math
import statistics
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def slope_per_min(ts: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over ts, per minute."""
    if len(ts) < 3:
        return None
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    if var == 0:
        return None
    return 60 * sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var


def slope_mb(rows: list[dict[str, Any]], key: str) -> float | None:
    """Slope per minute of a kB column of the samples, in MB."""
    pts = [(r["t"], r[key] / 1024) for r in rows if r.get(key)]
    return slope_per_min([t for t, _ in pts], [y for _, y in pts])


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def stats(values: list[float]) -> dict[str, float | int | None]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def col(rows: list[dict[str, Any]], key: str) -> list[float]:
    """A column of the samples, where it was measured."""
    return [r[key] for r in rows if r.get(key) is not None]

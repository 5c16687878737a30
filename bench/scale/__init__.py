"""`python -m bench.scale [--quick]`: what the size of the state and of the rule set cost.

1. 100k open trainings. Three journals from bench/simulate/ at a busier rate (200 aisha-api
   entries/s of simulated time, so the whole journal is shorter than the 1h deadline and nothing
   stalls): BASE (N entries of the ordinary mix), MASS (the same simulation, same seed, plus 100k
   training submissions `request_id: bulk-NNNNNN` in its first 5 minutes, never ended) and BULK
   (the 100k submissions alone, at the same times). `aisha-monitor replay` on each, interleaved,
   median of the runs. The extra cost per ordinary entry with 100k trainings open is
   (MASS - BASE - BULK) / N of the replay's own loop time (start-up excluded); the memory is the
   difference in peak RssAnon. The shipped `max_open: 100000` caps the open pairs: the ~1k
   ordinary trainings in flight push out as many bulk ones (counted as `evicted`). The daemon also
   catches up on BASE and MASS once each (`start: head`), for its time, RSS and state file size.
2. 50 rules: the shipped config plus 41 `match` rules with distinct literals (10 of them hit
   ordinary aisha-api lines, 31 never match), replayed on the 1M journal next to the shipped
   config, interleaved; entries/s, per-entry cost and the replay's loop time.

Journals go to /tmp/aisha-bench-scale-* (reused when their parameters match)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.scale.alertbook import alert_book_cost
from bench.scale.configs import config_copy, synthetic_rules
from bench.scale.journals import API_RATE, OPEN, generate
from bench.scale.measure import daemon_catchup, replay_argv, summarize_runs
from bench.timing import Run, timed

__all__ = ["alert_book_cost", "main", "print_tables", "run"]


def run(
    quick: bool = False, runs: int | None = None, big: Path = Path("/tmp/bench1m"), seed: int = 3
) -> dict[str, Any]:
    runs = runs or (1 if quick else 3)
    size = 200_000 if quick else 500_000
    work = Path(tempfile.mkdtemp(prefix="aisha-scale-"))
    try:
        shipped = config_copy(work / "config.yaml")
        dirs = {kind: generate(kind, size, seed) for kind in ("base", "mass", "bulk")}
        open_result = _open_trainings(dirs, shipped, runs, work)
        rules_result = _fifty_rules(big, shipped, runs, work)
        book = alert_book_cost()
        for b in book:
            print(
                f"alert book with {b['keys']:,} keys: {b['ms_per_batch']:.2f} ms per batch, "
                f"{b['json_bytes']:,} bytes of JSON, {b['bytes_per_key']:.0f} bytes/key"
            )
        return {
            "alert_book": book,
            "runs": runs,
            "size": size,
            "seed": seed,
            "api_rate": API_RATE,
            "open_trainings": OPEN,
            "journals": {k: json.loads((d / "scale.json").read_text()) for k, d in dirs.items()},
            "open": open_result,
            "rules": rules_result,
            "big": str(big),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _open_trainings(dirs: dict[str, Path], shipped: Path, runs: int, work: Path) -> dict[str, Any]:
    """Replays of base, mass and bulk, interleaved; what 100k open trainings add; then the
    daemon catching up on base and mass."""
    by: dict[str, list[Run]] = {k: [] for k in dirs}
    for i in range(runs):
        for kind, d in dirs.items():
            by[kind].append(timed(replay_argv(d, shipped), os.devnull))
        print(
            f"run {i + 1}: " + ", ".join(f"{k} {v[-1].seconds:.2f}s" for k, v in by.items()),
            flush=True,
        )
    open_result = {k: summarize_runs(v) for k, v in by.items()}
    base, mass, bulk = (open_result[k] for k in ("base", "mass", "bulk"))
    extra_s = mass["median_loop_s"] - base["median_loop_s"] - bulk["median_loop_s"]
    open_result["delta"] = {
        "anon_mb": mass["max_anon_mb"] - base["max_anon_mb"],
        "bytes_per_open_training": (mass["max_anon_mb"] - base["max_anon_mb"])
        * 2**20
        / max(1, mass["pair"].get("open", OPEN)),
        "extra_us_per_ordinary_entry": 1e6 * extra_s / base["entries"],
        "us_per_entry_base": base["us_per_entry"],
        "us_per_bulk_start": bulk["us_per_entry"],
    }
    print("daemon catch-up (start: head), once each", flush=True)
    open_result["daemon"] = {
        kind: daemon_catchup(dirs[kind], shipped, open_result[kind]["entries"], work)
        for kind in ("base", "mass")
    }
    return open_result


def _fifty_rules(big: Path, shipped: Path, runs: int, work: Path) -> dict[str, Any]:
    """Replays of the 1M journal with the shipped config and with 41 more rules, interleaved."""
    fifty = config_copy(work / "config-50.yaml", synthetic_rules())
    rules_runs: dict[str, list[Run]] = {"shipped": [], "fifty": []}
    for i in range(runs):
        rules_runs["shipped"].append(timed(replay_argv(big, shipped), os.devnull))
        rules_runs["fifty"].append(timed(replay_argv(big, fifty), os.devnull))
        print(
            f"rules run {i + 1}: shipped {rules_runs['shipped'][-1].seconds:.2f}s, "
            f"50 rules {rules_runs['fifty'][-1].seconds:.2f}s",
            flush=True,
        )
    rules_result = {k: summarize_runs(v) for k, v in rules_runs.items()}
    s9, s50 = rules_result["shipped"], rules_result["fifty"]
    rules_result["delta"] = {
        "rules": {"shipped": 9, "fifty": 9 + 41},
        "loop_slowdown": s50["median_loop_s"] / s9["median_loop_s"],
        "extra_us_per_entry": s50["us_per_entry"] - s9["us_per_entry"],
        "extra_us_per_entry_per_rule": (s50["us_per_entry"] - s9["us_per_entry"]) / 41,
        "synthetic_matches": {
            k: v for k, v in s50["counters"].items() if k.startswith("synthetic_")
        },
    }
    return rules_result


def print_tables(r: dict[str, Any]) -> None:
    o, d = r["open"], r["open"]["delta"]
    print(f"\n100k open trainings ({r['runs']} runs, median; replay of the shipped config)\n")
    print(
        "| journal | entries | replay entries/s | µs/entry (loop) | peak RSS MB (anon) "
        "| open at end | evicted |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in ("base", "mass", "bulk"):
        x = o[k]
        print(
            f"| {k} | {x['entries']:,} | {x['entries_per_s']:,.0f} | {x['us_per_entry']:.2f} "
            f"| {x['max_rss_mb']:.0f} ({x['max_anon_mb']:.0f}) | {x['pair'].get('open', '-')} "
            f"| {x['pair'].get('evicted', '-')} |"
        )
    print(
        f"\nRSS (anon) +{d['anon_mb']:.0f} MB with 100k open (~{d['bytes_per_open_training']:.0f} "
        f"bytes each); extra cost per ordinary entry {d['extra_us_per_ordinary_entry']:+.2f} µs "
        f"(base {d['us_per_entry_base']:.2f} µs; a bulk start costs "
        f"{d['us_per_bulk_start']:.2f} µs)"
    )
    for k, x in o["daemon"].items():
        print(
            f"daemon catch-up {k}: {x['entries']:,} entries in {x['seconds']:.1f}s "
            f"({x['entries_per_s']:,.0f}/s), peak anon {x['peak_anon_mb']:.0f} MB, state file "
            f"{x['state_file_mb']:.1f} MB"
        )
    _print_rules(r)


def _print_rules(r: dict[str, Any]) -> None:
    s9, s50, dd = r["rules"]["shipped"], r["rules"]["fifty"], r["rules"]["delta"]
    print(f"\n50 rules on {r['big']} ({r['runs']} runs, median)\n")
    print("| config | replay entries/s | µs/entry (loop) | peak anon MB |")
    print("|---|---:|---:|---:|")
    print(
        f"| shipped (9 rules) | {s9['entries_per_s']:,.0f} | {s9['us_per_entry']:.2f} "
        f"| {s9['max_anon_mb']:.0f} |"
    )
    print(
        f"| + 41 match rules (50) | {s50['entries_per_s']:,.0f} | {s50['us_per_entry']:.2f} "
        f"| {s50['max_anon_mb']:.0f} |"
    )
    print(
        f"\nloop {dd['loop_slowdown']:.2f}x slower; +{dd['extra_us_per_entry']:.2f} µs/entry, "
        f"{dd['extra_us_per_entry_per_rule']:.3f} µs per entry per added rule"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200k base entries, 1 run")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--big", type=Path, default=Path("/tmp/bench1m"), help="the 1M journal")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = run(args.quick, args.runs, args.big)
    print_tables(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return 0

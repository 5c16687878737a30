"""`python -m bench.generate --out DIR --size N --seed S`: a realistic aisha journal written by the
real systemd-journal-remote, and DIR/truth.json with what the shipped rules must report on it.

Deterministic: one random.Random(seed) drives bench/simulate/ (aisha-api's workers, trainings
and webhooks with the incident's bug, nginx, aisha-bot with look-alikes). Timestamps start at
2026-11-27T00:00:00Z and strictly increase; the simulation starts 45 minutes earlier, so the
journal opens with trainings already in flight. Entries stream to one long-running
journal-remote's stdin in batches: memory stays flat whatever N is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from bench.simulate import API, BOOT_US, EPOCH_US, Mix, S, Simulation
from bench.truth import Truth, load_statuses
from monitor.tools.export import BOOT_ID, JOURNAL_REMOTE, MACHINE_ID, export_entry, export_field


class Exporter:
    """monitor.tools.export.export_entry, byte for byte, with the fields that repeat cached per
    (unit, pid, priority): export_entry itself takes half of the generator's time. The first
    entry of each kind is checked against export_entry."""

    def __init__(self) -> None:
        self._middle: dict[tuple[str, int, int], bytes] = {}

    def entry(self, text: str, t: int, unit: str, pid: int, priority: int) -> bytes:
        key = (unit, pid, priority)
        middle = self._middle.get(key)
        head = b"__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n" % (t, t - BOOT_US)
        if middle is not None:
            return head + middle + export_field("MESSAGE", text) + b"\n"
        fields = (
            ("_BOOT_ID", BOOT_ID),
            ("_MACHINE_ID", MACHINE_ID),
            ("_HOSTNAME", "api-1"),
            ("_TRANSPORT", "stdout"),
            ("_SYSTEMD_UNIT", unit),
            ("_PID", str(pid)),
            ("_UID", "0"),
            ("SYSLOG_IDENTIFIER", unit.removesuffix(".service")),
            ("PRIORITY", str(priority)),
        )
        middle = self._middle[key] = b"".join(export_field(k, v) for k, v in fields)
        data = head + middle + export_field("MESSAGE", text) + b"\n"
        reference = export_entry(
            text, t, unit=unit, pid=pid, priority=priority, monotonic_us=t - BOOT_US
        )
        if data != reference:
            raise RuntimeError(
                f"Exporter differs from monitor.tools.export.export_entry:\n{data!r}"
            )
        return data


# --- writing --------------------------------------------------------------------------------


def write(out: Path, entries: Iterator[bytes], chunk_entries: int) -> list[str]:
    """Stream into one long-running journal-remote per chunk of entries (it also rotates by
    itself when a file's data hash table fills up); returns the files written."""
    part = 0
    while (first := next(entries, None)) is not None:
        chunk = islice(entries, chunk_entries - 1 if chunk_entries else None)
        path = out / f"aisha-{part:03d}.journal"
        proc = subprocess.Popen(
            [JOURNAL_REMOTE, "-o", str(path), "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if proc.stdin is None:  # pragma: no cover - PIPE always gives one
            raise RuntimeError("no stdin pipe to systemd-journal-remote")
        batch, size = [first], len(first)
        for data in chunk:
            batch.append(data)
            size += len(data)
            if size >= 1 << 20:
                proc.stdin.write(b"".join(batch))
                batch, size = [], 0
        proc.stdin.write(b"".join(batch))
        proc.stdin.close()
        err = proc.stderr.read() if proc.stderr else b""
        if proc.wait() != 0:
            raise SystemExit(f"systemd-journal-remote failed: {err.decode(errors='replace')}")
        part += 1
    return sorted(p.name for p in out.glob("*.journal"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument("--out", required=True, type=Path, help="directory (created; not the repo)")
    parser.add_argument("--size", required=True, type=int, help="aisha-api.service entries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--config", type=Path, default=Path(__file__).parent.parent / "config.yaml")
    parser.add_argument(
        "--chunk-entries",
        type=int,
        default=0,
        help="entries per journal-remote process (default 0: one process for everything; it "
        "rotates by itself when a file's data hash table fills, ~180k entries / ~71 MB here)",
    )
    parser.add_argument("--force", action="store_true", help="replace journals already in --out")
    args = parser.parse_args(argv)
    out: Path = args.out.resolve()
    repo = Path(__file__).resolve().parent.parent
    if out == repo or repo in out.parents:
        raise SystemExit(f"{out} is inside the repository: keep generated journals out of it")
    out.mkdir(parents=True, exist_ok=True)
    old = list(out.glob("*.journal"))
    if old and not args.force:
        raise SystemExit(f"{out} already holds journal files (journal-remote appends): --force")
    for p in old:
        p.unlink()
    canonical, aliases = load_statuses(args.config)
    truth = Truth(canonical, aliases)
    sim = Simulation(args.size, args.seed, Mix(), truth, Exporter().entry)
    started = time.monotonic()
    files = write(out, sim.entries(), args.chunk_entries)
    seconds = time.monotonic() - started
    result = truth.finish(sim.final_api)
    expected = result["expected_events"]
    if sim.max_err_5m > 20:
        expected["threshold"] = None  # api_errors may fire: not checked
    if sim.max_api_gap >= 15 * 60 * S:
        expected["absence"] = None
    total = sum(sim.counts.values())
    doc = {
        "seed": args.seed,
        "size": args.size,
        "config": str(args.config),
        "epoch_us": EPOCH_US,
        "first_entry_us": sim.first,
        "final_api_entry_us": sim.final_api,
        "last_entry_us": sim.last,
        "hours": round((sim.last - sim.first) / 3600 / S, 2),
        "entries": {**sim.counts, "total": total},
        "aisha_api_entries": sim.counts[API],
        "total_entries": total,
        "files": files,
        "generation_seconds": round(seconds, 1),
        "max_errors_in_5m": sim.max_err_5m,
        "max_api_gap_seconds": round(sim.max_api_gap / S, 1),
        "max_shift_us": sim.max_shift,
        "stats": dict(sorted(sim.stats.items())),
        **result,
    }
    (out / "truth.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    print(
        f"generated {total:,} entries ({sim.counts[API]:,} aisha-api) over {doc['hours']} h into "
        f"{out} ({len(files)} files) in {seconds:.1f}s; expected events: {expected}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line of `python -m bench.live` (and of its writer process, `--writer PLAN`)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import bench.live
from bench.live.repeat import run_repeated
from bench.live.rig import run
from bench.live.table import print_table, verdicts
from bench.live.writer import writer_main
from monitor.tools.export import JOURNAL_REMOTE


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.live", description=bench.live.__doc__)
    p.add_argument("--quick", action="store_true", help="20 s per load instead of 60 s")
    p.add_argument("--seconds", type=float, help="seconds per load")
    p.add_argument("--rates", default="1000,10000,30000")
    p.add_argument(
        "--soak", type=float, help="seconds of a final 10k/s soak (default 180, 0 with --quick)"
    )
    p.add_argument("--json", type=Path, help="write the result here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument(
        "--marker-keys",
        type=int,
        default=0,
        help="markers cycle through this many request_ids (default 0: a new one each)",
    )
    p.add_argument("--profile", metavar="PHASE", help="py-spy record the daemon in PHASE")
    p.add_argument("--profile-out", type=Path)
    p.add_argument("--runs", type=int, default=1, help="repeat (the soak in the last)")
    p.add_argument("--writer", type=Path, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.writer:
        return writer_main(args.writer)
    if not os.access(JOURNAL_REMOTE, os.X_OK):
        raise SystemExit(f"{JOURNAL_REMOTE} is needed (Debian package systemd-journal-remote)")
    if args.runs > 1:
        result = run_repeated(args.quick, args.runs, args.seconds)
    else:
        result = run(
            quick=args.quick,
            seconds=args.seconds,
            rates=tuple(int(x) for x in args.rates.split(",")),
            soak_s=args.soak,
            marker_keys=args.marker_keys,
            keep=args.keep,
            profile_phase=args.profile,
            profile_out=args.profile_out,
        )
    print_table(result)
    for v in verdicts(result):
        print(f"MISSED: {v}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0

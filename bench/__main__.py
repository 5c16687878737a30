"""`python -m bench [--quick]`: everything, then the report in bench/results/.

1. catch-up: journalctl, `aisha-monitor replay`, mtail, fail2ban-regex and sec on the 1M journal
   (bench/catchup.py, bench/peers.py), checked against its truth.json;
2. live: the daemon following systemd-journal-remote at 1k, 10k and 30k entries/s
   (bench/live/), then, if a live target is missed, a py-spy profile of the daemon at the load
   that missed it;
3. scale: 100k open trainings, and 50 rules instead of 9 (bench/scale/);
4. the report: bench/results/DATE.md, DATE.json and DATE-*.png (bench/report/).

Full: ~20 min; --quick: ~5 min (1 run instead of 3, 20 s per load, no soak, no sec
PairWithWindow, a 200k-entry scale journal)."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import catchup, live, report, scale

REPO = Path(__file__).resolve().parent.parent


def _first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else "?"


def environment() -> dict[str, Any]:
    from monitor import __version__

    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    tools = "; ".join(
        x
        for x in (
            _first_line(["journalctl", "--version"]),
            _first_line(["mtail", "--version"]).split(" git ")[0],
            "fail2ban-regex " + _first_line(["fail2ban-regex", "--version"]).split()[-1],
            _first_line(["sec", "-version"]),
        )
    )
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "mem_gb": mem_kb / 2**20,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "version": __version__,
        "commit": commit + (" (with uncommitted changes)" if dirty not in ("", "?") else ""),
        "tools": tools,
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench1m"), help="the 1M journal")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results")
    parser.add_argument("--skip", default="", help="comma-separated: catchup,live,scale")
    parser.add_argument("--profile", action="store_true", help="profile the daemon even if met")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    started = time.monotonic()
    if not (args.dir / "truth.json").exists():
        print(f"generating {args.dir} (1M entries, seed 1)", flush=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.generate",
                "--out",
                str(args.dir),
                "--size",
                "1000000",
                "--seed",
                "1",
            ],
            cwd=REPO,
            check=True,
        )
    quick = args.quick
    res: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "command": "python -m bench" + (" --quick" if quick else ""),
        "env": environment(),
    }
    commands = [f"# {res['command']} runs all of these, then bench/report/"]
    if "catchup" not in skip:
        print("== catch-up", flush=True)
        runs = 1 if quick else 3
        work = Path(tempfile.mkdtemp(prefix="aisha-catchup-"))
        try:
            res["catchup"] = catchup.measure(
                args.dir, runs, peers=True, slow_peers=not quick, work=work
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        catchup.print_table(res["catchup"])
        slow = "" if not quick else " --no-slow-peers"
        commands.append(
            f".venv/bin/python -m bench.catchup --dir {args.dir} --runs {runs} --peers{slow}"
        )
    if "live" not in skip:
        print("== live", flush=True)
        res["live"] = live.run_repeated(quick=quick)
        live.print_table(res["live"])
        res["live_missed"] = live.verdicts(res["live"])
        commands.append(".venv/bin/python -m bench.live " + ("--quick" if quick else "--runs 3"))
        for v in res["live_missed"]:
            print(f"MISSED: {v}")
        if (res["live_missed"] or args.profile) and shutil.which(live.PY_SPY):
            # the load whose target was missed: p99 at 10k/s, else 30k/s (lag, RSS: the hottest)
            phase = "10k" if any("at 10k/s" in v for v in res["live_missed"]) else "30k"
            rate = 30_000 if phase == "30k" else 10_000
            print(f"== py-spy profile of the daemon at {phase}/s", flush=True)
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "profile.txt"
                live.run(seconds=30, rates=(rate,), soak_s=0, profile_phase=phase, profile_out=out)
                if out.exists():
                    res["profile"] = live.profile_summary(out, phase)
                    for share, frame in res["profile"]["self"][:12]:
                        print(f"  {share:5.1f}% {frame}")
            commands.append(
                f".venv/bin/python -m bench.live --seconds 30 --rates {rate} --soak 0 "
                f"--profile {phase} --profile-out /tmp/profile.txt   # needs py-spy"
            )
    if "scale" not in skip:
        print("== scale", flush=True)
        res["scale"] = scale.run(quick=quick, big=args.dir)
        scale.print_tables(res["scale"])
        commands.append(
            f".venv/bin/python -m bench.scale --big {args.dir}" + (" --quick" if quick else "")
        )
    res["seconds"] = time.monotonic() - started
    res["commands"] = commands
    md = report.write(res, args.out)
    print(f"\nreport: {md}")
    print("argv: " + shlex.join([sys.executable, "-m", "bench", *(argv or sys.argv[1:])]))
    problems = (res.get("catchup") or {}).get("problems", [])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

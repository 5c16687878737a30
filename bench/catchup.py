"""`python -m bench.catchup --dir DIR [--runs 3] [--peers]`: catch-up speed of `aisha-monitor
replay` next to `journalctl` reading the same aisha-api entries, and the replay's events checked
against the generator's DIR/truth.json (a mismatch prints FAIL and exits 1). With `--peers`,
mtail, fail2ban-regex and sec run in the same interleaved runs on the same messages
(bench/peers.py), each checked against truth.json where the tool can say it.

Both tools read the journal of a generated DIR (bench/generate.py), warm in the page cache, runs
interleaved. entries/s = aisha-api entries / wall-clock seconds (time.monotonic around the whole
process, start-up included), median of the runs. Peak RSS comes from GNU time's wait4 on its own
child: `getrusage(RUSAGE_CHILDREN)` of this process is a maximum, not a sum, and a child's
ru_maxrss starts at the RSS of the process that forked it, so it cannot tell a small child from
this Python parent. Both tools mmap the journal files, so their RSS includes file pages (shared
with the page cache); a sampler reads the child's RssAnon (its own heap) 20 times a second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.replayout import SUMMARY, check, replay_counters
from bench.timing import GNU_TIME, Run, timed

REPO = Path(__file__).resolve().parent.parent


def measure(
    directory: Path,
    runs: int = 3,
    config: Path = REPO / "config.yaml",
    monitor: str = str(REPO / ".venv/bin/aisha-monitor"),
    events: Path | None = None,
    peers: bool = False,
    slow_peers: bool = True,
    work: Path | None = None,
) -> dict[str, Any]:
    """Interleaved runs of journalctl, replay and (with `peers`) bench/peers.py's tools, all
    timed the same way; the numbers, per-run seconds and every correctness problem."""
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME} (GNU time, Debian package `time`) is needed for peak RSS")
    truth = json.loads((directory / "truth.json").read_text())
    n = truth["aisha_api_entries"]
    events = events or directory / "events.jsonl"
    journalctl = [
        "journalctl",
        f"--directory={directory}",
        "_SYSTEMD_UNIT=aisha-api.service",
        "-o",
        "cat",
    ]
    replay = [monitor, "replay", "-c", str(config), "--journal-dir", str(directory)]
    print(f"{directory}: {n:,} aisha-api entries of {truth['total_entries']:,}; {runs} runs")
    work = work or Path(tempfile.mkdtemp(prefix="aisha-catchup-"))
    work.mkdir(parents=True, exist_ok=True)
    text = work / "aisha-api.txt"
    peer_list = _peers(directory, text, work, slow_peers) if peers else []
    timed(journalctl, os.devnull)  # warm the page cache; not measured
    m = Measured(peer_list)
    for i in range(runs):
        m.one_run(i, journalctl, replay, events, truth, work)
    if len(m.outputs) > 1:
        m.problems.append("the runs printed different events")
    print(m.mon[-1].stderr.rstrip())
    return {
        "dir": str(directory),
        "entries": n,
        "total_entries": truth["total_entries"],
        "runs": runs,
        "rows": m.rows(n),
        "replay_counters": m.counters,
        "problems": m.problems,
        "text_file": str(text) if peers else None,
    }


def _peers(directory: Path, text: Path, work: Path, slow: bool) -> list[Any]:
    """bench/peers.py's tools, the text file they read written first."""
    from bench import peers as P  # noqa: N812

    missing = P.missing_tools()
    if missing:
        raise SystemExit("peers need: " + ", ".join(missing))
    P.export_text(directory, text)
    return P.make_peers(directory, text, work, slow=slow)


class Measured:
    """The runs of each tool so far, the replay's counters, the distinct outputs of its runs,
    and every problem found."""

    def __init__(self, peer_list: list[Any]) -> None:
        self.peer_list = peer_list
        self.base: list[Run] = []
        self.mon: list[Run] = []
        self.by_peer: dict[str, list[Run]] = {p.key: [] for p in peer_list}
        self.problems: list[str] = []
        self.outputs: set[bytes] = set()
        self.counters: dict[str, int] = {}

    def one_run(
        self,
        i: int,
        journalctl: list[str],
        replay: list[str],
        events: Path,
        truth: dict[str, Any],
        work: Path,
    ) -> None:
        """journalctl, replay (its events checked), then each peer that runs this time."""
        base, mon = self.base, self.mon
        base.append(timed(journalctl, os.devnull))
        mon.append(timed(replay, str(events)))
        m = SUMMARY.search(mon[-1].stderr)
        inner = f"{int(m.group(1)) / float(m.group(2)):,.0f}/s in its loop" if m else "?"
        print(
            f"run {i + 1}: journalctl {base[-1].seconds:.2f}s {base[-1].max_rss_kb} KB "
            f"(anon {base[-1].max_anon_kb} KB); replay {mon[-1].seconds:.2f}s "
            f"{mon[-1].max_rss_kb} KB (anon {mon[-1].max_anon_kb} KB; {inner})",
            flush=True,
        )
        self.outputs.add(events.read_bytes())
        self.problems += [
            f"run {i + 1}: {p}" for p in check(events, truth, int(m.group(1)) if m else None)
        ]
        self.counters = replay_counters(mon[-1].stderr)
        for peer in self.peer_list:
            if not peer.every_run and i > 0:
                continue
            out = work / f"{peer.key}.out"
            self.by_peer[peer.key].append(timed(peer.argv, str(out)))
            peer.counts = peer.parse(out.read_text(encoding="utf-8", errors="replace"))
            self.problems += [
                f"run {i + 1}: {peer.key}: {p}"
                for p in peer.check(peer.counts, truth, self.counters)
            ]
            print(f"  {peer.key} {self.by_peer[peer.key][-1].seconds:.2f}s", flush=True)

    def rows(self, n: int) -> list[dict[str, Any]]:
        """One row per tool: journalctl, replay, then the peers; ratios to journalctl."""
        problems = self.problems
        rows = [
            _row("`journalctl -o cat` (baseline)", "journalctl", self.base, "journal", n, problems),
            _row(
                "`aisha-monitor replay`", "replay", self.mon, "journal", n, problems,
                "the shipped 9 rules, events",
            ),
        ]  # fmt: skip
        rows[1]["problems"] = [
            p for p in problems if not any(f": {q.key}: " in p for q in self.peer_list)
        ]
        for peer in self.peer_list:
            rs = self.by_peer[peer.key]
            rows.append(_row(peer.name, peer.key, rs, peer.reads, n, problems, peer.note))
            rows[-1]["counts"] = peer.counts
        j = rows[0]["median_s"]
        for r in rows:
            r["ratio"] = j / r["median_s"]
            # a text-file tool needs the export first: the journalctl run is exactly that command
            r["with_export_per_s"] = n / (r["median_s"] + j) if r["reads"] == "text" else None
        return rows


def _row(
    name: str, key: str, rs: list[Run], reads: str, n: int, problems: list[str], note: str = ""
) -> dict[str, Any]:
    secs = [r.seconds for r in rs]
    kbs = [r.max_rss_kb for r in rs if r.max_rss_kb is not None]
    cpus = [r.cpu_s for r in rs if r.cpu_s is not None]
    return {
        "tool": name,
        "key": key,
        "reads": reads,
        "note": note,
        "runs": len(rs),
        "seconds": secs,
        "median_s": statistics.median(secs),
        "entries_per_s": n / statistics.median(secs),
        "spread": (max(secs) - min(secs)) / statistics.median(secs) if len(secs) > 1 else None,
        "max_rss_mb": max(kbs) / 1024 if kbs else None,
        "max_anon_mb": max(r.max_anon_kb for r in rs) / 1024,
        "cpu_s": statistics.median(cpus) if cpus else None,
        "problems": [p for p in problems if f": {key}: " in p],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.catchup", description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="a bench.generate directory")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--monitor", default=str(REPO / ".venv/bin/aisha-monitor"))
    parser.add_argument("--events", type=Path, help="replay output (default DIR/events.jsonl)")
    parser.add_argument("--peers", action="store_true", help="mtail, fail2ban-regex and sec too")
    parser.add_argument(
        "--no-slow-peers", action="store_true", help="without sec's PairWithWindow (~5 min)"
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    result = measure(
        args.dir,
        args.runs,
        args.config,
        args.monitor,
        args.events,
        peers=args.peers,
        slow_peers=not args.no_slow_peers,
    )
    print()
    print_table(result)
    for p in result["problems"]:
        print(f"FAIL: {p}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    return 1 if result["problems"] else 0


def print_table(result: dict[str, Any]) -> None:
    def fmt(x: float | None, spec: str) -> str:
        return "-" if x is None else format(x, spec)

    print(
        "| tool | reads | entries/s (median) | ratio to journalctl | with export, entries/s "
        "| spread of runs | peak RSS MB (anon) | correctness |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in result["rows"]:
        verdict = "-" if r["key"] == "journalctl" else "PASS"
        if r["problems"]:
            verdict = f"**FAIL** ({len(r['problems'])} problems)"
        runs = "" if r["runs"] == result["runs"] else f" ({r['runs']} run)"
        print(
            f"| {r['tool']}{runs} | {r['reads']} | {r['entries_per_s']:,.0f} | {r['ratio']:.2f} "
            f"| {fmt(r['with_export_per_s'], ',.0f')} | {fmt(r['spread'], '.0%')} "
            f"| {fmt(r['max_rss_mb'], '.0f')} ({r['max_anon_mb']:.0f}) | {verdict} |"
        )
    print()


if __name__ == "__main__":
    sys.exit(main())

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
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = "/usr/bin/time"
SUMMARY = re.compile(r"replay: (\d+) entries in ([\d.]+)s")


@dataclass(frozen=True, slots=True)
class Run:
    seconds: float
    max_rss_kb: int | None
    max_anon_kb: int
    stderr: str
    cpu_s: float | None = None  # user + system, the process and the children it waited for


class AnonSampler(threading.Thread):
    """The peak RssAnon of the children of `parent` (GNU time's one child), sampled."""

    def __init__(self, parent: int) -> None:
        super().__init__(daemon=True)
        self.parent, self.peak_kb = parent, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            try:
                kids = Path(f"/proc/{self.parent}/task/{self.parent}/children").read_text()
                for pid in kids.split():
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("RssAnon:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                continue  # exited between the two reads


def timed(argv: list[str], stdout_path: str) -> Run:
    """Run argv with stdout to a file; wall-clock seconds and the child's own peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss, open(stdout_path, "wb") as out:
        wrapped = [GNU_TIME, "-f", "%M %U %S", "-o", rss.name, *argv]
        started = time.monotonic()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=subprocess.PIPE)
        sampler = AnonSampler(proc.pid)
        sampler.start()
        _, err_bytes = proc.communicate()
        seconds = time.monotonic() - started
        sampler.stopped.set()
        sampler.join()
        text = rss.read().strip()
    err = err_bytes.decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"FAIL: {' '.join(argv)} exited {proc.returncode}:\n{err}")
    fields = text.splitlines()[-1].split() if text else []
    kb = int(fields[0]) if fields else None
    cpu = float(fields[1]) + float(fields[2]) if len(fields) == 3 else None
    return Run(seconds, kb, sampler.peak_kb, err, cpu)


def parse_time_us(text: str) -> int:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(when.timestamp()) * 1_000_000 + when.microsecond


def _unknown(e: dict[str, Any]) -> tuple[int, str, str, str]:
    labels = e["labels"]
    return (parse_time_us(e["time"]), e["key"], labels.get("status"), labels.get("normalized"))


def check(events_path: Path, truth: dict[str, Any], summary_entries: int | None) -> list[str]:
    """Every way the replay's events differ from truth.json; empty when they agree."""
    problems: list[str] = []
    events = [json.loads(line) for line in events_path.read_text().splitlines() if line]
    if summary_entries != truth["aisha_api_entries"]:
        problems.append(
            f"replay read {summary_entries} entries, truth has {truth['aisha_api_entries']}"
        )

    def same(what: str, got: Counter[Any], want: Counter[Any]) -> None:
        if got != want:
            missing, extra = want - got, got - want
            problems.append(
                f"{what}: {sum(got.values())} events, expected {sum(want.values())}; "
                f"missing {sorted(missing.elements())[:5]} ({sum(missing.values())}), "
                f"unexpected {sorted(extra.elements())[:5]} ({sum(extra.values())})"
            )

    def of(rule: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in events if e["rule"] == rule and e["kind"] == kind]

    same(
        "unknown_value (time, request_id, status, normalized)",
        Counter(_unknown(e) for e in of("unknown_status", "unknown_value")),
        Counter(
            (u["time_us"], u["request_id"], u["status"], u["normalized"])
            for u in truth["unknown_statuses"]
        ),
    )
    for kind in ("stalled", "resolved"):
        same(
            f"{kind} (request_id, time)",
            Counter((e["key"], parse_time_us(e["time"])) for e in of("training_stalled", kind)),
            Counter(truth[kind].items()),
        )
    closed = len(of("training_stalled", "pair_closed"))
    if closed != truth["pair_closed"]:
        problems.append(f"pair_closed: {closed} events, expected {truth['pair_closed']}")
    same(
        "webhook_processing_failed match (request_id)",
        Counter(e["key"] for e in of("webhook_processing_failed", "match")),
        Counter(truth["processing_failed"]),
    )
    kinds = Counter(e["kind"] for e in events)
    for kind, want in truth["expected_events"].items():
        if want is not None and kinds.get(kind, 0) != want:
            problems.append(f"{kind}: {kinds.get(kind, 0)} events in all, expected {want}")
    for kind in sorted(set(kinds) - set(truth["expected_events"])):
        problems.append(f"{kind}: {kinds[kind]} unexpected events")
    return problems


_COUNTERS = re.compile(r"^  (\w+) \((\w+)\): (.*)$", re.MULTILINE)


def replay_counters(stderr: str) -> dict[str, int]:
    """Each rule's `matches` from replay's summary on stderr."""
    out = {}
    for name, _, rest in _COUNTERS.findall(stderr):
        fields = dict(kv.split("=", 1) for kv in rest.split())
        if "matches" in fields:
            out[name] = int(fields["matches"])
    return out


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
    from bench import peers as P  # noqa: N812

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
    peer_list: list[Any] = []
    text = work / "aisha-api.txt"
    if peers:
        missing = P.missing_tools()
        if missing:
            raise SystemExit("peers need: " + ", ".join(missing))
        P.export_text(directory, text)
        peer_list = P.make_peers(directory, text, work, slow=slow_peers)
    timed(journalctl, os.devnull)  # warm the page cache; not measured
    base: list[Run] = []
    mon: list[Run] = []
    by_peer: dict[str, list[Run]] = {p.key: [] for p in peer_list}
    problems: list[str] = []
    outputs: set[bytes] = set()
    counters: dict[str, int] = {}
    for i in range(runs):
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
        outputs.add(events.read_bytes())
        problems += [
            f"run {i + 1}: {p}" for p in check(events, truth, int(m.group(1)) if m else None)
        ]
        counters = replay_counters(mon[-1].stderr)
        for peer in peer_list:
            if not peer.every_run and i > 0:
                continue
            out = work / f"{peer.key}.out"
            by_peer[peer.key].append(timed(peer.argv, str(out)))
            peer.counts = peer.parse(out.read_text(encoding="utf-8", errors="replace"))
            problems += [
                f"run {i + 1}: {peer.key}: {p}" for p in peer.check(peer.counts, truth, counters)
            ]
            print(f"  {peer.key} {by_peer[peer.key][-1].seconds:.2f}s", flush=True)
    if len(outputs) > 1:
        problems.append("the runs printed different events")
    print(mon[-1].stderr.rstrip())

    def row(name: str, key: str, rs: list[Run], reads: str, note: str = "") -> dict[str, Any]:
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

    rows = [
        row("`journalctl -o cat` (baseline)", "journalctl", base, "journal"),
        row("`aisha-monitor replay`", "replay", mon, "journal", "the shipped 9 rules, events"),
    ]
    rows[1]["problems"] = [p for p in problems if not any(f": {q.key}: " in p for q in peer_list)]
    for peer in peer_list:
        rows.append(row(peer.name, peer.key, by_peer[peer.key], peer.reads, peer.note))
        rows[-1]["counts"] = peer.counts
    j = rows[0]["median_s"]
    for r in rows:
        r["ratio"] = j / r["median_s"]
        # a text-file tool needs the export first: the journalctl run is exactly that command
        r["with_export_per_s"] = n / (r["median_s"] + j) if r["reads"] == "text" else None
    return {
        "dir": str(directory),
        "entries": n,
        "total_entries": truth["total_entries"],
        "runs": runs,
        "rows": rows,
        "replay_counters": counters,
        "problems": problems,
        "text_file": str(text) if peers else None,
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

"""`python -m bench.scale [--quick]`: what the size of the state and of the rule set cost.

1. 100k open trainings. Three journals from bench/simulate.py at a busier rate (200 aisha-api
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
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.catchup import SUMMARY, Run, replay_counters, timed
from bench.generate import Exporter, write
from bench.live import free_port, http_get, proc_sample
from bench.simulate import API, EPOCH_US, Line, Mix, S, Simulation
from bench.truth import Truth, load_statuses

REPO = Path(__file__).resolve().parent.parent
MONITOR = str(REPO / ".venv/bin/aisha-monitor")
OPEN = 100_000
SPREAD_US = 300 * S  # the bulk submissions arrive over the first 5 minutes
API_RATE = 200.0
PREFIX = r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - [\w.]+ - [A-Z]+ - )?"
# literals of ordinary aisha-api lines (bench/lines.py): these synthetic rules do match
HITTING = (
    r"Пул соединений: занято (?P<busy>\d+)/20",
    r"Получен список аватаров пользователя (?P<user_id>\d+)",
    r"Пользователь (?P<user_id>\d+) запросил баланс",
    r"HTTP Request: GET https://queue\.fal\.run/(?P<model>\S+)/requests/",
    r"Файл загружен в MinIO: (?P<path>\S+)",
    r"Генерация изображения (?P<id>\S+) для пользователя",
    r"FAL AI ответил медленно: (?P<sec>[\d.]+)s",
    r"Аватар (?P<id>\S+) не найден",
)
HITTING_ACCESS = (
    r'^INFO: +[\d.]+:\d+ - "GET /health HTTP/1\.1" (?P<status>\d+)',
    r'^INFO: +[\d.]+:\d+ - "POST /api/v1/generation/create HTTP/1\.1" (?P<status>\d+)',
)


def bulk_line(i: int) -> Line:
    text = (
        f"Запуск обучения аватара bulk-avatar-{i:06d} отправлен в FAL AI, request_id: bulk-{i:06d}"
    )
    return Line(API, 2817 + i % 4, text, "app.services.avatar.training_service")


def bulk_time(i: int) -> int:
    return EPOCH_US + 1000 + i * SPREAD_US // OPEN


class MassOpen(Simulation):
    """The ordinary simulation plus OPEN submissions that never end (their own schedule: the
    ordinary lines draw the same random numbers as without them)."""

    def __init__(self, size: int, seed: int, truth: Truth, bulk: int) -> None:
        super().__init__(size + bulk, seed, Mix(api_rate=API_RATE), truth, Exporter().entry)
        for i in range(bulk):
            self.at(bulk_time(i), bulk_line(i))


def bulk_only(n: int) -> Iterator[bytes]:
    from bench.lines import Clock

    clock, ex = Clock(), Exporter()
    for i in range(n):
        line, t = bulk_line(i), bulk_time(i)
        text = clock.logging_prefix(t, line.logger, line.level) + line.text
        yield ex.entry(text, t, API, line.pid, 6)


def generate(kind: str, size: int, seed: int) -> Path:
    """DIR of one journal (reused when already made with these parameters)."""
    out = Path(f"/tmp/aisha-bench-scale-{kind}-{size}-{seed}")
    meta = out / "scale.json"
    if meta.exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    if kind == "bulk":
        entries: Iterator[bytes] = bulk_only(OPEN)
        count = OPEN
    else:
        canonical, aliases = load_statuses(REPO / "config.yaml")
        sim = MassOpen(size, seed, Truth(canonical, aliases), OPEN if kind == "mass" else 0)
        entries = sim.entries()
    write(out, entries, 0)
    if kind != "bulk":
        count = sim.counts[API]
        span = (sim.last - sim.first) / S
    else:
        span = SPREAD_US / S
    doc = {
        "kind": kind,
        "size": size,
        "seed": seed,
        "aisha_api_entries": count,
        "span_s": span,
        "seconds": round(time.monotonic() - started, 1),
    }
    meta.write_text(json.dumps(doc) + "\n")
    print(f"generated {kind}: {count:,} aisha-api entries over {span / 60:.1f} min", flush=True)
    return out


def replay_argv(directory: Path, config: Path) -> list[str]:
    """One reader in one process (the files named, not the directory): what the state costs is
    measured without the parallel reader's buffers, as the daemon keeps it."""
    files = sorted(str(f) for f in directory.glob("*.journal"))
    return [MONITOR, "replay", "-c", str(config), *(f"--journal-file={f}" for f in files)]


def loop_seconds(run: Run) -> tuple[int, float]:
    m = SUMMARY.search(run.stderr)
    if not m:
        raise SystemExit(f"no replay summary in:\n{run.stderr}")
    return int(m.group(1)), float(m.group(2))


def summarize_runs(runs: list[Run]) -> dict[str, Any]:
    loops = [loop_seconds(r) for r in runs]
    entries = loops[0][0]
    loop_s = statistics.median(s for _, s in loops)
    return {
        "entries": entries,
        "wall_s": [round(r.seconds, 3) for r in runs],
        "loop_s": [s for _, s in loops],
        "median_wall_s": statistics.median(r.seconds for r in runs),
        "median_loop_s": loop_s,
        "entries_per_s": entries / statistics.median(r.seconds for r in runs),
        "loop_entries_per_s": entries / loop_s,
        "us_per_entry": 1e6 * loop_s / entries,
        "max_anon_mb": max(r.max_anon_kb for r in runs) / 1024,
        "max_rss_mb": max((r.max_rss_kb or 0) for r in runs) / 1024,
        "counters": replay_counters(runs[-1].stderr),
        "pair": _pair_counters(runs[-1].stderr),
    }


def _pair_counters(stderr: str) -> dict[str, int]:
    for line in stderr.splitlines():
        if line.strip().startswith("training_stalled (pair):"):
            return {k: int(v) for k, v in (kv.split("=") for kv in line.split(":", 1)[1].split())}
    return {}


def daemon_catchup(directory: Path, config: Path, expected: int, work: Path) -> dict[str, Any]:
    """The daemon from the head of `directory` until it has read `expected` entries."""
    state = work / f"state-{directory.name}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            MONITOR,
            "run",
            "-c",
            str(config),
            "--journal-dir",
            str(directory),
            "--state-dir",
            str(state),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak_anon = peak_rss = 0
    read = 0
    try:
        while time.monotonic() - started < 900:
            s = proc_sample(proc.pid)
            if s:
                peak_rss, peak_anon = max(peak_rss, s[1]), max(peak_anon, s[2])
            try:
                text = http_get(base + "/metrics")
            except OSError:
                time.sleep(0.2)
                continue
            for line in text.splitlines():
                if line.startswith('aisha_monitor_journal_entries_total{unit="aisha-api.service"}'):
                    read = int(float(line.split()[-1]))
            if read >= expected:
                break
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited {proc.returncode} while catching up")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        s = proc_sample(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    size = sum(f.stat().st_size for f in state.glob("state.sqlite*"))
    return {
        "entries": read,
        "seconds": seconds,
        "entries_per_s": read / seconds,
        "peak_anon_mb": peak_anon / 1024,
        "peak_rss_mb": peak_rss / 1024,
        "end_anon_mb": (s[2] / 1024) if s else None,
        "state_file_mb": size / 2**20,
    }


def alert_book_cost(sizes: tuple[int, ...] = (10, 100, 1000, 10_000)) -> list[dict[str, Any]]:
    """What the daemon does with its alert book on every committed batch (monitor/daemon/loop.py
    step(): book.expire, the JSON snapshot written into the state's meta table, book.firing and
    book.sendable for the alerter), timed with N active unknown-status keys (request_ids). An
    unknown status pages for one_off_ttl (1h), so N is the distinct request_ids with an unknown
    status in the last hour."""
    import sqlite3
    import tracemalloc

    from monitor.config.schema import load_config
    from monitor.core.model import Event, EventKind, Severity
    from monitor.daemon.alerts import AlertBook

    config = load_config(REPO / "config.yaml")
    out = []
    for n in sizes:
        book = AlertBook(config)
        now = time.time_ns() // 1000
        tracemalloc.start()
        book.apply(
            [
                Event(now - 1000 * i, "unknown_status", EventKind.UNKNOWN_VALUE,
                      Severity.CRITICAL, f"{i:08x}-c830-400c-a066-b8cf74cf1e9f",
                      {"status": "completed_x", "normalized": ""},
                      f"unknown status 'completed_x' for request_id {i:08x}-c830-400c-a066-"
                      "b8cf74cf1e9f: the service dropped it; it matches no known status")
                for i in range(n)
            ],
            now,
        )  # fmt: skip
        held = tracemalloc.get_traced_memory()[0]  # the events are gone: what the book keeps
        tracemalloc.stop()
        with tempfile.TemporaryDirectory() as tmp:
            db = sqlite3.connect(Path(tmp) / "s.sqlite", isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            unchanged, size = _book_batches(book, db, now, new_keys=False)
            changed, _ = _book_batches(book, db, now, new_keys=True)
            db.close()
        out.append(
            {
                "keys": n,
                "ms_per_batch": 1000 * statistics.median(unchanged),
                "ms_per_batch_one_new_key": 1000 * statistics.median(changed),
                "json_bytes": size,
                "bytes_per_key": held / n,
            }
        )
    return out


def _book_batches(book: Any, db: Any, now: int, *, new_keys: bool) -> tuple[list[float], int]:
    """20 committed batches as the daemon does them (monitor/daemon/loop.py step()): expire, the
    book's JSON into the state only when it changed since the last commit, firing and sendable;
    with `new_keys`, every batch first brings one more unknown status (a new key)."""
    from monitor.core.model import Event, EventKind, Severity

    times, size = [], 0
    for i in range(20):
        t = time.perf_counter()
        if new_keys:
            rid = f"new-{i}-{now}"
            book.apply(
                [Event(now, "unknown_status", EventKind.UNKNOWN_VALUE, Severity.CRITICAL, rid,
                       {"status": "completed_x", "normalized": ""}, f"unknown status for {rid}")],
                now,
            )  # fmt: skip
        book.expire(now)
        if book.unsaved():
            version = book.version
            text = json.dumps(book.snapshot(), ensure_ascii=False)
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('alerts', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (text,),
            )
            db.execute("COMMIT")
            book.mark_saved(version)
            size = len(text.encode())
        book.firing()
        book.sendable()
        times.append(time.perf_counter() - t)
    return times, size


def config_copy(dest: Path, extra_rules: list[dict[str, Any]] | None = None) -> Path:
    doc = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    doc["journal"]["start"] = "head"
    doc["health_checks"] = []
    doc["alerting"]["alertmanager_urls"] = []
    if extra_rules:
        doc["rules"] += extra_rules
    dest.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    check = subprocess.run(
        [MONITOR, "check-config", "-c", str(dest)], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        raise SystemExit(f"{dest} is invalid:\n{check.stderr}")
    return dest


def synthetic_rules(n: int = 41) -> list[dict[str, Any]]:
    """n match rules with distinct literals: the first ones hit ordinary lines, the rest never."""
    rules: list[dict[str, Any]] = []
    hitting = [PREFIX + p for p in HITTING] + list(HITTING_ACCESS)
    for i in range(n):
        if i < len(hitting):
            pattern = hitting[i]
        else:
            pattern = (
                PREFIX + rf"\[SYNTH-{i:02d}\] операция (?P<op>\w+) не выполнена для "
                r"(?P<request_id>[^\s,]+)"
            )
        rules.append(
            {
                "name": f"synthetic_{i:02d}",
                "type": "match",
                "severity": "info",
                "metric": f"synthetic_{i:02d}",
                "pattern": pattern,
            }
        )
    return rules


def run(
    quick: bool = False, runs: int | None = None, big: Path = Path("/tmp/bench1m"), seed: int = 3
) -> dict[str, Any]:
    runs = runs or (1 if quick else 3)
    size = 200_000 if quick else 500_000
    work = Path(tempfile.mkdtemp(prefix="aisha-scale-"))
    try:
        shipped = config_copy(work / "config.yaml")
        dirs = {kind: generate(kind, size, seed) for kind in ("base", "mass", "bulk")}
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
        # --- 50 rules on the 1M journal
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


if __name__ == "__main__":
    sys.exit(main())

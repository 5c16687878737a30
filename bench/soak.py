"""`python -m bench.soak [--minutes 30] [--rate 5000]`: the daemon under a steady load with handlers
and a real Alertmanager in the loop; every `--every` seconds a row with its RSS, open fds
(/proc/PID/fd), state.sqlite (+ -wal) size, entries counted, lag and handler/alert counters.
At the end: entries written vs counted (lost), unknown statuses reported more than once
(duplicates), replays received more than once.

All on 127.0.0.1 in a temporary directory, with the test suite's own fixtures: a live journal
written by systemd-journal-remote, an aisha-api stand-in that logs the seed's lines for each
replay (so replays are verified), a fal.ai stand-in answering IN_PROGRESS (stalled trainings get
provider_status runs), and prometheus-alertmanager. Every process started is stopped.

Per second at --rate 5000: ~98% access lines, 5 trainings started (4 end in time, 1 stalls after
the 30 s deadline), 2 unknown statuses (1 replayed, 1 truly unknown: alerts only). The
retention windows are 5 minutes (`--ttl`): the alert book, the closed trainings and the handler
jobs reach their steady size within the first minutes, so growth after that is a leak. Archived
journal files are deleted under the daemon as journald's vacuuming would (all but the newest
two), so its open file descriptors can level off too.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from systemd import journal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import Alertmanager  # noqa: E402 - after the path is set
from tests.faults.conftest import StandIn, api_logger, tune  # noqa: E402
from tests.integration.daemon_fixtures import (  # noqa: E402
    ACCESS,
    API_UNIT,
    LiveJournal,
    MonitorDaemon,
    count_entries,
    daemon_env,
)

P = "aisha_monitor_"


class Writer(threading.Thread):
    """`rate` aisha-api entries per second, in ticks of 0.1 s."""

    def __init__(self, lj: LiveJournal, rate: int) -> None:
        super().__init__(name="writer", daemon=True)
        self.lj, self.rate = lj, rate
        self.stop = threading.Event()
        self.written = 0
        self.unknown: list[str] = []
        self.error: BaseException | None = None

    def tick(self, n: int, second: int, part: int) -> list[bytes]:
        lj, out = self.lj, []
        if part == 0:  # once a second
            for j in range(5):
                rid = f"t{second}-{j}"
                out.append(
                    lj.app(f"Запуск обучения аватара a{j} отправлен в FAL AI, request_id: {rid}")
                )
            for j, status in enumerate(("OK", f"weird-{second % 50}")):
                key, pid = f"u{second}-{j}", 7000 + j
                self.unknown.append(key)
                out += [
                    lj.app(
                        f"[WEBHOOK BACKGROUND] Начинаем обработку {key}, статус: {status}", pid=pid
                    ),
                    lj.app(
                        f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}",
                        pid=pid,
                        level="WARNING",
                    ),
                ]
        if part == 5:  # half a second later, 4 of the 5 trainings end
            out += [lj.app(f"[TRAINING COMPLETED] t{second}-{j}: ok") for j in range(4)]
        out += [lj.raw(ACCESS, pid=4100 + i % 4) for i in range(max(0, n - len(out)))]
        return out

    def run(self) -> None:
        try:
            per_tick = self.rate // 10
            next_at, i = time.monotonic(), 0
            while not self.stop.is_set():
                batch = self.tick(per_tick, i // 10, i % 10)
                self.lj.send(batch)
                self.written += len(batch)
                i += 1
                next_at += 0.1
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - reported at the end
            self.error = e


def proc_figures(pid: int) -> tuple[float, float, int]:
    """VmRSS and RssAnon (its own heap: VmRSS also counts the mmapped journal files) in MiB,
    and open fds."""
    kb = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            kb[name] = int(value.split()[0])
    return kb["VmRSS"] / 1024, kb["RssAnon"] / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def state_size(state: Path) -> float:
    return sum(p.stat().st_size for p in state.glob("state.sqlite*")) / (1 << 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=5000, help="aisha-api entries per second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between rows")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (journals)")
    parser.add_argument(
        "--ttl",
        default="5m",
        help="retention windows (one_off_ttl, the pair rule's forget_after, handlers' "
        "max_event_age) shortened to this, so every bounded structure reaches its steady state "
        "within the run and what is left growing is a leak; 'shipped' keeps the shipped ones",
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="aisha-soak-"))
    (work / "journal").mkdir()
    (work / "am").mkdir()
    lj = LiveJournal(work / "journal", work / "journal-remote.log")
    am = Alertmanager(work / "am").start()
    api = StandIn(on_request=api_logger(lj)).start()
    fal = StandIn(respond=lambda r: (200, b'{"status": "IN_PROGRESS"}')).start()

    def edit(data: dict[str, Any]) -> None:
        data["handlers"]["provider_status"]["recheck_interval"] = "1m"
        if args.ttl != "shipped":
            data["alerting"]["one_off_ttl"] = args.ttl
            for rule in data["rules"]:
                if rule["type"] == "pair":
                    rule["forget_after"] = args.ttl
            for handler in data["handlers"].values():
                handler["max_event_age"] = args.ttl

    config = tune(work / "config.yaml", edit, deadline="30s")
    env = {"AISHA_API_URL": api.url, "ALERTMANAGER_URL": am.url, "FAL_QUEUE_URL": fal.url,
           "FAL_KEY": "soak"}  # fmt: skip
    d = MonitorDaemon(config, lj.directory, work / "state", work, daemon_env(env))
    writer = Writer(lj, args.rate)
    try:
        d.start()
        if d.proc is None:
            raise RuntimeError("the daemon did not start")
        writer.start()
        began = time.monotonic()
        print(
            f"soak: {args.rate} entries/s for {args.minutes:g} min, retention windows "
            f"{args.ttl}; work dir {work}"
        )
        head = ("t(s)", "RSS MB", "anon MB", "fds", "state MB", "written", "counted", "lag s",
                "events", "handler runs", "alerts sent", "alerts failed")  # fmt: skip
        print("  ".join(f"{h:>12}" for h in head))
        rows = []
        vacuumed = 0  # aisha-api entries in the files deleted under the daemon
        # every unknown-status event, by identity, from the API's latest 1000 at each row (the
        # state file keeps only the latest events): a key reported twice has two identities
        reported: set[tuple[str, str]] = set()
        while time.monotonic() - began < args.minutes * 60:
            writer.stop.wait(args.every)
            vacuumed += vacuum(lj.directory)
            reported |= unknown_events(d)
            m = d.metrics()
            rss, anon, fds = proc_figures(d.proc.pid)
            runs = sum(v for (n, _), v in m.items() if n == P + "handler_runs_total")
            events = sum(v for (n, _), v in m.items() if n == P + "events_total")
            row = (round(time.monotonic() - began), rss, anon, fds, state_size(work / "state"),
                   writer.written, m.get((P + "journal_entries_total", (("unit", API_UNIT),)), 0),
                   m.get((P + "journal_lag_seconds", ()), 0), events, runs,
                   m.get((P + "alert_deliveries_total", (("outcome", "sent"),)), 0),
                   m.get((P + "alert_deliveries_total", (("outcome", "failed"),)), 0))  # fmt: skip
            rows.append(row)
            print("  ".join(f"{v:>12.1f}" if isinstance(v, float) else f"{v:>12}" for v in row),
                  flush=True)  # fmt: skip
        writer.stop.set()
        writer.join(10)
        if writer.error is not None:
            raise writer.error
        total = vacuumed + lj.count()
        deadline = time.monotonic() + 60
        counted = 0.0
        while time.monotonic() < deadline:
            counted = d.metric(P + "journal_entries_total", unit=API_UNIT) or 0.0
            if counted >= total:
                break
            writer.stop.wait(0.2)
            total = vacuumed + lj.count()
        reported |= unknown_events(d)
        keys = collections.Counter(key for key, _ in reported)
        replays = collections.Counter(r.json()["request_id"] for r in api.requests)
        missing = [k for k in writer.unknown if keys[k] == 0]
        print(
            f"\nentries written {total}, counted {counted:.0f} (lost {total - counted:.0f}); "
            f"unknown statuses {len(writer.unknown)}, reported {sum(keys.values())} "
            f"(missing {len(missing)}, duplicates {sum(1 for v in keys.values() if v > 1)}); "
            f"replays {sum(replays.values())} (sent twice: "
            f"{sum(1 for v in replays.values() if v > 1)}); alerts in Alertmanager "
            f"{len(am.alerts())}"
        )
        if rows:
            first, last = rows[0], rows[-1]
            print(f"RSS {first[1]:.1f} -> {last[1]:.1f} MB (anon {first[2]:.1f} -> {last[2]:.1f}), "
                  f"fds {first[3]} -> {last[3]}, state {first[4]:.1f} -> {last[4]:.1f} MB "
                  f"over {last[0]} s")  # fmt: skip
        print(f"daemon exit code on SIGTERM: {d.stop()}")
        return 0 if total == counted and not missing else 1
    finally:
        writer.stop.set()
        d.shutdown()
        fal.stop()
        api.stop()
        am.stop()
        lj.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)  # ~100 MB of journal per minute


def unknown_events(d: MonitorDaemon) -> set[tuple[str, str]]:
    """(request_id, time) of each unknown-status event among the daemon's latest 1000."""
    return {(e["key"], e["time"]) for e in d.events() if e["kind"] == "unknown_value"}


def vacuum(directory: Path, keep: int = 2) -> int:
    """Delete all but the newest `keep` archived journal files, as journald's SystemMaxUse= does
    on a real host (the daemon keeps every file of its directory open until it is deleted); the
    aisha-api entries they held."""
    archived = sorted(directory.glob("*@*.journal"), key=lambda f: f.stat().st_mtime)
    gone = 0
    for path in archived[:-keep]:
        gone += count_entries(journal.Reader(files=[str(path)]))
        path.unlink()
    return gone


if __name__ == "__main__":
    raise SystemExit(main())

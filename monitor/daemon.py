"""`aisha-monitor run`: follow the journal, evaluate rules, commit state, serve HTTP, talk to
systemd. This is the composition root: the only place that builds and wires the parts."""

from __future__ import annotations

import collections
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

from handlers.base import Job, Outcome
from monitor import __version__
from monitor.alerter import Alerter
from monitor.alerts import AlertBook
from monitor.config import Config, ConfigError, load_config
from monitor.engine import Engine, build_rules
from monitor.health import HealthChecker
from monitor.httpserver import Backend, HttpServer
from monitor.journal import JournalError, JournalSource, notify
from monitor.metrics import Metrics, build_families
from monitor.model import Event, EventKind, Gate, Severity, format_time, us_to_datetime
from monitor.outbox import Outbox, Worker
from monitor.replay import ReplayOptions, fields_for, open_source
from monitor.state import (
    RETRY_MAX_S,
    RETRY_MIN_S,
    Position,
    StateError,
    StateStore,
    StateWriteError,
    WriteRetry,
    recovery,
)

log = logging.getLogger(__name__)

BATCH_ENTRIES = 5000  # entries per committed batch at most …
BATCH_SECONDS = 0.5  # … and seconds
WAIT_SECONDS = 0.05  # journal wait(): wakes on append (inotify) or after this
# once caught up, batches start at least this far apart: under a steady stream of lines a batch
# per append would commit a few lines at a time, hundreds of times a second
MIN_BATCH_INTERVAL_S = 0.02
SLOW_BATCH_S = 0.1  # a batch this long is logged, with how long its commit took
PRUNE_EVERY_S = 600.0  # finished handler jobs past their retention are deleted this often
TICK_GRACE_US = 2_000_000  # wall-clock deadlines fire this late, for entries still in flight
HEALTHY_WITHIN_S = 30.0  # /healthz: the loop went round within this
STOP_GRACE_S = 3.0  # SIGTERM: runs and deliveries in flight get this long, all together
RECENT_EVENTS = 1000
SHOWN_PAIRS = 500
# kinds that say something is wrong: logged as warnings whatever the rule's severity
_NEWS = frozenset(
    {
        EventKind.UNKNOWN_VALUE,
        EventKind.STALLED,
        EventKind.ABSENCE,
        EventKind.THRESHOLD,
        EventKind.HEALTH,
    }
)


@dataclass(frozen=True, slots=True)
class RunOptions:
    config_path: str | None = None
    journal_dir: str | None = None
    journal_files: tuple[str, ...] = ()
    state_dir: str | None = None
    listen: str | None = None
    dry_run: bool = False


def state_directory(opts: RunOptions, config: Config) -> str:
    """--state-dir, else $STATE_DIRECTORY (set by systemd's StateDirectory=), else the config's."""
    if opts.state_dir:
        return opts.state_dir
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return from_systemd or config.state.directory


class Daemon:
    def __init__(self, config: Config, opts: RunOptions) -> None:
        self.config = config
        self.opts = opts
        self.metrics = Metrics()
        self.store = StateStore(state_directory(opts, config))
        try:
            self.engine = self._new_engine(config)
            self.position = self.store.position()
        except (ValueError, TypeError, AttributeError, KeyError) as e:  # readable, but damaged
            path = self.store.path
            raise StateError(
                f"state file {path} holds damaged values ({e}); {recovery(path)}"
            ) from e
        self.lock = threading.Lock()  # held while the engine changes; the HTTP side reads under it
        self.recent: collections.deque[dict[str, Any]] = collections.deque(
            self.store.recent_events(RECENT_EVENTS), maxlen=RECENT_EVENTS
        )
        self.health = HealthChecker(config.health_checks, self.metrics)
        self.book = AlertBook(config)
        self.book.restore(self.store.meta("alerts") or [])
        self.outbox = Outbox(config, self.store.db, dry_run=opts.dry_run)
        self.worker = Worker(config, opts.dry_run)
        self._pending_events = self.outbox.recover(time.time_ns() // 1000)
        for name in config.handlers:
            for outcome in Outcome:
                self.metrics.handler_runs.labels(name, str(outcome))
        self.source: JournalSource | None = None
        self.caught_up = False
        self._was_caught_up = False
        self._step_started = 0.0  # monotonic
        self._last_commit_s = 0.0
        self._pruned = time.monotonic()
        self.lag_s = 0.0
        self._seen_errors = (0, 0)
        self.started = time.monotonic()
        self.last_loop = time.monotonic()
        self.reload_problems: list[str] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._stuck: WriteRetry | None = None  # a batch the state file refused, retried
        self._publish()
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        self.metrics.loop_heartbeat.set(time.time())  # not 0 before the first round
        token = _read_token(config.http.token_file)
        backend = Backend(
            self.metrics, self.state_view, self.events_view, self.healthy, self.ready, token
        )
        self.http = HttpServer(opts.listen or config.http.listen, backend)
        self.alerter = Alerter(config.alerting, self.metrics, f"http://{self.http.address}/")

    # --- building ------------------------------------------------------------------------------

    def _new_engine(self, config: Config) -> Engine:
        engine = Engine(
            build_rules(config),
            config.journal.max_message_bytes,
            host_label=config.journal.host_label,
        )
        engine.collect_ended = True  # replays are verified by their training's end line
        self.store.restore(engine)
        self.store.drop_rules_except({r.base.name for r in engine.rules})
        return engine

    def _open_source(self, start: str | None = None) -> JournalSource:
        opts = ReplayOptions(directory=self.opts.journal_dir, files=self.opts.journal_files)
        source = open_source(self.config, opts, fields_for(self.engine))
        self.engine.fill = source.fill
        mode, cursor = start or self.config.journal.start, self.position.cursor
        if mode in ("resume", "head") and cursor:
            if not source.seek_cursor(cursor):
                when = format_time(us_to_datetime(self.position.realtime_us))
                why = "vacuumed, or another boot"
                log.warning(
                    "stored cursor no longer in the journal (%s); resuming at %s", why, when
                )
                self.metrics.cursor_resets.inc()
                source.seek_realtime_us(self.position.realtime_us + 1)
        elif mode == "head":
            source.seek_head()
        else:
            source.seek_tail()
        return source

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        self.source = self._open_source()
        self.http.start()
        self.health.start()
        self.alerter.start()
        self.worker.start()
        log.info(
            "aisha-monitor %s: %d rules, listening on http://%s/",
            __version__,
            len(self.engine.rules),
            self.http.address,
        )
        notify(f"READY=1\nSTATUS=started, {len(self.engine.rules)} rules")
        watchdog_s = int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6
        last_watchdog = last_status = 0.0
        entries_at_status = self.position_entries()
        try:
            while not self._stop.is_set():
                if self._stuck is not None:
                    self._retry_write(self._stuck)  # nothing is read or reloaded until it is in
                else:
                    if self._reload.is_set():
                        self._reload.clear()
                        self.reload()
                    try:
                        if self.caught_up:
                            self._pace()
                        self.source.wait(0 if not self.caught_up else WAIT_SECONDS)
                        self.step()
                    except (JournalError, OSError) as e:
                        # never stop on the journal: reopen it at the last committed cursor
                        log.error(
                            "journal read failed (%s); reopening at the last committed position",
                            e,
                        )
                        self.metrics.read_errors.inc()
                        self._reopen()
                now = time.monotonic()
                self.last_loop = now
                self.metrics.loop_heartbeat.set(time.time())
                if watchdog_s and now - last_watchdog >= watchdog_s / 4:
                    notify("WATCHDOG=1")
                    last_watchdog = now
                if now - last_status >= 5 and self._stuck is None:
                    total = self.position_entries()
                    rate = (
                        (total - entries_at_status) / max(now - last_status, 1e-9)
                        if last_status
                        else 0.0
                    )
                    notify(
                        f"STATUS={rate:.0f} entries/s, lag {self.lag_s:.1f}s, "
                        f"{self.open_trainings()} open trainings"
                    )
                    entries_at_status, last_status = total, now
        finally:
            notify("STOPPING=1")
            # everything is told to stop first, then waited for together: slow peers cost
            # STOP_GRACE_S once, not once per thread
            deadline = time.monotonic() + STOP_GRACE_S
            self.worker.request_stop()
            self.alerter.request_stop()
            self.health.stop()  # waits at most 2 s, within the grace
            self.worker.join(deadline)
            if self._stuck is None:  # else the engine is ahead of the committed position
                with self.lock:
                    self._apply_results_at_exit()
            self.alerter.join(deadline)
            self.http.stop()
            self.source.close()
            self.store.close()
        if self._stuck is not None:
            log.warning(
                "stopped with a batch the state file refused: the next start reads the journal "
                "again from the last committed position (nothing lost, nothing counted twice)"
            )
        else:
            log.info("stopped cleanly")
        return 0

    def _reopen(self) -> None:
        if self.source is not None:
            self.source.close()
        # resume from the committed cursor whatever `start` says: nothing lost, nothing twice
        self.source = self._open_source("resume")
        self._seen_errors = (0, 0)

    def position_entries(self) -> int:
        return sum(self.position.unit_entries.values())

    def open_trainings(self) -> int:
        return sum(r.counters().get("open", 0) for r in self.engine.rules)

    def _pace(self) -> None:
        """Let lines gather for a moment after a batch (SIGTERM ends the wait)."""
        pause = self._step_started + MIN_BATCH_INTERVAL_S - time.monotonic()
        if pause > 0:
            self._stop.wait(pause)

    def step(self) -> None:
        """Read one batch, evaluate it, commit it with the cursor, then publish."""
        if self.source is None:
            raise RuntimeError("step() before run() opened the journal")
        events: list[Event] = []
        deadline = time.monotonic() + BATCH_SECONDS
        started = self._step_started = time.monotonic()
        with self.lock:
            units = dict(self.position.unit_entries)
            hosts = dict(self.position.host_entries)
            gate = self.engine.gate()
            unit = self.source.fixed_unit
            if gate is not None and unit is not None and not self.config.journal.host_label:
                read, last_us = self._read_gated(self.source, gate, events, deadline)
                if read:
                    units[unit] = units.get(unit, 0) + read
            else:
                read, last_us = self._read_each(self.source, units, hosts, events, deadline)
            now_us = time.time_ns() // 1000
            # the wall clock takes over once caught up, but not in the batch that got there: the
            # backlog's last entries are committed before what falls due on the wall clock (after
            # a long outage that can be every open training at once)
            if self.caught_up and (self._was_caught_up or not read):
                events += self.engine.tick(now_us - TICK_GRACE_US)
            self._was_caught_up = self.caught_up
            events += self._drain_health()
            # a replay's verify_within, like a rule's deadline, runs on journal time while
            # catching up: an end line logged in time and not read yet is not missed
            read_to_us = now_us - TICK_GRACE_US if self.caught_up else last_us
            events += self._handler_events(events, now_us, read_to_us)
            if time.monotonic() - self._pruned >= PRUNE_EVERY_S:
                self._pruned = time.monotonic()
                self.outbox.prune(now_us)
            self.book.apply(events, now_us)
            expired = self.book.expire(now_us)
            if not read and not events and not expired and not self.outbox.has_ops():
                self._set_lag(0.0)
                self._send_alerts()
                self._hand_out(now_us)
                return
            position = self.position
            if read:
                position = Position(self.source.cursor(), last_us, units, hosts)
            book_version = self.book.version
            # an unchanged book is in the state already: rewriting it costs ~2 MB per 10k keys
            extra = {"alerts": self.book.snapshot()} if self.book.unsaved() else {}
            then = functools.partial(
                self._committed, position, book_version, events, last_us, started
            )
            committing = time.monotonic()
            try:
                self.store.commit(position, self.engine, events, extra, self.outbox.take_ops())
            except StateWriteError as e:
                self._write_refused(e, then)
                return
            self._last_commit_s = time.monotonic() - committing
        then()

    def _read_each(
        self,
        source: JournalSource,
        units: dict[str, int],
        hosts: dict[str, int],
        events: list[Event],
        deadline: float,
    ) -> tuple[int, int]:
        """One batch, every entry through the engine, counted by unit (and host): (entries read,
        time of the last)."""
        read = last_us = 0
        by_host = self.config.journal.host_label
        for entry in source:
            due, produced = self.engine.observe(entry)
            events += due
            if produced:
                cursor = source.cursor()
                events += [replace(e, cursor=cursor) for e in produced]
            units[entry.unit] = units.get(entry.unit, 0) + 1
            if by_host:
                hosts[entry.hostname] = hosts.get(entry.hostname, 0) + 1
            read += 1
            last_us = entry.realtime_us
            if read >= BATCH_ENTRIES or (not read & 0xFF and time.monotonic() > deadline):
                self.caught_up = False
                return read, last_us
        self.caught_up = True
        return read, last_us

    def _read_gated(
        self, source: JournalSource, gate: Gate, events: list[Event], deadline: float
    ) -> tuple[int, int]:
        """The same for one unit: lines that no rule can match are only counted (the engine's
        gate, as replay's workers use it), not decoded or evaluated one by one."""
        read = last_us = 0
        for skipped, last_skipped_us, entry in source.gated(gate):
            if skipped:
                events += self.engine.skip(skipped, last_skipped_us)
                read += skipped
                last_us = last_skipped_us
            if entry is not None:
                due, produced = self.engine.observe(entry)
                events += due
                if produced:
                    cursor = source.cursor()
                    events += [replace(e, cursor=cursor) for e in produced]
                read += 1
                last_us = entry.realtime_us
            if read >= BATCH_ENTRIES or time.monotonic() > deadline:
                self.caught_up = False
                return read, last_us
        self.caught_up = True
        return read, last_us

    def _committed(
        self,
        position: Position,
        book_version: int,
        events: list[Event],
        last_us: int,
        started: float,
    ) -> None:
        """The batch is in the state file: only now is any of it published, handed to a
        handler, sent to Alertmanager or logged."""
        now_us = time.time_ns() // 1000
        with self.lock:
            self.book.mark_saved(book_version)
            self.outbox.arm_watches()
            self.position = position
            self._publish()
            self._send_alerts()
            self._hand_out(now_us)
        self._set_lag(0.0 if self.caught_up else max(0.0, (now_us - last_us) / 1e6))
        self._count_source_problems()
        took = time.monotonic() - started
        self.metrics.batch_seconds.observe(took)
        if took >= SLOW_BATCH_S:
            log.info(
                "slow batch: %.0f ms (commit %.0f ms), %d events",
                took * 1000,
                self._last_commit_s * 1000,
                len(events),
            )
        self._dispatch(events)

    def _write_refused(self, e: StateWriteError, then: Callable[[], None]) -> None:
        """The journal is not read on: the run loop writes the same batch again, then `then`."""
        now = time.monotonic()
        if self._stuck is None:
            self._stuck = WriteRetry(then, now)
        stuck = self._stuck
        self.metrics.state_write_errors.inc()
        if not stuck.failed(now):
            return  # logged at most once a minute
        if stuck.failures == 1:
            log.error(
                "%s; the journal waits at the last committed entry and the same batch is "
                "written again every %g-%g s until it goes in (see the README runbook)",
                e,
                RETRY_MIN_S,
                RETRY_MAX_S,
            )
        else:
            log.error("%s, still: %d attempts in %.0f s", e, stuck.failures, now - stuck.since)
        notify(f"STATUS={e}; retrying ({stuck.failures} attempts)")

    def _retry_write(self, stuck: WriteRetry) -> None:
        """When due, write the refused batch again; until then wait (SIGTERM ends the wait)."""
        wait_s = stuck.retry_at - time.monotonic()
        if wait_s > 0:
            self._stop.wait(min(wait_s, 1.0))  # short: the loop keeps feeding the watchdog
            return
        try:
            self.store.retry()
        except StateWriteError as e:
            self._write_refused(e, stuck.then)
            return
        self._stuck = None
        log.warning(
            "the state file took the batch after %.0f s and %d refused attempts; reading on",
            time.monotonic() - stuck.since,
            stuck.failures,
        )
        stuck.then()

    def _handler_events(self, events: list[Event], now_us: int, read_to_us: int) -> list[Event]:
        """Workers' results, verifications (the journal read up to `read_to_us`) and new jobs:
        events of their own (under the lock)."""
        out, self._pending_events = self._pending_events, []
        while not self.worker.results.empty():
            job, source_rule, result = self.worker.results.get_nowait()
            out += self.outbox.apply(job, source_rule, result, now_us)
        out += self.outbox.verify(self.engine.take_ended(), events, read_to_us)
        out += self.outbox.enqueue(events, now_us, self._payload_of)
        return out

    def _payload_of(self, spec: object, key: str) -> str | None:
        rule = getattr(spec, "payload_rule", None)
        groups = self.engine.keyed_groups(rule, key) if rule else None
        return groups.get("payload") if groups else None

    def _hand_out(self, now_us: int) -> None:
        """Jobs due now go to the worker, marked running in a commit of their own first."""
        due = self.outbox.due(now_us)
        if due:
            then = functools.partial(self._give_to_worker, due)
            try:
                self.store.write(self.outbox.take_ops())
            except StateWriteError as e:
                self._write_refused(e, then)  # not run before they are marked running
                return
            then()

    def _give_to_worker(self, due: list[tuple[Job, str]]) -> None:
        for item in due:
            self.worker.jobs.put(item)

    def _apply_results_at_exit(self) -> None:
        """Results that came back while stopping are recorded, not lost."""
        now_us = time.time_ns() // 1000
        events: list[Event] = []
        while not self.worker.results.empty():
            job, source_rule, result = self.worker.results.get_nowait()
            events += self.outbox.apply(job, source_rule, result, now_us)
        if events or self.outbox.has_ops():
            self.book.apply(events, now_us)
            try:
                extra = {"alerts": self.book.snapshot()}
                self.store.commit(self.position, self.engine, events, extra, self.outbox.take_ops())
            except StateWriteError as e:
                log.error(
                    "%s: these runs are taken up at the next start (never run again: a replay "
                    "is verified against the journal, any other run reported interrupted)",
                    e,
                )
                return
            self._dispatch(events)

    def _send_alerts(self) -> None:
        """Alerts describe the present: published only once caught up (called under the lock)."""
        for name, n in self.book.firing().items():
            self.metrics.alerts_firing.labels(name).set(n)
        if self.caught_up:
            self.alerter.publish(self.book.sendable())

    def _set_lag(self, seconds: float) -> None:
        self.lag_s = seconds
        self.metrics.lag.set(seconds)

    def _count_source_problems(self) -> None:
        if self.source is None:
            return
        errors, truncated = self.source.read_errors, self.source.truncated
        self.metrics.read_errors.inc(max(0, errors - self._seen_errors[0]))
        self.metrics.truncated.inc(max(0, truncated - self._seen_errors[1]))
        self._seen_errors = (errors, truncated)

    def _drain_health(self) -> list[Event]:
        out = []
        while not self.health.events.empty():
            out.append(self.health.events.get_nowait())
        return out

    def _publish(self) -> None:
        self.metrics.published = build_families(
            self.engine,
            self.position.unit_entries,
            self.config.journal.units,
            self.position.host_entries,
        )

    def _dispatch(self, events: list[Event]) -> None:
        """After the commit: count, remember for the API, log what a person should see."""
        for e in events:
            self.metrics.events.labels(e.rule, e.kind).inc()
            if e.kind == EventKind.HANDLER:
                self.metrics.handler_runs.labels(e.labels["handler"], e.labels["outcome"]).inc()
            self.recent.append(e.to_json())
            first_line = e.message.splitlines()[0] if e.message else ""
            crit = e.severity is Severity.CRITICAL and e.kind != EventKind.RESOLVED
            level = logging.WARNING if e.kind in _NEWS or crit else logging.INFO
            log.log(level, "%s %s: %s", e.rule, e.kind, first_line)

    # --- signals and reload --------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload.set()

    def reload(self) -> bool:
        """Load the config again. Invalid: refused, the old one keeps running. Valid: applied,
        open pairs and counters kept (through the state store, as across a restart)."""
        notify("RELOADING=1")
        try:
            config = load_config(self.opts.config_path)
        except ConfigError as e:
            self.reload_problems = [str(p) for p in e.problems]
            for problem in self.reload_problems:
                log.error("reload refused: %s", problem)
            self.metrics.reload_ok.set(0)
            notify("READY=1")
            return False
        with self.lock:
            journal_changed = config.journal != self.config.journal
            self.config = config
            self.engine = self._new_engine(config)
            book = AlertBook(config)
            book.restore(self.book.snapshot())
            self.book = book
            self.alerter.reconfigure(config.alerting)
            if self.source is not None:
                self.engine.fill = self.source.fill
            self._publish()
        if (self.opts.listen or config.http.listen) != self.http.address and not self.opts.listen:
            log.warning("http.listen changed: restart the daemon to apply it")
        if journal_changed and self.source is not None:
            self.source.close()
            self._seen_errors = (0, 0)
            self.source = self._open_source("resume")
        self.reload_problems = []
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())
        log.info("config reloaded: %d rules", len(self.engine.rules))
        notify("READY=1")
        return True

    # --- what HTTP shows -----------------------------------------------------------------------

    def healthy(self) -> bool:
        return time.monotonic() - self.last_loop < HEALTHY_WITHIN_S

    def ready(self) -> bool:
        return self.source is not None and not self._stop.is_set() and self._stuck is None

    def events_view(self, limit: int) -> list[dict[str, Any]]:
        return list(self.recent)[-limit:]

    def state_view(self) -> dict[str, Any]:
        now_us = time.time_ns() // 1000
        with self.lock:
            pairs, open_total, stalled_total = [], {}, {}
            for rule in self.engine.rules:
                open_pairs = getattr(rule, "open", None)
                if not isinstance(open_pairs, dict):
                    continue
                c = rule.counters()
                open_total[rule.base.name], stalled_total[rule.base.name] = (
                    c["open"],
                    c["stalled_open"],
                )
                for key, p in list(open_pairs.items())[:SHOWN_PAIRS]:
                    pairs.append(
                        {
                            "rule": rule.base.name,
                            "key": key,
                            "stalled": p.stalled,
                            "labels": dict(p.labels),
                            "started": format_time(us_to_datetime(p.start_us)),
                            "age_seconds": max(0.0, (now_us - p.start_us) / 1e6),
                        }
                    )
            rules = [
                {
                    "name": r.base.name,
                    "type": r.base.type,
                    "severity": str(r.base.severity),
                    "counters": r.counters(),
                }
                for r in self.engine.rules
            ]
            position = self.position
            specs = self.config.alerting.alerts
            alerts = [
                {"alertname": a.alertname, "severity": a.severity, "rule": a.rule,
                 "keys": list(a.keys), "since": format_time(us_to_datetime(a.starts_us)),
                 "summary": specs[a.alertname].summary if a.alertname in specs else ""}
                for a in self.book.sendable() if a.keys
            ]  # fmt: skip
        return {
            "generated_at": format_time(us_to_datetime(now_us)),
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self.started, 1),
            "journal": {
                "entries": sum(position.unit_entries.values()),
                "by_unit": dict(position.unit_entries),
                "last_entry_time": format_time(us_to_datetime(position.realtime_us))
                if position.realtime_us
                else None,
                "lag_seconds": self.lag_s,
                "caught_up": self.caught_up,
            },
            "config": {
                "source": self.config.source,
                "last_reload_ok": not self.reload_problems,
                "problems": self.reload_problems,
            },
            "open_pairs": sorted(pairs, key=lambda p: (not p["stalled"], p["started"])),
            "alerts": alerts,
            "handler_queue": {"open": self.outbox.queue_size(), "recent": self.outbox.recent(20)},
            "open_total": open_total,
            "stalled_total": stalled_total,
            "health": [r.to_json() for r in self.health.results.values()],
            "rules": rules,
        }

    def stop(self) -> None:
        self._stop.set()


def _read_token(path: str | None) -> str | None:
    if not path:
        return None
    return Path(path).read_text(encoding="utf-8").strip()

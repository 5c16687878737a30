"""The main loop of `aisha-monitor run`: each round reads a batch (reading stage), adds what
the wall clock, the health checks and the handler worker have to say, commits it all in one
transaction (commit stage), then publishes it (effects stage). It also feeds systemd (READY,
WATCHDOG, STATUS), takes SIGHUP (reload) and SIGTERM (finish the batch, commit, exit 0).
Every part it drives is built by monitor/app.py and handed in."""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from types import FrameType

from monitor import __version__
from monitor.config.schema import Config
from monitor.core.engine import Engine
from monitor.core.model import Event
from monitor.daemon.jobs import Payloads
from monitor.daemon.parts import Parts
from monitor.daemon.pulse import Pulse
from monitor.daemon.reading import Batch, read_batch
from monitor.daemon.reload import Preparing, ReloadRefusedError, apply, reopen
from monitor.daemon.state import Position
from monitor.daemon.view import snapshot
from monitor.journal.reader import JournalError, JournalSource, notify
from monitor.journal.source import open_at

log = logging.getLogger(__name__)

WAIT_SECONDS = 0.05  # journal wait(): wakes on append (inotify) or after this
# once caught up, batches start at least this far apart: under a steady stream of lines a batch
# per append would commit a few lines at a time, hundreds of times a second
MIN_BATCH_INTERVAL_S = 0.02
SLOW_BATCH_S = 0.1  # a batch this long is logged, with how long its commit took
TICK_GRACE_US = 2_000_000  # wall-clock deadlines fire this late, for entries still in flight
STOP_GRACE_S = 3.0  # SIGTERM: runs and deliveries in flight get this long, all together
LOOK_EVERY_S = 1.0  # the followed journal directory is looked at (a stat) at most this often


class Daemon:
    def __init__(self, parts: Parts) -> None:
        self.p = parts
        self.source: JournalSource | None = None
        self.caught_up = False
        self._was_caught_up = False
        self._step_started = 0.0  # monotonic
        self._looked_at = float("-inf")  # monotonic
        self.reload_problems: list[str] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._preparing: Preparing | None = None  # a reload being prepared in its thread
        self._publish_view()

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        p = self.p
        self.source = self._open_source()
        self._watch_journal()  # an empty directory is not ready, from the first answer on
        p.view.loop.source_open = True
        p.http.start()
        p.health.start()
        p.alerter.start()
        p.jobs.worker.start()
        n_rules = len(p.engine.rules)
        log.info(
            "aisha-monitor %s: %d rules, listening on http://%s/",
            __version__,
            n_rules,
            p.http.address,
        )
        notify(f"READY=1\nSTATUS=started, {n_rules} rules")
        pulse = Pulse(p.clock, int(os.environ.get("WATCHDOG_USEC", "0")) / 1e6, self.entries())
        try:
            while not self._stop.is_set():
                self._round()
                now = p.clock.monotonic()
                p.view.loop.last_round = now
                p.view.loop.write_refused = p.committer.stuck is not None
                p.metrics.loop_heartbeat.set(p.clock.now_us() / 1e6)
                pulse.beat(now, self._status if p.committer.stuck is None else None)
        finally:
            self._shutdown()
        if p.committer.stuck is not None:
            log.warning(
                "stopped with a batch the state file refused: the next start reads the journal "
                "again from the last committed position (nothing lost, nothing counted twice)"
            )
        else:
            log.info("stopped cleanly")
        return 0

    def _round(self) -> None:
        p = self.p
        if p.committer.stuck is not None:
            p.committer.retry(self._stop)  # nothing is read or reloaded until it is in
            return
        self.reload()
        try:
            if self.caught_up:
                self._pace()
            if self.source is not None:
                self.source.wait(0 if not self.caught_up else WAIT_SECONDS)
            self.step()
            self._watch_journal()
        except (JournalError, OSError) as e:
            # never stop on the journal: reopen it at the last committed cursor
            log.error("journal read failed (%s); reopening at the last committed position", e)
            p.metrics.read_errors.inc()
            self._reopen()

    def _shutdown(self) -> None:
        p = self.p
        notify("STOPPING=1")
        p.view.loop.stopping = True
        # everything is told to stop first, then waited for together: slow peers cost
        # STOP_GRACE_S once, not once per thread
        deadline = p.clock.monotonic() + STOP_GRACE_S
        p.jobs.worker.request_stop()
        p.alerter.request_stop()
        p.health.stop()  # waits at most 2 s, within the grace
        p.jobs.worker.join(deadline)
        if p.committer.stuck is None:  # else the engine is ahead of the committed position
            self._record_results_at_exit()
        p.alerter.join(deadline)
        p.http.stop()
        if self.source is not None:
            self.source.close()
        p.store.close()

    def entries(self) -> int:
        return sum(self.p.position.unit_entries.values())

    def _status(self) -> tuple[int, float, int]:
        open_ = sum(r.counters().get("open", 0) for r in self.p.engine.rules)
        return self.entries(), self.p.view.loop.lag_s, open_

    def _pace(self) -> None:
        """Let lines gather for a moment after a batch (SIGTERM ends the wait)."""
        pause = self._step_started + MIN_BATCH_INTERVAL_S - self.p.clock.monotonic()
        if pause > 0:
            self._stop.wait(pause)

    # --- one batch -----------------------------------------------------------------------------

    def step(self) -> None:
        """Read one batch, evaluate it, commit it with the cursor, then publish."""
        p = self.p
        if self.source is None:
            raise RuntimeError("step() before run() opened the journal")
        started = self._step_started = p.clock.monotonic()
        batch = Batch(dict(p.position.unit_entries), dict(p.position.host_entries))
        read_batch(self.source, p.engine, batch, p.clock, by_host=p.config.journal.host_label)
        self.caught_up = batch.caught_up
        now_us = p.clock.now_us()
        events = self._add_news(batch, now_us)
        p.book.apply(events, now_us)
        expired = p.book.expire(now_us)
        if not batch.read and not events and not expired and not p.jobs.outbox.has_ops():
            self._set_lag(0.0)
            p.effects.send_alerts(p.book, self.caught_up)
            if p.jobs.hand_out(now_us, p.committer):
                self._publish_view()
            return
        position = p.position
        if batch.read:
            position = Position(batch.cursor, batch.last_us, batch.units, batch.hosts)
        book_version = p.book.version
        # an unchanged book is in the state already: rewriting it costs ~2 MB per 10k keys
        extra = {"alerts": p.book.snapshot()} if p.book.unsaved() else {}
        ops = p.jobs.outbox.take_ops()
        then = functools.partial(self._committed, position, book_version, batch, started, bool(ops))
        if p.committer.commit(position, p.engine, events, extra, ops, then):
            then()

    def _add_news(self, batch: Batch, now_us: int) -> list[Event]:
        """The batch's events, and what the wall clock, the health checks and the handler
        jobs add to them."""
        p, events = self.p, batch.events
        # the wall clock takes over once caught up, but not in the batch that got there: the
        # backlog's last entries are committed before what falls due on the wall clock (after
        # a long outage that can be every open training at once)
        if self.caught_up and (self._was_caught_up or not batch.read):
            events += p.engine.tick(now_us - TICK_GRACE_US)
        self._was_caught_up = self.caught_up
        events += p.health.drain()
        # a replay's verify_within, like a rule's deadline, runs on journal time while
        # catching up: an end line logged in time and not read yet is not missed
        read_to_us = now_us - TICK_GRACE_US if self.caught_up else batch.last_us
        ended, payloads = p.engine.take_ended(), Payloads(p.engine.keyed)
        events += p.jobs.events(events, ended, payloads, now_us, read_to_us)
        return events

    def _committed(
        self,
        position: Position,
        book_version: int,
        batch: Batch,
        started: float,
        jobs_changed: bool,
    ) -> None:
        """The batch is in the state file: only now is any of it published, handed to a
        handler, sent to Alertmanager or logged."""
        p = self.p
        now_us = p.clock.now_us()
        p.book.mark_saved(book_version)
        p.jobs.outbox.arm_watches()
        p.position = position
        jobs_changed |= p.jobs.hand_out(now_us, p.committer)
        p.effects.dispatch(batch.events)
        self._set_lag(0.0 if self.caught_up else max(0.0, (now_us - batch.last_us) / 1e6))
        self._publish_view(jobs_changed)
        # /metrics last: whoever sees the batch counted there finds its events in the API too
        p.effects.publish(p.engine, position, p.config.journal.units)
        p.effects.send_alerts(p.book, self.caught_up)
        if self.source is not None:
            p.effects.count_source_problems(self.source)
        took = p.clock.monotonic() - started
        p.metrics.batch_seconds.observe(took)
        if took >= SLOW_BATCH_S:
            log.info(
                "slow batch: %.0f ms (commit %.0f ms), %d events",
                took * 1000,
                p.committer.last_commit_s * 1000,
                len(batch.events),
            )

    def _record_results_at_exit(self) -> None:
        """Results that came back while stopping are recorded, not lost."""
        p = self.p
        now_us = p.clock.now_us()
        events = p.jobs.results_at_exit(now_us)
        if not events and not p.jobs.outbox.has_ops():
            return
        p.book.apply(events, now_us)
        extra = {"alerts": p.book.snapshot()}
        ops = p.jobs.outbox.take_ops()
        if p.committer.commit(p.position, p.engine, events, extra, ops, lambda: None):
            p.effects.dispatch(events)
        else:
            log.error(
                "these runs are taken up at the next start (never run again: a replay is "
                "verified against the journal, any other run reported interrupted)"
            )

    def _set_lag(self, seconds: float) -> None:
        self.p.effects.set_lag(seconds)
        self.p.view.loop.lag_s = seconds
        self.p.view.loop.caught_up = self.caught_up

    def _publish_view(self, jobs_changed: bool = True) -> None:
        p = self.p
        p.view.current = snapshot(
            p.engine,
            p.position,
            p.book,
            p.jobs.outbox,
            p.config,
            self.reload_problems,
            p.view.current,
            jobs_changed,
        )

    # --- the journal ---------------------------------------------------------------------------

    def _open_source(
        self,
        start: str | None = None,
        config: Config | None = None,
        engine: Engine | None = None,
        why: str | None = None,
    ) -> JournalSource:
        """The journal as `config` says (the current one by default), for `engine`'s rules."""
        p = self.p
        config, engine = config or p.config, engine or p.engine
        source, reset = open_at(
            config.journal,
            engine,
            p.opts.journal_dir,
            p.opts.journal_files,
            start or config.journal.start,
            p.position.cursor,
            p.position.realtime_us,
            why,
        )
        if reset:
            p.metrics.cursor_resets.inc()
        return source

    def _reopen(self, why: str | None = None) -> JournalSource:
        """The journal again, after the committed cursor whatever `start` says: nothing lost,
        nothing twice. `why`: the followed directory was replaced, so without a committed
        cursor all of the new one is read (everything in it was written after the start)."""
        source = self._open_source("head" if why else "resume", why=why)
        if self.source is not None:
            self.source.close()
        self.source = source
        self.p.effects.new_source()
        return source

    def _watch_journal(self) -> None:
        """Once a second: is the followed directory there, with files, and the one the reader
        holds (sd_journal goes blind for good when its directory is deleted)?"""
        p, followed = self.p, self.source.followed if self.source is not None else None
        now = p.clock.monotonic()
        if followed is None:  # files, or the system journal (perhaps since a reload)
            p.view.loop.journal_problem = None
            return
        if now - self._looked_at < LOOK_EVERY_S:
            return
        self._looked_at = now
        look = followed.look()
        if look.reopen is not None:
            log.warning("%s; reopening the journal", look.reopen)
            try:
                reopened = self._reopen(look.reopen).followed
                if reopened is not None:  # files it cannot take do not make it reopen again
                    reopened.known_unheld = look.unheld
            except (JournalError, OSError) as e:  # gone again meanwhile: the next look retries
                log.error("cannot reopen the journal: %s", e)
        if look.problem != p.view.loop.journal_problem:
            if look.problem:
                log.warning("%s: nothing is read until that changes", look.problem)
            else:
                log.info("journal files in %s again", followed.directory)
            p.view.loop.journal_problem = look.problem

    # --- signals and reload --------------------------------------------------------------------

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload.set()

    def stop(self) -> None:
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP starts preparing the config in a thread while the loop reads on; once it is
        ready, the loop applies all of it or none of it (monitor/daemon/reload.py). A SIGHUP
        that comes meanwhile has the file prepared again and that result applied instead: the
        latest file wins. Systemd hears RELOADING=1 once, and READY=1 when it is settled."""
        preparing = self._preparing
        if preparing is not None and preparing.done():
            self._preparing = None
            if not self._reload.is_set():
                self._apply_reload(preparing)
                preparing = None  # settled (READY=1): a SIGHUP from now on is a new reload
        if self._reload.is_set() and self._preparing is None:
            self._reload.clear()
            if preparing is None:
                notify("RELOADING=1")
            self._preparing = Preparing(self.p.opts, self.p.config, self.p.engine.matcher)

    def _apply_reload(self, preparing: Preparing) -> None:
        """Applied, open pairs and counters are kept (through the state store, as across a
        restart)."""
        p = self.p
        try:
            reloaded = reopen(
                preparing.result(),
                p.config,
                p.engine,
                lambda c, e: self._open_source("resume", c, e),
            )
        except ReloadRefusedError as e:
            self.reload_problems = e.problems
            for problem in e.problems:
                log.error("reload refused: %s", problem)
            p.metrics.reload_ok.set(0)
            self._publish_view()
            notify("READY=1")
            return
        self.source = apply(p, reloaded, self.source)
        self.reload_problems = []
        p.metrics.reload_ok.set(1)
        p.metrics.reload_time.set(p.clock.now_us() / 1e6)
        log.info("config reloaded: %d rules", len(p.engine.rules))
        self._publish_view()
        notify("READY=1")

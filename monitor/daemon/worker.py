"""The handler worker: runs the jobs the main loop hands it, one at a time, off the loop, and
hands back results (the loop turns them into events in a later batch). A run never raises into
the loop: an exception is a failed attempt, retried like any other."""

from __future__ import annotations

import logging
import os
import queue
import threading

import requests

from handlers.base import Job, Outcome, Result, RunContext
from monitor.config.schema import Config
from monitor.config.secrets import redact
from monitor.core.clock import Clock, SystemClock

log = logging.getLogger(__name__)


class Worker:
    """Runs handler jobs off the main loop, one at a time, and hands back results."""

    def __init__(self, config: Config, dry_run: bool, clock: Clock | None = None) -> None:
        self.config = config
        self.dry_run = dry_run
        self.clock = clock or SystemClock()
        self.jobs: queue.Queue[tuple[Job, str] | None] = queue.Queue()
        self.results: queue.Queue[tuple[Job, str, Result]] = queue.Queue()
        self._ctx = RunContext(requests.Session(), dry_run, config.handlers, dict(os.environ))
        self._thread = threading.Thread(target=self._run, name="handlers", daemon=True)

    def reconfigure(self, config: Config) -> None:
        """After a reload: the next run takes its handler's new settings (the run in flight
        finishes with the ones it started with)."""
        ctx = self._ctx
        self._ctx = RunContext(ctx.session, ctx.dry_run, config.handlers, ctx.env)
        self.config = config

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace_s: float = 3.0) -> None:
        self.request_stop()
        self.join(self.clock.monotonic() + grace_s)

    def request_stop(self) -> None:
        """The worker ends once the runs already handed to it are done; `join` waits for it."""
        self.jobs.put(None)

    def join(self, deadline: float) -> None:
        """Wait for the run in flight until `deadline` (monotonic). One still going is left to
        die with the process (a daemon thread): taken up at the next start (a replay is
        verified against the journal, any other run reported interrupted), never repeated."""
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, deadline - self.clock.monotonic()))

    def _run(self) -> None:
        while (item := self.jobs.get()) is not None:
            job, source_rule = item
            ctx = self._ctx  # one run, one configuration: a reload may replace it meanwhile
            spec = ctx.handlers.get(job.handler)
            try:
                result = (
                    spec.run(job, ctx)
                    if spec is not None
                    else Result(Outcome.GAVE_UP, "no such handler")
                )
            except Exception as e:
                log.exception("handler %s failed on %s", job.handler, job.key)
                # exception texts can hold the URL (requests quotes it): not its userinfo
                why = redact(f"{type(e).__name__}: {e}")
                result = Result(Outcome.FAILED, why, retry=True)
            self.results.put((job, source_rule, result))

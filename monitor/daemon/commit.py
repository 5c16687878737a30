"""The commit stage: a batch's cursor, rule state, events, alert book and handler jobs go into
the state file in ONE transaction. Nothing of the batch is published, sent or handed to a
handler before that (`then`). A transaction the file refuses (disk full, read-only, I/O error)
is kept and written again, as it was, with a backoff; the journal waits meanwhile."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from monitor.core.clock import Clock
from monitor.core.engine import Engine
from monitor.core.model import Event
from monitor.daemon.metrics import Metrics
from monitor.daemon.state import (
    RETRY_MAX_S,
    RETRY_MIN_S,
    Position,
    Statement,
    StateStore,
    StateWriteError,
    WriteRetry,
)
from monitor.journal.reader import notify

log = logging.getLogger(__name__)


class Committer:
    def __init__(self, store: StateStore, metrics: Metrics, clock: Clock) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.stuck: WriteRetry | None = None  # a transaction the state file refused
        self.last_commit_s = 0.0  # how long the last commit took

    def commit(
        self,
        position: Position,
        engine: Engine,
        events: list[Event],
        extra: dict[str, Any],
        ops: Sequence[Statement],
        then: Callable[[], None],
    ) -> bool:
        """Write the batch; True when it went in (the caller runs `then`), False when it was
        refused (`then` runs after a retry takes it)."""
        started = self.clock.monotonic()
        try:
            self.store.commit(position, engine, events, extra, ops)
        except StateWriteError as e:
            self._refused(e, then)
            return False
        self.last_commit_s = self.clock.monotonic() - started
        return True

    def write(self, ops: Sequence[Statement], then: Callable[[], None]) -> None:
        """Statements of their own (jobs marked running), then `then`."""
        try:
            self.store.write(ops)
        except StateWriteError as e:
            self._refused(e, then)
            return
        then()

    def retry(self, stop: threading.Event) -> None:
        """When due, write the refused transaction again; until then wait (SIGTERM ends it)."""
        stuck = self.stuck
        if stuck is None:
            return
        wait_s = stuck.retry_at - self.clock.monotonic()
        if wait_s > 0:
            stop.wait(min(wait_s, 1.0))  # short: the loop keeps feeding the watchdog
            return
        try:
            self.store.retry()
        except StateWriteError as e:
            self._refused(e, stuck.then)
            return
        self.stuck = None
        log.warning(
            "the state file took the batch after %.0f s and %d refused attempts; reading on",
            self.clock.monotonic() - stuck.since,
            stuck.failures,
        )
        stuck.then()

    def _refused(self, e: StateWriteError, then: Callable[[], None]) -> None:
        now = self.clock.monotonic()
        if self.stuck is None:
            self.stuck = WriteRetry(then, now)
        stuck = self.stuck
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

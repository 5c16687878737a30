"""The handler outbox: jobs asked for by events, kept in the state store so that a restart
neither loses a pending run nor repeats a finished one.

Only the main loop writes it, inside its batch transaction: it enqueues jobs (idempotency key
unique), marks a job `running` and commits BEFORE a worker thread sees it (so a run interrupted
by a crash is never repeated: at most once), applies the workers' results, and verifies replays
against the journal (the watch is armed when the job is queued, before the POST: the API may
log the completion before its response arrives).

A run a crash interrupted is taken up at the next start. When the handler's success shows in
the journal (a replay: its training's end line), the run may or may not have got through, and
the journal tells: the job goes on to be verified like a replay whose POST went unanswered
(`replayed`, then `verified` or `verify_failed`), since the daemon reads on from its last
committed entry and so still meets the end line. Any other is reported `interrupted`."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.base import HandlerSpec, Job, Outcome, Result
from monitor.config.schema import Config
from monitor.core.clock import Clock, SystemClock
from monitor.core.model import Event, EventKind, Severity

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, handler TEXT NOT NULL, idem_key TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL, source_rule TEXT NOT NULL, event TEXT NOT NULL, payload TEXT,
    state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at_us INTEGER NOT NULL,
    verify_deadline_us INTEGER, outcome TEXT, detail TEXT, updated_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, next_at_us);
"""
PENDING, RUNNING, VERIFYING, DONE = "pending", "running", "verifying", "done"
JOBS_KEPT_US = 10 * 60 * 1_000_000  # finished jobs are remembered at least this long
_SEVERITY = {
    Outcome.VERIFY_FAILED: Severity.CRITICAL,
    Outcome.GAVE_UP: Severity.CRITICAL,
    Outcome.INTERRUPTED: Severity.WARNING,
    Outcome.FAILED: Severity.WARNING,
}


@dataclass(slots=True)
class _Watch:
    job_id: int
    handler: str
    source_rule: str
    deadline_us: int | None = None  # set once the replay was delivered


@dataclass(slots=True)
class Outbox:
    config: Config
    db: sqlite3.Connection
    dry_run: bool = False
    clock: Clock = field(default_factory=SystemClock)
    watching: dict[str, _Watch] = field(default_factory=dict)  # request_id -> replay job
    _ops: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    _inflight: set[int] = field(default_factory=set)
    _verified_in_flight: set[int] = field(default_factory=set)
    _runs: dict[str, list[float]] = field(default_factory=dict)  # handler -> recent start times

    def __post_init__(self) -> None:
        self.db.executescript(SCHEMA)

    def reconfigure(self, config: Config) -> None:
        """After a reload: which rule runs which handler, and each handler's settings, come
        from the new config from the next batch on; jobs already queued keep their rows."""
        self.config = config

    # --- start-up ------------------------------------------------------------------------------

    def recover(self, now_us: int) -> list[Event]:
        """After a restart: runs that were in flight are not repeated; replays among them are
        verified from now on, the others reported. Replays pending or still being verified are
        watched again."""
        rows = self.db.execute(
            "SELECT id, handler, key, source_rule FROM jobs WHERE state = ?", (RUNNING,)
        )
        events = [
            self._recover_run(job_id, handler, key, source_rule, now_us)
            for job_id, handler, key, source_rule in rows.fetchall()
        ]
        rows = self.db.execute(
            "SELECT id, handler, key, source_rule, state, verify_deadline_us FROM jobs "
            "WHERE state IN (?, ?)",
            (PENDING, VERIFYING),
        )
        for job_id, handler, key, source_rule, state, deadline in rows.fetchall():
            # a run just taken up keeps its watch: it may be the one that reached the API
            if key not in self.watching and self._verify_within_us(handler) is not None:
                self.watching[key] = _Watch(
                    job_id, handler, source_rule, deadline if state == VERIFYING else None
                )
        return events

    def _recover_run(
        self, job_id: int, handler: str, key: str, source_rule: str, now_us: int
    ) -> Event:
        """A run the daemon stopped in: verified when its success shows in the journal (it may
        have happened), else `interrupted`. Never run again (at most once)."""
        spec = self.config.handlers.get(handler)
        within = self._verify_within_us(handler)
        # a dry run sent nothing: there is nothing to verify
        if within is None or spec is None or self.dry_run or spec.common.dry_run:
            detail = (
                "the daemon stopped during this run; not repeated (it may or may not have happened)"
            )
            return self._finish(
                job_id, handler, key, source_rule, Outcome.INTERRUPTED, detail, now_us
            )
        deadline = now_us + within
        detail = (
            "the daemon stopped during this run; not repeated (it may or may not have reached"
            " the service): verifying against the journal"
        )
        self._update(
            job_id, VERIFYING, Outcome.REPLAYED, detail, now_us, verify_deadline_us=deadline
        )
        self.watching[key] = _Watch(job_id, handler, source_rule, deadline)
        return _event(now_us, source_rule, key, handler, Outcome.REPLAYED, detail)

    # --- what the main loop calls inside a batch -----------------------------------------------

    def enqueue(
        self,
        events: list[Event],
        now_us: int,
        payload_of: Callable[[HandlerSpec, str], str | None],
    ) -> list[Event]:
        """Jobs for the events whose rule names a handler; returns `skipped_stale` events."""
        out = []
        rule_handler = {r.base.name: r.base.handler for r in self.config.rules if r.base.handler}
        for e in events:
            name = rule_handler.get(e.rule)
            spec = self.config.handlers.get(name) if name else None
            if spec is None or name is None:
                continue
            data = e.to_json()
            value = spec.wants(data)
            if value is None:
                continue
            key = e.key or "-"
            idem = f"{name}|{e.rule}|{key}|{value}"
            stale = now_us - e.time_us > spec.common.max_event_age_us
            payload = payload_of(spec, key)
            self._ops.append(
                (
                    "INSERT OR IGNORE INTO jobs (handler, idem_key, key, source_rule, event,"
                    " payload, state, next_at_us, outcome, updated_us)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        idem,
                        key,
                        e.rule,
                        json.dumps(data, ensure_ascii=False),
                        payload,
                        DONE if stale else PENDING,
                        now_us,
                        Outcome.SKIPPED_STALE if stale else None,
                        now_us,
                    ),
                )
            )
            if stale:
                age = (now_us - e.time_us) // 1_000_000
                out.append(
                    _event(now_us, e.rule, key, name, Outcome.SKIPPED_STALE, f"event {age}s old")
                )
        return out

    def has_ops(self) -> bool:
        return bool(self._ops)

    def take_ops(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The queued statements, for the store's commit transaction (which keeps them until
        they are written: a refused commit is retried with these very statements)."""
        ops, self._ops = self._ops, []
        return ops

    def arm_watches(self) -> None:
        """After a commit: watch the replays just queued (their ids exist now)."""
        rows = self.db.execute(
            "SELECT id, handler, key, source_rule FROM jobs WHERE state = ?", (PENDING,)
        )
        for job_id, handler, key, source_rule in rows.fetchall():
            if key not in self.watching and self._verify_within_us(handler) is not None:
                self.watching[key] = _Watch(job_id, handler, source_rule)

    def verify(
        self, ended: list[tuple[str, str, int]], events: list[Event], read_to_us: int
    ) -> list[Event]:
        """Replays whose training ended are verified; another unknown status for the same
        request, or the deadline passing, fails them. A deadline passes once the journal has
        been read up to it (`read_to_us`: the daemon gives the time of the last entry read while
        it catches up, the wall clock once caught up): an end line logged in time but not read
        yet, after a restart or under a backlog, still verifies."""
        out = []
        for _rule, key, t in ended:
            w = self.watching.pop(key, None)
            if w is not None:
                if w.job_id in self._inflight:
                    self._verified_in_flight.add(w.job_id)
                out.append(
                    self._finish(
                        w.job_id,
                        w.handler,
                        key,
                        w.source_rule,
                        Outcome.VERIFIED,
                        "the training's end line arrived",
                        t,
                    )
                )
        for e in events:
            w = self.watching.get(e.key or "")
            if e.kind == EventKind.UNKNOWN_VALUE and w is not None and w.deadline_us is not None:
                del self.watching[e.key or ""]
                out.append(
                    self._finish(
                        w.job_id,
                        w.handler,
                        e.key or "",
                        w.source_rule,
                        Outcome.VERIFY_FAILED,
                        "the service reported the status unknown again",
                        e.time_us,
                    )
                )
        for key, w in list(self.watching.items()):
            if w.deadline_us is not None and w.deadline_us <= read_to_us:
                del self.watching[key]
                out.append(
                    self._finish(
                        w.job_id,
                        w.handler,
                        key,
                        w.source_rule,
                        Outcome.VERIFY_FAILED,
                        "no end line within verify_within",
                        w.deadline_us,
                    )
                )
        return out

    def apply(self, job: Job, source_rule: str, result: Result, now_us: int) -> list[Event]:
        """A worker's result for `job`."""
        self._inflight.discard(job.id)
        if job.id in self._verified_in_flight:  # its training ended while it ran: done already
            self._verified_in_flight.discard(job.id)
            return [
                _event(now_us, source_rule, job.key, job.handler, result.outcome, result.detail)
            ]
        spec = self.config.handlers.get(job.handler)
        outcome, detail = result.outcome, result.detail
        if spec is None:  # a reload removed the handler while this ran: nothing follows it
            if outcome in (Outcome.FAILED, Outcome.PENDING):
                outcome = Outcome.GAVE_UP
            detail = f"{detail}; handler {job.handler} is no longer in the config"
            w = self.watching.get(job.key)
            if w is not None and w.job_id == job.id:
                del self.watching[job.key]
            return [
                self._finish(job.id, job.handler, job.key, source_rule, outcome, detail, now_us)
            ]
        window_us = spec.verification_window_us()
        if outcome == Outcome.REPLAYED and window_us is not None:
            w = self.watching.get(job.key)
            if w is not None and w.job_id == job.id:
                w.deadline_us = now_us + window_us
                self._update(
                    job.id, VERIFYING, outcome, detail, now_us, verify_deadline_us=w.deadline_us
                )
            return [_event(now_us, source_rule, job.key, job.handler, outcome, detail)]
        if outcome == Outcome.PENDING:  # the provider is still working on it: ask again later
            later = now_us + spec.recheck_us()
            self._update(job.id, PENDING, outcome, detail, now_us, next_at_us=later)
            # a recheck is not a failed attempt: it does not use up max_attempts
            self._ops.append(
                ("UPDATE jobs SET attempts = MAX(attempts - 1, 0) WHERE id = ?", (job.id,))
            )
            return [_event(now_us, source_rule, job.key, job.handler, outcome, detail)]
        if outcome == Outcome.FAILED and result.retry and job.attempt < spec.common.max_attempts:
            delay = spec.common.backoff_us * 2 ** (job.attempt - 1)
            self._update(job.id, PENDING, outcome, detail, now_us, next_at_us=now_us + delay)
            return [
                _event(
                    now_us,
                    source_rule,
                    job.key,
                    job.handler,
                    outcome,
                    f"{detail}; retry in {delay // 1_000_000}s",
                )
            ]
        if outcome == Outcome.FAILED:
            outcome = Outcome.GAVE_UP
            detail = f"{detail}; gave up after {job.attempt} attempt(s)"
        w = self.watching.get(job.key)
        if w is not None and w.job_id == job.id:
            del self.watching[job.key]
        return [self._finish(job.id, job.handler, job.key, source_rule, outcome, detail, now_us)]

    def prune(self, now_us: int) -> None:
        """Forget finished jobs older than the handlers could act on: an event seen again after
        that (a journal read again) is older than `max_event_age` and only `skipped_stale`, so
        at most once still holds, and the table stops growing with every run ever made."""
        ages = [h.common.max_event_age_us for h in self.config.handlers.values()]
        keep_us = max([JOBS_KEPT_US, *(2 * a for a in ages)])
        self._ops.append(
            ("DELETE FROM jobs WHERE state = ? AND updated_us < ?", (DONE, now_us - keep_us))
        )

    def due(self, now_us: int) -> list[tuple[Job, str]]:
        """Pending jobs due now, within each handler's rate limit; marked running (queued
        statements: commit them before a worker sees the jobs)."""
        rows = self.db.execute(
            "SELECT id, handler, key, source_rule, event, payload, attempts FROM jobs "
            "WHERE state = ? AND next_at_us <= ? ORDER BY id LIMIT 100",
            (PENDING, now_us),
        ).fetchall()
        out = []
        now = self.clock.monotonic()
        for job_id, handler, key, source_rule, event, payload, attempts in rows:
            spec = self.config.handlers.get(handler)
            if spec is None or job_id in self._inflight:
                continue
            recent = [t for t in self._runs.get(handler, []) if now - t < 60]
            if len(recent) >= spec.common.rate_limit_per_minute:
                continue  # stays pending: the rate limit holds it back
            self._runs[handler] = [*recent, now]
            self._inflight.add(job_id)
            self._ops.append(
                (
                    "UPDATE jobs SET state = ?, attempts = attempts + 1, updated_us = ?"
                    " WHERE id = ?",
                    (RUNNING, now_us, job_id),
                )
            )
            out.append(
                (Job(job_id, handler, key, json.loads(event), attempts + 1, payload), source_rule)
            )
        return out

    def queue_size(self) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN (?, ?, ?)", (PENDING, RUNNING, VERIFYING)
        )
        return int(row.fetchone()[0])

    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, handler, key, state, attempts, outcome, detail, updated_us FROM jobs "
            "ORDER BY updated_us DESC LIMIT ?",
            (limit,),
        ).fetchall()
        cols = ("id", "handler", "key", "state", "attempts", "outcome", "detail", "updated_us")
        return [dict(zip(cols, r, strict=True)) for r in rows]

    # --- helpers -------------------------------------------------------------------------------

    def _verify_within_us(self, handler: str) -> int | None:
        """How long a run of this handler may take to show its success in the journal (a
        replay: its training's end line), or None for a handler whose success does not show
        there. Such a run is watched from the moment it is queued, and verified even when a
        crash cut it short."""
        spec = self.config.handlers.get(handler)
        return spec.verification_window_us() if spec is not None else None

    def _update(
        self,
        job_id: int,
        state: str,
        outcome: Outcome,
        detail: str,
        now_us: int,
        *,
        next_at_us: int | None = None,
        verify_deadline_us: int | None = None,
    ) -> None:
        self._ops.append(
            (
                "UPDATE jobs SET state = ?, outcome = ?, detail = ?, updated_us = ?,"
                " next_at_us = COALESCE(?, next_at_us),"
                " verify_deadline_us = COALESCE(?, verify_deadline_us)"
                " WHERE id = ?",
                (
                    state,
                    str(outcome),
                    detail[:1000],
                    now_us,
                    next_at_us,
                    verify_deadline_us,
                    job_id,
                ),
            )
        )

    def _finish(
        self,
        job_id: int,
        handler: str,
        key: str,
        source_rule: str,
        outcome: Outcome,
        detail: str,
        when_us: int,
    ) -> Event:
        self._update(job_id, DONE, outcome, detail, when_us)
        return _event(when_us, source_rule, key, handler, outcome, detail)


def _event(when_us: int, rule: str, key: str, handler: str, outcome: Outcome, detail: str) -> Event:
    labels = {"handler": handler, "outcome": str(outcome), "source_rule": rule}
    severity = _SEVERITY.get(outcome, Severity.INFO)
    return Event(
        when_us, rule, EventKind.HANDLER, severity, key, labels, f"{handler} {outcome}: {detail}"
    )

"""Handler runs as the main loop sees them: events ask the outbox for jobs, due jobs go to the
worker thread once they are committed as running, and what the worker and the journal say of
them (results, verifications) comes back as `handler` events in a later batch."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from handlers.base import HandlerSpec, Job
from monitor.core.clock import Clock
from monitor.core.model import Event
from monitor.daemon.commit import Committer
from monitor.daemon.outbox import Outbox
from monitor.daemon.worker import Worker

PRUNE_EVERY_S = 600.0  # finished jobs past their retention are deleted this often


class Payloads:
    """The query interface the outbox reads a job's payload through: the latest groups that a
    handler's payload rule matched for a key (e.g. the logged webhook body)."""

    def __init__(self, keyed_groups: Mapping[tuple[str, str], Mapping[str, str]]) -> None:
        self._keyed = keyed_groups

    def payload(self, spec: HandlerSpec, key: str) -> str | None:
        rule = spec.payload_source()
        groups = self._keyed.get((rule, key)) if rule else None
        return groups.get("payload") if groups else None


class Jobs:
    def __init__(self, outbox: Outbox, worker: Worker, recovered: list[Event], clock: Clock):
        self.outbox = outbox
        self.worker = worker
        self.clock = clock
        self._pending = recovered  # what the outbox found at start-up, reported in batch one
        self._pruned = clock.monotonic()

    def events(
        self,
        events: Sequence[Event],
        ended: list[tuple[str, str, int]],
        payloads: Payloads,
        now_us: int,
        read_to_us: int,
    ) -> list[Event]:
        """Workers' results, verifications (by the pair ends of this batch, the journal read
        up to `read_to_us`) and new jobs for this batch's events, as events of their own (the
        outbox queues their statements)."""
        out, self._pending = self._pending, []
        out += self._results(now_us)
        out += self.outbox.verify(ended, list(events), read_to_us)
        out += self.outbox.enqueue(list(events), now_us, payloads.payload)
        if self.clock.monotonic() - self._pruned >= PRUNE_EVERY_S:
            self._pruned = self.clock.monotonic()
            self.outbox.prune(now_us)
        return out

    def hand_out(self, now_us: int, committer: Committer) -> bool:
        """Jobs due now go to the worker, marked running in a commit of their own first;
        True when there were any."""
        due = self.outbox.due(now_us)
        if due:
            committer.write(self.outbox.take_ops(), functools.partial(self._give, due))
        return bool(due)

    def _give(self, due: list[tuple[Job, str]]) -> None:
        for item in due:
            self.worker.jobs.put(item)

    def results_at_exit(self, now_us: int) -> list[Event]:
        """Results that came back while stopping, to be recorded, not lost."""
        return self._results(now_us)

    def _results(self, now_us: int) -> list[Event]:
        """What the worker finished since the last call, applied to the outbox."""
        events: list[Event] = []
        while not self.worker.results.empty():
            job, source_rule, result = self.worker.results.get_nowait()
            events += self.outbox.apply(job, source_rule, result, now_us)
        return events

"""What every handler's configuration shares: attempts, backoff, rate limit, timeout, dry run."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from monitor.config.secrets import Auth, redact
from monitor.config.yamlview import View


@dataclass(frozen=True, slots=True)
class HandlerCommon:
    """Keys every handler has: `type`, `timeout` (10s), `max_attempts` (5), `backoff` (first
    retry delay, doubled each time; 5s), `rate_limit` (runs per minute, 30), `dry_run`, `alert`
    (raised when a run gives up or is not verified), `max_event_age` (1h: older events are
    skipped)."""

    name: str
    type: str
    timeout_us: int
    max_attempts: int
    backoff_us: int
    rate_limit_per_minute: int
    dry_run: bool
    alert: str | None = None  # raised when a run gives up or its result is not verified
    max_event_age_us: int = 3600 * 1_000_000  # older events run no handler (skipped_stale)


@dataclass(frozen=True, slots=True)
class References:
    """Names a handler's config refers to, by the config key that holds each (config validation
    checks them all, whatever the handler type)."""

    rules: Mapping[str, str] = field(default_factory=dict)  # config key -> rule name
    handlers: Mapping[str, str] = field(default_factory=dict)  # config key -> handler name


class HandlerSpec(Protocol):
    """A configured handler: what the outbox, the worker and config validation ask of it."""

    @property
    def common(self) -> HandlerCommon: ...

    def wants(self, event: Mapping[str, Any]) -> str | None:
        """The idempotency value for an event (JSON form) this handler acts on, else None."""
        ...

    def run(self, job: Job, ctx: RunContext) -> Result:
        """One attempt; returns its outcome and never raises for a failure it can describe."""
        ...

    def references(self) -> References: ...

    def payload_source(self) -> str | None:
        """The rule whose latest groups for the event's key become the job's payload."""
        ...

    def verification_window_us(self) -> int | None:
        """When its success shows in the journal (the training's end line): how long to wait
        for it after a run, and after a run a crash interrupted. None: no verification."""
        ...

    def recheck_us(self) -> int:
        """How long until a run whose outcome was `pending` is tried again."""
        ...


class HandlerDefaults:
    """What a handler that does not say otherwise does: acts on every event but `resolved`,
    refers to nothing, is not verified, rechecks after its backoff."""

    __slots__ = ()
    common: HandlerCommon

    def wants(self, event: Mapping[str, Any]) -> str | None:
        return None if event["kind"] == "resolved" else str(event["kind"])

    def references(self) -> References:
        return References()

    def payload_source(self) -> str | None:
        return None

    def verification_window_us(self) -> int | None:
        return None

    def recheck_us(self) -> int:
        return self.common.backoff_us


def parse_common(view: View, name: str) -> HandlerCommon:
    return HandlerCommon(
        name=name,
        type=view.text("type", required=True),
        timeout_us=view.duration_us("timeout", "10s"),
        max_attempts=view.integer("max_attempts", 5, minimum=1),
        backoff_us=view.duration_us("backoff", "5s"),
        rate_limit_per_minute=view.integer("rate_limit", 30, minimum=1),
        dry_run=view.flag("dry_run", False),
        alert=view.opt_str("alert"),
        max_event_age_us=view.duration_us("max_event_age", "1h"),
    )


def parse_url(view: View, key: str, default: str | None = None) -> str:
    """An http(s) URL from config (never from log content)."""
    url = view.text(key, default, required=default is None)
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            view.error(key, f"expected an http:// or https:// URL, got {redact(url)!r}")
    return url


class Outcome(enum.StrEnum):
    """What became of a handler run (the `outcome` label of `handler` events and metrics)."""

    # the webhook was re-delivered, or may have been (no answer in time, or the daemon stopped
    # during the POST): verification follows, and the journal tells
    REPLAYED = "replayed"
    VERIFIED = "verified"  # the service then finished the training
    VERIFY_FAILED = (
        "verify_failed"  # it did not, within verify_within (or reported it unknown again)
    )
    DONE = "done"  # an http/exec/provider run that succeeded
    PENDING = "pending"  # the provider says the training still runs: checked again later
    FAILED = "failed"  # this attempt failed; it is retried with backoff
    GAVE_UP = "gave_up"  # failed max_attempts times, or failed in a way a retry cannot fix
    SKIPPED_STALE = "skipped_stale"  # the event was older than max_event_age
    DRY_RUN = "dry_run"  # --dry-run: logged what it would do, sent nothing
    # the daemon stopped mid-run, and the journal cannot tell whether the run happened (a
    # replay's can: it is verified instead): not repeated (at most once)
    INTERRUPTED = "interrupted"


FINAL = frozenset(
    {
        Outcome.VERIFIED,
        Outcome.VERIFY_FAILED,
        Outcome.DONE,
        Outcome.GAVE_UP,
        Outcome.SKIPPED_STALE,
        Outcome.DRY_RUN,
        Outcome.INTERRUPTED,
    }
)


@dataclass(frozen=True, slots=True)
class Job:
    """One handler run from the outbox: the event that asked for it, as JSON."""

    id: int
    handler: str
    key: str
    event: dict[str, Any]
    attempt: int  # 1 for the first
    payload: str | None = None  # e.g. the logged webhook body


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str
    retry: bool = False  # FAILED and worth another attempt


@dataclass(frozen=True, slots=True)
class RunContext:
    """What a handler run gets besides its job."""

    session: requests.Session  # one per worker, explicit timeouts on every call
    dry_run: bool
    handlers: Mapping[str, HandlerSpec]  # another handler's config (provider_status -> replay)
    env: Mapping[str, str]


def auth_headers(auth: Auth, env: Mapping[str, str]) -> dict[str, str] | Result:
    """The headers that carry a handler's token, or the `gave_up` result of a token that
    cannot be read (a retry would not help)."""
    try:
        return auth.headers(env)
    except OSError as e:
        return Result(Outcome.GAVE_UP, f"cannot read {auth.source}: {e.strerror}")
    except ValueError as e:
        return Result(Outcome.GAVE_UP, str(e))

"""SIGHUP: load the config again and decide whether all of it can be applied. Refused, the old
config keeps running whole: an invalid config, a change to a setting only a start applies, an
unreadable token file, a journal that cannot be opened. Nothing here changes a running part:
`prepare` runs in a thread of its own (`Preparing`: a large config is parsed without holding the
loop), the loop opens the journal if it must (`reopen`: positioned at the cursor committed by
then) and applies the result in one step (`apply`)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from monitor.config.schema import Config, ConfigError, load_config
from monitor.config.secrets import SecretFileError, read_secret_file
from monitor.core.engine import Engine, engine_for
from monitor.daemon.alerts import AlertBook
from monitor.daemon.options import RunOptions, state_directory
from monitor.daemon.parts import Parts
from monitor.journal.reader import JournalError, JournalSource
from monitor.journal.source import fields_for
from rules.base import Matcher

log = logging.getLogger(__name__)


class ReloadRefusedError(Exception):
    """A config that this reload cannot apply; `problems` say why, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Reloaded:
    config: Config
    engine: Engine  # fresh: the loop restores the committed rule state into it
    source: JournalSource | None  # a journal opened for the new config; None: the old serves
    token: str | None


OpenSource = Callable[[Config, Engine], JournalSource]


def prepare(opts: RunOptions, current: Config, matcher: Matcher) -> Reloaded:
    """The new config, checked against the running one; raises ReloadRefusedError. Reads only
    the file and what it names (no part of the running daemon): safe in a thread."""
    try:
        config = load_config(opts.config_path)
    except ConfigError as e:
        raise ReloadRefusedError([str(p) for p in e.problems]) from e
    restart_only = _restart_only(opts, current, config)
    if restart_only:
        raise ReloadRefusedError(restart_only)
    token = reload_token(config)
    return Reloaded(config, daemon_engine(config, matcher), None, token)


def reopen(r: Reloaded, current: Config, engine: Engine, open_source: OpenSource) -> Reloaded:
    """`r` with a journal opened for it when what is read changes; on the loop, so that the
    journal is positioned at the cursor committed by then. Raises ReloadRefusedError."""
    fresh = r.engine
    if r.config.journal == current.journal and fields_for(fresh) == fields_for(engine):
        return r
    # what is read changes (units, identifiers, directory, files, max_message_bytes, or a
    # field only the new rules look at, such as PRIORITY or _HOSTNAME)
    try:
        return dataclasses.replace(r, source=open_source(r.config, fresh))
    except (JournalError, OSError) as e:
        raise ReloadRefusedError([f"{r.config.source}: journal: {e}"]) from e


class Preparing:
    """`prepare` in a thread of its own; the loop asks `done()` at each round and then takes
    `result()`. A thread left running at exit dies with the process (it changes nothing)."""

    def __init__(self, opts: RunOptions, current: Config, matcher: Matcher) -> None:
        self._outcome: Reloaded | ReloadRefusedError | None = None
        self._done = threading.Event()
        args = (opts, current, matcher)
        self._thread = threading.Thread(target=self._run, args=args, name="reload", daemon=True)
        self._thread.start()

    def _run(self, opts: RunOptions, current: Config, matcher: Matcher) -> None:
        try:
            self._outcome = prepare(opts, current, matcher)
        except ReloadRefusedError as e:
            self._outcome = e
        except Exception as e:  # a reload never left pending for ever, whatever went wrong
            log.exception("reload failed")
            self._outcome = ReloadRefusedError([f"{current.source}: reload failed: {e!r}"])
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> Reloaded:
        """The prepared reload once `done()`; raises ReloadRefusedError."""
        if isinstance(self._outcome, ReloadRefusedError):
            raise self._outcome
        if self._outcome is None:
            raise RuntimeError("result() before the reload was prepared")
        return self._outcome


def daemon_engine(config: Config, matcher: Matcher) -> Engine:
    engine = engine_for(config, matcher=matcher)
    engine.collect_ended = True  # replays are verified by their training's end line
    return engine


def _restart_only(opts: RunOptions, old: Config, config: Config) -> list[str]:
    """Changes that only a start can apply: the state file is open, the HTTP socket bound,
    and `journal.start` says where a start begins (a reload goes on from the committed
    position). A setting overridden on the command line is not used, so not compared."""
    listen = old.http.listen if opts.listen else config.http.listen  # --listen: not used
    compared = {
        "state.directory": (state_directory(opts, old), state_directory(opts, config)),
        "http.listen": (old.http.listen, listen),
        "journal.start": (old.journal.start, config.journal.start),
    }
    return [
        f"{config.source}: {key}: changed from {a!r} to {b!r}, which only a start applies: "
        "restart the daemon (the old config keeps running until then)"
        for key, (a, b) in compared.items()
        if a != b
    ]


def reload_token(config: Config) -> str | None:
    """The token file is read again at each reload: a token can change without its path."""
    try:
        return read_token(config)
    except SecretFileError as e:
        raise ReloadRefusedError([str(e)]) from e


def read_token(config: Config) -> str | None:
    """The HTTP token; raises SecretFileError naming the key when its file is gone, unreadable
    or empty (loading the config checked it, but the file may have changed since): an empty
    token would open the API to `Authorization: Bearer `."""
    path = config.http.token_file
    if not path:
        return None
    try:
        return read_secret_file(path)
    except SecretFileError as e:
        raise SecretFileError(f"{config.source}: http.token_file: {e}") from e


def apply(p: Parts, r: Reloaded, source: JournalSource | None) -> JournalSource | None:
    """Every part takes the new config; nothing here can refuse it any more. Returns the
    journal to read from now on."""
    config, engine = r.config, r.engine
    if r.source is None and source is not None:
        engine.fill = source.fill
    p.store.adopt(engine)
    p.config, p.engine = config, engine
    book = AlertBook(config)
    book.restore(p.book.snapshot())
    p.book = book
    p.jobs.outbox.reconfigure(config)
    p.jobs.worker.reconfigure(config)
    p.effects.publish(engine, p.position, config.journal.units)
    if r.source is not None:
        if source is not None:
            source.close()
        source = r.source
        p.effects.new_source()
    p.metrics.declare_handlers(config.handlers)
    p.alerter.reconfigure(config.alerting)
    p.health.reconfigure(config.health_checks)
    p.backend.replace_token(r.token)
    p.backend.replace_limits(config.http)
    return source

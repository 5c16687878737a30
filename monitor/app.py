"""The composition root: the only place that builds the daemon's parts and wires them to each
other (reader, engine, state store, commit stage, outbox and worker, alert book and
Alertmanager sender, health checker, metrics registry, HTTP server, clock). Everything else
receives what it needs as arguments. `replay`, `explain` and `test-rules` build their engine
and journal through the same factories (core.engine.engine_for, journal.source.open_source)."""

from __future__ import annotations

from monitor.config.schema import Config
from monitor.core.clock import Clock, SystemClock
from monitor.daemon.alerter import Alerter
from monitor.daemon.alerts import AlertBook
from monitor.daemon.commit import Committer
from monitor.daemon.effects import RECENT_EVENTS, Effects
from monitor.daemon.health import HealthChecker
from monitor.daemon.httpserver import Backend, HttpServer
from monitor.daemon.jobs import Jobs
from monitor.daemon.loop import Daemon
from monitor.daemon.metrics import Metrics
from monitor.daemon.options import RunOptions, listen_address, state_directory
from monitor.daemon.outbox import Outbox
from monitor.daemon.parts import Parts
from monitor.daemon.reload import daemon_engine, read_token
from monitor.daemon.state import StateError, StateStore, recovery
from monitor.daemon.view import StateView
from monitor.daemon.worker import Worker
from monitor.matchbudget import TimeBudget


def build(config: Config, opts: RunOptions, clock: Clock | None = None) -> Daemon:
    """The daemon for `config`, its state restored; nothing started yet. Raises StateError
    for an unusable state file, SecretFileError for an HTTP token file that cannot serve,
    OSError when the HTTP address cannot be bound."""
    clock = clock or SystemClock()
    metrics = Metrics()
    store = StateStore(state_directory(opts, config))
    try:
        engine = daemon_engine(config, TimeBudget().install())  # kept by every reload
        store.adopt(engine)
        position = store.position()
    except (ValueError, TypeError, AttributeError, KeyError) as e:  # readable, but damaged
        raise StateError(
            f"state file {store.path} holds damaged values ({e}); {recovery(store.path)}"
        ) from e
    book = AlertBook(config)
    book.restore(store.meta("alerts") or [])
    outbox = Outbox(config, store.db, dry_run=opts.dry_run, clock=clock)
    jobs = Jobs(outbox, Worker(config, opts.dry_run, clock), outbox.recover(clock.now_us()), clock)
    metrics.declare_handlers(config.handlers)
    health = HealthChecker(config.health_checks, metrics, clock)
    effects_recent = store.recent_events(RECENT_EVENTS)
    # the view lists the effects' recent events; effects are built below (they need the
    # sender, which needs the HTTP address), so the view asks for them when it is asked
    view = StateView(clock, health, lambda limit: effects.recent(limit))
    backend = Backend(
        metrics,
        view.state,
        view.events,
        view.healthy,
        view.ready,
        read_token(config),
        config.http,
    )
    http = HttpServer(listen_address(opts, config), backend)
    alerter = Alerter(config.alerting, metrics, f"http://{http.address}/", clock)
    effects = Effects(metrics, alerter, effects_recent)
    effects.publish(engine, position, config.journal.units)
    metrics.reload_ok.set(1)
    metrics.reload_time.set(clock.now_us() / 1e6)
    metrics.loop_heartbeat.set(clock.now_us() / 1e6)  # not 0 before the first round
    parts = Parts(
        config, opts, clock, metrics, store, Committer(store, metrics, clock), engine, position,
        book, jobs, health, alerter, effects, view, backend, http,
    )  # fmt: skip
    return Daemon(parts)

"""Everything the main loop drives, in one place: built and wired by monitor/app.py, handed to
the loop, and replaced part by part by a reload (monitor/daemon/reload.py `apply`)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config.schema import Config
from monitor.core.clock import Clock
from monitor.core.engine import Engine
from monitor.daemon.alerter import Alerter
from monitor.daemon.alerts import AlertBook
from monitor.daemon.commit import Committer
from monitor.daemon.effects import Effects
from monitor.daemon.health import HealthChecker
from monitor.daemon.httpserver import Backend, HttpServer
from monitor.daemon.jobs import Jobs
from monitor.daemon.metrics import Metrics
from monitor.daemon.options import RunOptions
from monitor.daemon.state import Position, StateStore
from monitor.daemon.view import StateView


@dataclass(slots=True)
class Parts:
    """What the loop drives; built and wired by monitor/app.py."""

    config: Config
    opts: RunOptions
    clock: Clock
    metrics: Metrics
    store: StateStore
    committer: Committer
    engine: Engine
    position: Position
    book: AlertBook
    jobs: Jobs
    health: HealthChecker
    alerter: Alerter
    effects: Effects
    view: StateView
    backend: Backend
    http: HttpServer

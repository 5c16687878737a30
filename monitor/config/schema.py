"""The configuration schema: YAML in, frozen dataclasses out, every problem at once."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

import handlers
import rules
from handlers.base import HandlerSpec
from monitor.config.secrets import Auth, parse_auth, redact, secret_file
from monitor.config.yamlview import ConfigError, Problem, Problems, View, load_root
from monitor.core.model import Severity
from monitor.core.statuses import DEFAULT_ALIASES, DEFAULT_CANONICAL, Statuses, fold
from rules.base import PRIORITIES, ParseContext, RuleBase, RuleSpec

__all__ = ["Config", "ConfigError", "default_config_text", "load_config", "load_config_text"]

DEFAULT_STATE_DIR = "/var/lib/aisha-monitor"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ALERT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
START_MODES = ("resume", "tail", "head")


DEFAULT_UNITS = ("aisha-api.service",)
DEFAULT_LISTEN = "127.0.0.1:9817"


@dataclass(frozen=True, slots=True)
class JournalConfig:
    units: tuple[str, ...] = DEFAULT_UNITS
    identifiers: tuple[str, ...] = ()
    directory: str | None = None
    files: tuple[str, ...] = ()
    start: str = "resume"
    max_message_bytes: int = 64 * 1024
    host_label: bool = False  # journals of several hosts: _HOSTNAME labels events and metrics


@dataclass(frozen=True, slots=True)
class StateConfig:
    directory: str = DEFAULT_STATE_DIR


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: str = DEFAULT_LISTEN
    token_file: str | None = None
    idle_timeout_us: int = 10_000_000  # a connection silent this long (or reading slower) closes
    max_connections: int = 64  # connections served at once, a thread each


@dataclass(frozen=True, slots=True)
class AlertSpec:
    name: str
    summary: str
    description: str = ""
    runbook_url: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    alertmanager_urls: tuple[str, ...] = ()
    resend_interval_us: int = 60_000_000
    service: str = "aisha-api"
    instance: str = ""
    alerts: dict[str, AlertSpec] = field(default_factory=dict)
    one_off_ttl_us: int = 3600 * 1_000_000  # how long an alert for a one-off event stays active
    max_event_age_us: int = 3600 * 1_000_000  # older one-off events are reported, not alerted
    auth: Auth = field(default_factory=Auth)  # sent to every Alertmanager URL


@dataclass(frozen=True, slots=True)
class HealthCheckSpec:
    name: str
    type: str  # http | systemd_unit
    interval_us: int
    timeout_us: int
    url: str = ""
    expect_status: int = 200
    unit: str = ""
    alert: str | None = None


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    journal: JournalConfig
    state: StateConfig
    http: HttpConfig
    statuses: Statuses
    rules: tuple[RuleSpec, ...]
    handlers: dict[str, HandlerSpec]
    alerting: AlertingConfig
    health_checks: tuple[HealthCheckSpec, ...]


def default_config_text() -> str:
    """The shipped config.yaml, embedded in the package."""
    return resources.files("monitor").joinpath("default_config.yaml").read_text(encoding="utf-8")


def load_config(
    path: str | Path | None, env: dict[str, str] | None = None, *, read_secrets: bool = True
) -> Config:
    """Load `path`, or the embedded default when it is None. Raises ConfigError. With
    `read_secrets`, every secret file must be readable and not empty."""
    if path is None:
        text, name = default_config_text(), "<embedded config.yaml>"
        return load_config_text(text, name, env, read_secrets=read_secrets)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError([Problem(str(path), 1, 1, "", f"cannot read the file: {e}")]) from e
    return load_config_text(text, str(path), env, read_secrets=read_secrets)


def load_config_text(
    text: str, filename: str, env: dict[str, str] | None = None, *, read_secrets: bool = True
) -> Config:
    problems = Problems(filename, env, read_secrets=read_secrets)
    root = load_root(text, problems)
    if root is None:
        problems.raise_if_any()
        raise AssertionError("unreachable")
    alerting = _alerting(root.map("alerting"), problems)
    handler_specs = _handlers(root, problems)
    rule_names = _rule_names(root)
    rule_specs = _rules(
        root, ParseContext(frozenset(rule_names)), set(handler_specs), set(alerting.alerts)
    )
    config = Config(
        source=filename,
        journal=_journal(root.map("journal")),
        state=StateConfig(_opt(root.map("state"), "directory", DEFAULT_STATE_DIR)),
        http=_http(root.map("http")),
        statuses=_statuses(root.map("statuses")),
        rules=rule_specs,
        handlers=handler_specs,
        alerting=alerting,
        health_checks=_health_checks(root, set(alerting.alerts)),
    )
    _cross_check(root, config, set(alerting.alerts))
    root.finish()
    problems.raise_if_any()
    return config


def _opt(view: View | None, key: str, default: str) -> str:
    if view is None:
        return default
    value = view.text(key, default)
    view.finish()
    return value


def _journal(view: View | None) -> JournalConfig:
    if view is None:
        return JournalConfig()
    cfg = JournalConfig(
        units=view.str_list("units", DEFAULT_UNITS),
        identifiers=view.str_list("identifiers"),
        directory=view.opt_str("directory"),
        files=view.str_list("files"),
        start=view.choice("start", START_MODES, "resume"),
        max_message_bytes=view.integer("max_message_bytes", 64 * 1024, minimum=256),
        host_label=view.flag("host_label", False),
    )
    if cfg.directory and cfg.files:
        view.error("files", "give `directory` or `files`, not both")
    if not cfg.units and not cfg.identifiers:
        view.error("units", "give at least one unit or identifier to read")
    view.finish()
    return cfg


def _http(view: View | None) -> HttpConfig:
    if view is None:
        return HttpConfig()
    listen = view.text("listen", DEFAULT_LISTEN)
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        view.error("listen", f"expected HOST:PORT such as 127.0.0.1:9817, got {listen!r}")
    cfg = HttpConfig(
        listen,
        secret_file(view, "token_file"),
        idle_timeout_us=view.duration_us("idle_timeout", "10s"),
        max_connections=view.integer("max_connections", 64, minimum=1),
    )
    view.finish()
    return cfg


def _statuses(view: View | None) -> Statuses:
    if view is None:
        return Statuses()
    canonical = tuple(fold(s) for s in view.str_list("canonical", DEFAULT_CANONICAL))
    aliases = dict(DEFAULT_ALIASES) if not view.has("aliases") else {}
    aview = view.map("aliases")
    if aview is not None:
        for raw in aview.names():
            target = fold(aview.text(raw))
            if target not in canonical:
                aview.error(
                    raw,
                    f"alias target {target!r} is not a canonical status ({', '.join(canonical)})",
                )
            aliases[fold(raw)] = target
        aview.finish()
    view.finish()
    return Statuses(canonical, aliases)


def _rule_names(root: View) -> set[str]:
    node = root.node_of("rules")
    names: set[str] = set()
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.MappingNode):
                names.update(
                    str(v.value)
                    for k, v in item.value
                    if k.value == "name" and isinstance(v, yaml.ScalarNode)
                )
    return names


def _rules(
    root: View, ctx: ParseContext, handler_names: set[str], alert_names: set[str]
) -> tuple[RuleSpec, ...]:
    specs: list[RuleSpec] = []
    seen: set[str] = set()
    for view in root.views("rules"):
        name = view.text("name", required=True)
        if name and not _NAME.match(name):
            view.error("name", f"rule names are lower_snake_case, got {name!r}")
        elif name in seen:
            view.error("name", f"a rule named {name!r} already exists")
        seen.add(name)
        rule_type = view.text("type", required=True)
        severity = view.choice("severity", tuple(Severity), "warning")
        base = RuleBase(
            name=name,
            type=rule_type,
            severity=Severity(severity),
            alert=_ref(view, "alert", alert_names, "alerting.alerts"),
            handler=_ref(view, "handler", handler_names, "handlers"),
            metric=_metric(view),
            priority=_priority(view),
            description=view.text("description"),
        )
        parser = rules.REGISTRY.get(rule_type)
        if parser is None:
            if rule_type:
                view.error(
                    "type", f"unknown rule type {rule_type!r} (known: {', '.join(rules.REGISTRY)})"
                )
            continue
        spec = parser(view, base, ctx)
        view.finish()
        if spec is not None:
            specs.append(spec)
    return tuple(specs)


def _ref(view: View, key: str, known: set[str], where: str) -> str | None:
    value = view.opt_str(key)
    if value is not None and value not in known:
        view.error(
            key,
            f"no {where} entry named {value!r}"
            + (f" (defined: {', '.join(sorted(known))})" if known else ""),
        )
    return value


def _metric(view: View) -> str | None:
    value = view.opt_str("metric")
    if value is not None and not _NAME.match(value):
        view.error("metric", f"metric names are lower_snake_case, got {value!r}")
    return value


def _priority(view: View) -> int | None:
    node = view.node_of("priority")
    if node is None:
        view.opt_str("priority")
        return None
    text = view.text("priority")
    value = PRIORITIES.get(text.lower(), int(text) if text.isdigit() else None)
    if value is None or not 0 <= value <= 7:
        view.error("priority", f"expected a syslog priority (emerg … debug, or 0-7), got {text!r}")
        return None
    return value


def _handlers(root: View, problems: Problems) -> dict[str, HandlerSpec]:
    specs: dict[str, HandlerSpec] = {}
    for name, view in root.named_views("handlers"):
        if not _NAME.match(name):
            view.error("type", f"handler names are lower_snake_case, got {name!r}")
        handler_type = view.text("type", required=True)
        parser = handlers.REGISTRY.get(handler_type)
        if parser is None:
            if handler_type:
                view.error(
                    "type",
                    f"unknown handler type {handler_type!r} "
                    f"(known: {', '.join(handlers.REGISTRY)})",
                )
            continue
        specs[name] = parser(view, name)
        view.finish()
    return specs


def _alerting(view: View | None, problems: Problems) -> AlertingConfig:
    if view is None:
        return AlertingConfig(instance=socket.gethostname())
    urls = view.str_list("alertmanager_urls")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            view.error(
                "alertmanager_urls", f"expected http:// or https:// URLs, got {redact(url)!r}"
            )
    alerts: dict[str, AlertSpec] = {}
    for name, aview in view.named_views("alerts"):
        if not _ALERT_NAME.match(name):
            aview.error("summary", f"alert names are letters, digits and _, got {name!r}")
        alerts[name] = AlertSpec(
            name=name,
            summary=aview.text("summary", required=True),
            description=aview.text("description"),
            runbook_url=aview.text("runbook_url"),
            labels=aview.str_map("labels"),
        )
        aview.finish()
    cfg = AlertingConfig(
        alertmanager_urls=urls,
        resend_interval_us=view.duration_us("resend_interval", "1m"),
        service=view.text("service", "aisha-api"),
        instance=view.text("instance", socket.gethostname()),
        alerts=alerts,
        one_off_ttl_us=view.duration_us("one_off_ttl", "1h"),
        max_event_age_us=view.duration_us("max_event_age", "1h"),
        auth=parse_auth(view, *urls),
    )
    view.finish()
    return cfg


def _health_checks(root: View, alert_names: set[str]) -> tuple[HealthCheckSpec, ...]:
    checks: list[HealthCheckSpec] = []
    for view in root.views("health_checks"):
        check_type = view.choice("type", ("http", "systemd_unit"), "http")
        spec = HealthCheckSpec(
            name=view.text("name", required=True),
            type=check_type,
            interval_us=view.duration_us("interval", "30s"),
            timeout_us=view.duration_us("timeout", "5s"),
            url=handlers.base.parse_url(view, "url") if check_type == "http" else "",
            expect_status=view.integer("expect_status", 200, minimum=100),
            unit=view.text("unit", required=check_type == "systemd_unit"),
            alert=_ref(view, "alert", alert_names, "alerting.alerts"),
        )
        view.finish()
        checks.append(spec)
    return tuple(checks)


def _cross_check(root: View, config: Config, alert_names: set[str]) -> None:
    """References between sections that a single section cannot check."""
    rule_names = {r.base.name for r in config.rules}
    hview = root.map("handlers")
    for name, spec in config.handlers.items():
        alert = spec.common.alert
        if alert is not None and alert not in alert_names and hview is not None:
            sub = hview.map(name)
            if sub is not None:
                sub.error("alert", f"no alerting.alerts entry named {alert!r}")
    for name, spec in config.handlers.items():
        refs = spec.references()
        for refs_of, known, what in (
            (refs.rules, rule_names, "rule"),
            (refs.handlers, set(config.handlers), "handler"),
        ):
            for key, ref in refs_of.items():
                if ref not in known and hview is not None:
                    sub = hview.map(name)
                    if sub is not None:
                        sub.error(key, f"no {what} named {ref!r}")

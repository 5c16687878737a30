"""The shape of the house, pinned (ARCHITECTURE.md): what may import what, where the daemon's
concerns live, how big a module or a function may grow. Each test names the file and line
that breaks the rule."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import handlers
import rules
from monitor.config.schema import load_config

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("monitor", "rules", "handlers")

# what rules/ and handlers/ may use of monitor: the model, the clock, the YAML layer, regex
# checks, secrets and status normalization; never the daemon, the journal reader or the tools
PLUGIN_MAY_IMPORT = {
    "monitor.core.model",
    "monitor.core.statuses",
    "monitor.core.clock",
    "monitor.config.yamlview",
    "monitor.config.regexutil",
    "monitor.config.secrets",
}
# the engine and its model do no I/O: no files, sockets, processes, threads or wall clock
CORE_MAY_IMPORT_STDLIB = {
    "__future__", "collections", "collections.abc", "dataclasses", "datetime", "enum",
    "functools", "heapq", "itertools", "math", "re", "typing",
}  # fmt: skip
CORE_MAY_IMPORT = {"monitor.core", "monitor.config.schema", "rules.base", "prometheus_client"}
CLOCK_MODULE = "monitor/core/clock.py"  # the one place the daemon's time comes from

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40
# longer than the rule, each for a reason that splitting would not serve
LONG_MODULES = {
    "monitor/config/schema.py": "the whole config schema, one small function per section",
    "monitor/journal/reader.py": "the only module that imports systemd: all of it in one place",
    "monitor/daemon/state.py": "the SQLite schema and every statement the daemon writes",
    "monitor/daemon/outbox.py": "the jobs table's state machine: enqueue, run, verify, finish",
    "monitor/daemon/loop.py": "the loop, its batch and its signals; every part it drives is apart",
    "monitor/core/engine.py": "the engine's hot path: dispatch, gate and fast path together",
    "monitor/config/yamlview.py": "the line-aware YAML layer with its typed accessors",
    "rules/pair.py": "one rule type, one module (the house rule for plugins)",
    "rules/base.py": "the rule protocols with their defaults and the shared pattern parsing",
}
LONG_FUNCTIONS = {
    "monitor/cli.py:build_parser": "argparse declarations, one block per command",
    "monitor/daemon/metrics.py:__post_init__": "metric declarations, one per series",
    "monitor/daemon/statuspage.py:render_status_page": "an HTML template",
    "monitor/daemon/httpserver.py:_handler": "a handler class built around its backend",
    "monitor/daemon/metrics.py:build_families": "the declared families, then the rules' own",
    "monitor/daemon/outbox.py:enqueue": "one INSERT with its columns",
    "monitor/daemon/outbox.py:verify": "the three ways a watched replay ends",
    "monitor/daemon/outbox.py:apply": "the outcomes a run can have, each a branch",
    "monitor/daemon/state.py:commit": "one transaction, statement by statement",
    "monitor/journal/reader.py:__iter__": "the reader's hot loop, kept inline for speed",
    "monitor/journal/reader.py:gated": "the gated reader's hot loop, kept inline for speed",
    "monitor/daemon/alerter.py:payload": "the Alertmanager v2 body, field by field",
    "monitor/tools/replay.py:_read_in_parallel": "workers' parts merged in order",
    "monitor/tools/explain.py:_rule": "one verdict per case, in the order explain prints them",
    "monitor/app.py:build": "the composition root: every part, built once, in order",
    "handlers/provider_status.py:run": "the provider's answers, each a branch",
}


def sources(*packages: str) -> Iterator[tuple[str, ast.Module]]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            yield rel, ast.parse(path.read_text(encoding="utf-8"), rel)


def imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) of every import, including ones inside functions."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from monitor.core import model` imports a module
                yield node.lineno, f"{node.module}.{alias.name}"


def within(module: str, allowed: set[str]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


def test_rules_and_handlers_import_nothing_of_the_daemon() -> None:
    bad = [
        f"{rel}:{line}: imports {module}"
        for rel, tree in sources("rules", "handlers")
        for line, module in imports(tree)
        if module.startswith("monitor")
        and module != "monitor"
        and not within(module, PLUGIN_MAY_IMPORT)
        and module.rsplit(".", 1)[0] not in PLUGIN_MAY_IMPORT  # `from m import name`
    ]
    assert bad == []


def test_the_engine_and_its_model_do_no_io() -> None:
    bad = []
    for rel, tree in sources("monitor/core"):
        if rel == CLOCK_MODULE:
            continue
        for line, module in imports(tree):
            project = module.split(".")[0] in ("monitor", "rules", "handlers")
            allowed = CORE_MAY_IMPORT if project else CORE_MAY_IMPORT_STDLIB | CORE_MAY_IMPORT
            if not within(module, allowed) and module.rsplit(".", 1)[0] not in allowed:
                bad.append(f"{rel}:{line}: imports {module}")
    assert bad == []


def test_only_the_journal_reader_imports_systemd() -> None:
    bad = [
        f"{rel}:{line}"
        for rel, tree in sources(*PACKAGES)
        for line, module in imports(tree)
        if module.split(".")[0] == "systemd" and rel != "monitor/journal/reader.py"
    ]
    assert bad == []


def test_only_the_registries_name_concrete_rule_and_handler_modules() -> None:
    """Outside rules/ and handlers/, code reaches a rule or a handler through its protocol
    (rules.base, handlers.base) and the registries, never through its class."""
    plugin_modules = {f"rules.{k}" for k in rules.REGISTRY} | {
        f"handlers.{'exec' if k == 'exec' else k}" for k in handlers.REGISTRY
    }
    bad = [
        f"{rel}:{line}: imports {module}"
        for rel, tree in sources("monitor")
        for line, module in imports(tree)
        if within(module, plugin_modules)
    ]
    assert bad == []


def test_no_getattr_dispatch_outside_the_plugins() -> None:
    """getattr on a rule, a spec or a handler hides a missing method from mypy."""
    allowed = {("monitor/daemon/state.py", "sqlite_errorcode")}
    bad = []
    for rel, tree in sources("monitor"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "getattr":
                name = node.args[1].value if isinstance(node.args[1], ast.Constant) else "?"
                if (rel, name) not in allowed:
                    bad.append(f"{rel}:{node.lineno}: getattr(…, {name!r})")
    assert bad == []


def test_the_wall_clock_is_read_only_through_the_clock() -> None:
    """The daemon's time is injected (monitor/core/clock.py); the command line reads `now`
    once per command."""
    allowed = {CLOCK_MODULE, "monitor/cli.py", "monitor/tools/replay.py"}
    bad = []
    for rel, tree in sources(*PACKAGES):
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr)
                in {("time", "time"), ("time", "time_ns"), ("time", "monotonic")}
                and rel not in allowed
            ):
                bad.append(f"{rel}:{node.lineno}: {node.value.id}.{node.attr}")
    assert bad == []


def test_only_the_composition_root_builds_the_daemon_parts() -> None:
    parts = {"StateStore", "Outbox", "Worker", "Alerter", "HealthChecker", "HttpServer",
             "Metrics", "Committer", "Effects", "StateView", "Daemon"}  # fmt: skip
    bad = []
    for rel, tree in sources("monitor"):
        for node in ast.walk(tree):
            name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if name in parts and rel != "monitor/app.py":
                bad.append(f"{rel}:{node.lineno}: {name}(…)")
    assert bad == []


def test_each_registry_key_is_its_module_and_has_a_golden_case() -> None:
    for registry, package in ((rules.REGISTRY, "rules"), (handlers.REGISTRY, "handlers")):
        for key, parse in registry.items():
            assert parse.__module__ == f"{package}.{key}", (key, parse.__module__)
    shipped = {spec.base.type for spec in load_config(None, env={}).rules}
    cased = set(shipped)
    for case in (ROOT / "tests" / "golden").iterdir():
        if (case / "config.yaml").exists():
            cased |= {s.base.type for s in load_config(case / "config.yaml", env={}).rules}
    assert set(rules.REGISTRY) <= cased


def test_modules_stay_small() -> None:
    bad = []
    for rel, _ in sources(*PACKAGES):
        n = len((ROOT / rel).read_text(encoding="utf-8").splitlines())
        if n > MAX_MODULE_LINES and rel not in LONG_MODULES:
            bad.append(f"{rel}: {n} lines")
    assert bad == []


def test_functions_stay_short() -> None:
    bad = []
    for rel, tree in sources(*PACKAGES):
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{rel}:{node.name}" not in LONG_FUNCTIONS:
                    bad.append(f"{rel}:{node.lineno}: {node.name} is {n} lines")
    assert bad == []


@pytest.mark.parametrize("exceptions", [LONG_MODULES, LONG_FUNCTIONS])
def test_every_listed_exception_is_still_needed(exceptions: dict[str, str]) -> None:
    """An exception whose module or function shrank below the limit is taken off the list."""
    stale = []
    for where in exceptions:
        rel, _, func = where.partition(":")
        path = ROOT / rel
        if not path.exists():
            stale.append(where)
            continue
        if not func:
            if len(path.read_text(encoding="utf-8").splitlines()) <= MAX_MODULE_LINES:
                stale.append(where)
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        sizes = [
            (n.end_lineno or n.lineno) - n.lineno + 1
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == func
        ]
        if not sizes or max(sizes) <= MAX_FUNCTION_LINES:
            stale.append(where)
    assert stale == []

"""The command line: run, check-config, replay, test-rules, explain and status."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence

from monitor import __version__
from monitor.config.schema import Config, ConfigError, load_config
from monitor.config.secrets import SecretFileError, redact
from monitor.journal.reader import JournalError
from monitor.tools.replay import ReplayOptions, print_summary, run_replay
from monitor.tools.timeparse import parse_time_us

EXIT_CONFIG = 2
EXIT_STATE = 3  # the state file is unusable: restarting will not help (RestartPreventExitStatus)


def _config_path(arg: str | None) -> str | None:
    """-c, else $AISHA_MONITOR_CONFIG, else /etc/aisha-monitor/config.yaml if present, else the
    embedded default (None)."""
    if arg:
        return arg
    env = os.environ.get("AISHA_MONITOR_CONFIG")
    if env:
        return env
    etc = "/etc/aisha-monitor/config.yaml"
    return etc if os.path.exists(etc) else None


def _load(arg: str | None, *, read_secrets: bool = True) -> Config | None:
    """The config, or None after printing every problem. `run` and `check-config` read the
    secret files too (missing, unreadable or empty: a problem, exit 2); the offline commands,
    which send nothing, do not need them."""
    try:
        return load_config(_config_path(arg), read_secrets=read_secrets)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        print(f"{len(e.problems)} problem(s) found", file=sys.stderr)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    types: dict[str, int] = {}
    for spec in config.rules:
        types[spec.base.type] = types.get(spec.base.type, 0) + 1
    kinds = ", ".join(f"{n} {t}" for t, n in types.items())
    print(
        f"{config.source}: OK: {len(config.rules)} rules ({kinds}), "
        f"{len(config.handlers)} handlers, "
        f"{len(config.alerting.alerts)} alerts, {len(config.health_checks)} health checks; "
        f"units: {', '.join(config.journal.units) or '-'}"
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    config = _load(args.config, read_secrets=False)
    if config is None:
        return EXIT_CONFIG
    now_us = time.time_ns() // 1000
    try:
        opts = ReplayOptions(
            directory=args.journal_dir,
            files=tuple(args.journal_file or ()),
            since_us=parse_time_us(args.since, now_us) if args.since else None,
            until_us=parse_time_us(args.until, now_us) if args.until else None,
            now_us=parse_time_us(args.now, now_us) if args.now else None,
            output_format=args.format,
        )
    except ValueError as e:
        print(f"aisha-monitor replay: {e}", file=sys.stderr)
        return EXIT_CONFIG
    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        result = run_replay(config, opts, sys.stdout, progress)
    except JournalError as e:
        print(f"aisha-monitor replay: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        sys.stderr.close()  # `replay | head`: the reader left, and that is fine
        return 0
    sys.stdout.flush()
    print_summary(result)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from monitor import app  # the daemon's imports are for `run` only
    from monitor.daemon.options import RunOptions
    from monitor.daemon.state import StateError

    config_path = _config_path(args.config)
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    opts = RunOptions(
        config_path=config_path,
        journal_dir=args.journal_dir,
        journal_files=tuple(args.journal_file or ()),
        state_dir=args.state_dir,
        listen=args.listen,
        dry_run=args.dry_run,
    )
    try:
        daemon = app.build(config, opts)
    except StateError as e:
        print(f"aisha-monitor run: {e}", file=sys.stderr)
        return EXIT_STATE
    except SecretFileError as e:  # changed since the config was loaded: a config error still
        print(f"aisha-monitor run: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        print(
            f"aisha-monitor run: cannot listen on {opts.listen or config.http.listen}: {e}",
            file=sys.stderr,
        )
        return 1
    daemon.install_signals()
    try:
        return daemon.run()
    except JournalError as e:
        print(f"aisha-monitor run: {e}", file=sys.stderr)
        return 1


def cmd_test_rules(args: argparse.Namespace) -> int:
    from monitor.tools import testrules

    return testrules.main(args.files, sys.stdout, sys.stderr)


def cmd_explain(args: argparse.Namespace) -> int:
    from monitor.tools import explain

    config = _load(args.config, read_secrets=False)
    if config is None:
        return EXIT_CONFIG
    lines = list(args.lines)
    if lines == ["-"]:
        lines = [line.rstrip("\r\n") for line in sys.stdin]
    priority = explain.parse_priority(args.priority)
    if priority is None:
        print(f"aisha-monitor explain: bad --priority {args.priority!r}", file=sys.stderr)
        return EXIT_CONFIG
    opts = explain.Options(unit=args.unit, priority=priority)
    reports = explain.explain_lines(config, lines, opts)
    if args.json:
        explain.write_json(reports, sys.stdout)
    else:
        explain.write_text(reports, sys.stdout)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from monitor.tools import statuscmd

    return statuscmd.main(
        statuscmd.StatusOptions(
            url=args.url, timeout_s=args.timeout, token_file=args.token_file, as_json=args.json
        ),
        sys.stdout,
        sys.stderr,
    )


def _add_ops_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tests = sub.add_parser(
        "test-rules", help="run rule unit tests (YAML: log lines in, expected events out)"
    )
    tests.add_argument("files", nargs="+", metavar="FILE", help="test files")
    tests.set_defaults(func=cmd_test_rules)

    explain = sub.add_parser("explain", help="show what every rule does with the given log lines")
    explain.add_argument("-c", "--config", help="config file (default: the embedded config.yaml)")
    explain.add_argument(
        "--unit", default="aisha-api.service", help="the line's unit (default: aisha-api.service)"
    )
    explain.add_argument(
        "--priority", default="6", help="the line's syslog priority, 0-7 or a name (default: 6)"
    )
    explain.add_argument("--json", action="store_true", help="one JSON document for scripts")
    explain.add_argument("lines", nargs="+", metavar="LINE", help="log messages, or - for stdin")
    explain.set_defaults(func=cmd_explain)

    status = sub.add_parser("status", help="ask a running daemon how it is doing")
    status.add_argument(
        "--url", default="http://127.0.0.1:9817", help="the daemon (default: %(default)s)"
    )
    status.add_argument("--timeout", type=float, default=5.0, metavar="S", help="seconds (5)")
    status.add_argument("--token-file", metavar="FILE", help="send the bearer token in FILE")
    status.add_argument("--json", action="store_true", help="print the raw state")
    status.set_defaults(func=cmd_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aisha-monitor",
        description="Watch aisha-api's journal: unknown webhook statuses, stalled trainings.",
    )
    parser.add_argument("--version", action="version", version=f"aisha-monitor {__version__}")
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], help="default: info for run"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", help="the daemon: follow the journal, serve /metrics and the status page"
    )
    run.add_argument("-c", "--config", help="config file (default: the embedded config.yaml)")
    where_run = run.add_mutually_exclusive_group()
    where_run.add_argument("--journal-dir", metavar="DIR", help="follow journal files in DIR")
    where_run.add_argument(
        "--journal-file", metavar="FILE", action="append", help="read FILE (repeatable)"
    )
    run.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory (default: $STATE_DIRECTORY or state.directory)",
    )
    run.add_argument(
        "--listen", metavar="HOST:PORT", help="HTTP address (default: http.listen, 127.0.0.1:9817)"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="handlers log what they would do and send nothing"
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config; exit 2 listing every problem")
    check.add_argument("-c", "--config", help="config file (default: the embedded config.yaml)")
    check.set_defaults(func=cmd_check_config)

    replay = sub.add_parser("replay", help="evaluate journal history offline and print events")
    replay.add_argument("-c", "--config", help="config file (default: the embedded config.yaml)")
    where = replay.add_mutually_exclusive_group()
    where.add_argument("--journal-dir", metavar="DIR", help="read journal files in DIR")
    where.add_argument(
        "--journal-file", metavar="FILE", action="append", help="read FILE (repeatable)"
    )
    replay.add_argument("--since", metavar="T", help="start at T (RFC 3339, or -2h style)")
    replay.add_argument("--until", metavar="T", help="stop after T")
    replay.add_argument(
        "--now", metavar="T", help="evaluate pending deadlines at T (default: last entry)"
    )
    replay.add_argument("--format", choices=["jsonl", "table"], default="jsonl")
    replay.set_defaults(func=cmd_replay)
    _add_ops_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = (
        args.log_level.upper()
        if args.log_level
        else ("INFO" if args.command == "run" else "WARNING")
    )
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    return int(args.func(args))


class RedactingFormatter(logging.Formatter):
    """Every log line, tracebacks included, without the userinfo of the URLs it holds: the
    parts redact what they write, and this catches what a library's exception says."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

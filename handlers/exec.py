"""`exec`: run an argv (never a shell) with event fields as environment variables.
Configuration only; commands run from the daemon's outbox."""

from __future__ import annotations

from dataclasses import dataclass

from handlers.base import HandlerCommon, parse_common
from monitor.yamlview import View


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """Keys: `argv` (a list; the first item an absolute path)."""

    common: HandlerCommon
    argv: tuple[str, ...]


def parse(view: View, name: str) -> ExecSpec:
    common = parse_common(view, name)
    argv = view.str_list("argv", required=True)
    if view.has("argv") and (not argv or not argv[0].startswith("/")):
        view.error("argv", "expected a list whose first item is an absolute path to a program")
    return ExecSpec(common, argv)

"""`aisha-monitor run`'s command-line choices, and what they override in the config."""

from __future__ import annotations

import os
from dataclasses import dataclass

from monitor.config.schema import Config


@dataclass(frozen=True, slots=True)
class RunOptions:
    config_path: str | None = None
    journal_dir: str | None = None
    journal_files: tuple[str, ...] = ()
    state_dir: str | None = None
    listen: str | None = None
    dry_run: bool = False


def state_directory(opts: RunOptions, config: Config) -> str:
    """--state-dir, else $STATE_DIRECTORY (set by systemd's StateDirectory=), else the config's."""
    if opts.state_dir:
        return opts.state_dir
    from_systemd = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return from_systemd or config.state.directory


def listen_address(opts: RunOptions, config: Config) -> str:
    return opts.listen or config.http.listen

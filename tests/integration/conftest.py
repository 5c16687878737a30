"""Integration fixtures: real journal files written by systemd-journal-remote, and the real CLI
run as a subprocess over them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from monitor.tools.export import JOURNAL_REMOTE, write_journal

ETC_CONFIG = Path("/etc/aisha-monitor/config.yaml")
CLI_TIMEOUT_S = 120

WriteEntries = Callable[..., Path]
RunCli = Callable[..., subprocess.CompletedProcess[str]]
Replay = Callable[..., tuple[int, list[dict[str, Any]], str]]


@pytest.fixture(autouse=True)
def _journal_remote_present() -> None:
    if not Path(JOURNAL_REMOTE).exists():
        pytest.fail(f"{JOURNAL_REMOTE} is missing: apt-get install systemd-journal-remote")


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    d = tmp_path / "journal"
    d.mkdir()
    return d


@pytest.fixture
def write_entries(journal_dir: Path) -> WriteEntries:
    """write_entries(entries, name="aisha-api.journal"): export-format entries (from
    `export_entry`) into a real journal file in `journal_dir`; a second call appends."""

    def write(entries: Iterable[bytes], name: str = "aisha-api.journal") -> Path:
        return write_journal(journal_dir / name, entries)

    return write


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """run_cli(*args): `python -m monitor ARGS` with the embedded default config unless -c."""
    if ETC_CONFIG.exists():
        pytest.skip(f"{ETC_CONFIG} exists and would replace the embedded default config")
    env = {k: v for k, v in os.environ.items() if k != "AISHA_MONITOR_CONFIG"}
    env["PYTHONIOENCODING"] = "utf-8"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    return run


@pytest.fixture
def replay(run_cli: RunCli, journal_dir: Path) -> Replay:
    """replay(*args) -> (returncode, JSON events from stdout, stderr) for `replay --journal-dir`."""

    def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
        proc = run_cli("replay", "--journal-dir", str(journal_dir), *args)
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return proc.returncode, events, proc.stderr

    return run

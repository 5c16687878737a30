"""Secret files are config: one that is missing, unreadable or empty (or only whitespace) is a
problem that `check-config` reports and that stops `run` with exit 2 (RestartPreventExitStatus:
no restart loop), named FILE:LINE:COL with its key; a reload with one is refused. An empty HTTP
token would otherwise open the API to `Authorization: Bearer `."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.daemon_fixtures import (
    SHIPPED_CONFIG,
    MakeDaemon,
    daemon_env,
    free_port,
    live_journal_fixture,  # noqa: F401 - a fixture
    make_daemon_fixture,  # noqa: F401 - a fixture
    tail,
    wait_for,
)
from tests.integration.test_daemon import replace_text

EXIT_CONFIG = 2
RELOAD_OK = "aisha_monitor_config_last_reload_successful"


def secret_at(data: dict[str, Any], where: str, path: str) -> None:
    """Put the secret file `path` under `where` (a dotted key) of the config `data`."""
    *sections, key = where.split(".")
    node = data
    for section in sections:
        node = node.setdefault(section, {})
    if key == "api_key_file":
        node.pop("api_key_env", None)
    node[key] = path


def config_with(tmp_path: Path, where: str, path: str) -> Path:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data.pop("health_checks", None)
    secret_at(data, where, path)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cfg


FILES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda p: _write(p, ""), "is empty"),
    "whitespace": (lambda p: _write(p, " \n\t \n"), "is empty"),
    "missing": (lambda p: p, "No such file or directory"),
    "a directory": (lambda p: (p.mkdir(), p)[1], "Is a directory"),
}
KEYS = (
    "http.token_file",
    "handlers.provider_status.api_key_file",
    "handlers.replay_webhook.token_file",
    "alerting.token_file",
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def monitor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=daemon_env(),
        check=False,
    )


def named(stderr: str, cfg: Path, key: str, secret: Path, why: str) -> bool:
    line = rf"^{re.escape(str(cfg))}:\d+:\d+: {re.escape(key)}: .*{re.escape(str(secret))}.*{why}"
    return re.search(line, stderr, re.MULTILINE) is not None


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("kind", list(FILES))
def test_check_config_names_a_secret_file_that_cannot_serve(
    tmp_path: Path, key: str, kind: str
) -> None:
    make, why = FILES[kind]
    secret = make(tmp_path / "secret")
    cfg = config_with(tmp_path, key, str(secret))
    r = monitor("check-config", "-c", str(cfg))
    assert r.returncode == EXIT_CONFIG, r.stdout + r.stderr
    assert named(r.stderr, cfg, key, secret, why), r.stderr


@pytest.mark.parametrize(
    ("key", "kind"),
    [("http.token_file", "empty"), ("http.token_file", "missing"),
     ("http.token_file", "whitespace"), ("handlers.replay_webhook.token_file", "missing")],
)  # fmt: skip
def test_run_refuses_a_secret_file_that_cannot_serve_with_exit_2(
    tmp_path: Path, key: str, kind: str
) -> None:
    make, why = FILES[kind]
    secret = make(tmp_path / "secret")
    cfg = config_with(tmp_path, key, str(secret))
    journal, state = tmp_path / "journal", tmp_path / "state"
    journal.mkdir()
    argv = ["run", "-c", str(cfg), "--journal-dir", str(journal), "--state-dir", str(state)]
    argv += ["--listen", f"127.0.0.1:{free_port()}"]
    try:
        r = monitor(*argv, timeout=20)
    except subprocess.TimeoutExpired as e:  # the old code: the API open to an empty token
        pytest.fail(f"`run` was still running after 20 s: {e.stderr!r}")
    assert r.returncode == EXIT_CONFIG, r.stderr
    assert named(r.stderr, cfg, key, secret, why), r.stderr
    assert "cannot listen" not in r.stderr


def test_a_reload_with_a_missing_secret_file_is_refused(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    d.start()
    missing = tmp_path / "no-such-token"
    data = yaml.safe_load(d.config.read_text(encoding="utf-8"))
    data["handlers"]["replay_webhook"]["token_file"] = str(missing)
    replace_text(d.config, yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.metric(RELOAD_OK) == 0, 10, lambda: f"the reload refused\n{tail(d.log)}")
    (problem,) = d.state()["config"]["problems"]
    assert named(problem, d.config, "handlers.replay_webhook.token_file", missing, "No such")
    assert d.running()

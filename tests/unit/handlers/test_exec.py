"""exec: a real program run with the event in AISHA_* variables; log content never reaches the
argv or a shell."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
import requests

from handlers.base import Outcome, Result
from handlers.exec import ExecSpec
from monitor.config.schema import ConfigError
from monitor.core.model import Event, EventKind, Severity
from tests.helpers import T0
from tests.unit.handlers import context, job, load_handlers, unknown_value


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """Writes its environment (NUL-separated) to $1 and its argv to $2, then exits 0."""
    return script(
        tmp_path, "record.sh", 'env -0 > "$1"\nprintf \'%s\\0\' "$0" "$@" > "$2"\nexit 0\n'
    )


def spec(argv: list[str], extra: str = "") -> ExecSpec:
    cfg = load_handlers(
        f"""
        remedy:
          type: exec
          argv: {json.dumps(argv)}
          {extra}
        """
    )
    h = cfg.handlers["remedy"]
    assert isinstance(h, ExecSpec)
    return h


def read_nul(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8").split("\0")[:-1]


def run_recorder(
    recorder: Path, tmp_path: Path, session: requests.Session, event: Event
) -> tuple[Result, dict[str, str], list[str]]:
    env_file, argv_file = tmp_path / "env.out", tmp_path / "argv.out"
    argv = [str(recorder), str(env_file), str(argv_file)]
    result = spec(argv).run(
        job(event, "remedy"), context(session, env={"FAL_KEY": "secret-in-ctx-env"})
    )
    env = dict(item.split("=", 1) for item in read_nul(env_file))
    return result, env, read_nul(argv_file)


def test_the_event_arrives_in_aisha_variables(
    recorder: Path, tmp_path: Path, session: requests.Session
) -> None:
    event = unknown_value(raw="Успех ✓")
    result, env, argv = run_recorder(recorder, tmp_path, session, event)
    assert (result.outcome, result.retry) == (Outcome.DONE, False)
    assert result.detail == f"{recorder}: exit 0"
    assert env["AISHA_RULE"] == "unknown_status"
    assert env["AISHA_KIND"] == "unknown_value"
    assert env["AISHA_KEY"] == "req-42"
    assert env["AISHA_SEVERITY"] == "critical"
    assert env["AISHA_MESSAGE"] == "unknown status 'Успех ✓'"
    assert env["AISHA_LABEL_STATUS"] == "Успех ✓"
    assert env["AISHA_LABEL_NORMALIZED"] == "completed"
    assert env["AISHA_LABEL_REQUEST_ID"] == "req-42"
    assert json.loads(env["AISHA_EVENT"]) == event.to_json()
    assert argv == [str(recorder), str(tmp_path / "env.out"), str(tmp_path / "argv.out")]


def test_the_environment_is_only_path_and_aisha(
    recorder: Path, tmp_path: Path, session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAL_KEY", "secret-in-os-environ")
    _, env, _ = run_recorder(recorder, tmp_path, session, unknown_value())
    assert env["PATH"] == "/usr/bin:/bin"
    others = {k for k in env if not k.startswith("AISHA_")} - {"PATH", "PWD"}  # sh sets PWD
    assert others == set()
    assert "secret" not in json.dumps(env)


HOSTILE = {
    "subst": "$(touch MARKER)",
    "semicolon": "; rm -rf / ; touch MARKER",
    "backticks": "`touch MARKER`",
    "newline": "ok\ntouch MARKER\n",
    "nul": "before\x00after; touch MARKER",
    "quotes": "'\"; touch MARKER; echo \"'",
    "glob": "* ? [a-z] ~ ${HOME} $$ !",
}


def test_hostile_values_arrive_verbatim_and_nothing_runs(
    recorder: Path, tmp_path: Path, session: requests.Session
) -> None:
    marker = tmp_path / "pwned"
    hostile = {k: v.replace("MARKER", str(marker)) for k, v in HOSTILE.items()}
    labels = {**hostile, "bad-name": "x", "x=y": "y", "": "z"}
    event = Event(
        T0,
        "unknown_status",
        EventKind.UNKNOWN_VALUE,
        Severity.CRITICAL,
        hostile["semicolon"],
        labels,
        hostile["subst"] + hostile["backticks"] + hostile["newline"],
    )
    result, env, argv = run_recorder(recorder, tmp_path, session, event)
    assert result.outcome == Outcome.DONE
    assert not marker.exists()
    assert env["AISHA_KEY"] == hostile["semicolon"]
    assert env["AISHA_MESSAGE"] == event.message
    for name, value in hostile.items():
        # NUL cannot pass through execve: it is dropped, everything else is verbatim
        assert env[f"AISHA_LABEL_{name.upper()}"] == value.replace("\0", "")
    assert json.loads(env["AISHA_EVENT"]) == event.to_json()  # JSON escapes the NUL: intact
    assert not any(k.startswith("AISHA_LABEL_") and "=" in k for k in env)
    assert {k for k in env if k.startswith("AISHA_LABEL_")} == {
        f"AISHA_LABEL_{n.upper()}" for n in hostile
    }
    assert argv == [str(recorder), str(tmp_path / "env.out"), str(tmp_path / "argv.out")]
    assert all(v not in " ".join(argv) for v in hostile.values())


def test_a_nonzero_exit_fails_with_retry(tmp_path: Path, session: requests.Session) -> None:
    failing = script(tmp_path, "fail.sh", "echo first >&2\necho 'disk full' >&2\nexit 3\n")
    result = spec([str(failing)]).run(job(unknown_value(), "remedy"), context(session))
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)
    assert result.detail == f"{failing}: exit 3 disk full"


def test_a_timeout_fails_with_retry(tmp_path: Path, session: requests.Session) -> None:
    slow = script(tmp_path, "slow.sh", "sleep 5\n")
    started = time.monotonic()
    result = spec([str(slow)], "timeout: 1s").run(job(unknown_value(), "remedy"), context(session))
    assert (result.outcome, result.retry) == (Outcome.FAILED, True)
    assert result.detail == f"{slow}: timed out"
    assert time.monotonic() - started < 4  # killed at the timeout, not waited for


def test_a_missing_program_gives_up(tmp_path: Path, session: requests.Session) -> None:
    missing = tmp_path / "no-such-program"
    result = spec([str(missing)]).run(job(unknown_value(), "remedy"), context(session))
    assert (result.outcome, result.retry) == (Outcome.GAVE_UP, False)
    assert str(missing) in result.detail


def test_dry_run_runs_nothing(recorder: Path, tmp_path: Path, session: requests.Session) -> None:
    argv = [str(recorder), str(tmp_path / "env.out"), str(tmp_path / "argv.out")]
    result = spec(argv).run(job(unknown_value(), "remedy"), context(session, dry_run=True))
    assert result.outcome == Outcome.DRY_RUN and str(recorder) in result.detail
    result = spec(argv, "dry_run: true").run(job(unknown_value(), "remedy"), context(session))
    assert result.outcome == Outcome.DRY_RUN
    assert not (tmp_path / "env.out").exists()


@pytest.mark.parametrize("argv", ["['relative/script.sh']", "[]", "['']", "['~/heal.sh']"])
def test_argv_must_be_a_list_starting_with_an_absolute_path(argv: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_handlers(f"remedy: {{type: exec, argv: {argv}}}")
    assert "argv" in str(info.value)

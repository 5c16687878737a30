"""deploy/aisha-monitor.service under systemd's own tools: `systemd-analyze security` rates it
2.0 or lower, `systemd-analyze verify` has nothing to say about it, and the directives the daemon
relies on are there and agree with the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitor.cli import EXIT_CONFIG, EXIT_STATE
from tests.system.conftest import UNIT_FILE, aisha_monitor_bin

pytestmark = pytest.mark.system

MAX_EXPOSURE = 2.0
SHIPPED_EXEC = "/usr/local/bin/aisha-monitor"
ANALYZE_TIMEOUT_S = 60


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.fail("systemd-analyze is missing (Debian package: systemd)")
    return subprocess.run(
        [exe, "--no-pager", *args],
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT_S,
        check=False,
    )


def directives(text: str) -> dict[str, list[str]]:
    """Key -> every value given, in order (keys such as SystemCallFilter= repeat)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def runnable_copy(tmp_path: Path) -> Path:
    """The shipped unit with ExecStart= pointing at this venv's aisha-monitor, which exists here,
    so verify checks everything else; the copy keeps the unit's name."""
    text = UNIT_FILE.read_text(encoding="utf-8")
    shipped = f"ExecStart={SHIPPED_EXEC} run\n"
    assert text.count(shipped) == 1, f"expected exactly one line {shipped!r} in {UNIT_FILE}"
    copy = tmp_path / UNIT_FILE.name
    copy.write_text(text.replace(shipped, f"ExecStart={aisha_monitor_bin()} run\n"))
    return copy


def test_security_exposure_is_ok_or_better() -> None:
    proc = systemd_analyze("security", "--offline=true", str(UNIT_FILE))
    output = proc.stdout + proc.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert found, f"no exposure level in the output (rc={proc.returncode}):\n{output}"
    exposure = float(found.group(1))
    weak = "\n".join(line for line in proc.stdout.splitlines() if line.startswith("✗"))
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} > {MAX_EXPOSURE}; not hardened:\n{weak}"


def test_verify_finds_nothing_in_the_unit(tmp_path: Path) -> None:
    copy = runnable_copy(tmp_path)
    proc = systemd_analyze("verify", "--man=no", str(copy))
    output = (proc.stdout + proc.stderr).strip()
    about_unit = [
        line for line in output.splitlines() if copy.name in line or str(copy.parent) in line
    ]
    assert not about_unit, "systemd-analyze verify complains:\n" + "\n".join(about_unit)
    assert proc.returncode == 0, f"systemd-analyze verify failed (rc={proc.returncode}):\n{output}"


def test_verify_of_the_shipped_file_only_misses_the_installed_binary() -> None:
    """The copy above differs in ExecStart= only; on this machine the shipped path does not exist
    unless the package is installed there, and that must be verify's only remark."""
    proc = systemd_analyze("verify", "--man=no", str(UNIT_FILE))
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    if Path(SHIPPED_EXEC).exists():
        assert not lines, "\n".join(lines)
        return
    missing = f"Command {SHIPPED_EXEC} is not executable"
    others = [line for line in lines if missing not in line]
    assert not others, "\n".join(others)


def test_directives_the_daemon_relies_on() -> None:
    d = directives(UNIT_FILE.read_text(encoding="utf-8"))
    single = {k: v[-1] for k, v in d.items()}
    assert single["Type"] == "notify"  # READY=1 after the journal is open and HTTP listens
    assert single["WatchdogSec"] == "30s"
    assert single["ExecStart"] == f"{SHIPPED_EXEC} run"
    assert single["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP = reload the config
    assert single["Restart"] == "on-failure"
    assert single["TimeoutStopSec"] == "10"
    # exit codes after which a restart cannot help: the CLI's own constants
    assert set(single["RestartPreventExitStatus"].split()) == {str(EXIT_CONFIG), str(EXIT_STATE)}
    assert single["DynamicUser"] == "yes"
    assert single["SupplementaryGroups"] == "systemd-journal"  # reads every journal file
    assert single["StateDirectory"] == "aisha-monitor"  # $STATE_DIRECTORY, read by the daemon
    # PrivateUsers= would map systemd-journal to nogroup: the journal would be unreadable
    assert single.get("PrivateUsers", "no") == "no"
    families = set(single["RestrictAddressFamilies"].split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6"}

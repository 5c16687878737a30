"""The daemon over a REAL systemd-journald: no --journal-dir, the default system journal, entries
whose trusted `_SYSTEMD_UNIT=aisha-api.service` and `_PID` journald itself attached.

PID 1 is not systemd on the test machines, so journald runs in a private mount namespace
(`unshare --mount`) with tmpfs over /run/systemd, /run/log and /var/log/journal: nothing it writes
reaches the machine's journal. A long-lived sender moves itself into a cgroup named
system.slice/aisha-api.service (that is where journald takes the unit from) and logs the seed's
lines with `systemd.journal.send`. The network namespace is shared, so the test talks to the
daemon on 127.0.0.1 as usual..
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system.conftest import (
    START_TIMEOUT_S,
    aisha_monitor_bin,
    free_port,
    http_get,
    poll,
    quiet_env,
    sample,
    tail,
    write_config,
)

pytestmark = pytest.mark.system

JOURNALD = "/lib/systemd/systemd-journald"
PREFIX = "2026-11-27 10:15:02,113 - app.routers.fal_webhook - INFO - "
# the seed's healthy webhook, then the incident: an upper-case status the router did not know
LINES = [
    (6, "[WEBHOOK] Получен webhook от FAL AI: {'request_id': 'test_completed', "
        "'status': 'completed', 'result': {'diffusers_lora_file': {'url': 'https://x/l.safetensors'}}}"),
    (6, "[WEBHOOK] Обработка статуса 'completed' для request_id: test_completed, тип: portrait"),
    (6, "[WEBHOOK BACKGROUND] Начинаем обработку test_completed, статус: completed"),
    (6, "[TRAINING COMPLETED] test_completed: обучение завершено успешно"),
    (6, "[WEBHOOK BACKGROUND] Обработка завершена для test_completed"),
    (6, "[WEBHOOK BACKGROUND] Начинаем обработку r1, статус: COMPLETED"),
    (4, "[WEBHOOK BACKGROUND] Неизвестный статус: COMPLETED"),
]  # fmt: skip
EVENT_TIMEOUT_S = 30.0

# Runs inside `unshare --mount --propagation private`: the mounts below vanish with it.
NAMESPACE_SCRIPT = r"""#!/bin/bash
set -euo pipefail
W=$1
pids=()
stop_all() {
    trap - TERM INT EXIT
    # in reverse order: the sender, the daemon (it commits and exits 0), journald last
    for (( i=${#pids[@]}-1; i>=0; i-- )); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
}
trap 'stop_all; exit 0' TERM INT
trap stop_all EXIT

for d in /run/systemd /run/log; do
    [ -d "$d" ] || { echo "$d does not exist on this machine" >&2; exit 1; }
    mount -n -t tmpfs -o mode=0755 tmpfs "$d"
done
# absent: journald keeps the journal in /run/log/journal (tmpfs now) instead
if [ -d /var/log/journal ]; then mount -n -t tmpfs -o mode=2755 tmpfs /var/log/journal; fi

env -u NOTIFY_SOCKET -u WATCHDOG_USEC "$JOURNALD" > "$W/journald.log" 2>&1 &
pids+=($!)
for _ in $(seq 500); do  # poll for the socket, 10 s at most
    [ -S /run/systemd/journal/socket ] && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "systemd-journald exited" >&2; exit 1; }
    sleep 0.02
done
[ -S /run/systemd/journal/socket ] || { echo "no journal socket after 10 s" >&2; exit 1; }
echo journald-up > "$W/journald.up"

NOTIFY_SOCKET="$W/notify.sock" "$AISHA_MONITOR" run -c "$W/config.yaml" \
    --state-dir "$W/state" --listen "127.0.0.1:$PORT" --dry-run > "$W/daemon.log" 2>&1 &
pids+=($!)
"$PYTHON" "$W/sender.py" "$CGROUP" "$W" > "$W/sender.log" 2>&1 &
pids+=($!)
# all three live until the test stops this script; if one dies, stop the others
rc=0
wait -n || rc=$?
echo "a child exited early, with status $rc (journald, daemon, sender: ${pids[*]})" >&2
exit 1
"""

# Moves itself into the unit's cgroup, waits for the go file, logs LINES, stays alive: journald
# reads a sender's cgroup from /proc when a message arrives, and loses it for short-lived ones.
SENDER = r"""
import json, os, signal, sys, time
from systemd import journal
cgroup, work = sys.argv[1], sys.argv[2]
with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
    f.write(str(os.getpid()))
go, deadline = os.path.join(work, "go"), time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go file within 60 s")
    time.sleep(0.02)
with open(os.path.join(work, "lines.json"), encoding="utf-8") as f:
    for priority, message in json.load(f):
        journal.send(MESSAGE=message, PRIORITY=priority)
with open(os.path.join(work, "sent"), "w") as f:
    f.write(str(os.getpid()))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
"""


def cgroup_root() -> Path:
    """Where journald looks up a process's unit: the cgroup2 hierarchy (unified or hybrid), else
    the v1 name=systemd one."""
    mounts = [line.split() for line in Path("/proc/self/mounts").read_text().splitlines()]
    for _, where, fstype, *_ in mounts:
        if fstype == "cgroup2":
            return Path(where)
    for _, where, fstype, options, *_ in mounts:
        if fstype == "cgroup" and "name=systemd" in options.split(","):
            return Path(where)
    pytest.fail("no cgroup2 and no name=systemd cgroup hierarchy mounted")


@dataclass
class UnitCgroup:
    path: Path
    created: list[Path]

    def remove(self) -> None:
        """rmdir what we created, deepest first, once the sender's exit has emptied it."""
        for d in reversed(self.created):
            poll(lambda d=d: _rmdir(d), 10, f"rmdir {d}")


def _rmdir(d: Path) -> bool:
    try:
        d.rmdir()
    except FileNotFoundError:
        return True
    except OSError:  # EBUSY until the kernel has reaped the last task
        return False
    return True


@pytest.fixture
def unit_cgroup() -> Iterator[UnitCgroup]:
    """system.slice/aisha-api.service in the cgroup tree, removed afterwards. Refuses to touch a
    real aisha-api.service cgroup."""
    root = cgroup_root()
    path = root / "system.slice" / "aisha-api.service"
    if path.exists():
        pytest.fail(f"{path} exists: a real aisha-api.service runs here; not touching it")
    created = [d for d in (path.parent, path) if not d.exists()]
    for d in created:
        d.mkdir()
    cg = UnitCgroup(path, created)
    yield cg
    cg.remove()


def require_mount_namespace() -> None:
    """Skip only when the kernel refuses the namespace (unprivileged, seccomp, container)."""
    exe = shutil.which("unshare")
    if exe is None:
        pytest.fail("unshare is missing (Debian package: util-linux)")
    if not Path(JOURNALD).exists():
        pytest.fail(f"{JOURNALD} is missing (Debian package: systemd)")
    proc = subprocess.run(
        [exe, "--mount", "--propagation", "private", "--", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip(f"the kernel refuses a private mount namespace: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"unshare failed: {proc.stderr}"


@dataclass
class Namespace:
    proc: subprocess.Popen[bytes]
    work: Path
    port: int

    @property
    def logs(self) -> str:
        names = ("namespace.log", "journald.log", "daemon.log", "sender.log")
        return "\n".join(tail(self.work / n) for n in names)

    def alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"the namespace script exited with {self.proc.returncode}\n{self.logs}")

    def get(self, path: str) -> tuple[int, str] | None:
        self.alive()
        return http_get(f"http://127.0.0.1:{self.port}{path}")


@pytest.fixture
def namespace(tmp_path: Path, unit_cgroup: UnitCgroup) -> Iterator[Namespace]:
    """journald, the daemon and the sender in one private mount namespace; all stopped after."""
    require_mount_namespace()
    work = tmp_path / "ns"
    (work / "state").mkdir(parents=True)
    (work / "ns.sh").write_text(NAMESPACE_SCRIPT)
    (work / "sender.py").write_text(SENDER)
    (work / "lines.json").write_text(
        json.dumps([[p, PREFIX + m] for p, m in LINES], ensure_ascii=False), encoding="utf-8"
    )
    write_config(work / "config.yaml")
    port = free_port()
    env = quiet_env() | {
        "JOURNALD": JOURNALD,
        "AISHA_MONITOR": str(aisha_monitor_bin()),
        "PYTHON": sys.executable,
        "CGROUP": str(unit_cgroup.path),
        "PORT": str(port),
    }
    with (work / "namespace.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "bash",
                str(work / "ns.sh"),
                str(work),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    ns = Namespace(proc, work, port)
    try:
        yield ns
    finally:
        _stop_namespace(proc)


def _stop_namespace(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the script (it stops its three children in order); its whole process group, by
    its id, only if it does not finish in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):  # the group this test created (new session)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def notify_socket(work: Path) -> socket.socket:
    """The NOTIFY_SOCKET systemd would give a Type=notify service."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(work / "notify.sock"))
    s.settimeout(0.1)
    return s


def test_daemon_follows_the_real_system_journal(namespace: Namespace) -> None:
    ns = namespace
    with notify_socket(ns.work) as notify:
        messages: list[str] = []

        def got_ready() -> bool:
            ns.alive()
            with contextlib.suppress(TimeoutError):
                messages.append(notify.recv(4096).decode())
            return any("READY=1" in m for m in messages)

        poll(got_ready, START_TIMEOUT_S, lambda: f"READY=1 on NOTIFY_SOCKET\n{ns.logs}")

    # READY=1 means the journal is open and HTTP listens: everything sent now is live following
    ready = ns.get("/readyz")
    assert ready is not None and ready[0] == 200, ready
    (ns.work / "go").write_text("go")
    poll(lambda: (ns.work / "sent").exists(), EVENT_TIMEOUT_S, lambda: f"the sender\n{ns.logs}")

    def counted() -> str | None:
        r = ns.get("/metrics")
        if r is None or r[0] != 200:
            return None
        unknown = sample(
            r[1], "aisha_monitor_unknown_status_total", status="COMPLETED", normalized="completed"
        )
        entries = sample(r[1], "aisha_monitor_journal_entries_total", unit="aisha-api.service")
        return r[1] if unknown == 1 and entries == len(LINES) else None

    metrics = poll(
        counted,
        EVENT_TIMEOUT_S,
        lambda: (
            f"unknown_status_total == 1 and journal_entries_total == {len(LINES)}\n"
            f"{_metric_lines(ns)}\n{ns.logs}"
        ),
    )
    assert sample(metrics, "aisha_monitor_rule_matches_total", rule="webhook_processing") == 2

    # the request_id comes from the "Начинаем обработку" line of the same _PID: journald's _PID
    r = ns.get("/api/v1/events?limit=100")
    assert r is not None and r[0] == 200, r
    unknown = [e for e in json.loads(r[1]) if e["kind"] == "unknown_value"]
    assert [(e["key"], e["labels"]) for e in unknown] == [
        ("r1", {"status": "COMPLETED", "normalized": "completed"})
    ], unknown


def _metric_lines(ns: Namespace) -> str:
    r = http_get(f"http://127.0.0.1:{ns.port}/metrics")
    if r is None:
        return "(no /metrics)"
    wanted = ("aisha_monitor_unknown_status", "aisha_monitor_journal_entries")
    return "\n".join(line for line in r[1].splitlines() if line.startswith(wanted))

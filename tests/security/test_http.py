"""The HTTP side: it listens on 127.0.0.1 only unless told otherwise (the listening sockets of the
process are read from /proc), and with `http.token_file` the status page and the API need the
bearer token while /metrics and the health endpoints stay open.

The unit file's hardening (`systemd-analyze security --offline=true`, exposure at most 2.0) is
checked by tests/system/test_unit_file.py::test_security_exposure_is_ok_or_better."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from monitor.config.schema import load_config
from monitor.tools.export import export_entry, write_journal
from tests.integration.daemon_fixtures import (
    SHIPPED_CONFIG,
    MonitorDaemon,
    daemon_env,
    tail,
    wait_for,
)

DEFAULT = ("127.0.0.1", 9817)
TOKEN = "tok-6b1f0c9e-never-logged"  # noqa: S105 - a test token, distinctive for grepping


def config(path: Path, http: dict[str, str] | None) -> Path:
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data.pop("health_checks", None)
    data.pop("http", None)
    if http is not None:
        data["http"] = http
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _hex_addr(text: str) -> tuple[str, int]:
    addr, port = text.split(":")
    if len(addr) == 8:
        host = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
    else:  # /proc/net/tcp6: four little-endian 32-bit words
        raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
        host = socket.inet_ntop(socket.AF_INET6, raw)
    return host, int(port, 16)


def sockets_of(pid: int) -> list[tuple[str, str, tuple[str, int], str]]:
    """(protocol, state, local address, inode) of every inet socket the process holds, read
    from its own network namespace's /proc/PID/net tables."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        rows = Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]
        for row in rows:
            cols = row.split()
            if cols[9] in inodes:
                state = "LISTEN" if cols[3] == "0A" else cols[3]
                out.append((proto, state, _hex_addr(cols[1]), cols[9]))
    return out


def listening(pid: int) -> list[tuple[str, str, tuple[str, int], str]]:
    return [s for s in sockets_of(pid) if s[1] == "LISTEN" or s[0].startswith("udp")]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    made: list[subprocess.Popen[bytes]] = []
    try:
        yield made
    finally:
        for p in made:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_the_embedded_default_listens_on_loopback() -> None:
    assert load_config(None, env={}).http.listen == "127.0.0.1:9817"


def test_default_listen_is_127_0_0_1_only(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    """No http section and no --listen: the default. In a private network namespace (port 9817
    may be taken on the machine), whose loopback is brought up first."""
    journal, state = tmp_path / "journal", tmp_path / "state"
    journal.mkdir()
    cfg = config(tmp_path / "config.yaml", None)
    log = tmp_path / "daemon.log"
    script = (
        "ip link set lo up && exec "
        f"{sys.executable} -m monitor run -c {cfg} --journal-dir {journal} --state-dir {state}"
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["unshare", "--net", "--", "sh", "-c", script],
            stdout=out, stderr=subprocess.STDOUT, env=daemon_env(), cwd=tmp_path,
        )  # fmt: skip
    procs.append(proc)
    found = wait_for(
        lambda: proc.poll() is None and listening(proc.pid),
        30,
        lambda: f"a listening socket\n{tail(log)}",
    )
    assert [(p, a) for p, _, a, _ in found] == [("tcp", DEFAULT)], found


class ConfigListenDaemon(MonitorDaemon):
    """Started without --listen: `http.listen` in its config says where (a free port)."""

    def __init__(self, *args: object, http: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.http = http

    def argv(self) -> list[str]:
        config(self.config, {**self.http, "listen": f"127.0.0.1:{self.port}"})
        argv = super().argv()
        return argv[: argv.index("--listen")]


def start(tmp_path: Path, made: list[MonitorDaemon], http: dict[str, str]) -> MonitorDaemon:
    journal = tmp_path / "journal"
    if not journal.exists():  # a journal file: the daemon is not ready while it reads nothing
        journal.mkdir()
        now_us = time.time_ns() // 1000
        write_journal(journal / "api.journal", [export_entry("uvicorn: started", now_us)])
    work = tmp_path / f"daemon-{len(made)}"
    work.mkdir()
    d = ConfigListenDaemon(
        work / "config.yaml", journal, work / "state", work, daemon_env(), http=http
    )
    made.append(d)
    return d.start()


def other_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    addrs = [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]
    return [a for a in addrs if not a.startswith("127.")]


def test_configured_listen_binds_only_that_address(
    tmp_path: Path, daemons: list[MonitorDaemon]
) -> None:
    d = start(tmp_path, daemons, {})
    assert d.proc is not None
    found = listening(d.proc.pid)
    assert [(p, a) for p, _, a, _ in found] == [("tcp", ("127.0.0.1", d.port))], found
    for addr in other_addresses():
        with pytest.raises(OSError):
            socket.create_connection((addr, d.port), timeout=2).close()


def get(d: MonitorDaemon, path: str, auth: str | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth is not None else {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        conn.close()


PROTECTED = ["/", "/api/v1/state", "/api/v1/events", "/api/v1/events?limit=1000",
             "/api/v1/state?x=1"]  # fmt: skip
OPEN = ["/metrics", "/healthz", "/readyz"]
WRONG = [None, "", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", f"Basic {TOKEN}", TOKEN,
         f"Bearer  {TOKEN}", f"Bearer {TOKEN} ", "Bearer", f"bearer{TOKEN}"]  # fmt: skip


def test_token_protects_the_page_and_the_api_not_metrics_or_health(
    tmp_path: Path, daemons: list[MonitorDaemon]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    d = start(tmp_path, daemons, {"token_file": str(token_file)})
    for path in PROTECTED:
        for auth in WRONG:
            status, headers, body = get(d, path, auth)
            assert status == 401, (path, auth, status)
            assert body == ""
            assert headers.get("WWW-Authenticate", "").startswith("Bearer")
        status, _, body = get(d, path, f"Bearer {TOKEN}")
        assert status == 200, (path, status)
        assert TOKEN not in body
    for path in OPEN:
        status, _, body = get(d, path)
        assert status == 200, path
        assert TOKEN not in body
    for path in ("/api/v1/../v1/state", "//api/v1/state", "/API/v1/state", "/api/v1/state/",
                 "/api/v2/state", "/index.html", "/%2e%2e/etc/passwd"):  # fmt: skip
        status, _, body = get(d, path)
        assert status in (401, 404), (path, status)
        assert '"journal"' not in body
    assert TOKEN not in d.log_text()

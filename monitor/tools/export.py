"""Writing real journal files: the journal export format, fed to systemd-journal-remote.

Used by the tests and the benchmark, and by anyone who wants a sample journal to try rules on
(`aisha-monitor replay --journal-dir`). See https://systemd.io/JOURNAL_EXPORT_FORMATS/.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "0123456789abcdef0123456789abcdef"
MACHINE_ID = "fedcba9876543210fedcba9876543210"


def export_field(key: str, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    if b"\n" in data:
        # the binary-safe form: KEY\n, a little-endian 64-bit length, the bytes, \n
        return key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key.encode() + b"=" + data + b"\n"


def export_entry(
    message: str | bytes,
    realtime_us: int,
    *,
    unit: str = "aisha-api.service",
    identifier: str | None = None,
    pid: int = 4242,
    priority: int = 6,
    hostname: str = "api-1",
    boot_id: str = BOOT_ID,
    monotonic_us: int | None = None,
    extra: Mapping[str, str | bytes] | None = None,
) -> bytes:
    """One entry in export format, with the trusted fields journald itself would add."""
    fields: list[tuple[str, str | bytes]] = [
        ("__REALTIME_TIMESTAMP", str(realtime_us)),
        (
            "__MONOTONIC_TIMESTAMP",
            str(monotonic_us if monotonic_us is not None else realtime_us % 10**12),
        ),
        ("_BOOT_ID", boot_id),
        ("_MACHINE_ID", MACHINE_ID),
        ("_HOSTNAME", hostname),
        ("_TRANSPORT", "stdout"),
        ("_SYSTEMD_UNIT", unit),
        ("_PID", str(pid)),
        ("_UID", "0"),
        ("SYSLOG_IDENTIFIER", identifier or unit.removesuffix(".service")),
        ("PRIORITY", str(priority)),
        ("MESSAGE", message),
    ]
    if extra:
        fields.extend(extra.items())
    return b"".join(export_field(k, v) for k, v in fields) + b"\n"


def write_journal(path: str | Path, entries: Iterable[bytes]) -> Path:
    """Write export-format entries into `path` (a file ending in .journal) with
    systemd-journal-remote; appends when the file exists."""
    path = Path(path)
    if path.suffix != ".journal":
        raise ValueError(f"systemd-journal-remote writes only files ending in .journal, not {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - a fixed program; the path is the caller's
        [JOURNAL_REMOTE, "-o", str(path), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if proc.stdin is None:  # pragma: no cover - PIPE always gives one
        raise RuntimeError("no stdin pipe to systemd-journal-remote")
    for chunk in entries:
        proc.stdin.write(chunk)
    proc.stdin.close()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"systemd-journal-remote failed: {err.decode(errors='replace')}")
    return path

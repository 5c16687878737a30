"""The status page `/` rendered by a real headless Chromium, over a daemon that has read a real
journal with a stalled training, an unknown status and an open training. The screenshot is kept
(in $AISHA_TEST_ARTIFACTS when set) for a person to look at."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from html import unescape
from pathlib import Path

import pytest

from monitor.tools.export import export_entry, write_journal
from tests.system.conftest import Daemon, poll, write_config

pytestmark = pytest.mark.system

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_TIMEOUT_S = 120
MIN_SCREENSHOT_BYTES = 10 * 1024
PID = 4242
MINUTE_US = 60 * 1_000_000

STALLED = "req-stalled-7f3a9c"
OPEN = "req-open-91c2d4"
UNKNOWN = "req-unknown-5d1e08"
CLOSED = "req-done-0b7e11"
UNKNOWN_STATUS = "COMPLETED"


def line(minutes_ago: float, text: str, level: str = "INFO") -> tuple[float, str, str]:
    return minutes_ago, text, level


def journal_lines() -> list[tuple[float, str, str]]:
    """Oldest first: a training submitted 2h ago that never ended (stalled: the deadline is 1h),
    one that finished, the incident (an upper-case status the router dropped), one just opened."""
    status = UNKNOWN_STATUS
    return [
        line(125, f"Запуск обучения аватара av-1 отправлен в FAL AI, request_id: {STALLED}"),
        line(60, f"Запуск обучения аватара av-2 отправлен в FAL AI, request_id: {CLOSED}"),
        line(55, f"[TRAINING COMPLETED] {CLOSED}: обучение завершено успешно"),
        line(30, f"Запуск обучения аватара av-3 отправлен в FAL AI, request_id: {UNKNOWN}"),
        line(5, f"[WEBHOOK] Обработка статуса '{status}' для request_id: {UNKNOWN}, тип: portrait"),
        line(5, f"[WEBHOOK BACKGROUND] Начинаем обработку {UNKNOWN}, статус: {status}"),
        line(5, f"[WEBHOOK BACKGROUND] Неизвестный статус: {status}", "WARNING"),
        line(2, f"Запуск обучения аватара av-4 отправлен в FAL AI, request_id: {OPEN}"),
    ]  # fmt: skip


def write_incident_journal(directory: Path) -> Path:
    now_us = time.time_ns() // 1000
    priorities = {"INFO": 6, "WARNING": 4}
    entries = []
    for i, (minutes_ago, text, level) in enumerate(journal_lines()):
        t_us = now_us - int(minutes_ago * MINUTE_US) + i  # strictly increasing
        prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t_us / 1e6))
        message = f"{prefix},{t_us // 1000 % 1000:03d} - app.routers.fal_webhook - {level} - {text}"
        entries.append(export_entry(message, t_us, pid=PID, priority=priorities[level]))
    return write_journal(directory / "aisha-api.journal", entries)


def chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / f"chromium-{name}"
    profile.mkdir()
    argv = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        timeout=CHROMIUM_TIMEOUT_S,
        check=False,
        env={"HOME": str(profile), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    return proc


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def section(dom: str, title: str) -> str:
    """The text from the <h2> starting with `title` to the next <h2>."""
    found = re.search(rf"<h2>{re.escape(title)}.*?(?=<h2>|</body>)", dom, re.S)
    assert found, f"no section {title!r} in the page"
    return text_of(found.group(0))


@pytest.fixture
def browser() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: apt-get install --no-install-recommends chromium")
    return CHROMIUM


@pytest.fixture
def daemon(tmp_path: Path, start_daemon: Callable[..., Daemon]) -> Daemon:
    journal_dir = tmp_path / "journal"
    write_incident_journal(journal_dir)
    config = write_config(tmp_path / "config.yaml")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    d = start_daemon(
        "-c", str(config),
        "--journal-dir", str(journal_dir),
        "--state-dir", str(state_dir),
        "--dry-run",
    )  # fmt: skip
    d.wait_ready()

    def settled() -> bool:
        state = d.state()
        kinds = {e["kind"] for e in d.events()}
        return (
            state["journal"]["entries"] == len(journal_lines())
            and sum(state["stalled_total"].values()) == 1
            and "unknown_value" in kinds
        )

    poll(settled, 30, lambda: f"1 stalled training and 1 unknown status in {d.url}/api/v1/state")
    return d


def test_status_page_in_a_real_browser(
    browser: Path, daemon: Daemon, tmp_path: Path, artifacts_dir: Path
) -> None:
    url = daemon.url + "/"

    dom = chromium(tmp_path, "dom", "--dump-dom", url).stdout.decode("utf-8")
    (artifacts_dir / "status-page.dom.html").write_text(dom, encoding="utf-8")

    banner = re.search(r'<p class="banner (\w+)">(.*?)</p>', dom, re.S)
    assert banner, f"no banner in the rendered page:\n{dom[:2000]}"
    assert banner.group(1) == "crit", banner.group(0)
    assert banner.group(2).startswith("CRITICAL: "), banner.group(0)
    assert "1 unknown webhook status(es) in the last hour" in banner.group(2), banner.group(0)
    assert "1 stalled training" in banner.group(2), banner.group(0)

    stalled = section(dom, "Stalled trainings")
    assert STALLED in stalled
    assert OPEN not in stalled and UNKNOWN not in stalled
    unknown = section(dom, "Unknown webhook statuses, last hour")
    assert UNKNOWN in unknown  # the request_id joined from the line before
    assert UNKNOWN_STATUS in unknown and "completed" in unknown
    opened = section(dom, "Open trainings")
    assert OPEN in opened and UNKNOWN in opened and CLOSED not in opened
    assert "Open trainings (2)" in dom  # the stalled one is counted above, not here

    png = artifacts_dir / "status-page.png"
    png.unlink(missing_ok=True)
    chromium(tmp_path, "png", f"--screenshot={png}", "--window-size=1280,1600", url)
    assert png.exists(), f"chromium wrote no {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > MIN_SCREENSHOT_BYTES, f"{png}: {png.stat().st_size} bytes"

"""The journal source over real journal files: the private systemd-python calls it relies on,
unit/identifier matching, hostile messages, and positioning (cursor resume, tail)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from systemd import journal

from monitor.core.model import Entry
from monitor.journal.reader import Fields, JournalSource
from monitor.tools.export import export_entry, write_journal
from tests.helpers import T0, S

pytestmark = pytest.mark.integration

WriteEntries = Callable[..., Path]
OpenSource = Callable[..., JournalSource]

UNKNOWN = "[WEBHOOK BACKGROUND] Неизвестный статус: "
TRACEBACK = (
    "2026-11-27 10:15:02,113 - app.routers.fal_webhook - ERROR - "
    "[WEBHOOK BACKGROUND] Ошибка обработки r9\n"
    "Traceback (most recent call last):\n"
    '  File "/opt/aisha/api_server/app/routers/fal_webhook.py", line 88, in process\n'
    "    await handle_training_completed(request_id, body)\n"
    "KeyError: 'result'"
)


@pytest.fixture
def source(journal_dir: Path) -> Iterator[OpenSource]:
    """source(**kwargs): a JournalSource on `journal_dir`, at its head, closed after the test."""
    opened: list[JournalSource] = []

    def open_source(**kwargs: object) -> JournalSource:
        src = JournalSource(directory=str(journal_dir), **kwargs)  # type: ignore[arg-type]
        src.seek_head()
        opened.append(src)
        return src

    yield open_source
    for src in opened:
        src.close()


def messages(src: JournalSource) -> list[str]:
    return [e.message for e in src]


# --- the private systemd-python API ------------------------------------------------------------


def test_private_reader_calls_behave_as_journal_py_expects(
    journal_dir: Path, write_entries: WriteEntries
) -> None:
    write_entries([
        export_entry("Запуск обучения аватара a1", T0 + 17, pid=101, priority=4),
        export_entry("second", T0 + 5 * S),
    ])  # fmt: skip
    reader = journal.Reader(path=str(journal_dir))
    try:
        assert hasattr(reader, "data_threshold")
        reader.data_threshold = 4096
        assert reader.data_threshold == 4096

        assert reader._next() is True
        message = reader._get("MESSAGE")
        assert type(message) is bytes
        assert message == "Запуск обучения аватара a1".encode()  # the value only, no "MESSAGE="
        assert reader._get("_PID") == b"101"
        assert reader._get("PRIORITY") == b"4"
        with pytest.raises(KeyError):
            reader._get("NO_SUCH_FIELD")
        realtime = reader._get_realtime()
        assert type(realtime) is int
        assert realtime == T0 + 17
        cursor = reader._get_cursor()
        assert type(cursor) is str

        assert reader._next() is True
        assert reader._get_realtime() == T0 + 5 * S
        assert reader._next() is False

        reader.seek_head()
        assert reader.get_next()["__CURSOR"] == cursor
    finally:
        reader.close()


# --- matching ----------------------------------------------------------------------------------


def test_units_and_identifier_are_ored(write_entries: WriteEntries, source: OpenSource) -> None:
    write_entries([
        export_entry("api", T0, unit="aisha-api.service"),
        export_entry("nginx", T0 + 1, unit="nginx.service"),
        export_entry("bot", T0 + 2, unit="aisha-bot.service"),
        export_entry("cron", T0 + 3, unit="cron.service", identifier="aisha-cron"),
        export_entry("other cron", T0 + 4, unit="cron.service", identifier="logrotate"),
    ])  # fmt: skip
    src = source(units=("aisha-api.service", "aisha-bot.service"), identifiers=("aisha-cron",))
    got = [(e.message, e.unit) for e in src]
    assert got == [
        ("api", "aisha-api.service"),
        ("bot", "aisha-bot.service"),
        ("cron", "cron.service"),
    ]


def test_entry_fields_are_read(write_entries: WriteEntries, source: OpenSource) -> None:
    write_entries([
        export_entry("one", T0 + 123_456, unit="aisha-api.service", pid=4101, priority=3),
        export_entry("two", T0 + 2 * S, unit="aisha-bot.service", pid=77, priority=7),
    ])  # fmt: skip
    src = source(units=("aisha-api.service", "aisha-bot.service"))
    assert list(src) == [
        Entry(T0 + 123_456, "one", "aisha-api.service", 4101, 3, ""),
        Entry(T0 + 2 * S, "two", "aisha-bot.service", 77, 7, ""),
    ]
    fixed = source(
        units=("aisha-bot.service",), fields=Fields(pid=False, priority=False, hostname=True)
    )
    assert list(fixed) == [Entry(T0 + 2 * S, "two", "aisha-bot.service", -1, 6, "api-1")]


def test_fill_reads_pid_and_host_of_the_current_entry(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([
        export_entry("one", T0, pid=4101, hostname="api-1"),
        export_entry("two", T0 + 1, pid=4102, hostname="api-2"),
    ])  # fmt: skip
    src = source(fields=Fields(pid=False, priority=False, hostname=False))
    filled = [src.fill(e) for e in src]
    assert [(e.message, e.pid, e.hostname) for e in filled] == [
        ("one", 4101, "api-1"),
        ("two", 4102, "api-2"),
    ]


# --- hostile messages --------------------------------------------------------------------------


def test_non_utf8_message_is_decoded_with_replacement(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([
        export_entry(UNKNOWN.encode() + b"\xff\xfeOK \xc3(", T0),
        export_entry("after", T0 + 1),
    ])  # fmt: skip
    src = source()
    assert messages(src) == [UNKNOWN + "\ufffd\ufffdOK \ufffd(", "after"]
    assert src.read_errors == 0


def test_huge_message_is_truncated_and_counted(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    huge = "[WEBHOOK] Получен webhook от FAL AI: {'result': '" + "x" * 200_000 + "'}"
    write_entries([
        export_entry("before", T0),
        export_entry(huge, T0 + 1),
        export_entry("after", T0 + 2),
    ])  # fmt: skip
    src = source(max_message_bytes=1000)
    got = messages(src)
    assert len(got) == 3
    assert got[0] == "before"
    assert got[1] == huge.encode()[:1000].decode()
    assert got[2] == "after"
    assert src.truncated == 1


def test_multiline_traceback_is_one_entry(write_entries: WriteEntries, source: OpenSource) -> None:
    write_entries([export_entry(TRACEBACK, T0, priority=3), export_entry("next", T0 + 1)])
    src = source()
    assert messages(src) == [TRACEBACK, "next"]


# --- positioning -------------------------------------------------------------------------------


def test_seek_cursor_resumes_after_the_cursor_entry(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([export_entry(f"m{i}", T0 + i * S) for i in range(6)])
    first = source()
    it = iter(first)
    assert [next(it).message for _ in range(3)] == ["m0", "m1", "m2"]
    cursor = first.cursor()

    resumed = source()
    assert resumed.seek_cursor(cursor) is True
    assert messages(resumed) == ["m3", "m4", "m5"]


def test_seek_cursor_of_a_missing_entry_is_false(
    journal_dir: Path, write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([export_entry(f"m{i}", T0 + i * S) for i in range(3)])
    src = source()
    list(src)
    cursor = src.cursor()
    assert ";i=3;" in cursor  # the third entry of the file
    assert source().seek_cursor(cursor.replace(";i=3;", ";i=99;")) is False

    # a real cursor, but of an entry in a journal file that is not there any more
    other = journal_dir.parent / "other"
    write_journal(other / "gone.journal", [export_entry("gone", T0 + S)])
    gone = JournalSource(directory=str(other))
    try:
        gone.seek_head()
        assert messages(gone) == ["gone"]
        foreign = gone.cursor()
    finally:
        gone.close()
    assert source().seek_cursor(foreign) is False


def test_seek_cursor_of_a_malformed_cursor_is_false(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([export_entry("m0", T0)])
    assert source().seek_cursor("s=corrupted-state-file") is False


def test_seek_tail_reads_only_entries_appended_later(
    write_entries: WriteEntries, source: OpenSource
) -> None:
    write_entries([export_entry(f"old{i}", T0 + i * S) for i in range(3)])
    src = source()
    src.seek_tail()
    assert messages(src) == []
    write_entries([export_entry(f"new{i}", T0 + (10 + i) * S) for i in range(2)])
    got: list[str] = []
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        got += messages(src)
        src.wait(0.05)
    assert got == ["new0", "new1"]
    assert messages(src) == []

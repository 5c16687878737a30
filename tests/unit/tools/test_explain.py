"""`aisha-monitor explain`: what each rule does with given lines, through the real CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from monitor import cli
from tests.helpers import PREFIX

ROOT = Path(__file__).resolve().parents[3]
CONFIG = str(ROOT / "config.yaml")
BEGIN = PREFIX + "[WEBHOOK BACKGROUND] Начинаем обработку r-1, статус: completed"
UNKNOWN = PREFIX + "[WEBHOOK BACKGROUND] Неизвестный статус: completed"
SUBMIT = "Запуск обучения аватара av-9 отправлен в FAL AI, request_id: r-9"
DONE = "[TRAINING COMPLETED] r-9: обучение завершено успешно"


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli.main(["explain", "-c", CONFIG, *args])
    out, err = capsys.readouterr()
    return rc, out, err


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    rc, out, err = explain(capsys, "--json", *args)
    assert rc == 0, err
    return list(json.loads(out))


def rule(report: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [r for r in report["rules"] if r["name"] == name]
    return dict(found)


def test_every_rule_is_reported_for_every_line(capsys: pytest.CaptureFixture[str]) -> None:
    reports = as_json(capsys, BEGIN, "hello")
    assert [r["line"] for r in reports] == [BEGIN, "hello"]
    names = [r["name"] for r in reports[0]["rules"]]
    assert names == [
        "unknown_status", "training_stalled", "webhook_processing", "webhooks",
        "webhook_received", "trainings_launched", "webhook_processing_failed", "api_errors",
        "api_silent",
    ]  # fmt: skip
    assert all(r["verdict"] in ("no match", "excluded by prefilter", "excluded by priority",
               "match") for r in reports[1]["rules"])  # fmt: skip


def test_the_incident_joins_context_and_normalizes(capsys: pytest.CaptureFixture[str]) -> None:
    begin, unknown = as_json(capsys, BEGIN, UNKNOWN)
    ctx = rule(begin, "webhook_processing")
    assert ctx["verdict"] == "match"
    assert ctx["patterns"][0]["groups"] == {"request_id": "r-1", "status": "completed"}
    assert "remembered as context for unknown_status (per host and _PID)" in ctx["notes"]
    uv = rule(unknown, "unknown_status")
    assert uv["verdict"] == "match"
    pattern = uv["patterns"][0]
    assert pattern["present"] == ["[WEBHOOK BACKGROUND] Неизвестный статус: "]
    assert pattern["literals"] == pattern["present"]
    assert pattern["matches"] is True
    assert pattern["groups"] == {"value": "completed"}
    assert "value 'completed' normalizes to 'completed'" in uv["notes"]
    assert "key request_id = 'r-1', joined from the webhook_processing line" in uv["notes"]
    assert uv["events"][0]["labels"] == {"status": "completed", "normalized": "completed"}


def test_a_truly_unknown_value_without_context(capsys: pytest.CaptureFixture[str]) -> None:
    (report,) = as_json(capsys, "[WEBHOOK BACKGROUND] Неизвестный статус: teleported")
    notes = rule(report, "unknown_status")["notes"]
    assert notes[0].startswith("value 'teleported' is truly unknown")
    assert notes[1].startswith("key request_id: none yet; joined from the latest webhook_proc")


def test_pair_start_and_end_with_their_key(capsys: pytest.CaptureFixture[str]) -> None:
    start, end, again = as_json(capsys, SUBMIT, DONE, DONE)
    pair = rule(start, "training_stalled")
    assert pair["verdict"] == "match"
    assert pair["notes"] == [
        "START of a pair: opens request_id 'r-9' (stalled if no end within 1h)"
    ]
    assert [p["role"] for p in pair["patterns"] if p["matches"]] == ["start[0]"]
    assert rule(end, "training_stalled")["notes"] == [
        "END of a pair: closes request_id 'r-9' (pair_closed)"
    ]
    assert rule(again, "training_stalled")["notes"][0].startswith("END of a pair for request_id")


def test_priority_filters(capsys: pytest.CaptureFixture[str]) -> None:
    (info,) = as_json(capsys, "ERROR: database is locked")
    assert rule(info, "api_errors")["verdict"] == "excluded by priority"
    assert rule(info, "api_errors")["notes"] == [
        "the rule reads only priority 3 (err) or more severe; this line is 6 (info)"
    ]
    (err,) = as_json(capsys, "--priority", "err", "ERROR: database is locked")
    assert err["priority"] == 3
    assert rule(err, "api_errors")["verdict"] == "match"
    assert rule(err, "api_errors")["notes"][0].startswith("counts toward the threshold")


def test_a_unit_the_config_does_not_follow(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = explain(capsys, "--unit", "aisha-bot.service", DONE)
    assert rc == 0
    assert "  ! not read: the config follows only aisha-api.service\n" in out
    assert "unit aisha-bot.service (NOT READ)" in out
    (report,) = as_json(capsys, "--unit", "aisha-bot.service", DONE)
    assert report["followed"] is False
    assert {r["verdict"] for r in report["rules"]} == {"not read"}
    notes = rule(report, "training_stalled")["notes"]
    assert "the regex would match if the unit were read" in notes


def test_text_output_is_aligned_one_block_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = explain(capsys, UNKNOWN, "hello")
    assert rc == 0
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    assert blocks[0].startswith(f"line 1: {UNKNOWN}\n  unit aisha-api.service (read), priority 6")
    assert blocks[1].startswith("line 2: hello\n")
    rows = [line for line in blocks[0].splitlines() if line.startswith("  ") and line[2] != " "]
    headers = [r for r in rows if not r.startswith("  unit") and not r.startswith("  !")]
    assert len(headers) == 9
    assert len({r.index(r.split()[1]) for r in headers}) == 1, "the type column is aligned"
    assert "  unknown_status             unknown_value  MATCH" in blocks[0]
    assert "      → value 'completed' normalizes to 'completed'" in blocks[0]
    assert "prefilter absent: '[TRAINING COMPLETED] ', '[TRAINING FAILED] '" in blocks[0]


def test_lines_from_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{SUBMIT}\n{DONE}\r\n"))
    reports = as_json(capsys, "-")
    assert [r["line"] for r in reports] == [SUBMIT, DONE]


def test_journalctl_output_is_pointed_out(capsys: pytest.CaptureFixture[str]) -> None:
    (report,) = as_json(capsys, f"Nov 27 10:15:02 api-1 aisha-api[4101]: {DONE}")
    assert any("journalctl -o cat" in n for n in report["notes"])
    assert rule(report, "training_stalled")["verdict"] == "no match"


def test_a_prefilter_that_hides_a_matching_line_is_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "rules:\n  - {name: limits, type: match, pattern: 'rate limit', prefilter: [Rate]}\n",
        encoding="utf-8",
    )
    rc, out, _ = explain(capsys, "-c", str(cfg), "fal.ai rate limit hit")
    assert rc == 0
    assert "limits  match          excluded by prefilter" in out
    assert "the regex matches but the prefilter excludes the line" in out


def test_an_invalid_config_or_priority_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("rules:\n  - {name: x, type: match, pattern: '('}\n", encoding="utf-8")
    rc, out, err = explain(capsys, "-c", str(cfg), "line")
    assert (rc, out) == (2, "")
    assert f"{cfg}:2:37: rules[0].pattern: invalid regular expression" in err
    rc, _, err = explain(capsys, "--priority", "loud", "line")
    assert rc == 2
    assert "bad --priority 'loud'" in err

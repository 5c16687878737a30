"""Golden cases: a config, input entries (including lines that must not match) and the expected
events, diffed. Timestamps come from the input. `pytest --update-goldens` rewrites expected.jsonl
for review in the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config.schema import load_config
from monitor.core.engine import engine_for
from monitor.core.model import Entry
from tests.helpers import T0, S

CASES = sorted(p for p in Path(__file__).parent.iterdir() if (p / "input.jsonl").exists())


def run_case(case: Path) -> list[str]:
    config_path = case / "config.yaml"
    cfg = load_config(config_path if config_path.exists() else None, env={})
    engine = engine_for(cfg)
    units = set(cfg.journal.units)
    out: list[str] = []
    for line in (case / "input.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        e = Entry(T0 + int(raw["t"] * S), raw["msg"], raw.get("unit", "aisha-api.service"),
                  raw.get("pid", 100), raw.get("priority", 6))  # fmt: skip
        if e.unit not in units:
            continue  # the journal source's unit match would not return it
        due, produced = engine.observe(e)
        out += [json.dumps(ev.to_json(), ensure_ascii=False) for ev in due + produced]
    out += [
        json.dumps(ev.to_json(), ensure_ascii=False)
        for ev in engine.tick(engine.now_us + 24 * 3600 * S)
    ]
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden(case: Path, request: pytest.FixtureRequest) -> None:
    got = run_case(case)
    expected_path = case / "expected.jsonl"
    if request.config.getoption("--update-goldens"):
        expected_path.write_text("".join(g + "\n" for g in got), encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8").splitlines()
    assert got == expected


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 2

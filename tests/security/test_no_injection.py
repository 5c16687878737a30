"""Log content never chooses a URL, an argv or a path, and `exec` never goes through a shell.
Hostile request_ids (`../../etc/passwd`, `http://evil/`, `$(touch …)`, backticks, `;`, `%2e%2e`,
HTML, SQL) flow through every handler: the exec stand-in records its argv, environment and
parent process; the http, aisha-api and fal.ai stand-ins record the paths they were asked for.
Each got exactly the configured argv and paths; the ids arrive only in JSON bodies and
environment variables, verbatim."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from tests.faults.conftest import api_logger
from tests.integration.daemon_fixtures import (
    SHIPPED_CONFIG,
    LiveJournal,
    MonitorDaemon,
    daemon_env,
    tail,
    wait_for,
)
from tests.standins import Request, StandIn

MODEL = "fal-ai/flux-lora-portrait-trainer"
REPLAY_PATH = "/api/v1/avatar/status_update"
HOOK_PATH = "/hook"

RECORDER = r"""
import json, os, sys
out = sys.argv[1]
parent = open(f"/proc/{os.getppid()}/cmdline", "rb").read().split(b"\0")
record = {"argv": sys.argv, "ppid": os.getppid(), "parent": [p.decode() for p in parent if p],
          "env": {k: v for k, v in os.environ.items() if k.startswith("AISHA_")}}
with open(out, "a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\n")
"""


def hostile_ids(marker_dir: Path) -> list[str]:
    """request_ids the shipped patterns accept (no blank, no comma)."""
    m = marker_dir
    return [
        "../../etc/passwd", "http://evil.example/x", f"$(touch${{IFS}}{m}/dollar)",
        f"`touch${{IFS}}{m}/tick`", f";touch${{IFS}}{m}/semi;", "%2e%2e%2f%2e%2e", "a/../../b",
        "?q=1#frag", "<img/src=x/onerror=alert(1)>", "';DROP_TABLE_jobs;--", "${PATH}",
        "\\\\evil\\share", "Ж-ид",
    ]  # fmt: skip


DOT_IDS = ["..", "."]


def write_config(path: Path, recorder: Path, record: Path, hook: str) -> list[str]:
    """The shipped config, plus: an `exec` handler on webhook_processing_failed, an `http`
    handler on a copy of that rule. Returns the exec handler's argv."""
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data.pop("health_checks", None)
    (stalled,) = [r for r in data["rules"] if r["name"] == "training_stalled"]
    stalled["deadline"] = "2s"
    (failed,) = [r for r in data["rules"] if r["name"] == "webhook_processing_failed"]
    argv = [sys.executable, str(recorder), str(record), "--fixed", "$(id)"]
    data["handlers"]["run_script"] = {"type": "exec", "argv": argv}
    data["handlers"]["chat"] = {"type": "http", "url": hook}
    failed["handler"] = "run_script"
    copy = {**failed, "name": "webhook_processing_failed_chat", "handler": "chat"}
    data["rules"].append(copy)
    for spec in data["handlers"].values():
        spec.update(rate_limit=10_000, max_attempts=1)
    # an id with a ':' never gets an end line (the end pattern stops at ':'): fail it quickly
    data["handlers"]["replay_webhook"]["verify_within"] = "3s"
    data["handlers"]["provider_status"]["api_key_env"] = "FAL_KEY"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return argv


def fal_respond(req: Request) -> tuple[int, bytes]:
    if req.path.endswith("/status"):
        return 200, b'{"status": "COMPLETED"}'
    return 200, b'{"diffusers_lora_file": {"url": "https://x/lora"}}'


def run_hostile(
    ids: list[str], tmp_path: Path, lj: LiveJournal, stand_ins: Callable[..., StandIn]
) -> dict[str, Any]:
    """Every id as an unknown status (replay), a stalled training (provider_status, then the
    result delivered through the replay) and a crashed background task (exec and http)."""
    fal = stand_ins(respond=fal_respond)
    api = stand_ins(on_request=api_logger(lj))
    hook = stand_ins()
    work = tmp_path / "daemon"
    work.mkdir()
    recorder, record = work / "recorder.py", work / "exec.jsonl"
    recorder.write_text(RECORDER, encoding="utf-8")
    argv = write_config(work / "config.yaml", recorder, record, hook.url + HOOK_PATH)
    env = {"FAL_QUEUE_URL": fal.url, "AISHA_API_URL": api.url, "FAL_KEY": "k"}
    d = MonitorDaemon(work / "config.yaml", lj.directory, work / "state", work, daemon_env(env))
    try:
        d.start()
        # first the stalled trainings (provider_status, whose result is delivered through the
        # replay) and the crashed tasks (exec, http); then the unknown statuses (replay)
        for i, rid in enumerate(ids):
            lj.send([
                lj.app(f"Запуск обучения аватара av-{i} отправлен в FAL AI, request_id: {rid}"),
                lj.app(f"[WEBHOOK BACKGROUND] Ошибка обработки {rid}: boom", level="ERROR"),
            ])  # fmt: skip

        def ran(handler: str) -> set[str]:
            return {
                e["key"] for e in d.events()
                if e["kind"] == "handler" and e["labels"]["handler"] == handler
            }  # fmt: skip

        wait_for(lambda: ran("provider_status") >= set(ids), 60,
                 lambda: f"provider_status for every id\n{tail(d.log)}")  # fmt: skip
        for i, rid in enumerate(ids):
            pid = 4800 + i
            lj.send([
                lj.app(f"[WEBHOOK BACKGROUND] Начинаем обработку {rid}, статус: OK", pid=pid),
                lj.app("[WEBHOOK BACKGROUND] Неизвестный статус: OK", pid=pid, level="WARNING"),
            ])  # fmt: skip
        wait_for(lambda: ran("replay_webhook") >= set(ids), 60,
                 lambda: f"a replay for every id\n{tail(d.log)}")  # fmt: skip
        wait_for(lambda: d.state()["handler_queue"]["open"] == 0, 60,
                 lambda: f"every run finished: {d.state()['handler_queue']}")  # fmt: skip
        page = d.get("/")
        events = d.events()
    finally:
        d.shutdown()
    lines = record.read_text(encoding="utf-8").splitlines() if record.exists() else []
    runs = [json.loads(x) for x in lines]
    return {"d": d, "argv": argv, "runs": runs, "fal": fal, "api": api, "hook": hook,
            "page": page, "events": events}  # fmt: skip


def test_hostile_request_ids_never_choose_argv_urls_or_paths(
    tmp_path: Path, live_journal: LiveJournal, stand_ins: Callable[..., StandIn]
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    ids = hostile_ids(markers)
    got = run_hostile(ids, tmp_path, live_journal, stand_ins)
    d: MonitorDaemon = got["d"]

    # exec: exactly the configured argv every time, no shell in between, ids in the env only
    assert got["runs"], "the exec handler ran"
    exec_keys = []
    for run in got["runs"]:
        assert run["argv"] == got["argv"][1:], run["argv"]  # sys.argv drops the interpreter
        assert run["parent"][:3] == [sys.executable, "-m", "monitor"], run["parent"]
        assert d.proc is not None and run["ppid"] == d.proc.pid
        exec_keys.append(run["env"]["AISHA_KEY"])
        assert json.loads(run["env"]["AISHA_EVENT"])["key"] == run["env"]["AISHA_KEY"]
    # the key is cut where the pattern says (`[^\s,:]+`), never interpreted
    assert sorted(exec_keys) == sorted(rid.split(":")[0] for rid in ids)
    assert list(markers.iterdir()) == [], "a shell ran something"

    # http: only the configured URL; the ids in the JSON body
    assert {r.path for r in got["hook"].requests} == {HOOK_PATH}
    assert sorted(r.json()["key"] for r in got["hook"].requests) == sorted(exec_keys)

    # replay_webhook (and provider_status delivering a result): only the configured URL; each
    # id in the body, verbatim
    api: StandIn = got["api"]
    assert {r.path for r in api.requests} == {REPLAY_PATH}
    assert sorted(r.json()["request_id"] for r in api.requests) == sorted(ids + ids)

    # provider_status: the id is one path segment, percent-encoded, always under the model
    fal: StandIn = got["fal"]
    want = {
        f"/{MODEL}/requests/{quote(rid, safe='')}{end}" for rid in ids for end in ("/status", "")
    }
    assert set(fal.paths()) == want, sorted(set(fal.paths()) ^ want)
    for r in fal.requests:
        assert r.path.startswith(f"/{MODEL}/requests/")

    # the status page escapes what it shows
    assert "<img/src=x/onerror=alert(1)>" not in got["page"]
    assert os.path.exists("/etc/passwd")  # (still there; nothing wrote to a path from the log)


def test_dot_request_ids_stay_one_path_segment(
    tmp_path: Path, live_journal: LiveJournal, stand_ins: Callable[..., StandIn]
) -> None:
    got = run_hostile(DOT_IDS, tmp_path, live_journal, stand_ins)
    fal: StandIn = got["fal"]
    for r in fal.requests:
        assert r.path.startswith(f"/{MODEL}/requests/"), f"asked for {r.path}"

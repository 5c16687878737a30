"""Secrets never leave through the daemon: the fal.ai key (FAL_KEY, or api_key_file), an http
handler's token_file and the HTTP token are used where they belong (the stand-ins receive them)
and appear nowhere else: not in the daemon's log, /api/v1/events, /api/v1/state, /metrics, the
status page, nor the state file. Driven by a real provider_status run, as
tests/e2e/test_provider_status.py does, including a provider that answers with an error echoing
the key, and a key file whose content cannot be sent as a header."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from pathlib import Path

import pytest
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
from tests.standins import Request, Responder, StandIn

FAL_KEY = "fal-key-ENV-5d2c7a1e"  # distinctive, for grepping
FILE_KEY = "fal-key-FILE-93be04d7"
HOOK_TOKEN = "hook-token-0af6c3b2"  # noqa: S105 - test secrets, distinctive for grepping
HTTP_TOKEN = "http-token-7e19d4a5"  # noqa: S105
MODEL = "fal-ai/flux-lora-portrait-trainer"


def fal_queue(answer: str, key: str) -> Responder:
    """The fal.ai queue for any request: `answer` COMPLETED (with a result), or "echo": HTTP 500
    whose body repeats the Authorization header it got (a provider that leaks it back)."""

    def respond(req: Request) -> tuple[int, bytes]:
        auth = req.headers.get("Authorization", "")
        if answer == "echo":
            return 500, json.dumps({"detail": f"upstream rejected {auth}"}).encode()
        if auth != f"Key {key}":
            return 401, b'{"detail": "unauthorized"}'
        if req.path.endswith("/status"):
            return 200, b'{"status": "COMPLETED"}'
        return 200, json.dumps({"diffusers_lora_file": {"url": "https://x/lora"}}).encode()

    return respond


def write_config(path: Path, key_source: dict[str, str], hook_url: str, token_file: Path,
                 http_token_file: Path) -> Path:  # fmt: skip
    data = yaml.safe_load(SHIPPED_CONFIG.read_text(encoding="utf-8"))
    data.pop("health_checks", None)
    data["journal"]["start"] = "resume"
    (stalled,) = [r for r in data["rules"] if r["name"] == "training_stalled"]
    stalled["deadline"] = "2s"
    ps = data["handlers"]["provider_status"]
    ps.pop("api_key_env", None)
    ps.update(key_source, max_attempts=1)
    data["handlers"]["chat"] = {"type": "http", "url": hook_url, "token_file": str(token_file)}
    (failed,) = [r for r in data["rules"] if r["name"] == "webhook_processing_failed"]
    failed["handler"] = "chat"
    data["http"] = {"listen": "127.0.0.1:9817", "token_file": str(http_token_file)}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


CASES = {
    "env": ({"api_key_env": "FAL_KEY"}, FAL_KEY, "ok"),
    "file": ({"api_key_file": "KEYFILE"}, FILE_KEY, "ok"),
    "echoing provider": ({"api_key_env": "FAL_KEY"}, FAL_KEY, "echo"),
    "key file with two lines": ({"api_key_file": "KEYFILE"}, f"{FILE_KEY}\n{FILE_KEY}-2", "ok"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_secrets_appear_nowhere_but_where_they_are_sent(
    case: str, tmp_path: Path, live_journal: LiveJournal, stand_ins: Callable[..., StandIn]
) -> None:
    key_source, key, answer = CASES[case]
    lj = live_journal
    fal = stand_ins(respond=fal_queue(answer, key))
    api = stand_ins(on_request=api_logger(lj))
    hook = stand_ins()
    work = tmp_path / "daemon"
    work.mkdir()
    key_file, token_file, http_token = work / "fal.key", work / "hook.token", work / "http.token"
    key_file.write_text(key + "\n", encoding="utf-8")
    token_file.write_text(HOOK_TOKEN + "\n", encoding="utf-8")
    http_token.write_text(HTTP_TOKEN + "\n", encoding="utf-8")
    source = {k: (str(key_file) if v == "KEYFILE" else v) for k, v in key_source.items()}
    config = write_config(work / "config.yaml", source, hook.url + "/hook", token_file, http_token)
    env = {"FAL_QUEUE_URL": fal.url, "AISHA_API_URL": api.url, "FAL_KEY": FAL_KEY}
    d = MonitorDaemon(config, lj.directory, work / "state", work, daemon_env(env))
    try:
        d.start(wait=False)
        wait_for(lambda: d.status("/readyz") == 200, 30, lambda: f"ready\n{tail(d.log)}")
        lj.send([
            lj.app(f"Запуск обучения аватара av-9 отправлен в FAL AI, request_id: sec-{case[:4]}"),
            lj.app("[WEBHOOK BACKGROUND] Ошибка обработки sec-hook: boom", level="ERROR"),
        ])  # fmt: skip
        wait_for(lambda: hook.requests, 30, lambda: f"the chat hook\n{tail(d.log)}")

        def provider_done(d: MonitorDaemon = d) -> bool:
            events = authed(d, "/api/v1/events?limit=1000")
            return any(
                e["kind"] == "handler" and e["labels"]["handler"] == "provider_status"
                and e["labels"]["outcome"] in ("done", "gave_up", "failed")
                for e in json.loads(events)
            )  # fmt: skip

        wait_for(provider_done, 30, lambda: f"provider_status finished\n{tail(d.log)}")
        # the secrets were used where they belong
        assert hook.requests[0].headers["Authorization"] == f"Bearer {HOOK_TOKEN}"
        if "\n" not in key:
            assert fal.requests[0].headers["Authorization"] == f"Key {key}"
        else:  # not a valid header value: nothing is sent, and the run gives up saying why
            assert not fal.requests
        seen = {
            "events": authed(d, "/api/v1/events?limit=1000"),
            "state": authed(d, "/api/v1/state"),
            "status page": authed(d, "/"),
            "metrics": d.get("/metrics"),
        }
        assert d.stop() == 0
        seen["log"] = d.log_text()
        state = work / "state"
        seen["state file"] = b"".join(p.read_bytes() for p in state.iterdir()).decode("latin-1")
        secrets = [FAL_KEY, FILE_KEY, HOOK_TOKEN, HTTP_TOKEN, *key.splitlines()]
        for where, text in seen.items():
            for secret in secrets:
                assert secret not in text, f"{secret!r} in the {where} ({case})"
    finally:
        d.shutdown()


def authed(d: MonitorDaemon, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {HTTP_TOKEN}"})
        r = conn.getresponse()
        body = r.read().decode("utf-8")
        assert r.status == 200, (path, r.status)
        return body
    finally:
        conn.close()

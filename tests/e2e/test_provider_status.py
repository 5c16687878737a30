"""A stalled training that fal.ai finished: provider_status asks the queue, delivers the result
through the webhook path, and the training ends (the stall resolves)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import ApiEmulator
from tests.integration.daemon_fixtures import LiveJournal, MakeDaemon, wait_for
from tests.standins import FalQueue

pytestmark = pytest.mark.e2e

KEY = "fal-key-7f3a9c"  # distinctive: it must never show up in events or logs
PORTRAIT = "fal-ai/flux-lora-portrait-trainer"  # config.yaml: provider_status.models.portrait
RESULT = {"diffusers_lora_file": {"url": "https://v3.fal.media/files/x/lora.safetensors"}}


@pytest.fixture
def fal() -> Iterator[FalQueue]:
    """The fal.ai queue holding one finished training, lost-9 (no training type: the portrait
    model is asked first)."""
    queue = FalQueue(KEY)
    queue.states[(PORTRAIT, "lost-9")] = "COMPLETED"
    queue.results[(PORTRAIT, "lost-9")] = RESULT
    yield queue
    queue.close()


def test_stalled_training_finished_at_the_provider_heals(
    live_journal: LiveJournal, api_emulator: ApiEmulator, fal: FalQueue, make_daemon: MakeDaemon
) -> None:
    env = {"AISHA_API_URL": api_emulator.url, "FAL_QUEUE_URL": fal.url, "FAL_KEY": KEY}
    d = make_daemon(deadline="2s", env=env).start()
    lj = live_journal
    lj.send([lj.app("Запуск обучения аватара av-9 отправлен в FAL AI, request_id: lost-9")])

    def outcomes() -> list[str]:
        return [e["labels"]["outcome"] for e in d.events() if e["kind"] == "handler"]

    wait_for(lambda: "done" in outcomes(), 30, "provider_status done")
    kinds = [(e["kind"], e["rule"]) for e in d.events() if e["key"] == "lost-9"]
    assert ("stalled", "training_stalled") in kinds
    wait_for(
        lambda: (
            ("resolved", "training_stalled")
            in [(e["kind"], e["rule"]) for e in d.events() if e["key"] == "lost-9"]
        ),
        10,
        "resolved",
    )
    (delivered,) = api_emulator.received
    assert delivered == {"request_id": "lost-9", "status": "completed", "result": RESULT}
    assert all(r.headers.get("Authorization") == f"Key {KEY}" for r in fal.requests)
    assert fal.requests[0].path == f"/{PORTRAIT}/requests/lost-9/status"
    assert "AishaTrainingStalled" not in {a["alertname"] for a in d.state()["alerts"]}
    assert KEY not in json.dumps(d.events()) and KEY not in d.log_text()

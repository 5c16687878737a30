"""The simulation's units, pids, clock and rates, and what it schedules: lines and trainings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

Export = Callable[[str, int, str, int, int], bytes]

S = 1_000_000
MS = 1_000
EPOCH_US = 1_795_737_600 * S  # 2026-11-27T00:00:00Z
BOOT_US = EPOCH_US - 6 * 3600 * S  # monotonic time counts from a boot 6h earlier
WARMUP_US = 45 * 60 * S
API, NGINX, BOT = "aisha-api.service", "nginx.service", "aisha-bot.service"
API_PIDS = (2817, 2818, 2819, 2820)
NGINX_PIDS = (1204, 1205)
BOT_PID = 1811
KNOWN = ("in_progress", "completed", "failed")  # what the (regressed) router compares against
BUG_VARIANTS = {
    "in_progress": (("IN_PROGRESS", 3), ("Processing", 1), ("in-progress", 1), ("weird_x", 2)),
    "completed": (("COMPLETED", 4), ("OK", 2), ("Completed", 2), ("weird_x", 1)),
    "failed": (("FAILED", 2), ("ERROR", 2)),
}
PRIORITY = {"INFO": 6, "WARNING": 4, "ERROR": 3}


@dataclass(frozen=True, slots=True)
class Mix:
    """Rates, per second of simulated time and as probabilities, of what the services do."""

    api_rate: float = 14.0  # aisha-api entries per second, all sources together
    trainings_per_entry: float = 0.009
    access_share: float = 0.49  # background uvicorn access lines (webhooks add ~5%)
    filler_share: float = 0.20
    asgi_errors_per_entry: float = 0.0001
    other_ratio: float = 0.3
    nginx_share_of_other: float = 0.62
    p_bug: float = 0.01  # webhook bodies whose status the router does not know
    p_operator_redelivers: float = 0.5  # a dropped completion re-sent by hand later
    p_duplicate: float = 0.03
    p_crash: float = 0.005  # background task of an in_progress webhook crashes
    p_stall: float = 0.02
    p_late: float = 0.015
    p_failed: float = 0.06
    p_lookalike_body: float = 0.01
    p_bot_lookalike: float = 0.03
    p_api_lookalike: float = 0.004


@dataclass(frozen=True, slots=True)
class Line:
    unit: str
    pid: int
    text: str
    logger: str = ""  # set: aisha-api's logging prefix goes in front of text
    level: str = "INFO"
    tag: tuple[str, ...] | None = None  # what truth.py records: start, end, unknown, crash


@dataclass(slots=True)
class Training:
    rid: str
    avatar: str
    user: int
    ttype: str
    submitted: int
    final: int | None  # when the final webhook comes; None: it never does (stalled)
    quiet_after: int  # a stalled training's webhooks stop here
    outcome: str
    error: str = ""


def text_is_access(text: str) -> bool:
    return text.startswith("INFO:     127.0.0.1:")

"""Command-line times: RFC 3339 (with an offset or Z) or relative to now (`-2h`, `-30m`)."""

from __future__ import annotations

from datetime import datetime

from monitor.config.yamlview import parse_duration_us
from monitor.core.model import datetime_to_us


def parse_time_us(text: str, now_us: int) -> int:
    """Microseconds since the epoch; raises ValueError with a message for people."""
    text = text.strip()
    if text == "now":
        return now_us
    if text.startswith("-"):
        delta = parse_duration_us(text[1:])
        if delta is None:
            raise ValueError(f"expected a relative time like -2h or -30m, got {text!r}")
        return now_us - delta
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"expected an RFC 3339 time like 2026-11-27T10:15:00Z, got {text!r}"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset: add Z or +03:00")
    return datetime_to_us(when)

"""Status normalization: case-fold, trim, `-`/space -> `_`, then an alias table."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_CANONICAL = ("queued", "in_progress", "completed", "failed")
DEFAULT_ALIASES = {
    "ok": "completed",
    "success": "completed",
    "succeeded": "completed",
    "successful": "completed",
    "done": "completed",
    "complete": "completed",
    "error": "failed",
    "failure": "failed",
    "in_queue": "queued",
    "pending": "queued",
    "running": "in_progress",
    "progress": "in_progress",
    "processing": "in_progress",
}


def fold(raw: str) -> str:
    return "_".join(raw.strip().casefold().replace("-", " ").split())


@dataclass(frozen=True, slots=True)
class Statuses:
    canonical: tuple[str, ...] = DEFAULT_CANONICAL
    aliases: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIASES))

    def normalize(self, raw: str) -> str:
        """The canonical status `raw` stands for, or "" when it is truly unknown."""
        folded = fold(raw)
        if folded in self.canonical:
            return folded
        return self.aliases.get(folded, "")

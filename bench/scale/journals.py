"""The three journals of the open-trainings part: BASE (the simulation at API_RATE), MASS (the
same plus OPEN submissions never ended) and BULK (the submissions alone)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bench.generate import Exporter, write
from bench.scale.configs import REPO
from bench.simulate import API, EPOCH_US, Line, Mix, S, Simulation
from bench.truth import Truth, load_statuses

OPEN = 100_000
SPREAD_US = 300 * S  # the bulk submissions arrive over the first 5 minutes
API_RATE = 200.0


def bulk_line(i: int) -> Line:
    text = (
        f"Запуск обучения аватара bulk-avatar-{i:06d} отправлен в FAL AI, request_id: bulk-{i:06d}"
    )
    return Line(API, 2817 + i % 4, text, "app.services.avatar.training_service")


def bulk_time(i: int) -> int:
    return EPOCH_US + 1000 + i * SPREAD_US // OPEN


class MassOpen(Simulation):
    """The ordinary simulation plus OPEN submissions that never end (their own schedule: the
    ordinary lines draw the same random numbers as without them)."""

    def __init__(self, size: int, seed: int, truth: Truth, bulk: int) -> None:
        super().__init__(size + bulk, seed, Mix(api_rate=API_RATE), truth, Exporter().entry)
        for i in range(bulk):
            self.at(bulk_time(i), bulk_line(i))


def bulk_only(n: int) -> Iterator[bytes]:
    from bench.lines import Clock

    clock, ex = Clock(), Exporter()
    for i in range(n):
        line, t = bulk_line(i), bulk_time(i)
        text = clock.logging_prefix(t, line.logger, line.level) + line.text
        yield ex.entry(text, t, API, line.pid, 6)


def generate(kind: str, size: int, seed: int) -> Path:
    """DIR of one journal (reused when already made with these parameters)."""
    out = Path(f"/tmp/aisha-bench-scale-{kind}-{size}-{seed}")
    meta = out / "scale.json"
    if meta.exists():
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    started = time.monotonic()
    if kind == "bulk":
        entries: Iterator[bytes] = bulk_only(OPEN)
        count = OPEN
    else:
        canonical, aliases = load_statuses(REPO / "config.yaml")
        sim = MassOpen(size, seed, Truth(canonical, aliases), OPEN if kind == "mass" else 0)
        entries = sim.entries()
    write(out, entries, 0)
    if kind != "bulk":
        count = sim.counts[API]
        span = (sim.last - sim.first) / S
    else:
        span = SPREAD_US / S
    doc = {
        "kind": kind,
        "size": size,
        "seed": seed,
        "aisha_api_entries": count,
        "span_s": span,
        "seconds": round(time.monotonic() - started, 1),
    }
    meta.write_text(json.dumps(doc) + "\n")
    print(f"generated {kind}: {count:,} aisha-api entries over {span / 60:.1f} min", flush=True)
    return out

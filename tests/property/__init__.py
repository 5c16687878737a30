"""Hostile-input tests: hypothesis properties and fuzzing. FUZZ_SCALE=10 runs ten times the
examples (a deeper campaign than CI's)."""

from __future__ import annotations

import os

SCALE = float(os.environ.get("FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """`n` hypothesis examples, scaled by FUZZ_SCALE."""
    return max(1, int(n * SCALE))

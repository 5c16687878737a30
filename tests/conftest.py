"""Suite-wide options, and the fixtures every group of tests may use: the live journal and the
daemon as a subprocess (`daemons`, `make_daemon`) from tests/integration/daemon_fixtures.py,
the stand-ins for its HTTP peers (`stand_ins`) from tests/standins.py."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.integration.daemon_fixtures", "tests.standins"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens", action="store_true", help="rewrite tests/golden/*/expected.jsonl"
    )

"""Health checks against a real HTTP server on 127.0.0.1: state changes become events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.config.schema import HealthCheckSpec
from monitor.daemon.health import DOWN, UNKNOWN, UP, HealthChecker, check_systemd_unit
from monitor.daemon.metrics import Metrics
from tests.standins import HealthApi


@pytest.fixture
def health_api() -> Iterator[HealthApi]:
    server = HealthApi()
    yield server
    server.close()


def spec(url: str) -> HealthCheckSpec:
    return HealthCheckSpec("api", "http", 1_000_000, 2_000_000, url=url, expect_status=200)


def drain(checker: HealthChecker) -> list[tuple[str, str]]:
    out = []
    while not checker.events.empty():
        e = checker.events.get_nowait()
        out.append((str(e.kind), e.labels["state"]))
    return out


def test_http_check_up_down_up(health_api: HealthApi) -> None:
    url = health_api.url + "/health"
    metrics = Metrics()
    checker = HealthChecker((spec(url),), metrics)
    assert metrics.registry.get_sample_value("aisha_monitor_health_up", {"check": "api"}) == UNKNOWN
    assert checker.run_one(spec(url)).up == UP
    assert drain(checker) == []  # starting healthy is not news
    health_api.status = 503
    result = checker.run_one(spec(url))
    assert (result.up, result.detail) == (DOWN, "HTTP 503, expected 200")
    assert checker.run_one(spec(url)).up == DOWN
    health_api.status = 200
    checker.run_one(spec(url))
    assert drain(checker) == [("health", "down"), ("resolved", "up")]
    assert metrics.registry.get_sample_value("aisha_monitor_health_up", {"check": "api"}) == UP


def test_unreachable_api_is_down_not_an_error() -> None:
    checker = HealthChecker((), Metrics())
    result = checker.run_one(spec("http://127.0.0.1:9/health"))  # discard port: refused
    assert result.up == DOWN and "ConnectionError" in result.detail
    assert drain(checker) == [("health", "down")]


def test_systemd_unit_is_unknown_without_systemd() -> None:
    unit = HealthCheckSpec("unit", "systemd_unit", 1_000_000, 2_000_000, unit="aisha-api.service")
    up, detail = check_systemd_unit(unit)
    if up == UNKNOWN:
        assert detail == "systemd is not running on this machine"
    else:  # a machine with systemd as PID 1 answers for real
        assert up in (UP, DOWN) and "restarts" in detail


def test_reconfigure_forgets_removed_checks_and_announces_new_ones(
    health_api: HealthApi,
) -> None:
    url = health_api.url + "/health"
    metrics = Metrics()
    checker = HealthChecker((spec(url),), metrics)
    checker.run_one(spec(url))
    new = HealthCheckSpec("other", "http", 1_000_000, 2_000_000, url=url)
    checker.reconfigure((new,))
    sample = metrics.registry.get_sample_value
    assert sample("aisha_monitor_health_up", {"check": "api"}) is None
    assert sample("aisha_monitor_health_duration_seconds", {"check": "api"}) is None
    assert sample("aisha_monitor_health_up", {"check": "other"}) == UNKNOWN
    assert checker.results == {}
    assert checker.checks == (new,)

"""The pieces the daemon tests rely on, in-process: `redact` on URLs and on what requests says in
its exceptions, the log formatter of `run`, the token options' config checks, and a token that
is not a header value (refused without echoing it: requests would quote it in its error)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest
import requests
import yaml

from handlers.base import Outcome
from handlers.replay_webhook import ReplayWebhookSpec
from monitor.cli import RedactingFormatter
from monitor.config.schema import ConfigError, load_config_text
from monitor.config.secrets import Auth, redact
from tests.integration.daemon_fixtures import closed_url
from tests.unit.handlers import context, job, unknown_value

SECRET = "pa55-Wd-0e1f"  # noqa: S105 - a test secret, distinctive for grepping


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (f"http://user:{SECRET}@host:8000/api?x=1", "http://***@host:8000/api?x=1"),
        (f"https://{SECRET}@host/", "https://***@host/"),
        (f"http://user:{SECRET}@evil@host/x", "http://***@host/x"),  # a raw `@` in a password
        (f"POST 'http://u:{SECRET}@a/b' and http://v:{SECRET}@c", "POST 'http://***@a/b' and "
         "http://***@c"),
        ("http://host:8000/path@v2 and mailto-ish a@b", "http://host:8000/path@v2 and mailto-ish "
         "a@b"),
    ],
)  # fmt: skip
def test_redact_takes_the_userinfo_out_of_every_url(text: str, shown: str) -> None:
    assert redact(text) == shown


@pytest.mark.parametrize(
    "url",
    [
        f"htp://user:{SECRET}@127.0.0.1/",  # InvalidSchema quotes the whole URL
        f"http://user:{SECRET}@[::1/x",  # InvalidURL
        closed_url().replace("http://", f"http://user:{SECRET}@") + "/x",  # ConnectionError
    ],
)
def test_what_requests_says_about_a_url_is_shown_without_its_userinfo(url: str) -> None:
    with pytest.raises(requests.RequestException) as raised:
        requests.get(url, timeout=2)
    assert SECRET not in redact(f"{type(raised.value).__name__}: {raised.value}")


def test_the_log_of_run_redacts_tracebacks_too() -> None:
    try:
        raise ValueError(f"No connection adapters were found for 'htp://u:{SECRET}@h/'")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    line = RedactingFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert SECRET not in line and "htp://***@h/" in line


def config(handler: dict[str, str], alerting: dict[str, str] | None = None) -> str:
    data = {
        "handlers": {"hook": {"type": "replay_webhook", **handler}},
        "alerting": {"alertmanager_urls": ["http://127.0.0.1:9093"], **(alerting or {})},
    }
    return yaml.safe_dump(data)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, "c.yaml", env={"T": "x"})
    return [str(p) for p in raised.value.problems]


def test_a_token_and_a_url_password_both_for_authorization_is_a_config_error() -> None:
    (problem,) = problems(
        config({"url": f"http://u:{SECRET}@127.0.0.1:8000/hook", "token_env": "T"})
    )
    assert problem.startswith("c.yaml:") and "hook.token_env: http://***@127.0.0.1" in problem
    assert SECRET not in problem
    # under another header, both go
    load_config_text(
        config({"url": f"http://u:{SECRET}@127.0.0.1/h", "token_env": "T", "token_header": "X-T"}),
        "c.yaml",
        env={},
    )


def test_token_options_are_checked() -> None:
    hook = {"url": "http://127.0.0.1/h", "token_env": "T", "token_file": "/x"}
    found = problems(config({**hook, "token_header": "Bad Header"}, {"token_header": "X: y"}))
    assert any("hook.token_env: give token_file or token_env, not both" in p for p in found)
    assert any("hook.token_header: expected an HTTP header name" in p for p in found)
    assert any("alerting.token_header: expected an HTTP header name" in p for p in found)


def test_the_offline_commands_do_not_need_the_secret_files(tmp_path: Path) -> None:
    text = config({"url": "http://127.0.0.1/h", "token_file": "/no/such/file"})
    assert any("/no/such/file" in p for p in problems(text))
    load_config_text(text, "c.yaml", env={}, read_secrets=False)


def test_a_token_that_is_not_a_header_value_is_refused_unsent_and_unshown(
    tmp_path: Path,
) -> None:
    token = tmp_path / "token"
    token.write_text(f"{SECRET}\n{SECRET}-2\n", encoding="utf-8")
    cfg = load_config_text(config({"url": f"{closed_url()}/h", "token_file": str(token)}), "c.yaml")
    spec = cfg.handlers["hook"]
    assert isinstance(spec, ReplayWebhookSpec)
    event = unknown_value(raw="OK")
    with requests.Session() as session:
        result = spec.run(job(event, "hook"), context(session))
    assert result.outcome == Outcome.GAVE_UP
    assert SECRET not in result.detail and str(token) in result.detail
    with pytest.raises(ValueError, match="line break") as raised:
        Auth(token_file=str(token)).headers({})
    assert SECRET not in str(raised.value)

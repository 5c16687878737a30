"""Remediation handlers, one module each, behind one registry (`type:` = module = key)."""

from __future__ import annotations

from collections.abc import Callable

from handlers import exec as exec_
from handlers import http, provider_status, replay_webhook
from handlers.base import HandlerSpec
from monitor.config.yamlview import View

Parser = Callable[[View, str], HandlerSpec]

REGISTRY: dict[str, Parser] = {
    "replay_webhook": replay_webhook.parse,
    "provider_status": provider_status.parse,
    "http": http.parse,
    "exec": exec_.parse,
}

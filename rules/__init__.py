"""Rule types, one module each, behind one registry: the YAML `type:`, the module name and the
registry key are the same word."""

from __future__ import annotations

from collections.abc import Callable

from monitor.config.yamlview import View
from rules import absence, match, pair, threshold, unknown_value
from rules.base import ParseContext, RuleBase, RuleSpec

Parser = Callable[[View, RuleBase, ParseContext], RuleSpec | None]

REGISTRY: dict[str, Parser] = {
    "match": match.parse,
    "unknown_value": unknown_value.parse,
    "pair": pair.parse,
    "absence": absence.parse,
    "threshold": threshold.parse,
}

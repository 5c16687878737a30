"""A line-aware view over PyYAML nodes: typed accessors that collect every problem with its mark."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_ENV = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
_INT_TAG = "tag:yaml.org,2002:int"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class ConfigError(Exception):
    """Raised with every problem found, never just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class Problems:
    """Collects problems for one file."""

    def __init__(
        self, file: str, env: dict[str, str] | None = None, *, read_secrets: bool = True
    ) -> None:
        self.file = file
        self.env = dict(os.environ) if env is None else env
        # secret files are checked (missing, unreadable, empty) unless a command that sends
        # nothing (replay, explain, test-rules) loads the config
        self.read_secrets = read_secrets
        self.items: list[Problem] = []

    def add(self, node: yaml.Node | None, path: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.items.append(Problem(self.file, line, col, path, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def parse_duration_us(text: str) -> int | None:
    """`30s`, `5m`, `2h`, `1h30m`, `250ms` -> microseconds; None when it is not one."""
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        return None
    h, mi, s, ms = (int(g or 0) for g in m.groups())
    return ((h * 60 + mi) * 60 + s) * 1_000_000 + ms * 1000


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _key_label(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else _describe(node)


class View:
    """One YAML mapping with typed accessors. Every key read is remembered; `finish` reports
    the rest as unknown keys. Accessors report a problem and return a placeholder on bad input:
    the caller raises before any placeholder is used."""

    def __init__(self, node: yaml.MappingNode, path: str, problems: Problems) -> None:
        self.node = node
        self.path = path
        self.problems = problems
        self._items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        self._used: set[str] = set()
        own = [(k, v) for k, v in node.value if k.tag != _MERGE_TAG]
        SafeConstructor().flatten_mapping(node)  # YAML merge keys (<<): merged pairs come first
        own_ids = {id(k) for k, _ in own}
        for key_node, value_node in own:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL_TAG:
                problems.add(key_node, path, f"keys must be strings, got {_describe(key_node)}")
                continue
            key = str(key_node.value)
            if key in self._items:
                first = self._items[key][0].start_mark.line + 1
                problems.add(key_node, self.sub(key), f"duplicate key (first at line {first})")
                continue
            self._items[key] = (key_node, value_node)
        for key_node, value_node in node.value:  # merged keys, unless the mapping sets its own
            if id(key_node) not in own_ids and isinstance(key_node, yaml.ScalarNode):
                self._items.setdefault(str(key_node.value), (key_node, value_node))

    def sub(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self._items

    def names(self) -> list[str]:
        return list(self._items)

    def node_of(self, key: str) -> yaml.Node | None:
        item = self._items.get(key)
        return item[1] if item else None

    def error(self, key: str, message: str) -> None:
        self.problems.add(self.node_of(key) or self.node, self.sub(key), message)

    def _get(self, key: str, required: bool) -> yaml.Node | None:
        self._used.add(key)
        item = self._items.get(key)
        if item is None:
            if required:
                self.problems.add(self.node, self.sub(key), "required key is missing")
            return None
        if item[1].tag == _NULL_TAG and not required:
            return None
        return item[1]

    def finish(self, allowed_hint: str = "") -> None:
        for key, (key_node, _) in self._items.items():
            if key not in self._used:
                known = ", ".join(sorted(self._used))
                hint = allowed_hint or (f" (known keys: {known})" if known else "")
                self.problems.add(key_node, self.sub(key), f"unknown key{hint}")

    # --- scalars -------------------------------------------------------------------------

    def scalar_str(self, node: yaml.Node, path: str) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL_TAG:
            self.problems.add(node, path, f"expected a string, got {_describe(node)}")
            return None
        return expand_env(str(node.value), node, path, self.problems)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        node = self._get(key, required)
        if node is None:
            return default if default is not None else ""
        value = self.scalar_str(node, self.sub(key))
        return value if value is not None else ""

    def opt_str(self, key: str) -> str | None:
        node = self._get(key, False)
        return None if node is None else self.scalar_str(node, self.sub(key))

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if value not in choices:
            self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        node = self._get(key, False)
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != _INT_TAG:
            self.error(key, f"expected an integer, got {_describe(node)}")
            return default
        value = int(SafeConstructor().construct_yaml_int(node))
        if minimum is not None and value < minimum:
            self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        node = self._get(key, False)
        if node is None:
            return default
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL_TAG:
            self.error(key, f"expected true or false, got {_describe(node)}")
            return default
        return bool(SafeConstructor().construct_yaml_bool(node))

    def duration_us(self, key: str, default: str | None, *, required: bool = False) -> int:
        node = self._get(key, required)
        if node is None:
            return parse_duration_us(default) or 0 if default else 0
        text = self.scalar_str(node, self.sub(key)) if isinstance(node, yaml.ScalarNode) else None
        value = parse_duration_us(text) if text is not None else None
        if value is None or value <= 0:
            got = _describe(node) if text is None else repr(text)
            self.error(key, f'expected a duration like "30s", "15m" or "2h", got {got}')
            return 1
        return value

    # --- collections ---------------------------------------------------------------------

    def map(self, key: str, *, required: bool = False) -> View | None:
        node = self._get(key, required)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.error(key, f"expected a mapping, got {_describe(node)}")
            return None
        return View(node, self.sub(key), self.problems)

    def seq(self, key: str, *, required: bool = False) -> Iterator[tuple[str, yaml.Node]]:
        """(path, node) for each item; a lone scalar counts as a one-item list."""
        node = self._get(key, required)
        if node is None:
            return
        if isinstance(node, yaml.ScalarNode):
            yield self.sub(key), node
            return
        if not isinstance(node, yaml.SequenceNode):
            self.error(key, f"expected a list, got {_describe(node)}")
            return
        for i, item in enumerate(node.value):
            yield f"{self.sub(key)}[{i}]", item

    def str_list(
        self, key: str, default: tuple[str, ...] = (), *, required: bool = False
    ) -> tuple[str, ...]:
        if not self.has(key) or self.node_of(key).tag == _NULL_TAG:  # type: ignore[union-attr]
            self._get(key, required)
            return default
        out = []
        for path, node in self.seq(key):
            value = self.scalar_str(node, path)
            if value is not None:
                out.append(value)
        return tuple(out)

    def str_map(self, key: str) -> dict[str, str]:
        view = self.map(key)
        if view is None:
            return {}
        out = {k: view.text(k) for k in view.names()}
        view.finish()
        return out

    def views(self, key: str, *, required: bool = False) -> Iterator[View]:
        for path, node in self.seq(key, required=required):
            if not isinstance(node, yaml.MappingNode):
                self.problems.add(node, path, f"expected a mapping, got {_describe(node)}")
                continue
            yield View(node, path, self.problems)

    def named_views(self, key: str) -> Iterator[tuple[str, View]]:
        """A mapping of name -> mapping, e.g. `handlers:`."""
        outer = self.map(key)
        if outer is None:
            return
        for name in outer.names():
            outer._used.add(name)
            node = outer.node_of(name)
            if not isinstance(node, yaml.MappingNode):
                self.problems.add(
                    node,
                    outer.sub(name),
                    f"expected a mapping, got {_describe(node) if node else 'nothing'}",
                )
                continue
            yield name, View(node, outer.sub(name), self.problems)


def expand_env(text: str, node: yaml.Node, path: str, problems: Problems) -> str:
    """`${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. An unset VAR without a default is
    a problem."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, default = m.group(1), m.group(2)
        value = problems.env.get(name)
        if value is None or (value == "" and default is not None):
            if default is not None:
                return default
            problems.add(
                node,
                path,
                f"environment variable {name} is not set (write ${{{name}:-default}} to give one)",
            )
            return ""
        return value

    return _ENV.sub(repl, text) if "$" in text else text


def load_root(text: str, problems: Problems) -> View | None:
    """Compose one YAML document; syntax errors become problems with their marks."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.items.append(
            Problem(problems.file, line, col, "", f"YAML syntax: {e.problem or e}")
        )
        return None
    except (yaml.YAMLError, ConstructorError) as e:
        problems.items.append(Problem(problems.file, 1, 1, "", f"YAML: {e}"))
        return None
    if node is None:
        problems.items.append(Problem(problems.file, 1, 1, "", "the file is empty"))
        return None
    if not isinstance(node, yaml.MappingNode):
        problems.add(node, "", f"the top level must be a mapping, got {_describe(node)}")
        return None
    return View(node, "", problems)

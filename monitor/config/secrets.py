"""Secrets in the config: `<key>_file` (a path, e.g. a systemd credential) or `<key>_env` (a
variable name), checked when the config is loaded; the credentials a request carries; and
`redact`, which takes the userinfo out of every URL before it is logged, stored or shown."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config.yamlview import View

# scheme://userinfo@ : up to the last `@` of the authority (a raw `@` in a password included)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def redact(text: str) -> str:
    """`text` (a URL, or a message holding URLs) with every URL's userinfo replaced by `***`:
    `http://user:secret@host/x` -> `http://***@host/x`. The request itself keeps it."""
    return _USERINFO.sub(r"\1***@", text)


class SecretFileError(ValueError):
    """A secret file that cannot serve: missing, unreadable, not UTF-8 or empty."""


def read_secret_file(path: str) -> str:
    """The secret in the file at `path`, stripped; raises SecretFileError naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path, or not UTF-8
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SecretFileError(f"cannot read the secret file {path}: {why}") from e
    if not text:
        raise SecretFileError(
            f"the secret file {path} is empty: an empty secret would be accepted as one"
        )
    return text


def secret_file_problem(path: str) -> str | None:
    """Why the secret file at `path` cannot serve, or None when it can."""
    try:
        read_secret_file(path)
    except SecretFileError as e:
        return str(e)
    return None


def secret_file(view: View, key: str) -> str | None:
    """The path under `key`; a missing, unreadable or empty file is a config problem (when
    the loader reads secrets: `run`, `check-config` and a reload do)."""
    path = view.opt_str(key)
    if path and view.problems.read_secrets:
        problem = secret_file_problem(path)
        if problem:
            view.error(key, problem)
    return path


def parse_secret(view: View, key: str) -> tuple[str | None, str | None]:
    """`<key>_file` or `<key>_env`, not both."""
    path, env = secret_file(view, f"{key}_file"), view.opt_str(f"{key}_env")
    if path and env:
        view.error(f"{key}_env", f"give {key}_file or {key}_env, not both")
    return path, env


def read_secret(path: str | None, env_name: str | None, env: Mapping[str, str]) -> str | None:
    """A secret from a file (e.g. a systemd credential) or an environment variable; None when
    neither is set. Read at each use, so that a rotated secret is used at once. Never logged."""
    if path:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    return env.get(env_name) if env_name else None


@dataclass(frozen=True, slots=True)
class Auth:
    """Keys `token_file` / `token_env`: a token sent as `Authorization: Bearer <token>`, or,
    with `token_header: NAME`, as `NAME: <token>`. No token: no header."""

    token_file: str | None = None
    token_env: str | None = None
    header: str = "Authorization"

    def headers(self, env: Mapping[str, str]) -> dict[str, str]:
        """The headers to send; raises OSError (unreadable file) or ValueError (a token that
        is not a header value: never echoed, since requests would quote it in its error)."""
        token = read_secret(self.token_file, self.token_env, env)
        if not token:
            return {}
        if _CONTROL.search(token):
            raise ValueError(f"the token ({self.source}) holds a line break or control character")
        value = f"Bearer {token}" if self.header.lower() == "authorization" else token
        return {self.header: value}

    @property
    def source(self) -> str:
        """Where the token comes from, for messages (the path or the variable, never it)."""
        return f"token_file {self.token_file}" if self.token_file else f"${self.token_env}"


def parse_auth(view: View, *urls: str) -> Auth:
    """`token_file` / `token_env` / `token_header` of a section that sends to `urls`."""
    token_file, token_env = parse_secret(view, "token")
    header = view.text("token_header", "Authorization")
    if not _HEADER_NAME.match(header):
        view.error("token_header", f"expected an HTTP header name, got {header!r}")
    auth = Auth(token_file, token_env, header)
    if (token_file or token_env) and header.lower() == "authorization":
        # requests sends a URL's user:password as Authorization: Basic, over the token
        for url in urls:
            if _USERINFO.match(url):
                view.error(
                    "token_file" if token_file else "token_env",
                    f"{redact(url)} carries a user and password, which are sent as "
                    "`Authorization: Basic`: give the credentials one way (or the token "
                    "under another `token_header`)",
                )
    return auth

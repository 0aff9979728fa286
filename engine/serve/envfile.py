"""``--env-file FILE``: ``KEY=VALUE`` lines loaded into ``os.environ`` before the app is imported.

Format: blank lines and ``#`` comments are skipped; an optional ``export `` prefix; values
unquoted (a `` #`` starts a comment, surrounding blanks stripped), single-quoted (literal) or
double-quoted (escapes ``\\n \\t \\r \\" \\\\ \\$``). Variables already in the environment win
(they are not overridden), as python-dotenv's and uvicorn's default. A malformed line is a
:class:`~engine.serve.config.ConfigError` naming ``file:line``.
"""
from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

from .config import ConfigError

__all__ = ["load_env_file", "parse_env_file"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "'": "'"}


def _double_quoted(body: str, where: str) -> tuple[str, str]:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                break
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ConfigError(f"{where}: unknown escape \\{nxt} in a double-quoted value")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        if c == '"':
            return "".join(out), body[i + 1:]
        out.append(c)
        i += 1
    raise ConfigError(f"{where}: unterminated double-quoted value")


def parse_env_file(path: str) -> dict[str, str]:
    """The variables of the env file ``path`` (in file order; a later line wins)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the env file {path!r}: {exc}") from None
    result: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        where = f"{path}:{number}"
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[7:].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"{where}: expected KEY=VALUE, got {raw.strip()!r}")
        if not _KEY.match(key):
            raise ConfigError(f"{where}: invalid variable name {key!r}")
        rest = rest.lstrip()
        if rest.startswith('"'):
            value, tail = _double_quoted(rest[1:], where)
        elif rest.startswith("'"):
            end = rest.find("'", 1)
            if end < 0:
                raise ConfigError(f"{where}: unterminated single-quoted value")
            value, tail = rest[1:end], rest[end + 1:]
        else:
            value, _, _ = rest.partition(" #")
            value, tail = value.strip(), ""
        tail = tail.strip()
        if tail and not tail.startswith("#"):
            raise ConfigError(f"{where}: unexpected text after the quoted value: {tail!r}")
        result[key] = value
    return result


def load_env_file(path: str, environ: MutableMapping[str, str] | None = None, *,
                  override: bool = False) -> dict[str, str]:
    """Put the variables of ``path`` into ``environ`` (default ``os.environ``); those already
    set stay unless ``override``. Returns what was set."""
    env = os.environ if environ is None else environ
    applied: dict[str, str] = {}
    for key, value in parse_env_file(path).items():
        if override or key not in env:
            env[key] = value
            applied[key] = value
    return applied

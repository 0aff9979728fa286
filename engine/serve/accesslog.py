"""``--access-log-format FMT``: access-log lines in gunicorn's atom syntax, or ``json``.

:func:`compile_access_format` turns the format into one function, once per process; the
access log calls it with ``(scope, status, body_bytes, seconds, response_headers)`` after
each response. An unknown atom is an :class:`AccessFormatError` (a ConfigError at startup).
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any


class AccessFormatError(ValueError):
    """A format that cannot be compiled (engine.serve.config reports it as a ConfigError)."""


__all__ = ["ATOMS", "JSON_FIELDS", "AccessFormatError", "AccessFormatter", "compile_access_format"]

Headers = Sequence[tuple[bytes, bytes]]
AccessFormatter = Callable[[dict[str, Any], int, int, float, Headers], str]
_Getter = Callable[[dict[str, Any], int, int, float, Headers], str]


def _client(scope: dict[str, Any]) -> str:
    c = scope.get("client")
    return str(c[0]) if c else "-"


def _req_header(scope: dict[str, Any], name: bytes) -> str:
    for k, v in scope["headers"]:
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return "-"


def _resp_header(headers: Headers, name: bytes) -> str:
    for k, v in headers or ():
        if bytes(k).lower() == name:
            return bytes(v).decode("latin-1")
    return "-"


def _query(scope: dict[str, Any]) -> str:
    return str(scope["query_string"].decode("latin-1"))


def _path(scope: dict[str, Any]) -> str:
    return str(scope["raw_path"].decode("latin-1"))


def _request_line(scope: dict[str, Any]) -> str:
    qs = _query(scope)
    target = _path(scope) + ("?" + qs if qs else "")
    return f"{scope['method']} {target} HTTP/{scope['http_version']}"


def _now() -> str:
    return time.strftime("[%d/%b/%Y:%H:%M:%S %z]")


ATOMS: dict[str, _Getter] = {
    "h": lambda s, st, n, d, rh: _client(s),
    "l": lambda s, st, n, d, rh: "-",
    "u": lambda s, st, n, d, rh: "-",
    "t": lambda s, st, n, d, rh: _now(),
    "r": lambda s, st, n, d, rh: _request_line(s),
    "m": lambda s, st, n, d, rh: str(s["method"]),
    "U": lambda s, st, n, d, rh: _path(s),
    "q": lambda s, st, n, d, rh: _query(s),
    "H": lambda s, st, n, d, rh: f"HTTP/{s['http_version']}",
    "s": lambda s, st, n, d, rh: str(st),
    "B": lambda s, st, n, d, rh: str(n),
    "b": lambda s, st, n, d, rh: str(n) if n else "-",
    "f": lambda s, st, n, d, rh: _req_header(s, b"referer"),
    "a": lambda s, st, n, d, rh: _req_header(s, b"user-agent"),
    "T": lambda s, st, n, d, rh: str(int(d)),
    "D": lambda s, st, n, d, rh: str(int(d * 1_000_000)),
    "M": lambda s, st, n, d, rh: str(int(d * 1000)),
    "L": lambda s, st, n, d, rh: f"{d:.6f}",
    "p": lambda s, st, n, d, rh: f"<{os.getpid()}>",
}

#: fields of ``--access-log-format json`` (one object per line)
JSON_FIELDS = ("time", "remote_addr", "method", "path", "query", "protocol", "status",
               "bytes", "duration_ms", "referer", "user_agent", "pid")

_ATOM = re.compile(r"%\(([^()]*)\)s")
_HEADER_ATOM = re.compile(r"\{([^}]*)\}([io])\Z")


def _json_line(scope: dict[str, Any], status: int, nbytes: int, secs: float,
               rh: Headers) -> str:
    return json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote_addr": _client(scope),
        "method": scope["method"], "path": _path(scope), "query": _query(scope),
        "protocol": f"HTTP/{scope['http_version']}", "status": status, "bytes": nbytes,
        "duration_ms": round(secs * 1000.0, 3), "referer": _req_header(scope, b"referer"),
        "user_agent": _req_header(scope, b"user-agent"), "pid": os.getpid()},
        separators=(",", ":"))


def _header_getter(name: bytes, request: bool) -> _Getter:
    if request:
        def get(s: dict[str, Any], st: int, n: int, d: float, rh: Headers) -> str:
            return _req_header(s, name)
    else:
        def get(s: dict[str, Any], st: int, n: int, d: float, rh: Headers) -> str:
            return _resp_header(rh, name)
    return get


def compile_access_format(fmt: str) -> AccessFormatter:
    """The line builder of ``fmt``: ``json`` or a string of ``%(atom)s`` atoms (see
    :data:`ATOMS`, plus ``%({name}i)s`` request and ``%({name}o)s`` response headers);
    ``%%`` is a literal ``%``."""
    if fmt == "json":
        return _json_line
    parts: list[str | _Getter] = []
    pos = 0
    for m in _ATOM.finditer(fmt):
        parts.append(fmt[pos:m.start()])
        atom = m.group(1)
        hm = _HEADER_ATOM.match(atom)
        if hm:
            name = hm.group(1).strip().lower().encode("latin-1", "replace")
            if not name:
                raise AccessFormatError(f"access log format: empty header name in {m.group(0)!r}")
            parts.append(_header_getter(name, hm.group(2) == "i"))
        elif atom in ATOMS:
            parts.append(ATOMS[atom])
        else:
            raise AccessFormatError(f"access log format: unknown atom {m.group(0)!r} (known: "
                              f"{', '.join(ATOMS)}, {{header}}i, {{header}}o)")
        pos = m.end()
    parts.append(fmt[pos:])
    for lit in parts:
        if isinstance(lit, str) and re.search(r"%\(", lit):
            bad = re.search(r"%\([^)]*\)?.?", lit)
            raise AccessFormatError(f"access log format: malformed atom "
                              f"{bad.group(0) if bad else lit!r} (expected %(name)s)")
    literals = [p.replace("%%", "%") if isinstance(p, str) else p for p in parts]
    pieces = [p for p in literals if p != ""]
    if all(isinstance(p, str) for p in pieces):
        const = "".join(p for p in pieces if isinstance(p, str))
        return lambda s, st, n, d, rh: const

    def line(scope: dict[str, Any], status: int, nbytes: int, secs: float,
             rh: Headers) -> str:
        return "".join([p if isinstance(p, str) else p(scope, status, nbytes, secs, rh)
                        for p in pieces])
    return line

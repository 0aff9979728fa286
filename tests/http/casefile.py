"""Reader for the HTTP parser's data files (tests/http/data/*.txt).

Format (one file holds many cases; blank lines and lines starting with '#' are ignored):

    === case-name
    limits max_header_count=2 max_body=10        optional; keyword arguments of Limits
    | GET / HTTP/1.1                             input line; CRLF is appended
    > raw bytes\\r\\n                             input bytes; nothing is appended
    eof                                          optional: feed_eof() after the input
    request GET / 1.1 keep_alive=0 ...           expected on_request (attributes: see below)
      host: example.org                          its header fields, all of them, in order
    body hello                                   expected body bytes (consecutive body events
                                                 are joined before comparing)
    end                                          expected on_message_complete ...
      x-checksum: 1                              ... with its trailer fields
    error 400                                    HttpParserError with this status, at this point
    upgrade-pending REST                         parser halted for an upgrade; take_remaining()
                                                 returns REST
    closed                                       the parser ignores further input (no keep-alive)

Input text, body, field values and attribute values take escapes: \\r \\n \\t \\0 \\\\ \\xHH, and
\\s for a space (so trailing spaces stay visible). A request line is
`request METHOD TARGET VERSION key=value...`; attributes not given default to: path/query split
from an origin-form target at the first '?', keep_alive = (VERSION == 1.1), expect_continue 0,
upgrade - (None), content_length from a content-length field listed under it (else -1),
chunked = 1 if a transfer-encoding field is listed, authority = the host field's value (or -).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|[rnt0s\\])")
_SIMPLE = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"0": b"\0", b"s": b" ", b"\\": b"\\"}


def unescape(text: str) -> bytes:
    raw = text.encode("utf-8")

    def sub(m: re.Match[bytes]) -> bytes:
        e = m.group(1)
        if e[:1] == b"x":
            return bytes([int(e[1:], 16)])
        return _SIMPLE[e]

    return _ESCAPE.sub(sub, raw)


@dataclass
class Case:
    name: str
    source: str
    data: bytes = b""
    limits: dict[str, int | None] = field(default_factory=dict)
    eof: bool = False
    expected: list[tuple] = field(default_factory=list)   # normalized events (see normalize())
    error: int | None = None
    upgrade_remaining: bytes | None = None
    closed: bool = False


def _request_event(words: list[str], fields: list[tuple[bytes, bytes]]) -> tuple:
    if len(words) < 3:
        raise ValueError(f"request needs METHOD TARGET VERSION: {words}")
    method, target, version = unescape(words[0]), unescape(words[1]), unescape(words[2])
    attrs: dict[str, object] = {}
    for w in words[3:]:
        k, _, v = w.partition("=")
        attrs[k] = v
    known = {"path", "query", "keep_alive", "expect_continue", "upgrade", "content_length",
             "chunked", "authority"}
    unknown = set(attrs) - known
    if unknown:
        raise ValueError(f"unknown request attributes {unknown}")
    if "path" in attrs:
        path = unescape(str(attrs["path"]))
    else:
        path = target.split(b"?", 1)[0]
    if "query" in attrs:
        query = unescape(str(attrs["query"]))
    else:
        query = target.split(b"?", 1)[1] if b"?" in target else b""
    names = [n for n, _ in fields]
    cl_values = [v for n, v in fields if n == b"content-length"]
    host_values = [v for n, v in fields if n == b"host"]

    def flag(key: str, default: bool) -> bool:
        return bool(int(str(attrs[key]))) if key in attrs else default

    def opt_bytes(key: str, default: bytes | None) -> bytes | None:
        if key not in attrs:
            return default
        return None if attrs[key] == "-" else unescape(str(attrs[key]))

    info = {
        "method": method, "target": target, "path": path, "query": query,
        "http_version": version, "headers": list(fields),
        "keep_alive": flag("keep_alive", version == b"1.1"),
        "expect_continue": flag("expect_continue", False),
        "upgrade": opt_bytes("upgrade", None),
        "content_length": int(str(attrs["content_length"])) if "content_length" in attrs
        else (int(cl_values[0]) if cl_values else -1),
        "chunked": flag("chunked", b"transfer-encoding" in names),
        "authority": opt_bytes("authority", host_values[0] if host_values else None),
    }
    return ("request", info)


def _parse_field(line: str) -> tuple[bytes, bytes]:
    name, sep, value = line.strip().partition(":")
    if not sep:
        raise ValueError(f"field line without ':': {line!r}")
    if value.startswith(" "):
        value = value[1:]
    return unescape(name), unescape(value)


def load_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    case: Case | None = None
    pending: tuple | None = None         # the event whose indented field lines come next
    pending_fields: list[tuple[bytes, bytes]] = []
    pending_words: list[str] = []

    def flush() -> None:
        nonlocal pending, pending_fields, pending_words
        if case is not None and pending is not None:
            if pending[0] == "request":
                case.expected.append(_request_event(pending_words, pending_fields))
            else:
                case.expected.append(("end", list(pending_fields)))
        pending, pending_fields, pending_words = None, [], []

    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{path.name}:{lineno}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith("=== "):
            flush()
            case = Case(name=line[4:].strip(), source=where)
            cases.append(case)
            continue
        if case is None:
            raise ValueError(f"{where}: content before the first '=== name'")
        if line.startswith("  "):
            if pending is None:
                raise ValueError(f"{where}: indented field line without request/end")
            pending_fields.append(_parse_field(line))
            continue
        if line == "|" or line.startswith("| "):
            case.data += unescape(line[2:]) + b"\r\n"
            continue
        if line.startswith("> "):
            case.data += unescape(line[2:])
            continue
        flush()
        word, _, rest = line.partition(" ")
        if word == "limits":
            for item in rest.split():
                k, _, v = item.partition("=")
                case.limits[k] = None if v == "None" else int(v)
        elif word == "eof":
            case.eof = True
        elif word == "request":
            pending, pending_words = ("request",), rest.split()
        elif word == "end":
            pending = ("end",)
        elif word == "body":
            case.expected.append(("body", unescape(rest)))
        elif word == "error":
            case.error = int(rest)
        elif word == "upgrade-pending":
            case.upgrade_remaining = unescape(rest)
        elif word == "closed":
            case.closed = True
        else:
            raise ValueError(f"{where}: unknown directive {word!r}")
    flush()
    names = [c.name for c in cases]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path.name}: duplicate case names {sorted(dupes)}")
    return cases


def all_cases() -> list[Case]:
    out: list[Case] = []
    for path in sorted(DATA_DIR.glob("*.txt")):
        out.extend(load_cases(path))
    return out


def normalize(events: list[tuple]) -> list[tuple]:
    """Join consecutive body events (their split depends on how the input was fed)."""
    out: list[tuple] = []
    for ev in events:
        if ev[0] == "body":
            if not ev[1]:
                raise AssertionError("the parser emitted an empty body chunk")
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + bytes(ev[1]))
                continue
            out.append(("body", bytes(ev[1])))
        else:
            out.append(ev)
    return out

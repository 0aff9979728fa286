"""engine._http's response serializer: status line, header validation (no injection),
connection handling, chunked framing, dates; responses read back by h11 as a client."""
from __future__ import annotations

import email.utils
import random
import time

import h11
import pytest

from engine._http import (
    LAST_CHUNK,
    build_response_head,
    chunk,
    http_date,
    last_chunk,
    reason_phrase,
)


def read_with_h11(data: bytes, method: bytes = b"GET") -> list[object]:
    """Parse a response with h11 in the client role."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    out: list[object] = []
    while True:
        ev = conn.next_event()
        if ev is h11.NEED_DATA or ev is h11.PAUSED:
            return out
        out.append(ev)
        if isinstance(ev, h11.EndOfMessage):
            return out


def test_status_lines() -> None:
    assert build_response_head(200, []) == b"HTTP/1.1 200 OK\r\n\r\n"
    assert build_response_head(404, []) == b"HTTP/1.1 404 Not Found\r\n\r\n"
    assert build_response_head(413, []).startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert build_response_head(431, []).startswith(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert build_response_head(299, []) == b"HTTP/1.1 299 \r\n\r\n"    # no registered phrase
    assert build_response_head(200, [], reason=b"Fine") == b"HTTP/1.1 200 Fine\r\n\r\n"
    assert build_response_head(200, [], reason="Très bien").startswith(
        b"HTTP/1.1 200 Tr\xe8s bien\r\n")
    assert reason_phrase(101) == b"Switching Protocols" and reason_phrase(599) == b""
    for bad in (99, 600, 0, -200):
        with pytest.raises(ValueError):
            build_response_head(bad, [])


def test_headers_written_in_order() -> None:
    head = build_response_head(200, [(b"content-type", b"text/plain"), (b"x-a", b"1 2"),
                                     (b"Set-Cookie", b"a=b"), (b"Set-Cookie", b"c=d"),
                                     (b"x-empty", b"")])
    assert head == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx-a: 1 2\r\n"
                    b"Set-Cookie: a=b\r\nSet-Cookie: c=d\r\nx-empty: \r\n\r\n")
    # any iterable of pairs
    assert build_response_head(204, iter([(b"a", b"b")])) == (
        b"HTTP/1.1 204 No Content\r\na: b\r\n\r\n")


@pytest.mark.parametrize("value", [
    b"a\r\nSet-Cookie: evil=1", b"a\nb", b"a\rb", b"a\0b", b"\x01", b"\x7f", b"x\x1bz",
])
def test_header_value_injection_refused(value: bytes) -> None:
    with pytest.raises(ValueError):
        build_response_head(200, [(b"x-a", value)])
    with pytest.raises(ValueError):
        build_response_head(200, [], date=value)
    with pytest.raises(ValueError):
        build_response_head(200, [], reason=value)


@pytest.mark.parametrize("name", [b"", b"x a", b"x:a", b"x\r\n", b"\xc3\xa9", b"(x)"])
def test_bad_header_names_refused(name: bytes) -> None:
    with pytest.raises(ValueError):
        build_response_head(200, [(name, b"v")])


def test_header_types() -> None:
    with pytest.raises(TypeError):
        build_response_head(200, [("x-a", b"v")])
    with pytest.raises(TypeError):
        build_response_head(200, [(b"x-a", "v")])
    with pytest.raises(ValueError):
        build_response_head(200, [(b"x-a", b"v", b"extra")])


def test_obs_text_and_tabs_allowed_in_values() -> None:
    head = build_response_head(200, [(b"x-a", b"caf\xc3\xa9\tok")])
    assert b"x-a: caf\xc3\xa9\tok\r\n" in head


def test_connection_handling() -> None:
    assert build_response_head(200, [], keep_alive=False).endswith(b"connection: close\r\n\r\n")
    assert b"connection" not in build_response_head(200, [], keep_alive=True)
    assert build_response_head(200, [], True, b"1.0").endswith(
        b"connection: keep-alive\r\n\r\n")
    assert build_response_head(200, [], False, b"1.0").endswith(b"connection: close\r\n\r\n")
    # the caller's own Connection field is left alone
    head = build_response_head(200, [(b"Connection", b"close")], keep_alive=False)
    assert head.count(b"onnection") == 1
    with pytest.raises(ValueError):
        build_response_head(200, [], True, b"2.0")


def test_framing_helpers() -> None:
    assert b"content-length: 12\r\n" in build_response_head(200, [], content_length=12)
    assert b"content-length: 0\r\n" in build_response_head(200, [], content_length=0)
    assert b"transfer-encoding: chunked\r\n" in build_response_head(200, [], chunked=True)
    with pytest.raises(ValueError):
        build_response_head(200, [], content_length=1, chunked=True)
    with pytest.raises(ValueError):
        build_response_head(200, [(b"Content-Length", b"3")], content_length=3)
    with pytest.raises(ValueError):
        build_response_head(200, [(b"transfer-encoding", b"chunked")], chunked=True)
    head = build_response_head(200, [], date=b"Sun, 06 Nov 1994 08:49:37 GMT", server=b"engine")
    assert head.endswith(b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\nserver: engine\r\n\r\n")


def test_chunk_framing() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert chunk(b"x" * 4096)[:5] == b"1000\r"
    assert chunk(memoryview(bytearray(b"abc"))) == b"3\r\nabc\r\n"
    assert chunk(b"") == b""
    assert LAST_CHUNK == b"0\r\n\r\n" and last_chunk() == LAST_CHUNK
    assert last_chunk([(b"x-sum", b"1")]) == b"0\r\nx-sum: 1\r\n\r\n"
    with pytest.raises(ValueError):
        last_chunk([(b"x", b"a\r\nb")])


def test_h11_reads_our_responses() -> None:
    rng = random.Random(5)
    for _ in range(100):
        def value() -> bytes:
            raw = bytes(rng.choice(b"abc xyz/=;") for _ in range(rng.randint(1, 9)))
            return raw.strip() or b"v"
        headers = [(b"x-%d" % i, value()) for i in range(rng.randint(0, 6))]
        body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        status = rng.choice([200, 201, 202, 400, 404, 500, 503])
        if rng.random() < 0.5:
            data = build_response_head(status, headers, content_length=len(body)) + body
        else:
            pieces = [body[i:i + 37] for i in range(0, len(body), 37)]
            data = (build_response_head(status, headers, chunked=True)
                    + b"".join(chunk(p) for p in pieces)
                    + last_chunk([(b"x-trailer", b"t")]))
        events = read_with_h11(data)
        response = events[0]
        assert isinstance(response, h11.Response)
        assert response.status_code == status
        got = [(n, v) for n, v in response.headers
               if n not in (b"content-length", b"transfer-encoding")]
        assert got == [(n.lower(), v) for n, v in headers]
        assert b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data)) == body
        assert isinstance(events[-1], h11.EndOfMessage)


def test_http_date() -> None:
    assert http_date(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"
    rng = random.Random(9)
    for _ in range(300):
        t = rng.randrange(0, 4_000_000_000)
        assert http_date(t) == email.utils.formatdate(t, usegmt=True).encode()
    now = http_date()
    assert len(now) == 29 and now.endswith(b" GMT")
    parsed = email.utils.parsedate_to_datetime(now.decode()).timestamp()
    assert abs(parsed - time.time()) < 5
    assert http_date() in (now, http_date())       # cached for the second

"""HttpParser's flow control and upgrade API: pause/resume with pipelining, take_remaining /
decline_upgrade, feed_eof, zero-copy bodies, buffer bounds, errors and limits."""
from __future__ import annotations

import random

import pytest

from engine._http import HttpParser, HttpParserError, Limits, RequestParser

GET = b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n"


def get(n: int) -> bytes:
    return GET % n


def kinds(events: list[tuple]) -> list[str]:
    return [e[0] for e in events]


def targets(events: list[tuple]) -> list[bytes]:
    return [e[1]["target"] for e in events if e[0] == "request"]


# ---- pipelining and pause/resume ------------------------------------------------------------

def test_pipelined_requests_pause_after_each_message() -> None:
    p = RequestParser(pause_after=["end"])
    data = get(1) + get(2) + get(3)
    p.feed_data(data)
    assert targets(p.events()) == [b"/1"]
    assert p.paused
    assert p.buffered_bytes == len(get(2) + get(3))
    p.resume()
    assert targets(p.events()) == [b"/2"]
    assert p.paused and p.buffered_bytes == len(get(3))
    p.resume()
    assert targets(p.events()) == [b"/3"]
    assert p.buffered_bytes == 0
    p.resume()                              # nothing buffered: nothing happens
    assert p.events() == [] and not p.paused


def test_input_fed_while_paused_is_buffered_not_parsed() -> None:
    p = RequestParser()
    p.pause()
    p.feed_data(get(1))
    p.feed_data(get(2)[:10])
    assert p.events() == []
    assert p.buffered_bytes == len(get(1)) + 10
    p.resume()
    assert targets(p.events()) == [b"/1"]
    assert p.buffered_bytes == 10           # the unfinished second request line
    p.feed_data(get(2)[10:])
    assert targets(p.events()) == [b"/2"]


def test_pause_in_on_request_holds_back_the_body() -> None:
    p = RequestParser(pause_after=["request"])
    p.feed_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + get(2))
    assert kinds(p.events()) == ["request"]
    p.resume()
    assert kinds(p.events()) == ["body", "end", "request"]
    p.resume()
    assert kinds(p.events()) == ["end"]


def test_pause_in_on_request_of_bodyless_request_defers_completion() -> None:
    p = RequestParser(pause_after=["request"])
    p.feed_data(get(1))
    assert kinds(p.events()) == ["request"]
    assert p.message_in_progress
    p.resume()
    assert kinds(p.events()) == ["end"]
    assert not p.message_in_progress


def test_pause_after_each_body_chunk() -> None:
    p = RequestParser(pause_after=["body"])
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (b"aa", b"bbb", b"c")) + b"0\r\n\r\n"
    p.feed_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    seen = []
    for _ in range(10):
        seen += p.events()
        if not p.paused:
            break
        p.resume()
    assert [e[1] for e in seen if e[0] == "body"] == [b"aa", b"bbb", b"c"]
    assert kinds(seen)[-1] == "end"


def test_pause_resume_matches_unpaused_events_on_random_pipelines() -> None:
    rng = random.Random(7)
    for _ in range(50):
        reqs = []
        for i in range(rng.randint(1, 6)):
            body = bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
            if rng.random() < 0.5:
                reqs.append(b"POST /%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s"
                            % (i, len(body), body))
            else:
                chunks = b"".join(b"%x;e=1\r\n%s\r\n" % (len(body[j:j + 7]), body[j:j + 7])
                                  for j in range(0, len(body), 7))
                reqs.append(b"POST /%d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"%s0\r\nT: %d\r\n\r\n" % (i, chunks, i))
        data = b"".join(reqs)
        plain = RequestParser()
        plain.feed_data(data)
        expected = plain.events()
        paused = RequestParser(pause_after=rng.sample(["request", "body", "end"], 2))
        got: list[tuple] = []
        i = 0
        while i < len(data) or paused.paused:
            if paused.paused and rng.random() < 0.6:
                paused.resume()
            elif i < len(data):
                n = rng.randint(1, 30)
                paused.feed_data(data[i:i + n])
                i += n
            else:
                paused.resume()
            got += paused.events()
        def join(evs: list[tuple]) -> list[tuple]:
            out: list[tuple] = []
            for e in evs:
                if e[0] == "body" and out and out[-1][0] == "body":
                    out[-1] = ("body", out[-1][1] + e[1])
                else:
                    out.append(e)
            return out
        assert join(got) == join(expected)


# ---- zero copy ------------------------------------------------------------------------------

def test_body_chunk_is_the_input_object_when_it_is_all_body() -> None:
    p = RequestParser()
    p.feed_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n")
    p.events()
    piece = b"0123456789" * 2
    p.feed_data(piece)
    (kind, chunk), end = p.events()
    assert kind == "body" and chunk is piece
    assert end == ("end", [])


def test_body_from_mutable_buffer_is_a_copy() -> None:
    p = RequestParser()
    p.feed_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n")
    p.events()
    buf = bytearray(b"abcd")
    p.feed_data(memoryview(buf))
    buf[:] = b"XXXX"                        # the caller reuses its buffer
    assert p.events()[0] == ("body", b"abcd")


def test_headers_list_is_new_per_request() -> None:
    p = RequestParser()
    p.feed_data(get(1) + b"GET /2 HTTP/1.1\r\nHost: h\r\nX: y\r\n\r\n")
    first, _, second, _ = p.events()
    assert first[1]["headers"] == [(b"host", b"h")]
    assert second[1]["headers"] == [(b"host", b"h"), (b"x", b"y")]


# ---- upgrade / CONNECT ----------------------------------------------------------------------

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"\r\n")


def test_take_remaining_hands_over_following_bytes_and_stops() -> None:
    p = RequestParser()
    p.feed_data(UPGRADE + b"\x81\x80")
    assert kinds(p.events()) == ["request", "end"]
    assert p.upgrade_pending
    p.feed_data(b"more")                    # still buffered while the upgrade is pending
    assert p.events() == []
    assert p.take_remaining() == b"\x81\x80more"
    assert p.state == "upgraded"
    with pytest.raises(RuntimeError):
        p.feed_data(b"x")
    with pytest.raises(RuntimeError):
        p.take_remaining()


def test_decline_upgrade_continues_with_http() -> None:
    p = RequestParser()
    p.feed_data(UPGRADE + get(2))
    assert kinds(p.events()) == ["request", "end"]
    p.decline_upgrade()
    assert targets(p.events()) == [b"/2"]
    assert not p.upgrade_pending


def test_decline_connect_closes() -> None:
    p = RequestParser()
    p.feed_data(b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n" + get(2))
    assert kinds(p.events()) == ["request", "end"]
    p.decline_upgrade()
    assert p.closed and p.events() == []
    p.feed_data(get(3))                     # ignored
    assert p.events() == []


def test_take_remaining_and_decline_need_a_pending_upgrade() -> None:
    p = RequestParser()
    with pytest.raises(RuntimeError):
        p.take_remaining()
    with pytest.raises(RuntimeError):
        p.decline_upgrade()


# ---- eof ------------------------------------------------------------------------------------

def test_feed_eof_while_paused_checks_after_resume() -> None:
    p = RequestParser(pause_after=["end"])
    p.feed_data(get(1) + get(2)[:5])
    p.feed_eof()                            # no error yet: /2 is still buffered behind the pause
    assert targets(p.events()) == [b"/1"]
    with pytest.raises(HttpParserError) as exc:
        p.resume()
    assert exc.value.status_code == 400


def test_feed_after_eof_is_an_error() -> None:
    p = RequestParser()
    p.feed_eof()
    with pytest.raises(RuntimeError):
        p.feed_data(get(1))


def test_eof_after_complete_pipelined_requests_is_clean() -> None:
    p = RequestParser(pause_after=["end"])
    p.feed_data(get(1) + get(2))
    p.feed_eof()
    p.resume()
    assert targets(p.events()) == [b"/1", b"/2"]


# ---- bounds ---------------------------------------------------------------------------------

def test_buffer_stays_within_limits_when_fed_byte_by_byte() -> None:
    limits = Limits(max_request_line=64, max_header_bytes=256, max_chunk_extension_bytes=32,
                    max_trailer_bytes=64)
    p = RequestParser(limits)
    bound = 256 + 64 + 2
    data = (b"POST /" + b"a" * 40 + b" HTTP/1.1\r\nHost: h\r\n" + b"X: " + b"v" * 200 + b"\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"5;" + b"e" * 30 + b"\r\nhello\r\n"
            b"0\r\nT: " + b"t" * 50 + b"\r\n\r\n")
    for i in range(len(data)):
        p.feed_data(data[i:i + 1])
        assert p.buffered_bytes <= bound
    assert kinds(p.events())[-1] == "end"


def test_unterminated_line_is_refused_not_buffered() -> None:
    p = RequestParser(Limits(max_header_bytes=1024))
    p.feed_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(HttpParserError) as exc:
        for _ in range(100):
            p.feed_data(b"X" * 100)
    assert exc.value.status_code == 431
    assert p.buffered_bytes == 0


def test_limits_defaults_and_validation() -> None:
    limits = Limits()
    assert (limits.max_request_line, limits.max_header_count, limits.max_header_bytes,
            limits.max_body) == (8192, 100, 65536, 1 << 30)
    assert Limits(max_body=None).max_body == -1
    assert "max_body=None" in repr(Limits(max_body=None))
    with pytest.raises(ValueError):
        Limits(max_body=-1)
    with pytest.raises(ValueError):
        Limits(max_header_count=0)
    assert RequestParser(Limits(max_body=3)).limits.max_body == 3
    assert HttpParser().limits.max_header_count == 100


# ---- errors ---------------------------------------------------------------------------------

def test_error_attributes() -> None:
    p = RequestParser()
    with pytest.raises(HttpParserError) as exc:
        p.feed_data(b"GET / HTTP/2.0\r\n")
    err = exc.value
    assert (err.status_code, err.reason) == (505, "HTTP version not supported")
    assert str(err) == "505 HTTP version not supported"
    assert p.state == "error"


def test_base_parser_without_hooks_parses_and_validates() -> None:
    p = HttpParser()
    p.feed_data(b"POST /x?y HTTP/1.0\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
    assert (p.method, p.path, p.query, p.http_version, p.keep_alive, p.content_length) == (
        b"POST", b"/x", b"y", b"1.0", True, 2)
    assert p.headers == [(b"content-length", b"2"), (b"connection", b"keep-alive")]
    with pytest.raises(HttpParserError):
        p.feed_data(b"BAD LINE\r\n")


def test_bytearray_and_memoryview_input() -> None:
    for wrap in (bytearray, memoryview, lambda b: memoryview(bytearray(b))):
        p = RequestParser()
        p.feed_data(wrap(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"))
        assert [e[0] for e in p.events()] == ["request", "body", "end"]


def test_non_buffer_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        RequestParser().feed_data("GET / HTTP/1.1\r\n")

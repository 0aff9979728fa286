"""The parsers' C hooks overridden from another compiled module, as the ASGI protocol will:
an extension cimports engine._http / engine._ws, subclasses the parsers, reads the request
fields as C attributes and pauses from inside the hooks."""
from __future__ import annotations

import textwrap

import pytest
from cython_util import cython_module

from engine._http import HttpParser, HttpParserError
from engine._ws import FrameParser, build_frame

EXT_SOURCE = textwrap.dedent('''
    # cython: language_level=3
    from engine._http cimport HttpParser
    from engine._ws cimport FrameParser

    cdef class Proto(HttpParser):
        """One request at a time: pauses at the end of each, like an ASGI server would."""
        cdef public list log

        def __cinit__(self, *args, **kwargs):
            self.log = []

        cdef int on_request(self) except -1:
            self.log.append(("request", self.method, self.target, self.path, self.query,
                             self.http_version, self.headers, self.keep_alive,
                             self.expect_continue, self.upgrade, self.content_length,
                             self.chunked, self.authority))
            return 0

        cdef int on_body(self, object chunk) except -1:
            self.log.append(("body", chunk))
            return 0

        cdef int on_message_complete(self, list trailers) except -1:
            self.log.append(("end", trailers))
            self.pause()
            return 0

    cdef class Upgrader(HttpParser):
        """Accepts (or declines) an upgrade from inside on_message_complete."""
        cdef public bint accept
        cdef public object remaining
        cdef public list targets

        def __cinit__(self, *args, **kwargs):
            self.targets = []

        cdef int on_request(self) except -1:
            self.targets.append(self.target)
            return 0

        cdef int on_message_complete(self, list trailers) except -1:
            if self.upgrade is not None:
                if self.accept:
                    self.remaining = self.take_remaining()
                else:
                    self.decline_upgrade()
            return 0

    cdef class Raising(HttpParser):
        cdef int on_request(self) except -1:
            raise ValueError("application bug")

    cdef class Frames(FrameParser):
        cdef public list log

        def __cinit__(self, *args, **kwargs):
            self.log = []

        cdef int on_message(self, object data) except -1:
            self.log.append(data)
            return 0

        cdef int on_ping(self, bytes payload) except -1:
            self.log.append(("ping", payload))
            return 0

        cdef int on_close(self, int code, str reason) except -1:
            self.log.append(("close", code, reason))
            return 0
''')

@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("http_consumer")
    with cython_module(d, "http_consumer", EXT_SOURCE) as module:
        yield module


def test_subclass_hooks_and_attributes(consumer) -> None:  # type: ignore[no-untyped-def]
    p = consumer.Proto()
    assert isinstance(p, HttpParser)
    p.feed_data(b"POST /a?b=1 HTTP/1.1\r\nHost: example.org\r\nContent-Length: 3\r\n"
                b"Expect: 100-continue\r\n\r\nxyz"
                b"GET http://other:81/ HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n")
    assert p.log == [
        ("request", b"POST", b"/a?b=1", b"/a", b"b=1", b"1.1",
         [(b"host", b"example.org"), (b"content-length", b"3"), (b"expect", b"100-continue")],
         True, True, None, 3, False, b"example.org"),
        ("body", b"xyz"),
        ("end", []),
    ]
    assert p.paused                      # paused from on_message_complete: GET still buffered
    p.log.clear()
    p.resume()
    assert p.log == [
        ("request", b"GET", b"http://other:81/", b"/", b"", b"1.1",
         [(b"host", b"example.org"), (b"connection", b"close")],
         False, False, None, -1, False, b"other:81"),
        ("end", []),
    ]
    assert p.closed


def test_exception_in_a_hook_propagates_and_stops_the_parser(consumer) -> None:  # type: ignore[no-untyped-def]
    p = consumer.Raising()
    with pytest.raises(ValueError, match="application bug"):
        p.feed_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(HttpParserError) as exc:
        p.feed_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert exc.value.status_code == 500


def test_frame_parser_subclass(consumer) -> None:  # type: ignore[no-untyped-def]
    f = consumer.Frames()
    assert isinstance(f, FrameParser)
    key = b"abcd"
    f.feed_data(build_frame(1, "hé", mask=key) + build_frame(9, b"!", mask=key)
                + build_frame(2, b"\x00", mask=key) + build_frame(8, b"\x03\xe8ok", mask=key))
    assert f.log == ["hé", ("ping", b"!"), b"\x00", ("close", 1000, "ok")]


UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")


def test_upgrade_accepted_or_declined_from_inside_a_hook(consumer) -> None:  # type: ignore[no-untyped-def]
    for wrap in (bytes, bytearray):
        p = consumer.Upgrader()
        p.accept = True
        p.feed_data(wrap(UPGRADE + b"\x81\x80frames"))
        assert p.remaining == b"\x81\x80frames"
        assert p.state == "upgraded" and p.buffered_bytes == 0
    # fed in two pieces: the second arrives while the first is still being parsed from the
    # carry-over buffer
    p = consumer.Upgrader()
    p.accept = True
    p.feed_data(UPGRADE[:20])
    p.feed_data(UPGRADE[20:] + b"tail")
    assert p.remaining == b"tail"
    p = consumer.Upgrader()
    p.accept = False
    p.feed_data(UPGRADE + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert p.targets == [b"/ws", b"/next"]
    assert p.remaining is None and p.state == "request-line"

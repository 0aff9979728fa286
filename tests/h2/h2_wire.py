"""Frame builders and a frame reader for the engine._h2 tests (RFC 9113 §4.1 layout), written
from the RFC independently of the code under test. Client header blocks are encoded with the
PyPI `hpack` library (a test dependency through `h2`)."""
from __future__ import annotations

import struct
from typing import Any

import hpack

from engine import _h2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def settings(*pairs: tuple[int, int], ack: bool = False) -> bytes:
    return frame(_h2.SETTINGS, _h2.ACK if ack else 0, 0,
                 b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(data: bytes = b"12345678", ack: bool = False) -> bytes:
    return frame(_h2.PING, _h2.ACK if ack else 0, 0, data)


def window_update(sid: int, inc: int) -> bytes:
    return frame(_h2.WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def rst(sid: int, code: int = 8) -> bytes:
    return frame(_h2.RST_STREAM, 0, sid, struct.pack(">I", code))


def priority(sid: int, dep: int, weight: int = 15) -> bytes:
    return frame(_h2.PRIORITY, 0, sid, struct.pack(">IB", dep, weight))


def data(sid: int, payload: bytes, end: bool = False, pad: int | None = None) -> bytes:
    """DATA frame(s): a payload above 16384 bytes is split (END_STREAM on the last)."""
    if len(payload) > 16384 and pad is None:
        return data(sid, payload[:16384]) + data(sid, payload[16384:], end)
    flags = _h2.END_STREAM if end else 0
    if pad is not None:
        flags |= _h2.PADDED
        payload = bytes([pad]) + payload + b"\0" * pad
    return frame(_h2.DATA, flags, sid, payload)


def goaway(last: int, code: int = 0, debug: bytes = b"") -> bytes:
    return frame(_h2.GOAWAY, 0, 0, struct.pack(">II", last, code) + debug)


GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/"),
       (b":authority", b"example.com")]


def post(n: int | None = None) -> list[tuple[bytes, bytes]]:
    h = [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/up"),
         (b":authority", b"example.com")]
    if n is not None:
        h.append((b"content-length", str(n).encode()))
    return h


class Client:
    """Builds client frames with one HPACK encoder, so dynamic-table state carries over."""

    def __init__(self) -> None:
        self.enc = hpack.Encoder()

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return bytes(self.enc.encode(headers))

    def headers(self, sid: int, headers: list[tuple[bytes, bytes]], end: bool = True,
                end_headers: bool = True, prio: int | None = None,
                pad: int | None = None) -> bytes:
        payload = self.block(headers)
        flags = (_h2.END_STREAM if end else 0) | (_h2.END_HEADERS if end_headers else 0)
        if prio is not None:
            flags |= _h2.PRIORITY_FLAG
            payload = struct.pack(">IB", prio, 15) + payload
        if pad is not None:
            flags |= _h2.PADDED
            payload = bytes([pad]) + payload + b"\0" * pad
        if len(payload) <= 16384 or not end_headers:
            return frame(_h2.HEADERS, flags, sid, payload)
        # too long for one frame: HEADERS + CONTINUATION frames
        out = frame(_h2.HEADERS, flags & ~_h2.END_HEADERS, sid, payload[:16384])
        for i in range(16384, len(payload), 16384):
            last = i + 16384 >= len(payload)
            out += frame(_h2.CONTINUATION, _h2.END_HEADERS if last else 0, sid,
                         payload[i:i + 16384])
        return out


def read_frames(buf: bytes) -> list[tuple[int, int, int, bytes]]:
    """Split bytes into (type, flags, stream id, payload); asserts they are whole frames."""
    out = []
    pos = 0
    while pos < len(buf):
        assert len(buf) - pos >= 9, "truncated frame header"
        length = int.from_bytes(buf[pos:pos + 3], "big")
        ftype, flags = buf[pos + 3], buf[pos + 4]
        sid = int.from_bytes(buf[pos + 5:pos + 9], "big")
        assert sid >> 31 == 0, "reserved bit set"
        assert len(buf) - pos - 9 >= length, "truncated frame payload"
        out.append((ftype, flags, sid, buf[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return out


def goaway_of(frames: list[tuple[int, int, int, bytes]]) -> tuple[int, int] | None:
    """(last-stream-id, error code) of the GOAWAY among frames, or None."""
    for ftype, _, _, payload in frames:
        if ftype == _h2.GOAWAY:
            return (int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:8], "big"))
    return None


def rsts_of(frames: list[tuple[int, int, int, bytes]]) -> list[tuple[int, int]]:
    return [(sid, int.from_bytes(p, "big")) for t, _, sid, p in frames if t == _h2.RST_STREAM]


def connect(limits: Any = None, *client_settings: tuple[int, int]
            ) -> tuple[_h2.H2EventConnection, Client]:
    """A server connection past the preface exchange (both SETTINGS acknowledged), its output
    drained."""
    c = _h2.H2EventConnection(limits)
    c.initiate()
    ours = read_frames(c.data_to_send())
    assert ours[0][0] == _h2.SETTINGS
    assert c.receive(PREFACE + settings(*client_settings) + settings(ack=True)) == []
    assert read_frames(c.data_to_send()) == [(_h2.SETTINGS, _h2.ACK, 0, b"")]
    return c, Client()

"""engine._h2 frame by frame: raw client bytes in, events and the exact frames sent back out.

Every connection error asserts the GOAWAY (error code and last-stream-id); every stream error
asserts the RST_STREAM code and that the connection then serves another request."""
from __future__ import annotations

import struct

import pytest
from h2_wire import (
    GET,
    PREFACE,
    Client,
    connect,
    data,
    frame,
    goaway,
    goaway_of,
    ping,
    post,
    priority,
    read_frames,
    rst,
    rsts_of,
    settings,
    window_update,
)

from engine import _h2
from engine._h2 import H2EventConnection, H2Limits


def still_serves(c: H2EventConnection, cl: Client, sid: int) -> None:
    """A new request on `sid` is delivered and answered: the connection is alive."""
    ev = c.receive(cl.headers(sid, GET))
    assert ev == [("request", sid, GET, True)]
    c.send_headers(sid, [(b":status", b"204")], True)
    out = read_frames(c.data_to_send())
    assert [(t, f & _h2.END_STREAM, s) for t, f, s, _ in out] == [(_h2.HEADERS, 1, sid)]
    assert not c.closed


def conn_error(c: H2EventConnection, ev: list, code: int, last: int = 0) -> None:
    assert ev and ev[-1][:2] == ("connection_error", code), ev
    frames = read_frames(c.data_to_send())
    assert goaway_of(frames) == (last, code)
    assert c.closed
    assert c.receive(ping()) == []              # input is ignored afterwards
    assert c.data_to_send() == b""


def stream_error(c: H2EventConnection, cl: Client, ev: list, sid: int, code: int,
                 next_sid: int, announced: bool = True) -> None:
    if announced:
        assert ("reset", sid, code) in ev, ev
    frames = read_frames(c.data_to_send())
    assert (sid, code) in rsts_of(frames), frames
    assert goaway_of(frames) is None
    assert c.stream_state(sid) == "closed"
    still_serves(c, cl, next_sid)


# -- the preface ---------------------------------------------------------------------------------

def test_preface_and_settings_exchange() -> None:
    c = H2EventConnection(H2Limits(initial_window_size=100000, max_frame_size=20000))
    c.initiate()
    ours = read_frames(c.data_to_send())
    assert ours[0][0] == _h2.SETTINGS and ours[0][1] == 0
    got = {k: v for k, v in struct.iter_unpack(">HI", ours[0][3])}
    assert got == {_h2.SETTINGS_MAX_CONCURRENT_STREAMS: 100,
                   _h2.SETTINGS_INITIAL_WINDOW_SIZE: 100000,
                   _h2.SETTINGS_MAX_FRAME_SIZE: 20000,
                   _h2.SETTINGS_MAX_HEADER_LIST_SIZE: 65536}
    assert ours[1] == (_h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1048576 - 65535))
    # byte by byte: the preface and SETTINGS may arrive in any pieces
    for b in PREFACE + settings((_h2.SETTINGS_MAX_FRAME_SIZE, 32768)):
        assert c.receive(bytes([b])) == []
    assert read_frames(c.data_to_send()) == [(_h2.SETTINGS, _h2.ACK, 0, b"")]
    assert c.peer_max_frame_size == 32768
    assert not c.local_settings_acked
    c.receive(settings(ack=True))
    assert c.local_settings_acked


@pytest.mark.parametrize("bad", [b"GET / HTTP/1.1\r\n\r\n", PREFACE[:10] + b"X",
                                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r"])
def test_invalid_preface(bad: bytes) -> None:
    c = H2EventConnection()
    c.initiate()
    c.data_to_send()
    conn_error(c, c.receive(bad), _h2.PROTOCOL_ERROR)


def test_first_frame_not_settings() -> None:
    c = H2EventConnection()
    c.initiate()
    c.data_to_send()
    conn_error(c, c.receive(PREFACE + ping()), _h2.PROTOCOL_ERROR)


def test_first_frame_settings_ack() -> None:
    c = H2EventConnection()
    c.data_to_send()
    conn_error(c, c.receive(PREFACE + settings(ack=True)), _h2.PROTOCOL_ERROR)


# -- a request and a response --------------------------------------------------------------------

def test_request_response_roundtrip() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(5), end=False) + data(1, b"he") + data(1, b"llo", True))
    assert ev == [("request", 1, post(5), False), ("data", 1, b"he", False),
                  ("data", 1, b"llo", True)]
    assert c.stream_state(1) == "half-closed (remote)"
    assert c.last_stream_id == 1 and c.open_streams == 1
    c.send_headers(1, [(b":status", b"200")], False)
    assert c.send_data(1, b"x" * 10, True) == 10
    frames = read_frames(c.data_to_send())
    assert [(t, f) for t, f, _, _ in frames] == [(_h2.HEADERS, _h2.END_HEADERS),
                                                (_h2.DATA, _h2.END_STREAM)]
    assert c.stream_state(1) == "closed" and c.open_streams == 0


def test_continuation_and_padding_and_priority() -> None:
    c, cl = connect()
    block = cl.block(GET + [(b"x-long", b"v" * 100)])
    hdr = frame(_h2.HEADERS, _h2.END_STREAM | _h2.PADDED | _h2.PRIORITY_FLAG, 1,
                bytes([3]) + struct.pack(">IB", 0, 20) + block[:10] + b"\0\0\0")
    cont1 = frame(_h2.CONTINUATION, 0, 1, block[10:50])
    cont2 = frame(_h2.CONTINUATION, _h2.END_HEADERS, 1, block[50:])
    ev = c.receive(hdr + cont1 + cont2)
    assert ev == [("request", 1, GET + [(b"x-long", b"v" * 100)], True)]


def test_padded_data_is_stripped_and_padding_credited() -> None:
    c, cl = connect(H2Limits(connection_window_size=65535))
    c.receive(cl.headers(1, post(), end=False))
    ev = c.receive(data(1, b"abc", pad=255) * 128)
    assert ev == [("data", 1, b"abc", False)] * 128
    # the padding and pad-length bytes (256 a frame) come back at once, once they pass half
    # the connection window
    frames = read_frames(c.data_to_send())
    assert frames == [(_h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 128 * 256))]


def test_unknown_frame_type_and_flags_ignored() -> None:
    c, cl = connect()
    assert c.receive(frame(0xfa, 0xff, 0, b"junk") + frame(0x20, 0, 7, b"")) == []
    assert c.receive(ping(b"abcdefgh")[:4] + bytes([0xfe]) + ping(b"abcdefgh")[5:]) == []
    assert read_frames(c.data_to_send()) == [(_h2.PING, _h2.ACK, 0, b"abcdefgh")]
    still_serves(c, cl, 1)


def test_ping_ack_and_our_ping() -> None:
    c, cl = connect()
    c.receive(ping(b"\x01" * 8) + ping(b"\x02" * 8, ack=True))
    assert read_frames(c.data_to_send()) == [(_h2.PING, _h2.ACK, 0, b"\x01" * 8)]
    c.ping(b"zzzzzzzz")
    assert read_frames(c.data_to_send()) == [(_h2.PING, 0, 0, b"zzzzzzzz")]
    with pytest.raises(ValueError):
        c.ping(b"short")


def test_trailers() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + data(1, b"body")
                   + cl.headers(1, [(b"x-sum", b"1")], end=True))
    assert ev == [("request", 1, post(), False), ("data", 1, b"body", False),
                  ("trailers", 1, [(b"x-sum", b"1")])]
    assert c.stream_state(1) == "half-closed (remote)"
    c.send_headers(1, [(b":status", b"200")], False)
    c.send_trailers(1, [(b"grpc-status", b"0")])
    frames = read_frames(c.data_to_send())
    assert frames[-1][0] == _h2.HEADERS and frames[-1][1] & _h2.END_STREAM
    assert c.stream_state(1) == "closed"


def test_informational_then_final_response() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, post(3), end=False))
    c.send_headers(1, [(b":status", b"100")], False)
    c.send_headers(1, [(b":status", b"200")], False)
    assert [f[0] for f in read_frames(c.data_to_send())] == [_h2.HEADERS, _h2.HEADERS]


def test_large_response_headers_split_into_continuation() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200")] + [(b"x-%d" % i, b"v" * 1000) for i in range(40)],
                   True)
    frames = read_frames(c.data_to_send())
    assert frames[0][0] == _h2.HEADERS and not frames[0][1] & _h2.END_HEADERS
    assert frames[0][1] & _h2.END_STREAM
    assert all(f[0] == _h2.CONTINUATION for f in frames[1:])
    assert frames[-1][1] & _h2.END_HEADERS
    assert all(len(f[3]) <= 16384 for f in frames)


def test_goaway_graceful() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, post(), end=False) + cl.headers(3, GET))
    c.data_to_send()
    c.goaway()
    assert goaway_of(read_frames(c.data_to_send())) == (3, _h2.NO_ERROR)
    assert not c.closed
    # a stream opened after our GOAWAY is ignored; the ones before go on
    assert c.receive(cl.headers(5, GET)) == []
    assert c.receive(data(1, b"x", True)) == [("data", 1, b"x", True)]
    assert c.stream_state(5) == "closed"


def test_goaway_received() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET))
    assert c.receive(goaway(0, 0, b"bye")) == [("goaway", 0, 0)]
    assert c.goaway_received and not c.closed
    assert c.receive(goaway(0, _h2.PROTOCOL_ERROR)) == [("goaway", 0, _h2.PROTOCOL_ERROR)]
    assert c.closed


def test_reset_stream_by_us_then_peer_frames_ignored() -> None:
    c, cl = connect(H2Limits(connection_window_size=65535))
    c.receive(cl.headers(1, post(), end=False))
    c.reset_stream(1, _h2.CANCEL)
    assert rsts_of(read_frames(c.data_to_send())) == [(1, _h2.CANCEL)]
    # frames in flight: ignored, DATA still given back at connection level
    assert c.receive(data(1, b"x" * 40000) + window_update(1, 5) + rst(1)) == []
    frames = read_frames(c.data_to_send())
    # 2 x 16384 passed half the connection window: given back; 7232 wait for more
    assert frames == [(_h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 32768))]
    assert c.conn_recv_window == 65535 - 7232
    still_serves(c, cl, 3)


def test_closed_stream_tolerates_window_update_and_rst() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200")], True)
    c.data_to_send()
    assert c.receive(window_update(1, 100) + rst(1) + priority(1, 0)) == []
    assert c.data_to_send() == b""
    still_serves(c, cl, 3)


def test_peer_reset_announced_stream() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, post(), end=False))
    assert c.receive(rst(1, _h2.CANCEL)) == [("reset", 1, _h2.CANCEL)]
    assert c.send_data(1, b"late", True) == 0          # output for it is dropped
    c.send_headers(1, [(b":status", b"200")], True)
    assert c.data_to_send() == b""
    with pytest.raises(ValueError):
        c.send_headers(2, [(b":status", b"200")], True)


# -- flow control --------------------------------------------------------------------------------

def test_send_data_bounded_by_windows_and_window_open() -> None:
    c, cl = connect(None, (_h2.SETTINGS_INITIAL_WINDOW_SIZE, 10))
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200")], False)
    assert c.send_window(1) == 10
    assert c.send_data(1, b"a" * 25, True) == 10       # END_STREAM withheld
    assert c.send_window(1) == 0
    assert c.send_data(1, b"a" * 15, True) == 0
    assert c.receive(window_update(1, 100)) == [("window", 1)]
    assert c.send_data(1, b"a" * 15, True) == 15
    frames = read_frames(c.data_to_send())
    assert [(t, f, len(p)) for t, f, _, p in frames] == [
        (_h2.HEADERS, _h2.END_HEADERS, 1), (_h2.DATA, 0, 10), (_h2.DATA, _h2.END_STREAM, 15)]


def test_settings_initial_window_delta_applies_to_open_streams() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET))
    assert c.send_window(1) == 65535
    assert c.receive(settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 65535 + 1000))) == [
        ("window", 1)]
    assert c.stream_windows(1)[0] == 66535
    c.receive(settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 0)))
    assert c.stream_windows(1)[0] == 0 and c.send_window(1) == 0


def test_send_data_splits_by_peer_max_frame_size() -> None:
    c, cl = connect(None, (_h2.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20))
    c.receive(cl.headers(1, GET) + window_update(0, 1 << 20))
    c.send_headers(1, [(b":status", b"200")], False)
    assert c.send_data(1, memoryview(b"z" * 40000), True) == 40000
    sizes = [len(p) for t, _, _, p in read_frames(c.data_to_send()) if t == _h2.DATA]
    assert sizes == [16384, 16384, 40000 - 32768]


def test_data_frame_header_for_sendfile() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200")], False)
    head = c.data_frame_header(1, 1000, True)
    assert head == frame(_h2.DATA, _h2.END_STREAM, 1, b"")[:3].replace(
        b"\0\0\0", (1000).to_bytes(3, "big")) + bytes([0, 1]) + struct.pack(">I", 1)
    assert c.send_window(1) == 0 and c.conn_send_window == 65535 - 1000
    with pytest.raises(ValueError):
        c2, cl2 = connect()
        c2.receive(cl2.headers(1, GET))
        c2.data_frame_header(1, 16385, False)


def test_consume_reopens_windows_batched() -> None:
    c, cl = connect(H2Limits(connection_window_size=65535))
    c.receive(cl.headers(1, post(), end=False))
    c.receive(data(1, b"x" * 40000))
    c.consume(1, 20000)
    assert c.data_to_send() == b""                  # below half of each window
    c.consume(1, 30000)                             # only 20000 more were delivered
    frames = read_frames(c.data_to_send())
    assert sorted(frames) == [(_h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 40000)),
                              (_h2.WINDOW_UPDATE, 0, 1, struct.pack(">I", 40000))]
    assert c.stream_windows(1)[1] == 65535 and c.conn_recv_window == 65535


def test_unconsumed_data_credited_when_stream_closes() -> None:
    c, cl = connect(H2Limits(connection_window_size=65535))
    c.receive(cl.headers(1, post(), end=False) + data(1, b"x" * 40000))
    assert c.receive(rst(1)) == [("reset", 1, 8)]
    assert read_frames(c.data_to_send()) == [
        (_h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 40000))]


# -- connection errors ---------------------------------------------------------------------------

def _open(cl: Client, sid: int = 1) -> bytes:
    return cl.headers(sid, post(), end=False)


CONN_ERRORS = {
    # name: (frames after the handshake, given a Client; error code; last-stream-id)
    "data-on-stream-0": (lambda cl: data(0, b"x"), _h2.PROTOCOL_ERROR, 0),
    "data-on-idle-stream": (lambda cl: data(1, b"x"), _h2.PROTOCOL_ERROR, 0),
    "headers-on-stream-0": (lambda cl: cl.headers(0, GET), _h2.PROTOCOL_ERROR, 0),
    "headers-even-stream": (lambda cl: cl.headers(2, GET), _h2.PROTOCOL_ERROR, 0),
    "headers-decreasing-id": (lambda cl: _open(cl, 5) + cl.headers(3, GET),
                              _h2.PROTOCOL_ERROR, 5),
    "priority-on-stream-0": (lambda cl: priority(0, 1), _h2.PROTOCOL_ERROR, 0),
    "rst-on-stream-0": (lambda cl: rst(0), _h2.PROTOCOL_ERROR, 0),
    "rst-wrong-length": (lambda cl: _open(cl) + frame(_h2.RST_STREAM, 0, 1, b"\0\0\0"),
                         _h2.FRAME_SIZE_ERROR, 1),
    "rst-on-idle-stream": (lambda cl: rst(1), _h2.PROTOCOL_ERROR, 0),
    "settings-on-stream": (lambda cl: frame(_h2.SETTINGS, 0, 1, b""), _h2.PROTOCOL_ERROR, 0),
    "settings-length": (lambda cl: frame(_h2.SETTINGS, 0, 0, b"\0" * 5),
                        _h2.FRAME_SIZE_ERROR, 0),
    "settings-ack-payload": (lambda cl: frame(_h2.SETTINGS, _h2.ACK, 0, b"\0" * 6),
                             _h2.FRAME_SIZE_ERROR, 0),
    "enable-push-2": (lambda cl: settings((_h2.SETTINGS_ENABLE_PUSH, 2)),
                      _h2.PROTOCOL_ERROR, 0),
    "enable-connect-protocol-2": (
        lambda cl: settings((_h2.SETTINGS_ENABLE_CONNECT_PROTOCOL, 2)), _h2.PROTOCOL_ERROR, 0),
    "initial-window-too-large": (lambda cl: settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 2**31)),
                                 _h2.FLOW_CONTROL_ERROR, 0),
    "max-frame-size-too-small": (lambda cl: settings((_h2.SETTINGS_MAX_FRAME_SIZE, 16383)),
                                 _h2.PROTOCOL_ERROR, 0),
    "max-frame-size-too-large": (lambda cl: settings((_h2.SETTINGS_MAX_FRAME_SIZE, 2**24)),
                                 _h2.PROTOCOL_ERROR, 0),
    "initial-window-delta-overflow": (
        lambda cl: _open(cl) + window_update(1, 2**31 - 1 - 65535)
        + settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 65536)), _h2.FLOW_CONTROL_ERROR, 1),
    "push-promise": (lambda cl: frame(_h2.PUSH_PROMISE, _h2.END_HEADERS, 1, b"\0\0\0\2"),
                     _h2.PROTOCOL_ERROR, 0),
    "ping-length": (lambda cl: frame(_h2.PING, 0, 0, b"\0" * 7), _h2.FRAME_SIZE_ERROR, 0),
    "ping-on-stream": (lambda cl: frame(_h2.PING, 0, 1, b"\0" * 8), _h2.PROTOCOL_ERROR, 0),
    "goaway-on-stream": (lambda cl: frame(_h2.GOAWAY, 0, 1, b"\0" * 8), _h2.PROTOCOL_ERROR, 0),
    "goaway-short": (lambda cl: frame(_h2.GOAWAY, 0, 0, b"\0" * 7), _h2.FRAME_SIZE_ERROR, 0),
    "window-update-length": (lambda cl: frame(_h2.WINDOW_UPDATE, 0, 0, b"\0\0\1"),
                             _h2.FRAME_SIZE_ERROR, 0),
    "window-update-zero-conn": (lambda cl: window_update(0, 0), _h2.PROTOCOL_ERROR, 0),
    "window-update-overflow-conn": (lambda cl: window_update(0, 2**31 - 1 - 65535 + 1),
                                    _h2.FLOW_CONTROL_ERROR, 0),
    "window-update-idle-stream": (lambda cl: window_update(1, 1), _h2.PROTOCOL_ERROR, 0),
    "continuation-without-headers": (lambda cl: frame(_h2.CONTINUATION, _h2.END_HEADERS, 1,
                                                      cl.block(GET)), _h2.PROTOCOL_ERROR, 0),
    "headers-interrupted-by-ping": (
        lambda cl: cl.headers(1, GET, end_headers=False) + ping(), _h2.PROTOCOL_ERROR, 0),
    "continuation-other-stream": (
        lambda cl: cl.headers(1, GET, end_headers=False)
        + frame(_h2.CONTINUATION, _h2.END_HEADERS, 3, b""), _h2.PROTOCOL_ERROR, 0),
    "data-padding-too-long": (lambda cl: _open(cl) + frame(_h2.DATA, _h2.PADDED, 1, b"\5abcd"),
                              _h2.PROTOCOL_ERROR, 1),
    "data-padded-empty": (lambda cl: _open(cl) + frame(_h2.DATA, _h2.PADDED, 1, b""),
                          _h2.FRAME_SIZE_ERROR, 1),
    "headers-padding-too-long": (
        lambda cl: frame(_h2.HEADERS, _h2.PADDED | _h2.END_HEADERS, 1, b"\x0a" + b"\x82" * 9),
        _h2.PROTOCOL_ERROR, 0),
    "headers-priority-short": (
        lambda cl: frame(_h2.HEADERS, _h2.PRIORITY_FLAG | _h2.END_HEADERS, 1, b"\0\0\0"),
        _h2.FRAME_SIZE_ERROR, 0),
    "frame-too-large": (lambda cl: _open(cl) + frame(_h2.DATA, 0, 1, b"x" * 16385),
                        _h2.FRAME_SIZE_ERROR, 1),
    "data-beyond-connection-window": (
        lambda cl: _open(cl) + data(1, b"x" * 65535) + data(1, b"x"),
        _h2.FLOW_CONTROL_ERROR, 1),
    "data-after-end-stream-closed": (
        lambda cl: cl.headers(1, GET) + b"RESPOND" + data(1, b"x"), _h2.STREAM_CLOSED, 1),
    "hpack-garbage": (lambda cl: frame(_h2.HEADERS, _h2.END_HEADERS | _h2.END_STREAM, 1,
                                       b"\xff\xff\xff\xff\xff"), _h2.COMPRESSION_ERROR, 0),
    # past max_header_list_hard (4 x 65536); between the limits the answer is a 431
    "hpack-bomb": (lambda cl: cl.headers(1, GET + [(b"x-big", b"v" * 300000)]),
                   _h2.ENHANCE_YOUR_CALM, 0),
}


@pytest.mark.parametrize("name", list(CONN_ERRORS))
def test_connection_error(name: str) -> None:
    build, code, last = CONN_ERRORS[name]
    limits = H2Limits(max_header_block_bytes=1 << 20, initial_window_size=1 << 20,
                      connection_window_size=65535)
    c, cl = connect(limits, (_h2.SETTINGS_MAX_FRAME_SIZE, 1 << 20))
    first, *rest = build(cl).split(b"RESPOND")
    ev = c.receive(first)
    for part in rest:                   # the server answers stream 1 in between
        c.send_headers(1, [(b":status", b"200")], True)
        c.data_to_send()
        ev += c.receive(part)
    conn_error(c, ev, code, last)


# -- stream errors -------------------------------------------------------------------------------

MALFORMED = {
    "uppercase-name": GET + [(b"X-Up", b"1")],
    "connection-header": GET + [(b"connection", b"keep-alive")],
    "keep-alive": GET + [(b"keep-alive", b"5")],
    "proxy-connection": GET + [(b"proxy-connection", b"x")],
    "transfer-encoding": GET + [(b"transfer-encoding", b"chunked")],
    "upgrade": GET + [(b"upgrade", b"h2c")],
    "te-gzip": GET + [(b"te", b"gzip")],
    "missing-path": GET[:2] + GET[3:],
    "missing-method": GET[1:],
    "missing-scheme": GET[:1] + GET[2:],
    "empty-path": [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"")],
    "relative-path": [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"x")],
    "star-path-not-options": [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"*")],
    "pseudo-after-regular": [(b":method", b"GET"), (b"x", b"1"), (b":scheme", b"https"),
                             (b":path", b"/")],
    "unknown-pseudo": GET + [(b":foo", b"1")],
    "status-in-request": GET + [(b":status", b"200")],
    "duplicate-method": GET + [(b":method", b"POST")],
    "protocol-not-enabled": [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                             (b":scheme", b"https"), (b":path", b"/ws"),
                             (b":authority", b"a")],
    "connect-with-path": [(b":method", b"CONNECT"), (b":authority", b"a:443"),
                          (b":path", b"/")],
    "connect-without-authority": [(b":method", b"CONNECT")],
    "host-differs": GET + [(b"host", b"other.example")],
    "value-with-cr": GET + [(b"x", b"a\rb")],
    "value-with-nul": GET + [(b"x", b"a\0b")],
    "value-leading-space": GET + [(b"x", b" a")],
    "name-with-colon": GET + [(b"x:y", b"1")],
    "empty-name": GET + [(b"", b"1")],
    "bad-content-length": GET + [(b"content-length", b"12a")],
    "conflicting-content-length": GET + [(b"content-length", b"1"), (b"content-length", b"2")],
    "content-length-with-end-stream": GET + [(b"content-length", b"3")],
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request(name: str) -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, MALFORMED[name]))
    assert ev == []                                  # never reaches on_request
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3, announced=False)


def test_options_star_and_connect_accepted() -> None:
    c, cl = connect()
    req = [(b":method", b"OPTIONS"), (b":scheme", b"https"), (b":path", b"*"),
           (b":authority", b"a")]
    assert c.receive(cl.headers(1, req)) == [("request", 1, req, True)]
    req = [(b":method", b"CONNECT"), (b":authority", b"a:443")]
    assert c.receive(cl.headers(3, req, end=False)) == [("request", 3, req, False)]
    req = GET + [(b"te", b"trailers"), (b"host", b"example.com")]
    assert c.receive(cl.headers(5, req)) == [("request", 5, req, True)]


def test_extended_connect_when_enabled() -> None:
    c, cl = connect(H2Limits(enable_connect_protocol=True))
    req = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"),
           (b":path", b"/ws"), (b":authority", b"a")]
    assert c.receive(cl.headers(1, req, end=False)) == [("request", 1, req, False)]
    bad = [(b":method", b"GET"), (b":protocol", b"websocket"), (b":scheme", b"https"),
           (b":path", b"/ws")]
    ev = c.receive(cl.headers(3, bad))
    stream_error(c, cl, ev, 3, _h2.PROTOCOL_ERROR, 5, announced=False)


def test_settings_advertise_connect_protocol() -> None:
    c = H2EventConnection(H2Limits(enable_connect_protocol=True))
    c.initiate()
    payload = read_frames(c.data_to_send())[0][3]
    assert (_h2.SETTINGS_ENABLE_CONNECT_PROTOCOL, 1) in list(struct.iter_unpack(">HI", payload))


def test_content_length_exceeded() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(3), end=False) + data(1, b"abcd"))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_content_length_short_at_end_stream() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(3), end=False) + data(1, b"ab", True))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_content_length_short_at_trailers() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(3), end=False) + data(1, b"ab")
                   + cl.headers(1, [(b"x", b"1")]))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_trailers_without_end_stream() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + cl.headers(1, [(b"x", b"1")], end=False))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_trailers_with_pseudo_header() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + cl.headers(1, [(b":path", b"/")]))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_headers_on_half_closed_remote() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, GET) + cl.headers(1, [(b"x", b"1")]))
    stream_error(c, cl, ev, 1, _h2.STREAM_CLOSED, 3)


def test_data_on_half_closed_remote() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, GET) + data(1, b"x"))
    stream_error(c, cl, ev, 1, _h2.STREAM_CLOSED, 3)


def test_data_beyond_stream_window() -> None:
    c, cl = connect(H2Limits(initial_window_size=100))
    ev = c.receive(cl.headers(1, post(), end=False) + data(1, b"x" * 101))
    stream_error(c, cl, ev, 1, _h2.FLOW_CONTROL_ERROR, 3)


def test_stream_window_before_settings_ack_is_the_default() -> None:
    """Until our SETTINGS are acknowledged the peer may use the default 65535 window."""
    c = H2EventConnection(H2Limits(initial_window_size=100))
    cl = Client()
    c.receive(PREFACE + settings() + cl.headers(1, post(), end=False) + data(1, b"x" * 1000))
    assert c.stream_windows(1)[1] == 65535 - 1000
    c.receive(settings(ack=True))
    assert c.stream_windows(1)[1] == 100 - 1000          # the delta applies (§6.9.2)


def test_window_update_zero_on_stream() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + window_update(1, 0))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_window_update_overflow_on_stream() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + window_update(1, 2**31 - 1 - 65535 + 1))
    stream_error(c, cl, ev, 1, _h2.FLOW_CONTROL_ERROR, 3)


def test_priority_self_dependency() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + priority(1, 1))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3)


def test_priority_wrong_length_is_a_stream_error() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, post(), end=False) + frame(_h2.PRIORITY, 0, 1, b"\0" * 4))
    stream_error(c, cl, ev, 1, _h2.FRAME_SIZE_ERROR, 3)


def test_priority_on_idle_stream_ignored() -> None:
    c, cl = connect()
    assert c.receive(priority(9, 0)) == []
    assert c.data_to_send() == b""
    still_serves(c, cl, 1)              # 1 < 9 is still usable: PRIORITY opens nothing


def test_headers_self_dependency() -> None:
    c, cl = connect()
    ev = c.receive(cl.headers(1, GET, prio=1))
    stream_error(c, cl, ev, 1, _h2.PROTOCOL_ERROR, 3, announced=False)


def test_data_after_peer_reset_is_stream_closed() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, post(), end=False) + rst(1))
    ev = c.receive(data(1, b"x"))
    stream_error(c, cl, ev, 1, _h2.STREAM_CLOSED, 3, announced=False)


def test_max_concurrent_streams_refused() -> None:
    c, cl = connect(H2Limits(max_concurrent_streams=2))
    ev = c.receive(_open(cl, 1) + _open(cl, 3) + _open(cl, 5))
    assert [e[1] for e in ev] == [1, 3]
    frames = read_frames(c.data_to_send())
    assert rsts_of(frames) == [(5, _h2.REFUSED_STREAM)]
    assert c.receive(data(5, b"late")) == []             # in flight: ignored
    c.send_headers(1, [(b":status", b"200")], True)
    c.receive(data(1, b"", True))                         # stream 1 closes
    assert c.open_streams == 1
    c.data_to_send()
    still_serves(c, cl, 7)


def test_stream_transition_table() -> None:
    S = {n: i for i, n in enumerate(_h2.STATE_NAMES)}
    recv_headers, recv_data, recv_end, recv_rst = 0, 1, 2, 3
    assert _h2.stream_transition(recv_headers, S["idle"]) == S["open"]
    assert _h2.stream_transition(recv_data, S["idle"]) < 0
    assert _h2.stream_transition(recv_end, S["open"]) == S["half-closed (remote)"]
    assert _h2.stream_transition(recv_end, S["half-closed (local)"]) == S["closed"]
    assert _h2.stream_transition(recv_data, S["half-closed (remote)"]) < 0
    assert _h2.stream_transition(recv_rst, S["half-closed (remote)"]) == S["closed"]
    with pytest.raises(ValueError):
        _h2.stream_transition(99, 0)


# -- h2c upgrade (RFC 7540 §3.2) -----------------------------------------------------------------

def test_initiate_upgrade() -> None:
    c = H2EventConnection()
    c.initiate_upgrade(struct.pack(">HI", _h2.SETTINGS_MAX_FRAME_SIZE, 32768)
                       + struct.pack(">HI", _h2.SETTINGS_INITIAL_WINDOW_SIZE, 1000))
    assert c.peer_max_frame_size == 32768
    assert c.stream_state(1) == "half-closed (remote)" and c.last_stream_id == 1
    ours = read_frames(c.data_to_send())
    assert ours[0][0] == _h2.SETTINGS and ours[0][1] == 0      # our preface, no ACK
    assert c.send_window(1) == 1000
    cl = Client()
    assert c.receive(PREFACE + settings() + cl.headers(3, GET)) == [("request", 3, GET, True)]
    c.send_headers(1, [(b":status", b"200")], False)
    assert c.send_data(1, b"x" * 10, True) == 10
    assert c.stream_state(1) == "closed"
    with pytest.raises(RuntimeError):
        c.initiate_upgrade(b"")


@pytest.mark.parametrize("payload", [b"\0\4\0\0", struct.pack(">HI", 2, 5),
                                     struct.pack(">HI", 5, 100)])
def test_initiate_upgrade_invalid_settings(payload: bytes) -> None:
    with pytest.raises(ValueError):
        H2EventConnection().initiate_upgrade(payload)

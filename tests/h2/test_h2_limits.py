"""engine._h2's limits, one by one (issue 16 item 4): each H2Limits field is exceeded by a
crafted peer and must end in the documented answer, and a peer staying under it is served."""
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


def calm(c: H2EventConnection, ev: list, last: int) -> None:
    assert ev and ev[-1][:2] == ("connection_error", _h2.ENHANCE_YOUR_CALM), ev
    assert goaway_of(read_frames(c.data_to_send())) == (last, _h2.ENHANCE_YOUR_CALM)
    assert c.closed


def test_limits_defaults_and_validation() -> None:
    lim = H2Limits()
    assert {k: getattr(lim, k) for k in _h2.LIMIT_FIELDS} == {
        "max_concurrent_streams": 100, "initial_window_size": 65535,
        "connection_window_size": 1048576, "max_frame_size": 16384,
        "max_header_list_size": 65536, "max_header_list_hard": 262144,
        "header_table_size": 4096,
        "max_header_block_bytes": 65536, "max_continuation_frames": 32,
        "max_rapid_resets": 100, "rapid_reset_window": 1000, "max_control_queue": 32768,
        "max_settings_frames": 100, "max_ping_frames": 1000, "max_empty_data_frames": 100,
        "max_priority_frames": 1000, "max_window_update_frames": 1000,
        "enable_connect_protocol": False}
    assert "max_frame_size=16384" in repr(lim)
    for bad in ({"max_frame_size": 16383}, {"max_frame_size": 2**24},
                {"initial_window_size": 2**31}, {"connection_window_size": 1000},
                {"max_concurrent_streams": 0}, {"max_ping_frames": 0},
                {"max_header_list_size": 0}):
        with pytest.raises(ValueError):
            H2Limits(**bad)
    # the hard header-list limit: by default 4 x the advertised one (within 2**31-1), else
    # at least it
    assert H2Limits(max_header_list_size=1000).max_header_list_hard == 4000
    assert H2Limits(max_header_list_size=2**30).max_header_list_hard == 2**31 - 1
    assert H2Limits(max_header_list_size=1000,
                    max_header_list_hard=1000).max_header_list_hard == 1000
    for bad_hard in ({"max_header_list_size": 1000, "max_header_list_hard": 999},
                     {"max_header_list_hard": 2**31}, {"max_header_list_hard": -1}):
        with pytest.raises(ValueError, match="max_header_list_hard"):
            H2Limits(**bad_hard)


def test_limits_and_internals_are_not_writable() -> None:
    lim = H2Limits()
    with pytest.raises(AttributeError):
        lim.max_frame_size = 1 << 20  # type: ignore[misc]
    c = H2EventConnection(lim)
    assert c.limits is lim
    with pytest.raises(AttributeError):
        c.last_stream_id = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        _h2.H2Stream()  # type: ignore[attr-defined]


def test_max_frame_size() -> None:
    c, cl = connect(H2Limits(max_frame_size=20000, initial_window_size=1 << 20))
    c.receive(cl.headers(1, post(), end=False))
    assert c.receive(frame(_h2.DATA, 0, 1, b"x" * 20000)) == [("data", 1, b"x" * 20000, False)]
    ev = c.receive(frame(_h2.DATA, 0, 1, b"x" * 20001))
    assert ev[-1][:2] == ("connection_error", _h2.FRAME_SIZE_ERROR)
    assert goaway_of(read_frames(c.data_to_send())) == (1, _h2.FRAME_SIZE_ERROR)


def test_oversize_frame_refused_from_its_header() -> None:
    """The length is refused as soon as the 9-byte header is in: the payload is never read."""
    c, cl = connect()
    ev = c.receive(frame(_h2.DATA, 0, 1, b"")[:0] + (1 << 20).to_bytes(3, "big") + b"\0\0\0\0\0\1")
    assert ev[-1][:2] == ("connection_error", _h2.FRAME_SIZE_ERROR)


def test_connection_window_size() -> None:
    c, cl = connect(H2Limits(connection_window_size=200000, initial_window_size=1 << 20))
    assert c.conn_recv_window == 200000
    ev = c.receive(cl.headers(1, post(), end=False) + data(1, b"x" * 200000))
    assert ev[-1] == ("data", 1, b"x" * (200000 - 12 * 16384), False)
    ev = c.receive(data(1, b"x"))
    assert ev[-1][:2] == ("connection_error", _h2.FLOW_CONTROL_ERROR)


def test_max_header_list_size() -> None:
    """Up to the advertised limit: a request. Above it (up to the hard limit): the stream is
    announced as too large, without its fields, and the owner answers it; the connection goes
    on. Above the hard limit: connection ENHANCE_YOUR_CALM."""
    c, cl = connect(H2Limits(max_header_list_size=300))
    assert c.limits.max_header_list_hard == 1200
    small = GET + [(b"x", b"v" * 80)]          # 290 bytes by RFC 9113 §6.5.2
    assert c.receive(cl.headers(1, small)) == [("request", 1, small, True)]
    assert c.receive(cl.headers(3, GET + [(b"x", b"v" * 300)])) == [
        ("request_too_large", 3, True)]
    assert c.stream_state(3) == "half-closed (remote)" and c.last_stream_id == 3
    c.send_headers(3, [(b":status", b"431"), (b"content-length", b"0")], True)
    frames = read_frames(c.data_to_send())
    assert [(t, f, sid) for t, f, sid, _ in frames] == [
        (_h2.HEADERS, _h2.END_HEADERS | _h2.END_STREAM, 3)]
    assert c.stream_state(3) == "closed" and c.open_streams == 1       # stream 1 unanswered
    assert c.receive(cl.headers(5, small)) == [("request", 5, small, True)]
    calm(c, c.receive(cl.headers(7, GET + [(b"x", b"v" * 1200)])), 5)


def test_oversized_request_keeps_the_hpack_table_in_step() -> None:
    """The oversized block inserts entries (the client's encoder indexes every field), the
    last ones after the field that passed the limit; the next request refers to them by
    dynamic-table index and must decode to the same fields: the proof that the block was
    decoded whole."""
    c, cl = connect(H2Limits(max_header_list_size=400))
    big = GET + [(b"x-big", b"v" * 300), (b"x-tag", b"after-the-limit"),
                 (b"user-agent", b"test/1.0")]
    assert c.receive(cl.headers(1, big)) == [("request_too_large", 1, True)]
    again = GET + [(b"user-agent", b"test/1.0"), (b"x-tag", b"after-the-limit")]
    block = cl.block(again)
    dynamic = [b for b in block if b >= 0x80 and b & 0x7F >= 62]
    assert len(dynamic) >= 3, block.hex()        # :authority, user-agent, x-tag by index
    assert c.receive(frame(_h2.HEADERS, _h2.END_HEADERS | _h2.END_STREAM, 3, block)) == [
        ("request", 3, again, True)]
    assert not c.closed


def test_oversized_request_with_a_body() -> None:
    """A too-large request that has not ended: its DATA is delivered (the owner gives the
    window back); the owner answers and resets the rest with NO_ERROR (§8.1)."""
    c, cl = connect(H2Limits(max_header_list_size=300))
    ev = c.receive(cl.headers(1, post() + [(b"x", b"v" * 300)], end=False) + data(1, b"body"))
    assert ev == [("request_too_large", 1, False), ("data", 1, b"body", False)]
    c.consume(1, 4)
    c.send_headers(1, [(b":status", b"431"), (b"content-length", b"0")], True)
    c.reset_stream(1, _h2.NO_ERROR)
    assert rsts_of(read_frames(c.data_to_send())) == [(1, _h2.NO_ERROR)]
    assert c.receive(data(1, b"late", True)) == []            # in flight: ignored
    assert c.receive(cl.headers(3, GET)) == [("request", 3, GET, True)]


def test_oversized_trailers_reset_the_stream() -> None:
    """Trailers above the limit: the request already reached the owner, so the stream is
    reset (ENHANCE_YOUR_CALM) rather than answered; the connection goes on."""
    c, cl = connect(H2Limits(max_header_list_size=300))
    assert c.receive(cl.headers(1, post(), end=False)) == [("request", 1, post(), False)]
    ev = c.receive(cl.headers(1, [(b"x-trailer", b"v" * 300)], end=True))
    assert ev == [("reset", 1, _h2.ENHANCE_YOUR_CALM)]
    assert rsts_of(read_frames(c.data_to_send())) == [(1, _h2.ENHANCE_YOUR_CALM)]
    assert c.receive(cl.headers(3, GET)) == [("request", 3, GET, True)]


def test_oversized_requests_respect_the_other_stream_limits() -> None:
    """A too-large request is a stream like any other: refused above max_concurrent_streams,
    ignored after our GOAWAY."""
    c, cl = connect(H2Limits(max_header_list_size=300, max_concurrent_streams=1))
    big = GET + [(b"x", b"v" * 300)]
    assert c.receive(cl.headers(1, big, end=False)) == [("request_too_large", 1, False)]
    assert c.receive(cl.headers(3, big)) == []
    assert rsts_of(read_frames(c.data_to_send())) == [(3, _h2.REFUSED_STREAM)]
    c.goaway()
    assert c.receive(cl.headers(5, big)) == []
    assert c.receive(cl.headers(7, GET)) == []
    assert not c.closed


def test_hard_header_list_limit_equal_to_the_soft_one() -> None:
    """max_header_list_hard == max_header_list_size: no 431, every oversized list ends the
    connection (and an HPACK bomb costs at most the limit)."""
    c, cl = connect(H2Limits(max_header_list_size=300, max_header_list_hard=300))
    calm(c, c.receive(cl.headers(1, GET + [(b"x", b"v" * 300)])), 0)


def test_hpack_bomb_past_the_hard_limit() -> None:
    """One 4000-byte entry referenced 10000 times (a 14 KB block decoding to 40 MB): decoding
    stops at the hard limit, connection ENHANCE_YOUR_CALM."""
    c, cl = connect()
    block = bytes([0x40, 0x01, 0x78, 0x7F, 0xA1, 0x1E]) + b"v" * 4000 + b"\xbe" * 10000
    assert len(block) < c.limits.max_header_block_bytes
    calm(c, c.receive(frame(_h2.HEADERS, _h2.END_HEADERS | _h2.END_STREAM, 1, block)), 0)


def test_header_table_size() -> None:
    c = H2EventConnection(H2Limits(header_table_size=0))
    c.initiate()
    payload = read_frames(c.data_to_send())[0][3]
    assert (_h2.SETTINGS_HEADER_TABLE_SIZE, 0) in list(struct.iter_unpack(">HI", payload))
    cl = Client()
    c.receive(PREFACE + settings() + settings(ack=True))
    cl.enc.header_table_size = 0            # the client's encoder emits the size update
    assert c.receive(cl.headers(1, GET)) == [("request", 1, GET, True)]
    # a peer that ignores the lowered size: COMPRESSION_ERROR
    c2 = H2EventConnection(H2Limits(header_table_size=0))
    c2.receive(PREFACE + settings() + settings(ack=True))
    ev = c2.receive(Client().headers(1, GET))
    assert ev[-1][:2] == ("connection_error", _h2.COMPRESSION_ERROR)


def test_peer_header_table_size_goes_to_our_encoder() -> None:
    import hpack
    c, cl = connect(None, (_h2.SETTINGS_HEADER_TABLE_SIZE, 0))
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200"), (b"x-custom", b"value")], True)
    block = read_frames(c.data_to_send())[0][3]
    assert block[0] & 0xE0 == 0x20                      # starts with a size update
    d = hpack.Decoder()
    d.header_table_size = 4096
    assert d.decode(block, raw=True) == [(b":status", b"200"), (b"x-custom", b"value")]
    assert len(d.header_table.dynamic_entries) == 0


def test_max_header_block_bytes_across_continuations() -> None:
    c, cl = connect(H2Limits(max_header_block_bytes=1000))
    hdr = frame(_h2.HEADERS, _h2.END_STREAM, 1, b"\x82" * 600)
    ev = c.receive(hdr + frame(_h2.CONTINUATION, 0, 1, b"\x82" * 401))
    calm(c, ev, 0)


def test_max_header_block_bytes_first_frame() -> None:
    c, cl = connect(H2Limits(max_header_block_bytes=1000))
    calm(c, c.receive(frame(_h2.HEADERS, _h2.END_STREAM, 1, b"\x82" * 1001)), 0)


def test_continuation_flood_of_empty_frames() -> None:
    c, cl = connect(H2Limits(max_continuation_frames=5))
    block = cl.block(GET)
    ok = (frame(_h2.HEADERS, _h2.END_STREAM, 1, block)
          + frame(_h2.CONTINUATION, 0, 1, b"") * 4 + frame(_h2.CONTINUATION, _h2.END_HEADERS, 1))
    assert c.receive(ok) == [("request", 1, GET, True)]
    flood = frame(_h2.HEADERS, _h2.END_STREAM, 3, cl.block(GET)) + \
        frame(_h2.CONTINUATION, 0, 3, b"") * 6
    calm(c, c.receive(flood), 1)


def test_unfinished_header_block_holds_bounded_memory() -> None:
    """A block that never ends is bounded by max_header_block_bytes, not buffered forever."""
    c, cl = connect(H2Limits(max_header_block_bytes=4096, max_continuation_frames=10**6))
    ev = c.receive(frame(_h2.HEADERS, 0, 1, b"\x82"))
    for _ in range(4095):
        ev += c.receive(frame(_h2.CONTINUATION, 0, 1, b"\x82"))
    assert ev == []
    calm(c, c.receive(frame(_h2.CONTINUATION, 0, 1, b"\x82")), 0)


def _open_reset(cl: Client, sid: int) -> bytes:
    return cl.headers(sid, post(), end=False) + rst(sid, _h2.CANCEL)


def test_rapid_reset() -> None:
    c, cl = connect(H2Limits(max_rapid_resets=10))
    ev = c.receive(b"".join(_open_reset(cl, 2 * i + 1) for i in range(10)))
    assert [e[0] for e in ev] == ["request", "reset"] * 10
    assert not c.closed
    calm(c, c.receive(_open_reset(cl, 21)), 21)


def test_rapid_reset_window_of_openings() -> None:
    """Resets are counted per window of rapid_reset_window stream openings: a client resetting
    a few streams among many it lets finish is served."""
    c, cl = connect(H2Limits(max_rapid_resets=3, rapid_reset_window=10))
    sid = 1
    for _round in range(5):
        for i in range(10):
            if i < 3:
                c.receive(_open_reset(cl, sid))
            else:
                c.receive(cl.headers(sid, GET))
                c.send_headers(sid, [(b":status", b"204")], True)
            sid += 2
        c.data_to_send()
    assert not c.closed
    # 4 resets within one window: ENHANCE_YOUR_CALM
    for _ in range(3):
        c.receive(_open_reset(cl, sid))
        sid += 2
    assert not c.closed
    calm(c, c.receive(_open_reset(cl, sid)), sid)


def test_reset_after_response_is_not_rapid() -> None:
    c, cl = connect(H2Limits(max_rapid_resets=1))
    for sid in range(1, 41, 2):
        c.receive(cl.headers(sid, post(), end=False))
        c.send_headers(sid, [(b":status", b"200")], True)     # answered: half-closed (local)
        assert c.receive(rst(sid, _h2.NO_ERROR)) == [("reset", sid, _h2.NO_ERROR)]
    assert not c.closed


def test_refused_streams_count_as_resets() -> None:
    c, cl = connect(H2Limits(max_concurrent_streams=1, max_rapid_resets=5))
    c.receive(cl.headers(1, post(), end=False))
    ev = c.receive(b"".join(cl.headers(sid, GET) for sid in range(3, 13, 2)))
    assert ev == [] and not c.closed
    assert [code for _, code in rsts_of(read_frames(c.data_to_send()))] == [
        _h2.REFUSED_STREAM] * 5
    calm(c, c.receive(cl.headers(13, GET)), 1)


def test_provoked_resets_count_as_resets() -> None:
    """Malformed requests make us reset streams: they share the rapid-reset budget (the
    'MadeYouReset' variant)."""
    c, cl = connect(H2Limits(max_rapid_resets=5))
    bad = GET + [(b"connection", b"close")]
    c.receive(b"".join(cl.headers(sid, bad) for sid in range(1, 11, 2)))
    assert not c.closed
    assert [code for _, code in rsts_of(read_frames(c.data_to_send()))] == [
        _h2.PROTOCOL_ERROR] * 5
    calm(c, c.receive(cl.headers(11, bad)), 0)


@pytest.mark.parametrize("kind", ["settings", "ping", "empty_data", "priority", "window_update"])
def test_useless_frame_flood(kind: str) -> None:
    make = {"settings": lambda i: settings(),
            "ping": lambda i: ping(),
            "empty_data": lambda i: data(1, b""),
            "priority": lambda i: priority(1, 0),
            "window_update": lambda i: window_update(0, 1)}[kind]
    c, cl = connect(H2Limits(**{f"max_{kind}_frames": 5}))
    c.receive(cl.headers(1, post(), end=False))
    quiet = [("window", 0)] * 5 if kind == "window_update" else []
    assert c.receive(b"".join(make(i) for i in range(5))) == quiet
    c.data_to_send()
    # productive work (a DATA payload here) starts the count over
    assert c.receive(data(1, b"x")) == [("data", 1, b"x", False)]
    assert c.receive(b"".join(make(i) for i in range(5))) == quiet
    c.data_to_send()
    calm(c, c.receive(make(6)), 1)


def test_control_queue_while_output_not_taken() -> None:
    c, cl = connect(H2Limits(max_control_queue=17 * 10))
    assert c.receive(ping() * 10) == []
    assert c.output_size() == 170
    calm(c, c.receive(ping()), 0)


def test_control_queue_drained_keeps_serving() -> None:
    c, cl = connect(H2Limits(max_control_queue=17 * 10, max_ping_frames=10**6))
    for _ in range(100):
        assert c.receive(ping() * 10) == []
        assert len(read_frames(c.data_to_send())) == 10
    assert not c.closed


def test_zero_window_stall_buffers_nothing() -> None:
    """A peer that never opens its window can't make the core hold application data:
    send_data takes nothing and the output does not grow."""
    c, cl = connect(None, (_h2.SETTINGS_INITIAL_WINDOW_SIZE, 0))
    c.receive(cl.headers(1, GET))
    c.send_headers(1, [(b":status", b"200")], False)
    c.data_to_send()
    for _ in range(100):
        assert c.send_data(1, b"x" * 100000, True) == 0
    assert c.output_size() == 0
    assert c.send_window(1) == 0
    assert c.stream_state(1) == "half-closed (remote)"


def test_invalid_preface_is_protocol_error() -> None:
    c = H2EventConnection()
    ev = c.receive(b"PRI * HTTP/1.1\r\n")
    assert ev[-1][:2] == ("connection_error", _h2.PROTOCOL_ERROR)
    frames = read_frames(c.data_to_send())
    assert frames[0][0] == _h2.SETTINGS                 # initiate() ran first
    assert goaway_of(frames) == (0, _h2.PROTOCOL_ERROR)


def test_window_overflow_by_settings_on_closed_window() -> None:
    c, cl = connect()
    c.receive(cl.headers(1, GET) + window_update(1, 2**31 - 1 - 65535))
    assert c.send_window(1) == 65535                    # the connection window bounds it
    ev = c.receive(settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 65536)))
    assert ev[-1][:2] == ("connection_error", _h2.FLOW_CONTROL_ERROR)

"""WebSocket permessage-deflate (RFC 7692) end to end: `engine serve` against the real
`websockets` client, plus raw-socket frames for the failure paths (bomb -> 1009, RSV1 without
negotiation -> 1002)."""
from __future__ import annotations

import base64
import os
import socket
import struct
import zlib

import pytest
from serve_util import Served
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import connect

from engine import _ws

APP = """
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        if m.get("text") is not None:
            await send({"type": "websocket.send", "text": m["text"]})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})
"""


@pytest.fixture(scope="module")
def appdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wsapp")
    (d / "wsapp.py").write_text(APP)
    return d


@pytest.fixture(scope="module")
def server(appdir):
    with Served("wsapp:app", "--ws-max-size", "100000", cwd=appdir) as srv:
        yield srv


def _url(srv):
    return f"ws://{srv.host}:{srv.port}/ws"


def _ext(ws):
    return ws.response.headers.get("Sec-WebSocket-Extensions")


def test_negotiated_and_echoes_text_and_binary(server):
    with connect(_url(server), compression="deflate") as ws:
        assert _ext(ws).startswith("permessage-deflate")
        assert "server_max_window_bits=12" in _ext(ws)
        for msg in ("hi", "x" * 10, "héllo wörld " * 500, b"\x00\x01" * 3000, b"ab"):
            ws.send(msg)
            assert ws.recv() == msg


def test_large_and_many_messages_with_context_takeover(server):
    big = os.urandom(20000).hex()           # 40000 chars (< --ws-max-size 100000)
    with connect(_url(server), compression="deflate") as ws:
        ws.send(big)
        assert ws.recv() == big
        for i in range(300):
            m = f"message number {i} " * (1 + i % 7)
            ws.send(m)
            assert ws.recv() == m


@pytest.mark.parametrize("params", [
    dict(server_no_context_takeover=True),
    dict(client_no_context_takeover=True),
    dict(server_no_context_takeover=True, client_no_context_takeover=True,
         server_max_window_bits=10, client_max_window_bits=9),
    dict(client_max_window_bits=True),
])
def test_offer_parameters(server, params):
    factory = ClientPerMessageDeflateFactory(**params)
    with connect(_url(server), extensions=[factory], compression=None) as ws:
        ext = _ext(ws)
        assert ext.startswith("permessage-deflate")
        if params.get("server_no_context_takeover"):
            assert "server_no_context_takeover" in ext
        if params.get("server_max_window_bits"):
            assert "server_max_window_bits=10" in ext
        for i in range(50):
            m = ("repeat me please " * 20) + str(i)
            ws.send(m)
            assert ws.recv() == m


def test_uncompressed_client_still_works(server):
    with connect(_url(server), compression=None) as ws:
        assert _ext(ws) is None
        ws.send("plain " * 100)
        assert ws.recv() == "plain " * 100


def test_flag_off_not_negotiated(appdir):
    with Served("wsapp:app", "--no-ws-per-message-deflate", cwd=appdir) as srv:
        with connect(_url(srv), compression="deflate") as ws:
            assert _ext(ws) is None
            ws.send("y" * 1000)
            assert ws.recv() == "y" * 1000


def test_negotiation_rules():
    def neg(value):
        return _ws.negotiate_deflate([(b"sec-websocket-extensions", value)])
    assert (neg(b"permessage-deflate")["response"]
            == b"permessage-deflate; server_max_window_bits=12")
    r = neg(b"permessage-deflate; client_max_window_bits")
    assert r["response"].endswith(b"client_max_window_bits=12")
    assert r["client_window_bits"] == 12
    r = neg(b"permessage-deflate; client_max_window_bits=10")
    assert r["response"].endswith(b"client_max_window_bits=10")
    r = neg(b"permessage-deflate; client_max_window_bits=8")
    assert r["response"].endswith(b"client_max_window_bits=8") and r["client_window_bits"] == 9
    assert neg(b"permessage-deflate")["client_window_bits"] == 15
    # invalid offers are declined and the next one is taken
    r = neg(b"permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=9")
    assert r["server_window_bits"] == 9
    for bad in (b"permessage-deflate; server_max_window_bits",
                b"permessage-deflate; server_max_window_bits=16",
                b"permessage-deflate; server_max_window_bits=08",
                b"permessage-deflate; client_max_window_bits=7",
                b"permessage-deflate; server_no_context_takeover=1",
                b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                b"x-other-extension"):
        assert neg(bad) is None, bad
    assert neg(b'permessage-deflate; server_max_window_bits="10"')["server_window_bits"] == 10


# --- raw socket: the failure paths ---------------------------------------------------------

def _raw_handshake(srv, offer: bool):
    s = socket.create_connection((srv.host, srv.port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    req = (b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n")
    if offer:
        req += b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
    s.sendall(req + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk
        head += chunk
    assert head.startswith(b"HTTP/1.1 101")
    assert (b"permessage-deflate" in head.lower()) == offer
    return s, head.split(b"\r\n\r\n", 1)[1]


def _close_code(s, buf):
    p = _ws.MessageParser(is_server=False)
    while True:
        p.feed_data(buf)
        for ev in p.events():
            if ev[0] == "close":
                return ev[1]
        buf = s.recv(65536)
        if not buf:
            return None


def _healthy(srv):
    with connect(_url(srv), compression="deflate") as ws:
        ws.send("still alive " * 10)
        assert ws.recv() == "still alive " * 10


def test_compression_bomb_closes_1009(server):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = c.compress(b"\x00" * 50_000_000) + c.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < 100000                    # the wire size passes --ws-max-size
    s, rest = _raw_handshake(server, True)
    with s:
        s.sendall(_ws.build_frame(_ws.OP_BINARY, bomb, True, True, True))
        assert _close_code(s, rest) == 1009
    _healthy(server)


def test_rsv1_without_negotiation_closes_1002(server):
    s, rest = _raw_handshake(server, False)
    with s:
        s.sendall(_ws.build_frame(_ws.OP_TEXT, b"abc", True, True, True))
        assert _close_code(s, rest) == 1002
    _healthy(server)


def test_rsv1_on_control_frame_closes_1002(server):
    s, rest = _raw_handshake(server, True)
    with s:
        frame = bytearray(_ws.build_frame(_ws.OP_PING, b"x", True, True))
        frame[0] |= 0x40
        s.sendall(bytes(frame))
        assert _close_code(s, rest) == 1002


def test_corrupt_compressed_data_closes_1007(server):
    s, rest = _raw_handshake(server, True)
    with s:
        s.sendall(_ws.build_frame(_ws.OP_TEXT, b"\xff\xff\xff\xff", True, True, True))
        assert _close_code(s, rest) == 1007


def test_fragmented_compressed_message(server):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = ("fragmented " * 200).encode()
    z = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    s, rest = _raw_handshake(server, True)
    with s:
        s.sendall(_ws.build_frame(_ws.OP_TEXT, z[:10], False, True, True)
                  + _ws.build_frame(_ws.OP_CONTINUATION, z[10:], True, True))
        p = _ws.MessageParser(is_server=False)
        buf = rest
        got = None
        while got is None:
            # the echo comes back compressed (RSV1): read the raw frame
            buf += s.recv(65536)
            if len(buf) >= 4:
                b0, b1 = buf[0], buf[1]
                assert b0 & 0x40                 # compressed
                n, h = b1 & 0x7F, 2
                if n == 126:
                    n, h = struct.unpack(">H", buf[2:4])[0], 4
                if len(buf) >= h + n:
                    d = zlib.decompressobj(-15)
                    got = d.decompress(buf[h:h + n] + b"\x00\x00\xff\xff")
        assert got == data
        del p


# --- the frame parser alone ----------------------------------------------------------------

def _deflate(data, c=None):
    c = c or zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_parser_inflates_with_context_takeover_and_fragments():
    p = _ws.MessageParser(max_message_size=1000)
    p.enable_inflate(15, False)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    a, b = _deflate(b"hello hello hello", c), _deflate(b"hello hello hello", c)
    assert len(b) < len(a)                      # the second message refers to the first
    z = _deflate("ünïcode ".encode() * 20)
    p.feed_data(_ws.build_frame(_ws.OP_BINARY, a, True, True, True)
                + _ws.build_frame(_ws.OP_BINARY, b, True, True, True)
                + _ws.build_frame(_ws.OP_TEXT, z[:3], False, True, True)
                + _ws.build_frame(_ws.OP_PING, b"p", True, True)
                + _ws.build_frame(_ws.OP_CONTINUATION, z[3:], True, True)
                + _ws.build_frame(_ws.OP_TEXT, "plain", True, True))
    assert p.events() == [("binary", b"hello hello hello"), ("binary", b"hello hello hello"),
                          ("ping", b"p"), ("text", "ünïcode " * 20), ("text", "plain")]


def test_parser_rsv1_on_continuation_and_bomb():
    p = _ws.MessageParser()
    p.enable_inflate()
    frame = bytearray(_ws.build_frame(_ws.OP_CONTINUATION, b"x", True, True))
    frame[0] |= 0x40
    p.feed_data(_ws.build_frame(_ws.OP_TEXT, _deflate(b"ab"), False, True, True))
    with pytest.raises(_ws.WebSocketError) as e:
        p.feed_data(bytes(frame))
    assert e.value.code == 1002
    p = _ws.MessageParser(max_message_size=10000)
    p.enable_inflate()
    with pytest.raises(_ws.WebSocketError) as e:
        p.feed_data(_ws.build_frame(_ws.OP_BINARY, _deflate(b"a" * 10001), True, True, True))
    assert e.value.code == 1009
    p = _ws.MessageParser(max_message_size=10000)
    p.enable_inflate()
    p.feed_data(_ws.build_frame(_ws.OP_BINARY, _deflate(b"a" * 10000), True, True, True))
    assert p.events() == [("binary", b"a" * 10000)]


def test_parser_invalid_utf8_after_inflate_is_1007():
    p = _ws.MessageParser()
    p.enable_inflate()
    with pytest.raises(_ws.WebSocketError) as e:
        p.feed_data(_ws.build_frame(_ws.OP_TEXT, _deflate(b"\xc3\x28 bad"), True, True, True))
    assert e.value.code == 1007


def test_cli_flag_reaches_config_and_protocol_config():
    import argparse

    from engine.serve.cli import add_parser, config_from_args
    from engine.serve.protocols.http import server_config
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    on = config_from_args(parser.parse_args(["serve", "m:app"]))
    off = config_from_args(parser.parse_args(["serve", "m:app", "--no-ws-per-message-deflate"]))
    assert on.ws_per_message_deflate is True and off.ws_per_message_deflate is False
    assert server_config(None, on).ws_per_message_deflate is True
    assert server_config(None, off).ws_per_message_deflate is False

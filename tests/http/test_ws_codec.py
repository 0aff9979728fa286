"""engine._ws: RFC 6455 handshake helpers, frame building and the incremental frame parser."""
from __future__ import annotations

import base64
import hashlib
import os
import random
import struct

import pytest

from engine._ws import (
    FrameParser,
    HandshakeError,
    MessageParser,
    WebSocketError,
    accept_key,
    build_close,
    build_frame,
    close_payload,
    handshake_headers,
    subprotocols,
    validate_handshake,
    validate_utf8,
)

# ---- an independent encoder for test input (also for frames build_frame refuses to make) ----


def raw_frame(first: int, payload: bytes, key: bytes | None = None,
              length_form: str | None = None, mask_bit: bool | None = None) -> bytes:
    """first: byte 0 (FIN/RSV/opcode); length_form forces '7', '16' or '64'."""
    n = len(payload)
    form = length_form or ("7" if n < 126 else "16" if n < 65536 else "64")
    masked = key is not None if mask_bit is None else mask_bit
    mbit = 0x80 if masked else 0
    if form == "7":
        head = bytes([first, mbit | n])
    elif form == "16":
        head = bytes([first, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, mbit | 127]) + struct.pack("!Q", n)
    if key is None:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


KEY = b"\x37\xfa\x21\x3d"


def client(first: int, payload: bytes = b"", **kw: object) -> bytes:
    return raw_frame(first, payload, key=KEY, **kw)  # type: ignore[arg-type]


def feed_all(data: bytes, parser: MessageParser | None = None, split: int = 0) -> list[tuple]:
    p = parser or MessageParser()
    if split:
        for i in range(0, len(data), split):
            p.feed_data(data[i:i + split])
    else:
        p.feed_data(data)
    return p.events()


def error_of(data: bytes, **kw: object) -> WebSocketError:
    p = MessageParser(**kw)  # type: ignore[arg-type]
    with pytest.raises(WebSocketError) as exc:
        p.feed_data(data)
    # the error sticks
    with pytest.raises(WebSocketError) as again:
        p.feed_data(client(0x81, b"x"))
    assert again.value.code == exc.value.code
    return exc.value


# ---- handshake ------------------------------------------------------------------------------

HANDSHAKE = [
    (b"host", b"server.example.com"), (b"upgrade", b"websocket"),
    (b"connection", b"Upgrade"), (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"origin", b"http://example.com"), (b"sec-websocket-protocol", b"chat, superchat"),
    (b"sec-websocket-version", b"13"),
]


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_accept_key_matches_definition() -> None:
    for _ in range(20):
        key = base64.b64encode(os.urandom(16))
        digest = hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        assert accept_key(key) == base64.b64encode(digest).decode()


def test_validate_handshake_returns_key() -> None:
    assert validate_handshake(HANDSHAKE) == b"dGhlIHNhbXBsZSBub25jZQ=="
    # tokens are case-insensitive and may sit in lists
    hs = [(n, v) for n, v in HANDSHAKE if n not in (b"upgrade", b"connection")]
    hs += [(b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, upgrade")]
    assert validate_handshake(hs) == b"dGhlIHNhbXBsZSBub25jZQ=="


def replace(name: bytes, value: bytes | None) -> list[tuple[bytes, bytes]]:
    out = [(n, v) for n, v in HANDSHAKE if n != name]
    if value is not None:
        out.append((name, value))
    return out


@pytest.mark.parametrize("headers,status", [
    (replace(b"upgrade", None), 400),
    (replace(b"upgrade", b"h2c"), 400),
    (replace(b"connection", b"keep-alive"), 400),
    (replace(b"connection", None), 400),
    (replace(b"host", None), 400),
    (replace(b"sec-websocket-key", None), 400),
    (replace(b"sec-websocket-key", b"not base64!"), 400),
    (replace(b"sec-websocket-key", base64.b64encode(b"x" * 15)), 400),
    (replace(b"sec-websocket-key", base64.b64encode(b"x" * 17)), 400),
    (replace(b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ"), 400),
    (HANDSHAKE + [(b"sec-websocket-key", b"AAAAAAAAAAAAAAAAAAAAAA==")], 400),
    (replace(b"sec-websocket-version", None), 400),
    (replace(b"sec-websocket-version", b"8"), 426),
    (replace(b"sec-websocket-version", b"13, 8"), 426),
])
def test_validate_handshake_refusals(headers: list[tuple[bytes, bytes]], status: int) -> None:
    with pytest.raises(HandshakeError) as exc:
        validate_handshake(headers)
    assert exc.value.status_code == status
    if status == 426:
        assert exc.value.headers == [(b"sec-websocket-version", b"13")]


def test_validate_handshake_method_and_version() -> None:
    with pytest.raises(HandshakeError) as exc:
        validate_handshake(HANDSHAKE, method=b"POST")
    assert exc.value.status_code == 400
    with pytest.raises(HandshakeError):
        validate_handshake(HANDSHAKE, http_version=b"1.0")


def test_subprotocols_and_response_headers() -> None:
    assert subprotocols(HANDSHAKE) == ["chat", "superchat"]
    assert subprotocols(HANDSHAKE + [(b"sec-websocket-protocol", b" x ,,y")]) == [
        "chat", "superchat", "x", "y"]
    assert subprotocols([]) == []
    assert handshake_headers(b"dGhlIHNhbXBsZSBub25jZQ==", "chat") == [
        (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        (b"sec-websocket-protocol", b"chat")]


# ---- building frames: RFC 6455 §5.7 examples ------------------------------------------------

def test_build_frame_rfc_examples() -> None:
    assert build_frame(1, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert build_frame(1, b"Hello", mask=KEY) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert build_frame(1, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert build_frame(0, b"lo") == bytes.fromhex("80026c6f")
    assert build_frame(9, b"Hello") == bytes.fromhex("890548656c6c6f")
    assert build_frame(10, b"Hello", mask=KEY) == bytes.fromhex("8a8537fa213d7f9f4d5158")
    assert build_frame(2, b"\0" * 256)[:4] == bytes.fromhex("827e0100")
    assert build_frame(2, b"\0" * 65536)[:10] == bytes.fromhex("827f0000000000010000")


def test_build_frame_length_boundaries_and_str_payload() -> None:
    for n in (0, 125, 126, 127, 65535, 65536):
        payload = bytes(random.Random(n).randrange(256) for _ in range(n))
        assert build_frame(2, payload) == raw_frame(0x82, payload)
        assert build_frame(2, payload, mask=KEY) == raw_frame(0x82, payload, key=KEY)
    assert build_frame(1, "é") == b"\x81\x02\xc3\xa9"


def test_build_frame_refusals() -> None:
    for op in (3, 7, 11, 15, 16, -1):
        with pytest.raises(ValueError):
            build_frame(op, b"")
    with pytest.raises(ValueError):
        build_frame(9, b"x" * 126)
    with pytest.raises(ValueError):
        build_frame(8, b"", fin=False)
    with pytest.raises(ValueError):
        build_frame(1, b"x", mask=b"abc")


def test_random_mask_differs_and_round_trips() -> None:
    a = build_frame(2, b"payload", mask=True)
    b = build_frame(2, b"payload", mask=True)
    assert a[2:6] != b[2:6] or a[6:] != b[6:]
    assert feed_all(a + b) == [("binary", b"payload"), ("binary", b"payload")]


def test_close_payload_and_frame() -> None:
    assert close_payload(1000, "bye") == b"\x03\xe8bye"
    assert close_payload(None) == b""
    assert build_close(1001) == b"\x88\x02\x03\xe9"
    for bad in (999, 1004, 1005, 1006, 1015, 2999, 5000):
        with pytest.raises(ValueError):
            close_payload(bad)
    with pytest.raises(ValueError):
        close_payload(1000, "x" * 124)


# ---- parsing --------------------------------------------------------------------------------

def test_masking_round_trip_every_split() -> None:
    rng = random.Random(1)
    for n in (0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 125, 126, 200, 65535, 65536, 70001):
        payload = bytes(rng.randrange(256) for _ in range(n))
        key = bytes(rng.randrange(256) for _ in range(4))
        frame = build_frame(2, payload, mask=key)
        for split in (0, 1, 3, 7, 4096):
            if split == 1 and n > 300:
                continue
            assert feed_all(frame, split=split) == [("binary", payload)], (n, split)


def test_text_message_round_trip() -> None:
    text = "héllo wörld ✓ 𝄞" * 50
    assert feed_all(build_frame(1, text, mask=True)) == [("text", text)]
    assert feed_all(build_frame(1, text, mask=True), split=1) == [("text", text)]


def test_server_to_client_frames_unmasked() -> None:
    p = MessageParser(is_server=False)
    p.feed_data(build_frame(1, "Hello") + build_frame(2, b"\x00\x01"))
    assert p.events() == [("text", "Hello"), ("binary", b"\x00\x01")]
    with pytest.raises(WebSocketError) as exc:
        MessageParser(is_server=False).feed_data(build_frame(1, "x", mask=KEY))
    assert exc.value.code == 1002


def test_unmasked_client_frame_rejected() -> None:
    assert error_of(build_frame(1, "Hello")).code == 1002


def test_fragmented_message_with_control_frames_between() -> None:
    data = (build_frame(1, "Hel", fin=False, mask=KEY) + build_frame(9, b"p1", mask=KEY)
            + build_frame(0, "lo ", fin=False, mask=KEY) + build_frame(10, b"", mask=KEY)
            + build_frame(0, "world", mask=KEY) + build_frame(2, b"\x01", mask=KEY))
    expected = [("ping", b"p1"), ("pong", b""), ("text", "Hello world"), ("binary", b"\x01")]
    for split in (0, 1, 2, 5):
        assert feed_all(data, split=split) == expected


def test_fragmented_binary_and_empty_fragments() -> None:
    data = (build_frame(2, b"", fin=False, mask=KEY) + build_frame(0, b"ab", fin=False, mask=KEY)
            + build_frame(0, b"", fin=False, mask=KEY) + build_frame(0, b"c", mask=KEY))
    assert feed_all(data) == [("binary", b"abc")]
    assert feed_all(build_frame(1, b"", mask=KEY)) == [("text", "")]


def test_multibyte_character_split_across_fragments_is_valid() -> None:
    snowman = "☃".encode()
    data = (build_frame(1, snowman[:1], fin=False, mask=KEY)
            + build_frame(0, snowman[1:2], fin=False, mask=KEY)
            + build_frame(0, snowman[2:], mask=KEY))
    assert feed_all(data) == [("text", "☃")]


def test_invalid_utf8_fails_fast_in_its_fragment() -> None:
    p = MessageParser()
    p.feed_data(build_frame(1, b"valid ", fin=False, mask=KEY))
    with pytest.raises(WebSocketError) as exc:
        # the final fragment has not arrived: the bad byte is refused already
        p.feed_data(build_frame(0, b"\xc0\xaf", fin=False, mask=KEY))
    assert exc.value.code == 1007


def test_invalid_utf8_fails_within_a_frame_before_its_end() -> None:
    p = MessageParser()
    frame = build_frame(1, b"ab\xffcdefgh", mask=KEY)
    p.feed_data(frame[:8])                      # header (6) + b"ab"
    assert p.events() == []
    with pytest.raises(WebSocketError) as exc:
        p.feed_data(frame[8:9])                 # b"\xff": refused before the frame ends
    assert exc.value.code == 1007


@pytest.mark.parametrize("payload", [
    b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80",
    b"\xe0\x80\x80", b"\xf0\x80\x80\x80", b"\x80", b"abc\xce\xba\xe1\xbd\xb9\xcf\x83\xce",
])
def test_invalid_utf8_text_is_1007(payload: bytes) -> None:
    assert error_of(build_frame(1, payload, mask=KEY)).code == 1007


def test_utf8_incomplete_at_message_end_is_1007() -> None:
    data = build_frame(1, b"\xe2\x82", fin=False, mask=KEY) + build_frame(0, b"", mask=KEY)
    assert error_of(data).code == 1007


def test_utf8_validator_agrees_with_python_decoder() -> None:
    rng = random.Random(3)
    alphabet = [b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9d\x84\x9e", b"\xed\x9f\xbf",
                b"\xee\x80\x80", b"\xf4\x8f\xbf\xbf"]
    for i in range(3000):
        if i % 2:
            raw = bytearray(b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))))
            for _ in range(rng.randint(0, 2)):
                if raw:
                    raw[rng.randrange(len(raw))] = rng.randrange(256)
            data = bytes(raw)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        try:
            data.decode("utf-8")
            ok = True
        except UnicodeDecodeError:
            ok = False
        assert validate_utf8(data) == ok, data
        # long ASCII prefixes exercise the 8-byte fast path
        assert validate_utf8(b"x" * 13 + data + b"y" * 9) == ok


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 11, 12, 13, 14, 15])
def test_reserved_opcodes(opcode: int) -> None:
    assert error_of(client(0x80 | opcode, b"")).code == 1002


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10, 0x70])
def test_rsv_bits(rsv: int) -> None:
    assert error_of(client(0x80 | rsv | 1, b"x")).code == 1002


def test_control_frame_rules() -> None:
    assert error_of(client(0x89, b"x" * 126)).code == 1002               # > 125
    assert error_of(client(0x89, b"x" * 126, length_form="16")).code == 1002
    assert error_of(client(0x09, b"x")).code == 1002                     # fragmented ping
    assert feed_all(client(0x89, b"x" * 125)) == [("ping", b"x" * 125)]


def test_fragmentation_rules() -> None:
    assert error_of(client(0x80, b"x")).code == 1002                     # lone continuation
    assert error_of(client(0x00, b"x")).code == 1002
    assert error_of(client(0x01, b"a") + client(0x81, b"b")).code == 1002  # text inside text
    assert error_of(client(0x02, b"a") + client(0x82, b"b")).code == 1002


def test_length_encodings() -> None:
    assert error_of(client(0x82, b"x" * 5, length_form="16")).code == 1002
    assert error_of(client(0x82, b"x" * 125, length_form="16")).code == 1002
    assert error_of(client(0x82, b"x" * 300, length_form="64")).code == 1002
    assert error_of(client(0x82, b"x" * 65535, length_form="64")).code == 1002
    assert feed_all(client(0x82, b"x" * 126, length_form="16")) == [("binary", b"x" * 126)]
    big = bytes(range(256)) * 300
    assert feed_all(client(0x82, big, length_form="64")) == [("binary", big)]
    # a 64-bit length with the most significant bit set
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63) + KEY
    assert error_of(head, max_message_size=None).code == 1002


def test_huge_declared_length_refused_at_the_header() -> None:
    p = MessageParser(max_message_size=1000)
    head = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 40) + KEY
    with pytest.raises(WebSocketError) as exc:
        p.feed_data(head)                      # no payload sent: refused on the length alone
    assert exc.value.code == 1009


def test_max_message_size() -> None:
    assert feed_all(client(0x82, b"x" * 100), MessageParser(max_message_size=100)) == [
        ("binary", b"x" * 100)]
    assert error_of(client(0x82, b"x" * 101), max_message_size=100).code == 1009
    frags = client(0x02, b"x" * 60) + client(0x80, b"x" * 41)
    assert error_of(frags, max_message_size=100).code == 1009
    ok = client(0x01, b"x" * 60) + client(0x89, b"p") + client(0x80, b"x" * 40)
    assert feed_all(ok, MessageParser(max_message_size=100)) == [
        ("ping", b"p"), ("text", "x" * 100)]
    # control frames do not count towards the message size
    assert feed_all(client(0x89, b"y" * 125), MessageParser(max_message_size=10)) == [
        ("ping", b"y" * 125)]


def test_close_frames() -> None:
    assert feed_all(client(0x88, b"")) == [("close", 1005, "")]
    assert feed_all(client(0x88, b"\x03\xe8")) == [("close", 1000, "")]
    assert feed_all(client(0x88, b"\x0f\xa0bye \xe2\x9c\x93")) == [("close", 4000, "bye ✓")]
    assert error_of(client(0x88, b"\x03")).code == 1002
    assert error_of(client(0x88, b"\x03\xe8\xff")).code == 1007


VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
               3999, 4000, 4999]
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes(code: int) -> None:
    assert feed_all(client(0x88, struct.pack("!H", code))) == [("close", code, "")]


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes(code: int) -> None:
    assert error_of(client(0x88, struct.pack("!H", code))).code == 1002


def test_input_after_close_is_ignored() -> None:
    p = MessageParser()
    p.feed_data(client(0x88, b"\x03\xe8") + client(0x81, b"late") + b"\xff\xff junk")
    assert p.events() == [("close", 1000, "")]
    assert p.closed
    p.feed_data(client(0x81, b"later"))
    assert p.events() == []


def test_pause_resume() -> None:
    p = MessageParser()
    p.pause()
    data = client(0x81, b"one") + client(0x81, b"two")
    p.feed_data(data)
    assert p.events() == [] and p.buffered_bytes == len(data)
    p.resume()
    assert p.events() == [("text", "one"), ("text", "two")]
    assert p.buffered_bytes == 0


def test_bytearray_and_memoryview_input() -> None:
    data = client(0x81, b"hi") + client(0x82, b"\x00")
    for wrap in (bytearray, memoryview):
        assert feed_all(wrap(data)) == [("text", "hi"), ("binary", b"\x00")]  # type: ignore


def test_frame_parser_base_has_no_events_but_validates() -> None:
    p = FrameParser()
    p.feed_data(client(0x81, b"fine"))
    with pytest.raises(WebSocketError):
        p.feed_data(client(0x83, b""))
    with pytest.raises(ValueError):
        FrameParser(max_message_size=-5)
    assert FrameParser(max_message_size=None).max_message_size == -1

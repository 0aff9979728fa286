"""Type stubs for engine._ws (IO-free WebSocket handshake helpers and frame codec).

Built from pyx/ws/ws.pyx (+ pyx/ws/*.pxi); Cython declarations in pyx/engine/_ws.pxd.
"""
from collections.abc import Iterable
from typing import Any, Literal

_Buffer = bytes | bytearray | memoryview

OP_CONTINUATION: int
OP_TEXT: int
OP_BINARY: int
OP_CLOSE: int
OP_PING: int
OP_PONG: int
CLOSE_NORMAL: int
CLOSE_GOING_AWAY: int
CLOSE_PROTOCOL_ERROR: int
CLOSE_UNSUPPORTED_DATA: int
CLOSE_NO_STATUS: int
CLOSE_ABNORMAL: int
CLOSE_INVALID_DATA: int
CLOSE_POLICY_VIOLATION: int
CLOSE_MESSAGE_TOO_BIG: int
CLOSE_INTERNAL_ERROR: int

class WebSocketError(Exception):
    code: int
    reason: str
    def __init__(self, code: int, reason: str) -> None: ...

class HandshakeError(Exception):
    status_code: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    def __init__(self, status_code: int, reason: str,
                 headers: Iterable[tuple[bytes, bytes]] = ()) -> None: ...

class FrameParser:
    @property
    def is_server(self) -> bool: ...
    @property
    def max_message_size(self) -> int: ...  # -1: unlimited
    @property
    def paused(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    @property
    def buffered_bytes(self) -> int: ...
    def __init__(self, *, is_server: bool = True,
                 max_message_size: int | None = 16 * 1024 * 1024) -> None: ...
    def feed_data(self, data: _Buffer) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def enable_inflate(self, window_bits: int = 15, no_context_takeover: bool = False) -> None: ...

class MessageParser(FrameParser):
    def events(self) -> list[tuple[Any, ...]]: ...

def validate_utf8(data: _Buffer) -> bool: ...
def build_frame(opcode: int, payload: _Buffer | str = b"", fin: bool = True,
                mask: bytes | Literal[True] | None = None, rsv1: bool = False) -> bytes: ...
def close_payload(code: int | None = 1000, reason: str | bytes = "") -> bytes: ...
def build_close(code: int | None = 1000, reason: str | bytes = "",
                mask: bytes | Literal[True] | None = None) -> bytes: ...
def accept_key(key: str | bytes) -> str: ...
def validate_handshake(headers: Iterable[tuple[bytes, bytes]], method: bytes = b"GET",
                       http_version: bytes = b"1.1") -> bytes: ...
def subprotocols(headers: Iterable[tuple[bytes, bytes]]) -> list[str]: ...
def handshake_headers(key: str | bytes,
                      subprotocol: str | bytes | None = None) -> list[tuple[bytes, bytes]]: ...
def negotiate_deflate(headers: Iterable[tuple[bytes, bytes]],
                      server_max_window_bits: int = 12,
                      client_max_window_bits: int = 12) -> dict[str, Any] | None: ...

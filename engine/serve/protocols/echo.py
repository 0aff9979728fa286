"""The built-in ``echo`` protocol of ``engine serve --protocol echo``: every byte back.

A raw TCP (or Unix socket) echo server, useful to check a deployment (listeners, workers,
signals, TLS) without HTTP, and the smallest example of a protocol plugin
(:mod:`engine.serve.protocols`). It stops reading while the peer does not read what it sends back
(asyncio's write flow control), so a client that only writes cannot grow the server's memory.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...server import ProtocolFactory
    from ..asgi_types import ASGIApp
    from ..config import Config
    from . import ServerState

__all__ = ["EchoProtocol", "EchoPlugin", "plugin"]


class EchoProtocol(asyncio.Protocol):
    """Writes back what it receives; closes when the peer closes its side."""

    def __init__(self, state: ServerState | None = None) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.state is not None:
            self.state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def eof_received(self) -> bool:
        return False                       # close once what was echoed is flushed

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not None:
            self.state.connections.discard(self)
        self.transport = None

    def shutdown(self) -> None:
        """The drain contract: nothing is ever in flight between two reads, so close now
        (what was already echoed is flushed first)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class EchoPlugin:
    """The ``echo`` plugin: needs no app."""

    name = "echo"
    needs_app = False

    def create_protocol_factory(self, app: ASGIApp | None, config: Config,
                                state: ServerState) -> ProtocolFactory:
        def factory() -> asyncio.BaseProtocol:
            return EchoProtocol(state)
        return factory


plugin = EchoPlugin()

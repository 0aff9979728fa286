"""TLS for any protocol factory: each accepted connection speaks TLS through asyncio's
``SSLProtocol``, which wraps the protocol the factory makes; the drain contract
(``shutdown()``, see :mod:`engine.server.connections`) is passed through to it."""
from __future__ import annotations

import asyncio
import functools
import ssl
from asyncio import sslproto

from .connections import ProtocolFactory

__all__ = ["TLSProtocol", "TLSContext", "tls_factory"]


class TLSContext:
    """A replaceable server ``SSLContext``: connections accepted after :meth:`replace` (a
    renewed certificate, in a server that runs on) handshake with the new context, the ones
    already open keep theirs."""

    __slots__ = ("context",)

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def replace(self, context: ssl.SSLContext) -> None:
        self.context = context


class TLSProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol around ``factory()``, with ``shutdown()``: a
    connection still in its handshake is closed, an established one asks the inner protocol
    (the server finds ``shutdown()`` on ``transport.get_protocol()``, which is this object)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: ProtocolFactory,
                 context: ssl.SSLContext | TLSContext) -> None:
        if type(context) is TLSContext:
            context = context.context
        super().__init__(loop, factory(), context, None,  # type: ignore[arg-type]
                         server_side=True)
        self._engine_raw: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._engine_raw = transport
        super().connection_made(transport)

    def shutdown(self) -> None:
        inner = getattr(self, "_app_protocol", None)      # asyncio 3.11-3.13 attributes
        state = getattr(self, "_app_state", None)
        if state is not None and state != sslproto.AppProtocolState.STATE_CON_MADE:
            raw = self._engine_raw                         # still in the handshake: just close
            if raw is not None and not raw.is_closing():
                raw.close()
            return
        method = getattr(inner, "shutdown", None)
        if method is not None:
            method()


def tls_factory(factory: ProtocolFactory, context: ssl.SSLContext | TLSContext,
                loop: asyncio.AbstractEventLoop) -> ProtocolFactory:
    """A protocol factory whose connections speak TLS with ``context`` around ``factory``'s
    protocols (a ``functools.partial``: no Python frame of its own per connection). With a
    :class:`TLSContext`, each connection takes the context it holds when accepted."""
    return functools.partial(TLSProtocol, loop, factory, context)

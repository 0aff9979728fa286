"""TLS for any protocol factory: each accepted connection speaks TLS through engine's compiled
TLS protocol (``engine._loop.SSLProtocol``; asyncio's ``SSLProtocol`` on another loop), which
wraps the protocol the factory makes; the drain contract (``shutdown()``, see
:mod:`engine.server.connections`) is passed through to it."""
from __future__ import annotations

import asyncio
import functools
import ssl
from asyncio import sslproto

from .. import _loop
from .connections import ProtocolFactory

__all__ = ["TLSProtocol", "AsyncioTLSProtocol", "TLSContext", "tls_factory"]


class TLSContext:
    """A replaceable server ``SSLContext``: connections accepted after :meth:`replace` (a
    renewed certificate, in a server that runs on) handshake with the new context, the ones
    already open keep theirs."""

    __slots__ = ("context",)

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def replace(self, context: ssl.SSLContext) -> None:
        self.context = context


class _Drain:
    """``shutdown()`` of a TLS server connection: a connection still in its handshake is
    closed, an established one asks the inner protocol (the server finds ``shutdown()`` on
    ``transport.get_protocol()``, which is this object)."""

    def _tls_established(self) -> bool:
        raise NotImplementedError

    def shutdown(self) -> None:
        if not self._tls_established():
            raw = self._transport  # type: ignore[attr-defined]
            if raw is not None and not raw.is_closing():
                raw.close()
            return
        method = getattr(self._app_protocol, "shutdown", None)  # type: ignore[attr-defined]
        if method is not None:
            method()


class TLSProtocol(_Drain, _loop.SSLProtocol):
    """engine's compiled server-side TLS protocol around ``factory()`` (the loop is engine's)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: ProtocolFactory,
                 context: ssl.SSLContext | TLSContext) -> None:
        if isinstance(context, TLSContext):
            context = context.context
        super().__init__(loop, factory(), context, None, server_side=True)

    def _tls_established(self) -> bool:
        return self._established()


class AsyncioTLSProtocol(_Drain, sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol around ``factory()``, for a server on another loop
    (``engine serve --loop asyncio|uvloop``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: ProtocolFactory,
                 context: ssl.SSLContext | TLSContext) -> None:
        if type(context) is TLSContext:
            context = context.context
        super().__init__(loop, factory(), context, None,  # type: ignore[arg-type]
                         server_side=True)

    def _tls_established(self) -> bool:
        state = getattr(self, "_app_state", None)      # asyncio 3.11-3.13 attributes
        return state is None or state == sslproto.AppProtocolState.STATE_CON_MADE


def tls_factory(factory: ProtocolFactory, context: ssl.SSLContext | TLSContext,
                loop: asyncio.AbstractEventLoop) -> ProtocolFactory:
    """A protocol factory whose connections speak TLS with ``context`` around ``factory``'s
    protocols (a ``functools.partial``: no Python frame of its own per connection). With a
    :class:`TLSContext`, each connection takes the context it holds when accepted."""
    cls = TLSProtocol if isinstance(loop, _loop.Loop) else AsyncioTLSProtocol
    return functools.partial(cls, loop, factory, context)

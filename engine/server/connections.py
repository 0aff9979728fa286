"""The accept path and graceful drain: :func:`start` and the :class:`ServerHandle` it returns.

Accepting is the event loop's own accept path (``loop.create_server(sock=...)``): on engine's
loop a compiled loop that accepts up to ``backlog`` connections per readiness event and, when
accept() fails with EMFILE/ENFILE/ENOBUFS/ENOMEM, stops watching the listener for a second
(``asyncio.constants.ACCEPT_RETRY_DELAY``) instead of spinning, while existing connections keep
being served. asyncio's own loop behaves the same way. Each accepted connection gets its
protocol from one call of the protocol factory. ``max_connections`` bounds the number of live
connections: at the limit the listeners stop being watched (new connections wait in the
kernel's backlog) and watching resumes when a connection closes; a connection accepted past the
limit within one accept batch is closed at once (counted in ``ServerHandle.rejected``).

Graceful drain -- the contract between the server and the protocols it serves:

1. the server stops accepting (listeners closed; a Unix socket path is removed);
2. it calls ``protocol.shutdown()`` (no arguments) on the current protocol of every live
   connection that has such a method -- also on a connection accepted just before the listener
   closed, right after its ``connection_made()``. The protocol finishes the request it is
   working on, if any, and then closes its transport; an idle connection closes soon (at once,
   or after a short grace for a request already on its way, as the HTTP protocol does). A
   protocol without ``shutdown()`` is left to finish on its own;
3. it waits until every connection is closed, or the timeout passes;
4. it aborts the connections still open (``transport.abort()``);
5. a worker then exits with status 0.

``shutdown()`` may be called on a protocol whose connection is already closing; it must be
harmless then. ``shutdown()`` is looked up on ``transport.get_protocol()``, so a connection that
switched protocols (``transport.set_protocol()``, e.g. an upgrade to websockets) is asked through
its new protocol.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from .listeners import Bound, ListenerItem, bind

__all__ = ["ServerHandle", "start", "ProtocolFactory", "DEFAULT_GRACEFUL_TIMEOUT"]

logger = logging.getLogger("engine.server")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]

DEFAULT_GRACEFUL_TIMEOUT = 30.0


class _Handoff(asyncio.Protocol):
    """Stands in until connection_made, records the transport, then steps aside.

    The transport is switched to the real protocol with ``set_protocol()`` before that
    protocol's ``connection_made()``, so nothing of this class is on the data path.
    """

    __slots__ = ("_inner", "_handle")

    def __init__(self, inner: asyncio.BaseProtocol, handle: ServerHandle) -> None:
        self._inner = inner
        self._handle = handle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handle = self._handle
        handle._transports.add(transport)
        transport.set_protocol(self._inner)
        self._inner.connection_made(transport)
        if handle._aborted:                  # accepted just before abort(): too late
            transport.abort()  # type: ignore[attr-defined]
        elif handle._draining:               # accepted just before the listener closed
            handle._shutdown_connection(transport)

    def connection_lost(self, exc: Exception | None) -> None:   # lost before connection_made
        self._inner.connection_lost(exc)


class _Reject(asyncio.Protocol):
    """A connection accepted past max_connections: closed at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.abort()  # type: ignore[attr-defined]


class ServerHandle:
    """The listeners and connections of :func:`start`. Also a target for ``engine.tuning``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_connections: int | None) -> None:
        self._loop = loop
        self._max = max_connections
        # the loop's Server objects (engine's or asyncio's): private parts are used below
        self._servers: list[Any] = []
        self._bound: list[Bound] = []
        self._transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()
        self._closed = False
        self._paused = False
        self._draining = False
        self._aborted = False
        self._rejected = 0
        self._accepted = 0
        self._live = 0                       # transports attached to our servers, not yet gone
        self._idle_waiters: list[asyncio.Future[None]] = []      # until no connection is left
        self._close_waiters: list[asyncio.Future[None]] = []     # until close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("paused" if self._paused else "serving")
        return f"<ServerHandle {state} connections={self.connections} sockets={self.addresses}>"

    # --- state --------------------------------------------------------------------------------

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty once closed)."""
        return () if self._closed else tuple(b.sock for b in self._bound)

    @property
    def addresses(self) -> list[Any]:
        """``getsockname()`` of each listening socket."""
        out = []
        for sock in self.sockets:
            try:
                out.append(sock.getsockname())
            except OSError:
                pass
        return out

    @property
    def connections(self) -> int:
        """Connections open now (accepted and not yet lost)."""
        return self._live

    @property
    def accepted(self) -> int:
        """Connections handed to the protocol factory so far."""
        return self._accepted

    @property
    def rejected(self) -> int:
        """Connections closed at once because ``max_connections`` was reached."""
        return self._rejected

    @property
    def max_connections(self) -> int | None:
        return self._max

    def is_serving(self) -> bool:
        """True while accepting (not closed, not paused at ``max_connections``)."""
        return not self._closed and not self._paused

    # --- wiring -------------------------------------------------------------------------------

    def _factory(self, protocol_factory: ProtocolFactory) -> ProtocolFactory:
        def make() -> asyncio.BaseProtocol:
            if self._max is not None and self.connections >= self._max:
                self._rejected += 1
                self._pause()
                return _Reject()
            proto = protocol_factory()
            self._accepted += 1
            if self._max is not None and self.connections + 1 >= self._max:
                self._pause()
            return _Handoff(proto, self)
        return make

    def _add(self, server: Any, bound: Bound) -> None:
        self._servers.append(server)
        self._bound.append(bound)
        # A transport tells its Server when it starts (_attach) and when it is gone (_detach),
        # on engine's loop and asyncio's alike: count there, at no per-event cost. The methods
        # take the transport on engine and Python 3.13+, nothing on 3.11/3.12.
        attach, detach = server._attach, server._detach

        def _attach(*args: Any) -> None:
            attach(*args)
            self._live += 1

        def _detach(*args: Any) -> None:
            detach(*args)
            self._live -= 1
            self._connection_gone()
        server._attach = _attach
        server._detach = _detach

    def _connection_gone(self) -> None:
        n = self.connections
        if self._paused and not self._closed and self._max is not None and n < self._max:
            self._resume()
        if n == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    def _pause(self) -> None:
        if self._paused or self._closed:
            return
        self._paused = True
        for server in self._servers:
            # stop watching the listeners; the kernel keeps queueing new connections
            server._serving = False
            for sock in server.sockets:
                self._loop.remove_reader(sock.fileno())

    def _resume(self) -> None:
        if not self._paused or self._closed:
            return
        self._paused = False
        for server in self._servers:
            server._start_serving()

    # --- stopping -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting: close the listeners (remove a Unix socket path). Connections go on."""
        if self._closed:
            return
        self._closed = True
        self._paused = False
        for server in self._servers:
            server.close()
        for bound in self._bound:
            bound.remove_path()
        waiters, self._close_waiters = self._close_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _shutdown_connection(self, transport: asyncio.BaseTransport) -> None:
        protocol = transport.get_protocol()
        shutdown = getattr(protocol, "shutdown", None)
        if shutdown is None:
            return
        try:
            shutdown()
        except Exception as exc:
            self._loop.call_exception_handler({
                "message": "protocol.shutdown() failed", "exception": exc,
                "transport": transport, "protocol": protocol})

    def abort(self) -> int:
        """Close the listeners and abort every open connection. Returns how many were open."""
        self.close()
        self._aborted = True
        n = self.connections
        for transport in list(self._transports):
            transport.abort()  # type: ignore[attr-defined]
        return n

    async def drain(self, timeout: float | None = DEFAULT_GRACEFUL_TIMEOUT) -> int:
        """Graceful stop (the contract in the module docstring): stop accepting, ask each
        connection's protocol to ``shutdown()``, wait up to ``timeout`` seconds (None: no limit)
        for the connections to close, abort the rest. Returns the number aborted."""
        self._draining = True
        self.close()
        for transport in list(self._transports):
            if not transport.is_closing():
                self._shutdown_connection(transport)
        aborted = 0
        try:
            await asyncio.wait_for(self._wait_idle(), timeout)
        except TimeoutError:
            aborted = self.abort()
            if aborted:
                logger.warning("drain: %d connection(s) still open after %ss, aborted",
                               aborted, timeout)
            await self._wait_idle()
        return aborted

    async def _wait_idle(self) -> None:
        if self.connections == 0:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._idle_waiters.append(fut)
        await fut

    async def wait_closed(self) -> None:
        """Return once the server is closed and every connection it accepted is gone."""
        if not self._closed:
            fut: asyncio.Future[None] = self._loop.create_future()
            self._close_waiters.append(fut)
            await fut
        await self._wait_idle()

    async def __aenter__(self) -> ServerHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()


async def start(protocol_factory: ProtocolFactory, listeners: Iterable[ListenerItem], *,
                max_connections: int | None = None) -> ServerHandle:
    """Listen on every listener and serve connections with ``protocol_factory`` on the running
    loop (engine's or asyncio's). Returns once listening.

    ``listeners``: :class:`~engine.server.Listener` objects (opened here; a Unix path is removed
    on close), :class:`~engine.server.Bound` sockets or listening ``socket.socket`` objects
    (used as they are). ``max_connections``: at most this many live connections (the rest wait
    in the listen backlog).
    """
    if max_connections is not None and max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    loop = asyncio.get_running_loop()
    handle = ServerHandle(loop, max_connections)
    items = list(listeners)
    if not items:
        raise ValueError("no listeners")
    opened = bind(items)
    try:
        factory = handle._factory(protocol_factory)
        for bound in opened:
            server = await loop.create_server(factory, sock=bound.sock, backlog=bound.backlog)
            handle._add(server, bound)
    except BaseException:
        handle.close()
        for bound in opened[len(handle._bound):]:
            bound.close()
        raise
    return handle

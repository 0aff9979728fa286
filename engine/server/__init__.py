"""engine.server: listeners, a bounded accept loop, graceful drain, worker processes.

Optional: ``import engine`` never imports this package (nor ``engine.tuning``). It is what
``engine serve`` runs, and is usable directly with any asyncio protocol::

    from engine.server import Listener, serve, start

    serve(MyProtocol, [Listener.tcp("127.0.0.1", 8000)], workers=4)   # blocks; returns 0

    async def main():                                   # or inside a program of your own
        server = await start(MyProtocol, [Listener.tcp("127.0.0.1", 8000)], max_connections=1000)
        ...
        await server.drain(timeout=10)

One module per concern:

* :mod:`engine.server.listeners` -- :class:`Listener` (TCP, Unix socket, inherited fd, systemd
  socket activation) and :class:`Bound`, the one type a listening socket is held in;
* :mod:`engine.server.connections` -- :func:`start` and :class:`ServerHandle`: the accept path,
  ``max_connections`` and the graceful drain contract;
* :mod:`engine.server.workers` -- :func:`serve`: this process or forked workers under a
  supervisor (signals, restarts, rolling restart on SIGHUP);
* :mod:`engine.server.tls` -- TLS around any protocol factory.
"""
from __future__ import annotations

from .connections import DEFAULT_GRACEFUL_TIMEOUT, ProtocolFactory, ServerHandle, start
from .listeners import DEFAULT_BACKLOG, Bound, Listener, bind, describe
from .tls import TLSContext, tls_factory
from .workers import serve, worker_identity

__all__ = [
    "Listener", "Bound", "bind", "describe", "ServerHandle", "start", "serve", "tls_factory",
    "TLSContext", "worker_identity",
    "ProtocolFactory", "DEFAULT_BACKLOG", "DEFAULT_GRACEFUL_TIMEOUT",
]

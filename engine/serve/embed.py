"""Serve an ASGI app with ``engine serve``'s HTTP protocol from inside another program's loop.

:class:`AppServer` is the part of ``engine serve`` that a host program needs when the host owns
the process, the listening sockets and the signals: gunicorn's arbiter (the
:mod:`engine.workers` worker class) and a test's live server (:mod:`engine.pytest_plugin`)::

    server = AppServer(app, Config(port=0))        # engine.serve.config.Config settings
    await server.start([sock])                     # or no argument: config.listeners()
    ...                                            # serving on the running loop
    await server.stop()                            # drain, then the lifespan shutdown

``start()`` does what each ``engine serve`` worker does before accepting: wraps the app in the
proxy-headers middleware (``config.proxy_headers``), runs its lifespan startup
(``config.lifespan``), makes the compiled HTTP/1.1 + WebSocket protocol's factory, wraps it in
TLS when ``config.ssl_certfile`` is set, and listens (:func:`engine.server.start`, with
``config.max_connections``). A failed lifespan startup raises :class:`LifespanFailed`.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .. import server
from ..server import ServerHandle
from ..server.listeners import ListenerItem
from .asgi_types import ASGIApp
from .config import Config
from .lifespan import Lifespan
from .protocols import ServerState
from .protocols.http import plugin
from .proxy_headers import ProxyHeadersMiddleware

__all__ = ["AppServer", "LifespanFailed"]


class LifespanFailed(RuntimeError):
    """The app's lifespan startup failed (the app said so, or raised in ``on`` mode)."""


class AppServer:
    """One ASGI app served on the running loop (see the module docstring)."""

    def __init__(self, app: ASGIApp, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        self.app = app
        self.state = ServerState(self.config)
        self.lifespan: Lifespan | None = None
        self.handle: ServerHandle | None = None

    @property
    def total_requests(self) -> int:
        """HTTP requests served so far (the protocol's counter, ``ServerState.total_requests``)."""
        return int(self.state.total_requests)

    async def start(self, listeners: Iterable[ListenerItem] | None = None) -> ServerHandle:
        config = self.config
        app = self.app
        if config.proxy_headers:
            assert config.forwarded_allow_ips is not None
            app = ProxyHeadersMiddleware(app, config.forwarded_allow_ips)
        if config.lifespan != "off":
            self.lifespan = Lifespan(app, config, self.state)
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                raise LifespanFailed(self.lifespan.message or "the app's lifespan startup "
                                     "failed")
        factory = plugin.create_protocol_factory(app, config, self.state)
        context = config.ssl_context()
        if context is not None:
            factory = server.tls_factory(factory, context, asyncio.get_running_loop())
        items = list(listeners) if listeners is not None else config.listeners()
        self.handle = await server.start(factory, items, max_connections=config.max_connections)
        return self.handle

    async def stop(self, *, quick: bool = False) -> int:
        """Stop accepting; drain the connections (at most ``config.timeout_graceful_shutdown``
        seconds), or abort them at once with ``quick``; then run the lifespan shutdown (not
        after a quick stop). Returns the number of connections aborted."""
        aborted = 0
        if self.handle is not None:
            if quick:
                aborted = self.handle.abort()
                await self.handle.wait_closed()
            else:
                aborted = await self.handle.drain(self.config.timeout_graceful_shutdown)
        if self.lifespan is not None and not quick:
            await self.lifespan.shutdown()
        return aborted

    def addresses(self) -> list[Any]:
        """``getsockname()`` of each listening socket (empty before start / after stop)."""
        return self.handle.addresses if self.handle is not None else []

"""The built-in ``http`` protocol of ``engine serve``: HTTP/1.1, HTTP/2 and WebSocket for ASGI
apps.

The protocol itself is compiled (``engine._asgi``, on the IO-free parser ``engine._http``, the
HTTP/2 core ``engine._h2`` and the WebSocket codec ``engine._ws``); this module turns a server
configuration into its protocol factory, for ``engine serve`` (``--protocol http``, the
default) and for direct use::

    import asyncio, engine
    from engine.serve.protocols.http import serve_app

    engine.run(serve_app(app, host="127.0.0.1", port=8000))
"""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from ... import _http
from ..._asgi import HttpProtocol, ServerConfig
from ...server import ProtocolFactory
from ..asgi_types import ASGIApp
from ..proxy_headers import ProxyHeadersMiddleware

__all__ = ["HttpPlugin", "plugin", "server_config", "serve_app", "HttpProtocol", "ServerConfig"]


def _opt(config: Any, name: str, default: Any) -> Any:
    value = getattr(config, name, default) if config is not None else default
    return default if value is None else value


def server_config(app: ASGIApp, config: Any = None, state: Any = None) -> ServerConfig:
    """A ServerConfig for the protocol from an engine.serve.config.Config-like object (any object
    with those attribute names; missing ones take their defaults) and an optional
    engine.serve.protocols.ServerState."""
    limits = _http.Limits(
        max_request_line=_opt(config, "max_request_line", 8192),
        max_header_count=_opt(config, "max_header_count", 100),
        max_header_bytes=_opt(config, "max_header_bytes", 65536),
        max_body=getattr(config, "max_body", None) if config is not None else None,
    )
    default_headers: list[tuple[bytes, bytes]] = []
    if state is not None and getattr(state, "default_headers", None):
        default_headers = list(state.default_headers)
    elif _opt(config, "server_header", True):
        default_headers = [(b"server", b"engine")]
    ssl = None
    if config is not None and hasattr(config, "ssl_context"):
        try:
            ssl = config.ssl_context()
        except TypeError:
            ssl = None
    server_cert = None
    if ssl is not None and getattr(config, "ssl_certfile", None):
        server_cert = _first_pem_cert(config.ssl_certfile)
    lifespan_state = getattr(state, "lifespan_state", None) if state is not None else None
    connections = getattr(state, "connections", None) if state is not None else None
    cfg = ServerConfig(
        app, state=state,
        root_path=_opt(config, "root_path", ""),
        keep_alive=float(_opt(config, "timeout_keep_alive", 5.0)),
        header_timeout=float(_opt(config, "timeout_request_header", 10.0)),
        body_timeout=float(_opt(config, "timeout_request_body", 30.0)),
        ws_ping_interval=float(_opt(config, "ws_ping_interval", 20.0)),
        ws_ping_timeout=float(_opt(config, "ws_ping_timeout", 20.0)),
        ws_max_size=int(_opt(config, "ws_max_size", 16 * 1024 * 1024)),
        ws_per_message_deflate=bool(_opt(config, "ws_per_message_deflate", True)),
        limits=limits, default_headers=default_headers,
        date_header=bool(_opt(config, "date_header", True)),
        access_log=bool(_opt(config, "access_log", False)),
        limit_concurrency=int(_opt(config, "limit_concurrency", 0)),
        lifespan_state=lifespan_state, connections=connections,
        scheme="https" if ssl is not None else "http",
        tls_server_cert=server_cert,
        access_format=_access_format(config),
        http=str(_opt(config, "http", "auto")),
    )
    if type(app) is ProxyHeadersMiddleware:
        # HTTP/1.1 does the middleware's work in the compiled protocol (HTTP/2 and WebSocket
        # scopes still go through it)
        cfg.proxy = app
        cfg.proxy_app = app.app
    block = getattr(state, "metrics_block", None) if state is not None else None
    if block is not None:
        cfg.set_metrics(block)
    return cfg


def _access_format(config: Any) -> Any:
    fmt = _opt(config, "access_log_format", None)
    if not fmt:
        return None
    from ..accesslog import compile_access_format
    return compile_access_format(fmt)


def _first_pem_cert(path: str) -> str | None:
    """The first PEM certificate block of ``path`` (the ASGI tls extension's server_cert)."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        return None
    return text[begin:end + len("-----END CERTIFICATE-----")] + "\n"


class HttpPlugin:
    """engine.serve.protocols plugin ``http``."""

    name = "http"
    needs_app = True

    def create_protocol_factory(self, app: ASGIApp, config: Any,
                                state: Any) -> ProtocolFactory:
        # called on the worker's running loop; a partial, so that accepting a connection runs
        # no Python frame of ours before the compiled protocol's own __init__
        cfg = server_config(app, config, state)
        return functools.partial(HttpProtocol, cfg, asyncio.get_running_loop())


plugin = HttpPlugin()


async def serve_app(app: ASGIApp, host: str = "127.0.0.1", port: int = 8000, *,
                    config: Any = None, ready: Callable[[asyncio.AbstractServer], object]
                    | None = None) -> None:
    """Serve app on the running loop until cancelled (no lifespan, no workers: engine serve
    does those)."""
    loop = asyncio.get_running_loop()
    cfg = server_config(app, config)
    server = await loop.create_server(functools.partial(HttpProtocol, cfg, loop), host, port,
                                      backlog=2048)
    if ready is not None:
        ready(server)
    async with server:
        await server.serve_forever()

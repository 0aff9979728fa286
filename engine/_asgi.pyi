"""Type stubs for engine._asgi (the ASGI HTTP/1.1 + WebSocket server protocol).

Built from pyx/asgi/asgi.pyx (+ pyx/asgi/ws_session.pxi); no .pxd (nothing cimports it).
"""
import asyncio
from typing import Any

# the layout of a --metrics block (offsets in doubles) and the duration histogram's bounds
M_LAYOUT: dict[str, int]
DURATION_BUCKETS: tuple[float, ...]

class ServerConfig:
    app: Any
    state: Any
    root_path: str
    keep_alive: float
    header_timeout: float
    body_timeout: float
    ws_ping_interval: float
    ws_ping_timeout: float
    ws_max_size: int
    ws_per_message_deflate: bool
    limits: Any
    default_headers: list[tuple[bytes, bytes]]
    date_header: bool
    access_log: bool
    access_format: Any
    limit_concurrency: int
    lifespan_state: dict[str, Any] | None
    connections: set[Any]
    scheme: str
    tls_server_cert: str | None
    batch_writes: bool
    http_mode: int                      # 0 auto, 1 HTTP/1.1 only, 2 HTTP/2 only
    h2_limits: Any                      # engine._h2.H2Limits or None (its defaults)
    h2_connections: int                 # live HTTP/2 connections
    h2_streams: int                     # HTTP/2 streams being answered
    proxy: Any                          # ProxyHeadersMiddleware HTTP/1.1 does the work of, or None
    proxy_app: Any                      # the app it wraps (called for HTTP/1.1 requests)
    def __init__(self, app: Any, *, state: Any = ..., root_path: str = ...,
                 keep_alive: float = ..., header_timeout: float = ..., body_timeout: float = ...,
                 ws_ping_interval: float = ..., ws_ping_timeout: float = ...,
                 ws_max_size: int = ..., limits: Any = ...,
                 default_headers: list[tuple[bytes, bytes]] | None = ...,
                 date_header: bool = ..., access_log: bool = ..., limit_concurrency: int = ...,
                 lifespan_state: dict[str, Any] | None = ..., connections: set[Any] | None = ...,
                 scheme: str = ..., tls_server_cert: str | None = ...,
                 batch_writes: bool = ..., ws_per_message_deflate: bool = ...,
                 access_format: Any = ..., http: str = ...,
                 h2_limits: Any = ...) -> None: ...

    def set_metrics(self, block: Any) -> None: ...

class HttpProtocol(asyncio.Protocol):
    def __init__(self, cfg: ServerConfig, loop: asyncio.AbstractEventLoop | None = ...) -> None: ...
    def shutdown(self) -> None: ...

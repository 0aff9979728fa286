"""``engine serve [MODULE:APP]``: run an ASGI app on engine's HTTP/1.1 + WebSocket protocol.

With no app it serves the embedded default app: a page saying what runs, ``/echo`` (the request
back, as JSON for GET), a WebSocket echo at ``/ws``, and files from ``--static DIR`` only when
that flag is given. Workers, listeners, signals and graceful drain come from engine.server.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import mimetypes
import os
import platform
import ssl as _ssl
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger("engine.server")

DEFAULT_PORT = 8000


# --- the embedded default app ---------------------------------------------------------------

def default_app(static: str | None = None) -> Callable[..., Any]:
    root = os.path.realpath(static) if static else None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "websocket":
            await receive()
            if scope["path"] != "/ws":
                await send({"type": "websocket.close"})
                return
            await send({"type": "websocket.accept"})
            while True:
                m = await receive()
                if m["type"] == "websocket.disconnect":
                    return
                if m.get("text") is not None:
                    await send({"type": "websocket.send", "text": m["text"]})
                else:
                    await send({"type": "websocket.send", "bytes": m.get("bytes") or b""})
        path = scope["path"]
        body = b""
        while True:
            m = await receive()
            if m["type"] == "http.disconnect":
                return
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        if path == "/echo":
            if scope["method"] == "GET":
                out = json.dumps({"method": scope["method"], "path": path,
                                  "query": scope["query_string"].decode("latin-1"),
                                  "headers": [[k.decode("latin-1"), v.decode("latin-1")]
                                              for k, v in scope["headers"]]}).encode()
                ctype = b"application/json"
            else:
                out = body
                ctype = b"application/octet-stream"
            await _respond(send, 200, ctype, out)
        elif path == "/":
            await _respond(send, 200, b"text/html; charset=utf-8", _page(scope, root).encode())
        elif root is not None and scope["method"] in ("GET", "HEAD"):
            await _static(scope, send, root, path)
        else:
            await _respond(send, 404, b"text/plain", b"not found\n")

    return app


async def _respond(send: Any, status: int, ctype: bytes, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", ctype)]})
    await send({"type": "http.response.body", "body": body})


async def _static(scope: dict[str, Any], send: Any, root: str, path: str) -> None:
    full = os.path.realpath(os.path.join(root, path.lstrip("/")))
    if not (full == root or full.startswith(root + os.sep)) or not os.path.isfile(full):
        await _respond(send, 404, b"text/plain", b"not found\n")       # no escaping the root
        return
    ctype = (mimetypes.guess_type(full)[0] or "application/octet-stream").encode()
    size = os.path.getsize(full)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", ctype), (b"content-length", str(size).encode())]})
    if "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.pathsend", "path": full})
    else:
        with open(full, "rb") as f:
            await send({"type": "http.response.body", "body": f.read()})


def _page(scope: dict[str, Any], root: str | None) -> str:
    import engine
    loop = asyncio.get_running_loop()
    backend = getattr(loop, "backend", type(loop).__name__)
    static = f"<li>static files from <code>{root}</code></li>" if root else ""
    return (f"<!doctype html><title>engine serve</title><h1>engine {engine.__version__}</h1>"
            f"<p>Serving the default app on engine's event loop ({backend}), Python "
            f"{platform.python_version()}, pid {os.getpid()}.</p><ul>"
            f"<li><a href='/echo'>/echo</a>: your request back (POST: the body)</li>"
            f"<li><code>/ws</code>: WebSocket echo</li>{static}</ul>")


# --- lifespan ---------------------------------------------------------------------------------

class Lifespan:
    """Runs the app's lifespan scope in a worker (mode: on, off, auto)."""

    def __init__(self, app: Any, mode: str = "auto") -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[dict[str, Any]] | None = None

    async def _run(self) -> None:
        assert self._queue is not None
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        try:
            await self.app(scope, self._queue.get, self._send)
        except BaseException as exc:
            if self._answer is not None and not self._answer.done():
                if self.mode == "auto":
                    self.supported = False
                    self._answer.set_result({"type": "unsupported"})
                else:
                    self._answer.set_result({"type": "lifespan.startup.failed",
                                             "message": repr(exc)})

    async def _send(self, message: dict[str, Any]) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(message)

    async def _phase(self, name: str) -> dict[str, Any]:
        assert self._queue is not None
        self._answer = asyncio.get_running_loop().create_future()
        await self._queue.put({"type": f"lifespan.{name}"})
        return await self._answer

    async def startup(self) -> None:
        if not self.supported:
            return
        self._queue = asyncio.Queue()
        self._task = asyncio.ensure_future(self._run())
        answer = await self._phase("startup")
        if answer["type"] == "lifespan.startup.failed":
            log.error("application startup failed: %s", answer.get("message", ""))
            raise SystemExit(3)

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._task.done():
            return
        answer = await self._phase("shutdown")
        if answer["type"] == "lifespan.shutdown.failed":
            log.error("application shutdown failed: %s", answer.get("message", ""))


# --- protocols --------------------------------------------------------------------------------

class EchoProtocol(asyncio.Protocol):
    """The built-in ``echo`` protocol: bytes back."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def shutdown(self) -> None:
        self.transport.close()


def load_object(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"engine serve: expected MODULE:ATTRIBUTE, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def protocol_factory(name: str, app: Any, args: argparse.Namespace,
                     lifespan: Lifespan | None) -> Callable[[], asyncio.BaseProtocol]:
    if name == "echo":
        return EchoProtocol
    if name == "http":
        from .http_server import server_config
        from ._asgi import HttpProtocol
        cfg = server_config(app, args)
        if lifespan is not None:
            cfg.lifespan_state = lifespan.state
        if args.ssl_certfile:
            cfg.scheme = "https"
        return lambda: HttpProtocol(cfg, asyncio.get_running_loop())
    plugin = None
    try:
        from importlib.metadata import entry_points
        for ep in entry_points(group="engine.protocols"):
            if ep.name == name:
                plugin = ep.load()
    except Exception:                       # pragma: no cover - broken metadata
        plugin = None
    if plugin is None:
        plugin = load_object(name)
    if hasattr(plugin, "create_protocol_factory"):
        return plugin.create_protocol_factory(app, args, None)      # type: ignore[no-any-return]
    return plugin                                                     # type: ignore[no-any-return]


# --- CLI --------------------------------------------------------------------------------------

def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve an ASGI app (default: the embedded app)")
    p.add_argument("app", nargs="?", help="MODULE:APP (default: the embedded default app)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--uds", help="listen on a Unix socket path")
    p.add_argument("--fd", type=int, help="listen on an inherited socket fd")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--factory", action="store_true", help="APP is a factory to call")
    p.add_argument("--root-path", default="")
    p.add_argument("--timeout-keep-alive", type=float, default=5.0)
    p.add_argument("--timeout-request-header", type=float, default=10.0)
    p.add_argument("--timeout-request-body", type=float, default=30.0)
    p.add_argument("--timeout-graceful-shutdown", type=float, default=30.0)
    p.add_argument("--limit-concurrency", type=int, default=None)
    p.add_argument("--backlog", type=int, default=2048)
    p.add_argument("--log-level", default="info")
    p.add_argument("--access-log", action="store_true")
    p.add_argument("--ssl-certfile")
    p.add_argument("--ssl-keyfile")
    p.add_argument("--protocol", default="http", help="http, echo, an entry point of group "
                   "engine.protocols, or MODULE:ATTR")
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto")
    p.add_argument("--static", help="serve files from DIR (default app only)")
    p.add_argument("--ws-max-size", type=int, default=16 * 1024 * 1024)
    p.add_argument("--ws-ping-interval", type=float, default=20.0)
    p.add_argument("--ws-ping-timeout", type=float, default=20.0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import server
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.access_log:
        logging.getLogger("engine.access").setLevel(logging.INFO)
    if args.uds:
        listeners: list[Any] = [server.Listener.unix(args.uds)]
    elif args.fd is not None:
        listeners = [server.Listener.fd(args.fd)]
    else:
        # one listening socket, inherited by every worker (no SO_REUSEPORT: with port 0 each
        # worker would get a port of its own, and a restart would drop queued connections)
        listeners = [server.Listener.tcp(args.host, args.port, backlog=args.backlog)]
    ssl_ctx = None
    if args.ssl_certfile:
        ssl_ctx = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    holder: dict[str, Any] = {}

    def factory() -> asyncio.BaseProtocol:
        return holder["factory"]()                   # type: ignore[no-any-return]

    async def startup() -> None:
        app: Any = None
        if args.protocol == "http" or args.app:
            app = load_object(args.app) if args.app else default_app(args.static)
            if args.factory:
                app = app()
        lifespan = Lifespan(app, args.lifespan) if app is not None else None
        if lifespan is not None:
            await lifespan.startup()
        holder["lifespan"] = lifespan
        holder["factory"] = protocol_factory(args.protocol, app, args, lifespan)

    async def shutdown() -> None:
        if holder.get("lifespan") is not None:
            await holder["lifespan"].shutdown()

    def ready(handle: Any) -> None:
        addrs = ", ".join(str(a) for a in handle.addresses)
        loop = asyncio.get_running_loop()
        print(f"engine serve: {args.protocol} on {addrs} ({getattr(loop, 'backend', '?')}, "
              f"pid {os.getpid()})", flush=True)

    if ssl_ctx is not None:
        inner = factory

        def factory() -> asyncio.BaseProtocol:      # noqa: F811 - TLS wraps the protocol
            from asyncio import sslproto
            loop = asyncio.get_running_loop()
            return sslproto.SSLProtocol(loop, inner(), ssl_ctx, None, server_side=True)

    return server.serve(factory, listeners, workers=args.workers,
                        graceful_timeout=args.timeout_graceful_shutdown,
                        max_connections=args.limit_concurrency,
                        startup=startup, shutdown=shutdown, ready=ready)

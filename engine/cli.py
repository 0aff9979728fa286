"""``engine serve [MODULE:APP]``: the command line of engine's ASGI server.

``engine serve`` (or ``python -m engine serve``) builds a :class:`engine.config.Config` from its
flags, loads the protocol plugin (``--protocol``, default ``http``), binds the listeners, and
runs :func:`engine.server.serve`: in this process, or with ``--workers N`` in N forked workers
under a supervisor. In each worker the ``startup`` hook loads the app (the embedded default app
when none is named), wraps it in the proxy-headers middleware, runs its lifespan startup, and
asks the plugin for the protocol factory; the ``shutdown`` hook runs the lifespan shutdown
after the drain. ``run_server(config)`` does the same from Python.

Exit status: 0 after a clean SIGTERM/SIGINT drain; 1 when the server cannot start (bad app or
plugin, address in use, ...) or a worker had to be killed; 3 when the app's lifespan startup
failed (as uvicorn); 2 for bad arguments. With ``--workers``, a worker that cannot start stops
the whole server with that status (no crash loop).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import stat
import sys
from asyncio import sslproto
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from .config import (
    LIFESPAN_MODES,
    LOG_LEVELS,
    LOOPS,
    TRACE,
    ASGIApp,
    Config,
    ConfigError,
)

if TYPE_CHECKING:                    # imported when serving, not for `engine info` & co.
    from .lifespan import Lifespan
    from .protocols import ProtocolFactory, ProtocolPlugin, ServerState

__all__ = [
    "add_parser", "config_from_args", "configure_logging", "run", "run_server",
    "StartupFailure", "EXIT_STARTUP_FAILED", "EXIT_LIFESPAN_FAILED",
]

logger = logging.getLogger("engine.cli")

EXIT_STARTUP_FAILED = 1          # the app, the plugin or a listener could not be set up
EXIT_LIFESPAN_FAILED = 3         # lifespan.startup.failed (uvicorn's STARTUP_FAILURE)

RELOAD_FD_ENV = "ENGINE_SERVE_RELOAD_FD"     # set by the reloader for the server it runs

logging.addLevelName(TRACE, "TRACE")


_WORKER_STARTUP_FAILED = 3       # a worker's exit status when its startup failed (not restarted)


class StartupFailure(Exception):
    """A worker could not start serving; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_STARTUP_FAILED) -> None:
        super().__init__(message)
        self.code = code


# =========================================================================== arguments

def _header(value: str) -> tuple[str, str]:
    name, sep, rest = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip(), rest.strip()


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _workers_default() -> int | None:
    env = os.environ.get("WEB_CONCURRENCY")
    return int(env) if env and env.isdigit() and int(env) >= 1 else None


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``engine``'s subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="serve an ASGI app (default: the embedded app) or another protocol",
        description="Serve an ASGI app over HTTP/1.1 and WebSocket on engine's event loop. "
        "Without MODULE:APP it serves the embedded default app: a page saying what runs, "
        "/echo, a WebSocket echo at /ws, and the files of --static DIR. Stop it with "
        "SIGTERM or Ctrl-C (graceful drain); with --workers, SIGHUP restarts the workers one "
        "by one.")
    add = p.add_argument
    add("app", nargs="?", metavar="MODULE:APP",
        help="the ASGI app, e.g. myproject.asgi:application (default: the embedded app)")
    g = p.add_argument_group("listening")
    g.add_argument("--host", default="127.0.0.1",
                   help="address to bind; '::' = IPv6 and IPv4, '' = every interface "
                        "(default: %(default)s)")
    g.add_argument("--port", type=int, default=8000,
                   help="port to bind; 0 = a free port, printed at startup (default: "
                        "%(default)s)")
    g.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    g.add_argument("--fd", type=int, help="listen on this inherited socket instead")
    g.add_argument("--backlog", type=_positive_int, default=2048,
                   help="listen() backlog (default: %(default)s)")
    g.add_argument("--workers", type=_positive_int, default=_workers_default(),
                   help="worker processes (default: $WEB_CONCURRENCY or 1 = this process)")
    g.add_argument("--loop", choices=LOOPS, default="engine",
                   help="event loop of each worker (default: %(default)s)")
    g.add_argument("--ssl-certfile", help="TLS certificate chain (PEM): serve https/wss")
    g.add_argument("--ssl-keyfile", help="TLS private key (PEM), if not in the certfile")
    g.add_argument("--ssl-keyfile-password", help="password of the TLS private key")

    g = p.add_argument_group("application")
    g.add_argument("--factory", action="store_true",
                   help="MODULE:APP is a function returning the app: call it")
    g.add_argument("--app-dir", default=".",
                   help="put this directory first on sys.path (default: the current one)")
    g.add_argument("--root-path", default="", help="ASGI root_path (mounted below a prefix)")
    g.add_argument("--lifespan", choices=LIFESPAN_MODES, default="auto",
                   help="run the app's lifespan scope: auto (if it supports it), on, off "
                        "(default: %(default)s)")
    g.add_argument("--static", metavar="DIR",
                   help="the default app also serves the files of DIR")
    g.add_argument("--protocol", default="http", metavar="NAME",
                   help="protocol plugin: http, echo, an entry point of group "
                        "engine.protocols, or MODULE:ATTR (default: %(default)s)")
    g.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=True,
                   help="take the client address and scheme from X-Forwarded-For/-Proto when "
                        "the peer is trusted (default: on)")
    g.add_argument("--forwarded-allow-ips", default=None, metavar="IPS",
                   help="comma-separated trusted proxy IPs/networks, or '*' (default: "
                        "$FORWARDED_ALLOW_IPS or 127.0.0.1)")
    g.add_argument("--header", dest="headers", action="append", type=_header, default=[],
                   metavar="NAME:VALUE", help="add a header to every response (repeatable)")
    g.add_argument("--server-header", action=argparse.BooleanOptionalAction, default=True,
                   help="send 'server: engine' (default: on)")
    g.add_argument("--date-header", action=argparse.BooleanOptionalAction, default=True,
                   help="send a Date header (default: on)")

    g = p.add_argument_group("timeouts and limits")
    g.add_argument("--timeout-keep-alive", type=float, default=5.0, metavar="S",
                   help="close an idle keep-alive connection after S seconds (default: "
                        "%(default)s)")
    g.add_argument("--timeout-request-header", type=float, default=10.0, metavar="S",
                   help="a request's headers must arrive within S seconds, else 408 "
                        "(default: %(default)s)")
    g.add_argument("--timeout-request-body", type=float, default=30.0, metavar="S",
                   help="at most S seconds between two pieces of a request body (default: "
                        "%(default)s)")
    g.add_argument("--timeout-graceful-shutdown", type=float, default=30.0, metavar="S",
                   help="on SIGTERM, wait S seconds for open connections before closing "
                        "them (default: %(default)s)")
    g.add_argument("--limit-concurrency", type=_positive_int, default=None, metavar="N",
                   help="answer 503 above N open connections per worker")
    g.add_argument("--max-connections", type=_positive_int, default=None, metavar="N",
                   help="stop accepting above N open connections per worker (the rest wait "
                        "in the backlog)")
    g.add_argument("--max-request-line", type=_positive_int, default=8192, metavar="BYTES",
                   help="longest request line, else 414 (default: %(default)s)")
    g.add_argument("--max-header-count", type=_positive_int, default=100, metavar="N",
                   help="most request headers, else 431 (default: %(default)s)")
    g.add_argument("--max-header-bytes", type=_positive_int, default=65536, metavar="BYTES",
                   help="largest request head, else 431 (default: %(default)s)")
    g.add_argument("--max-body", type=_positive_int, default=None, metavar="BYTES",
                   help="largest request body, else 413 (default: no limit)")
    g.add_argument("--ws-max-size", type=_positive_int, default=16 * 1024 * 1024,
                   metavar="BYTES", help="largest WebSocket message (default: 16 MiB)")
    g.add_argument("--ws-ping-interval", type=float, default=20.0, metavar="S",
                   help="ping WebSocket clients every S seconds, 0 = never (default: "
                        "%(default)s)")
    g.add_argument("--ws-ping-timeout", type=float, default=20.0, metavar="S",
                   help="close a WebSocket whose pong is S seconds late (default: "
                        "%(default)s)")

    g = p.add_argument_group("logging and development")
    g.add_argument("--log-level", choices=list(LOG_LEVELS), default="info",
                   help="level of the engine.* loggers (default: %(default)s)")
    g.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                   help="log every request on engine.access (default: off)")
    g.add_argument("--reload", action="store_true",
                   help="development only: restart the server when a .py file changes")
    g.add_argument("--reload-dir", dest="reload_dirs", action="append", default=[],
                   metavar="DIR", help="directory to watch with --reload (repeatable; "
                                       "default: --app-dir)")
    g.add_argument("--reload-interval", type=float, default=0.5, metavar="S",
                   help="how often --reload looks for changes (default: %(default)s)")
    p.set_defaults(func=run)
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    """The :class:`Config` that parsed ``engine serve`` arguments describe."""
    return Config(
        app=args.app, host=args.host, port=args.port, uds=args.uds, fd=args.fd,
        workers=args.workers, factory=args.factory, app_dir=args.app_dir,
        root_path=args.root_path, proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_request_header=args.timeout_request_header,
        timeout_request_body=args.timeout_request_body,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        limit_concurrency=args.limit_concurrency, max_connections=args.max_connections,
        backlog=args.backlog, log_level=args.log_level, access_log=args.access_log,
        ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile,
        ssl_keyfile_password=args.ssl_keyfile_password, reload=args.reload,
        reload_dirs=list(args.reload_dirs), reload_interval=args.reload_interval,
        protocol=args.protocol, static=args.static, lifespan=args.lifespan, loop=args.loop,
        ws_max_size=args.ws_max_size, ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout, max_request_line=args.max_request_line,
        max_header_count=args.max_header_count, max_header_bytes=args.max_header_bytes,
        max_body=args.max_body, server_header=args.server_header,
        date_header=args.date_header, headers=list(args.headers),
    )


def run(args: argparse.Namespace) -> int:
    """``engine serve``: the subcommand's entry point."""
    argv = getattr(args, "argv", None)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"engine serve: error: {exc}", file=sys.stderr)
        return 2
    return run_server(config, argv=argv)


# =========================================================================== logging

_COLORS = {logging.CRITICAL: "\x1b[91m", logging.ERROR: "\x1b[31m",
           logging.WARNING: "\x1b[33m", logging.INFO: "\x1b[32m", logging.DEBUG: "\x1b[36m",
           TRACE: "\x1b[34m"}


class LogFormatter(logging.Formatter):
    """``LEVEL:    message`` (uvicorn's layout), the level coloured on a terminal."""

    def __init__(self, fmt: str = "%(levelprefix)s %(message)s", *,
                 use_colors: bool = False) -> None:
        super().__init__(fmt)
        self.use_colors = use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(9)
        if self.use_colors:
            prefix = f"{_COLORS.get(record.levelno, '')}{prefix}\x1b[0m"
        record.levelprefix = prefix
        return super().formatMessage(record)


def _wants_colors(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def configure_logging(config: Config, stream: TextIO | None = None) -> None:
    """Send the ``engine`` loggers (``engine.server``, ``engine.http``, ``engine.lifespan``,
    ...) to stderr at ``config.log_level``, and ``engine.access`` there too when
    ``config.access_log`` (it is disabled otherwise). Nothing happens with ``log_level=None``,
    so an application can configure logging itself."""
    level = config.log_level_number()
    if level is None:
        return
    out = stream if stream is not None else sys.stderr
    colors = _wants_colors(out)
    for name in ("engine", "engine.access"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            if getattr(handler, "_engine_serve", False):
                log.removeHandler(handler)
        handler = logging.StreamHandler(out)
        handler._engine_serve = True  # type: ignore[attr-defined]
        handler.setFormatter(LogFormatter(use_colors=colors))
        log.addHandler(handler)
        log.propagate = False
    logging.getLogger("engine").setLevel(level)
    access = logging.getLogger("engine.access")
    access.setLevel(logging.INFO)
    access.disabled = not config.access_log


# =========================================================================== listeners

class _Bound:
    """A socket this process bound for the server, handed to engine.server by descriptor."""

    def __init__(self, sock: socket.socket, description: str, path: str | None) -> None:
        st = os.fstat(sock.fileno())
        self.identity = (st.st_dev, st.st_ino)
        self.description = description
        self.unlink: tuple[str, int, int] | None = None
        if path is not None and not path.startswith("\0"):
            pst = os.stat(path)
            self.unlink = (path, pst.st_dev, pst.st_ino)
        self.fileno = sock.detach()

    def close_if_unused(self) -> None:
        """Close the descriptor unless the server took it over (and closed it) already."""
        try:
            st = os.fstat(self.fileno)
        except OSError:
            return
        if (st.st_dev, st.st_ino) == self.identity:
            os.close(self.fileno)

    def remove_path(self) -> None:
        if self.unlink is None:
            return
        path, dev, ino = self.unlink
        self.unlink = None
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (dev, ino) and stat.S_ISSOCK(st.st_mode):
                os.unlink(path)


def describe_socket(sock: socket.socket, scheme: str) -> str:
    """``http://127.0.0.1:8000``, ``http://[::]:8000``, ``unix:/run/app.sock`` ..."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        path = name.decode("latin-1") if isinstance(name, bytes) else name
        return f"unix:{path or '(unnamed)'}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def _bind(config: Config, scheme: str) -> list[_Bound]:
    """Open every listener of ``config`` here (so port 0 resolves and errors show before any
    app code runs); engine.server then adopts them by descriptor."""
    bound: list[_Bound] = []
    try:
        for listener in config.listeners():
            if listener.kind == "fd":
                assert listener.fileno is not None
                try:
                    sock = socket.socket(fileno=listener.fileno)
                except OSError as exc:
                    raise ConfigError(f"fd {listener.fileno}: {exc.strerror}") from None
                if sock.type != socket.SOCK_STREAM:
                    sock.detach()
                    raise ConfigError(f"fd {listener.fileno} is not a stream socket")
                os.set_inheritable(sock.fileno(), False)
                sock.setblocking(False)
                sock.listen(listener.backlog)
                path = None
            else:
                sock = listener.open()
                path = listener.path if listener.kind == "unix" else None
            bound.append(_Bound(sock, describe_socket(sock, scheme), path))
    except BaseException:
        for b in bound:
            b.close_if_unused()
            b.remove_path()
        raise
    return bound


# =========================================================================== TLS

class _TLSProtocol(sslproto.SSLProtocol):
    """asyncio's server-side TLS protocol, with the drain contract passed to the app protocol
    (engine.server asks ``transport.get_protocol()``, which is this object)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._engine_raw = transport
        super().connection_made(transport)

    def shutdown(self) -> None:
        inner = getattr(self, "_app_protocol", None)      # asyncio 3.11-3.13 attributes
        state = getattr(self, "_app_state", None)
        if state is not None and state != sslproto.AppProtocolState.STATE_CON_MADE:
            raw = getattr(self, "_engine_raw", None)     # still in the handshake: just close
            if raw is not None and not raw.is_closing():
                raw.close()
            return
        method = getattr(inner, "shutdown", None)
        if method is not None:
            method()


def tls_factory(factory: ProtocolFactory, context: Any,
                loop: asyncio.AbstractEventLoop) -> ProtocolFactory:
    """Wrap a protocol factory so that each connection speaks TLS with ``context``."""
    def make() -> asyncio.BaseProtocol:
        return _TLSProtocol(loop, factory(), context, None,  # type: ignore[arg-type]
                            server_side=True)
    return make


# =========================================================================== workers

class _Worker:
    """What ``engine serve`` runs in each worker: serve()'s startup/shutdown/ready hooks and
    the protocol factory they fill in."""

    def __init__(self, config: Config, plugin: ProtocolPlugin, line: str,
                 report_fd: int | None) -> None:
        self.config = config
        self.plugin = plugin
        self.line = line                    # the startup line, printed once listening
        self.report_fd = report_fd          # workers: where a startup failure is reported
        self.state: ServerState | None = None
        self.app: ASGIApp | None = None
        self.lifespan: Lifespan | None = None
        self._factory: ProtocolFactory | None = None

    def factory(self) -> asyncio.BaseProtocol:
        """engine.server's protocol factory: the plugin's, once startup has made it."""
        make = self._factory
        if make is None:
            raise RuntimeError("engine serve: connection before startup finished")
        return make()

    async def startup(self) -> None:
        try:
            await self._startup()
        except StartupFailure as exc:
            if exc.code != EXIT_LIFESPAN_FAILED:          # Lifespan has said why already
                logger.error("%s", exc)
            if self.report_fd is None:
                raise
            # the supervisor returns this code; the worker's own exit status is one it
            # treats as fatal (drains the others, no restart)
            with contextlib.suppress(OSError):
                os.write(self.report_fd, bytes([exc.code]))
            raise SystemExit(_WORKER_STARTUP_FAILED) from None

    async def _startup(self) -> None:
        from .lifespan import Lifespan
        from .protocols import ServerState
        config, plugin = self.config, self.plugin
        state = self.state = ServerState(config)
        app: ASGIApp | None = None
        if plugin.needs_app:
            try:
                app = config.load_app()
            except ConfigError as exc:
                raise StartupFailure(str(exc)) from exc
            if config.proxy_headers:
                from .proxy_headers import ProxyHeadersMiddleware
                assert config.forwarded_allow_ips is not None
                app = ProxyHeadersMiddleware(app, config.forwarded_allow_ips)
            self.app = app
            if config.lifespan != "off":
                self.lifespan = Lifespan(app, config, state)
                await self.lifespan.startup()
                if self.lifespan.should_exit:
                    raise StartupFailure("the application's lifespan startup failed",
                                         EXIT_LIFESPAN_FAILED)
        try:
            factory = plugin.create_protocol_factory(app, config, state)
            if not callable(factory):
                raise TypeError(f"it returned {factory!r}, not a callable")
        except Exception as exc:
            logger.exception("protocol %r: create_protocol_factory() failed", plugin.name)
            if self.lifespan is not None:
                await self.lifespan.shutdown()
            raise StartupFailure(f"protocol {plugin.name!r} could not start: {exc}") from exc
        context = config.ssl_context()
        if context is not None:
            factory = tls_factory(factory, context, asyncio.get_running_loop())
        self._factory = factory

    async def shutdown(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown()

    def ready(self, handle: Any) -> None:
        if self.report_fd is None:
            _say(self.line)
        else:
            _say(f"engine serve: worker {os.getpid()} ready")


def _say(line: str) -> None:
    print(line, flush=True)


def _loop_description(config: Config) -> str:
    if config.loop == "asyncio":
        return "asyncio loop"
    import engine
    return f"engine loop, {engine.BACKEND}"


# =========================================================================== serving

def run_server(config: Config, *, argv: Sequence[str] | None = None,
               configure_logs: bool = True) -> int:
    """Serve ``config`` until SIGTERM/SIGINT (what ``engine serve`` does); returns the exit
    status. Call from the main thread with no event loop running. ``--reload`` needs
    ``argv`` (the ``engine`` command line, starting with ``serve``) to restart the server."""
    from . import server
    from .protocols import load_plugin

    if configure_logs:
        configure_logging(config)
    inherited = os.environ.pop(RELOAD_FD_ENV, None)
    if inherited is not None:                      # a server run by the reloader
        config = config.replace(fd=int(inherited), uds=None, reload=False)
    elif config.reload:
        from .reload import Reloader
        try:
            return Reloader(config, argv).run()
        except (ConfigError, OSError) as exc:
            print(f"engine serve: error: {exc}", file=sys.stderr)
            return EXIT_STARTUP_FAILED
    try:
        config.prepare_import_path()
        plugin = load_plugin(config.protocol)
        if not plugin.needs_app and config.app is not None:
            logger.warning("protocol %r takes no app: %r is not served", plugin.name,
                           config.app)
        context = config.ssl_context()
        scheme = "https" if context is not None else "http"
        if plugin.name != "http":
            scheme = "tls" if context is not None else "tcp"
        bound = _bind(config, scheme)
    except (ConfigError, OSError) as exc:
        print(f"engine serve: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED

    where = ", ".join(b.description for b in bound)
    what = "" if plugin.name == "http" else f"{plugin.name} protocol, "
    loop = _loop_description(config)
    workers = None if config.in_process else config.workers
    report_r = report_w = -1
    if workers is None:
        line = f"engine serve: {where} ({what}{loop}, 1 worker, pid {os.getpid()})"
    else:
        line = (f"engine serve: {where} ({what}{loop}, {workers} workers, supervisor pid "
                f"{os.getpid()})")
        report_r, report_w = os.pipe()
        os.set_blocking(report_r, False)
    worker = _Worker(config, plugin, line, report_w if workers is not None else None)
    listeners = [server.Listener.fd(b.fileno, backlog=config.backlog) for b in bound]
    try:
        if workers is not None:
            _say(line)
        status = server.serve(
            worker.factory, listeners, workers=workers,
            graceful_timeout=config.timeout_graceful_shutdown,
            max_connections=config.max_connections, loop_factory=config.loop_factory(),
            startup=worker.startup, shutdown=worker.shutdown, ready=worker.ready,
            fatal_statuses=(_WORKER_STARTUP_FAILED,))
    except StartupFailure as exc:                     # in this process: logged by _Worker
        status = exc.code
    finally:
        for b in bound:
            b.close_if_unused()
            b.remove_path()
        if report_w >= 0:
            os.close(report_w)
    if report_r >= 0:
        try:
            failure = os.read(report_r, 16)
        except BlockingIOError:
            failure = b""
        os.close(report_r)
        if failure:
            status = failure[0]
    return status

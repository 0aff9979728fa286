"""``run_server(config)``: what ``engine serve`` runs, usable from Python too.

It loads the protocol plugin (``--protocol``, default ``http``), binds the listeners
(:func:`engine.server.bind`: here, before any app code runs, so port 0 resolves and errors show
at once), and runs :func:`engine.server.serve` on them: in this process, or with ``--workers
N`` in N forked workers under a supervisor. In each worker the ``startup`` hook loads the app
(the embedded default app when none is named), wraps it in the proxy-headers middleware, runs
its lifespan startup, and returns the plugin's protocol factory (wrapped for TLS with
``--ssl-certfile``), which the server then calls once per accepted connection; the
``shutdown`` hook runs the lifespan shutdown after the drain. ``--reload`` hands the work to
:class:`engine.serve.reload.Reloader`.

Exit status: 0 after a clean SIGTERM/SIGINT drain; 1 when the server cannot start (bad app or
plugin, address in use, ...) or a worker had to be killed; 3 when the app's lifespan startup
failed (as uvicorn). With ``--workers``, a worker that cannot start stops the whole server with
that status (no crash loop).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import engine

from .. import server
from .asgi_types import ASGIApp
from .config import Config, ConfigError
from .lifespan import Lifespan
from .logs import configure_logging
from .metrics import MetricsServer, MetricsStore, parse_address
from .protocols import ProtocolFactory, ProtocolPlugin, ServerState, load_plugin
from .proxy_headers import ProxyHeadersMiddleware
from .reload import RELOAD_FD_ENV, Reloader

__all__ = ["run_server", "StartupFailure", "EXIT_STARTUP_FAILED", "EXIT_LIFESPAN_FAILED"]

logger = logging.getLogger("engine.serve")

EXIT_STARTUP_FAILED = 1          # the app, the plugin or a listener could not be set up
EXIT_LIFESPAN_FAILED = 3         # lifespan.startup.failed (uvicorn's STARTUP_FAILURE)

# a worker's exit status when its startup failed (the supervisor does not restart it, and
# returns the mapped status): distinct from 1, which a crashing worker exits with
_WORKER_EXIT = {EXIT_STARTUP_FAILED: 4, EXIT_LIFESPAN_FAILED: EXIT_LIFESPAN_FAILED}


class StartupFailure(Exception):
    """A worker could not start serving; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_STARTUP_FAILED) -> None:
        super().__init__(message)
        self.code = code


class _AppHooks:
    """engine.server's startup/shutdown/ready hooks of one ``engine serve``: in each worker,
    startup loads the app and returns the protocol factory the server accepts with."""

    def __init__(self, config: Config, plugin: ProtocolPlugin, line: str,
                 report_fd: int | None) -> None:
        self.config = config
        self.plugin = plugin
        self.line = line                    # the startup line, printed once listening
        self.report_fd = report_fd          # workers: where a startup failure is reported
        self.state: ServerState | None = None
        self.app: ASGIApp | None = None
        self.lifespan: Lifespan | None = None
        self.metrics: tuple[MetricsStore, socket.socket] | None = None   # --metrics
        self.metrics_server: MetricsServer | None = None

    async def startup(self) -> ProtocolFactory:
        try:
            return await self._startup()
        except StartupFailure as exc:
            if exc.code != EXIT_LIFESPAN_FAILED:          # Lifespan has said why already
                # the app's own exception (raised at import or by its factory) with its
                # traceback, so the user sees their file and line
                cause = exc.__cause__.__cause__ if exc.__cause__ is not None else None
                if isinstance(cause, BaseException) and cause.__traceback__ is not None:
                    logger.error("%s", exc, exc_info=_user_frames(cause))
                else:
                    logger.error("%s", exc)
            if self.report_fd is None:
                raise
            # the supervisor returns this code; the worker's own exit status is one it
            # treats as fatal (drains the others, no restart)
            with contextlib.suppress(OSError):
                os.write(self.report_fd, bytes([exc.code]))
            raise SystemExit(_WORKER_EXIT.get(exc.code, 4)) from None

    async def _startup(self) -> ProtocolFactory:
        config, plugin = self.config, self.plugin
        state = self.state = ServerState(config)
        if self.metrics is not None:
            store, sock = self.metrics
            self.metrics_server = MetricsServer(store, sock)
            state.metrics_block = await self.metrics_server.start(server.worker_identity())
        app: ASGIApp | None = None
        if plugin.needs_app:
            try:
                app = config.load_app()
            except ConfigError as exc:
                raise StartupFailure(str(exc)) from exc
            if config.proxy_headers:
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
            loop = asyncio.get_running_loop()
            holder = server.TLSContext(context)
            factory = server.tls_factory(factory, holder, loop)
            if self.report_fd is None:
                # one process, no workers to restart: SIGHUP reloads the certificate (and key
                # and CA certificates) for connections accepted from then on
                loop.add_signal_handler(signal.SIGHUP, self._reload_tls, holder)
        return factory

    def _reload_tls(self, holder: server.TLSContext) -> None:
        context = self.config.ssl_context()       # a new one if the files changed
        if context is not None and context is not holder.context:
            holder.replace(context)
        elif context is holder.context:
            logger.info("SIGHUP: the TLS files are unchanged")

    def recycles(self) -> bool:
        c = self.config
        return (c.limit_max_requests is not None or c.worker_max_rss is not None
                or c.worker_lifetime is not None)

    async def retire(self) -> str:
        """Returns (a reason) once this worker passed a recycling limit (--limit-max-requests
        plus jitter, --worker-max-rss, --worker-lifetime); checked a few times a second."""
        c = self.config
        limit = None
        if c.limit_max_requests is not None:
            limit = c.limit_max_requests + random.randint(0, c.max_requests_jitter)
        loop = asyncio.get_running_loop()
        born = loop.time()
        while True:
            state = self.state
            if limit is not None and state is not None and state.total_requests >= limit:
                return f"served {state.total_requests} requests (limit {limit})"
            if c.worker_lifetime is not None and loop.time() - born >= c.worker_lifetime:
                return f"ran {c.worker_lifetime:g}s (--worker-lifetime)"
            if c.worker_max_rss is not None:
                rss = _rss_mib()
                if rss is not None and rss > c.worker_max_rss:
                    return f"uses {rss:.0f} MiB (--worker-max-rss {c.worker_max_rss:g})"
            await asyncio.sleep(_RECYCLE_CHECK)

    async def shutdown(self) -> None:
        if self.lifespan is not None:
            await self.lifespan.shutdown()
        if self.metrics_server is not None:
            await self.metrics_server.stop()

    def ready(self, handle: Any) -> None:
        if self.report_fd is None:
            _say(self.line)
        else:
            _say(f"engine serve: worker {os.getpid()} ready")


_RECYCLE_CHECK = 0.1        # seconds between two looks at a worker's recycling limits


def _rss_mib() -> float | None:
    """This process's resident memory in MiB (Linux: /proc; elsewhere the peak RSS)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _user_frames(exc: BaseException) -> BaseException:
    """``exc`` with its traceback starting at the app's code: engine's loader and importlib's
    frames dropped (they say nothing about the user's error)."""
    tb = exc.__traceback__
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    while tb is not None and tb.tb_next is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name.startswith(here) or name.startswith("<frozen")
                or os.sep + "importlib" + os.sep in name):
            break
        tb = tb.tb_next
    return exc.with_traceback(tb)


def _bind_metrics(address: str) -> socket.socket:
    host, port = parse_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=128)
    sock.setblocking(False)
    return sock


def _say(line: str) -> None:
    # one write(2) per line: the supervisor and its workers share stdout, and print() writes
    # the newline separately when stdout is unbuffered (PYTHONUNBUFFERED), so their lines
    # could interleave
    stream = sys.stdout
    stream.write(line + "\n")
    stream.flush()


def _loop_description(config: Config) -> str:
    if config.loop == "asyncio":
        return "asyncio loop"
    return f"engine loop, {engine.BACKEND}"


def run_server(config: Config, *, argv: Sequence[str] | None = None,
               configure_logs: bool = True) -> int:
    """Serve ``config`` until SIGTERM/SIGINT (what ``engine serve`` does); returns the exit
    status. Call from the main thread with no event loop running. ``--reload`` needs
    ``argv`` (the ``engine`` command line, starting with ``serve``) to restart the server."""
    if configure_logs:
        try:
            configure_logging(config)
        except ConfigError as exc:
            print(f"engine serve: error: {exc}", file=sys.stderr)
            return EXIT_STARTUP_FAILED
    inherited = os.environ.pop(RELOAD_FD_ENV, None)
    if inherited is not None:                      # a server run by the reloader
        config = config.replace(fd=int(inherited), uds=None, reload=False)
    elif config.reload:
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
        scheme = config.scheme(plugin.name)
        bound = server.bind(config.listeners())
    except (ConfigError, OSError) as exc:
        print(f"engine serve: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    metrics_sock = None
    if config.metrics is not None:
        try:
            metrics_sock = _bind_metrics(config.metrics)
        except OSError as exc:
            for b in bound:
                b.close()
            print(f"engine serve: error: metrics {config.metrics}: {exc}", file=sys.stderr)
            return EXIT_STARTUP_FAILED

    where = ", ".join(b.describe(scheme) for b in bound)
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
    hooks = _AppHooks(config, plugin, line, report_w if workers is not None else None)
    if metrics_sock is not None:
        hooks.metrics = (MetricsStore(workers), metrics_sock)
        host, port = metrics_sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        _say(f"engine serve: metrics at http://{shown}:{port}/metrics")
    try:
        status = server.serve(
            None, bound, workers=workers,
            graceful_timeout=config.timeout_graceful_shutdown,
            max_connections=config.max_connections, loop_factory=config.loop_factory(),
            startup=hooks.startup, shutdown=hooks.shutdown, ready=hooks.ready,
            fatal_statuses={worker: code for code, worker in _WORKER_EXIT.items()},
            listening=(lambda: _say(line)) if workers is not None else None,
            retire=hooks.retire if hooks.recycles() else None)
    except StartupFailure as exc:                     # in this process: logged by _AppHooks
        status = exc.code
    finally:
        for b in bound:
            b.close()
        if metrics_sock is not None:
            metrics_sock.close()
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

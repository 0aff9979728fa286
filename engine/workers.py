"""gunicorn worker classes: engine's HTTP server, or uvicorn's, inside gunicorn's arbiter.

Only for users who run gunicorn (``pip install 'engine[gunicorn]'``); nothing else in engine
imports this module, and it is the only one that imports gunicorn::

    gunicorn myapp:app -w 4 -k engine.workers.EngineWorker
    gunicorn myapp:app -w 4 -k engine.workers.EngineUvicornWorker

:class:`EngineWorker` serves the ASGI app with the compiled HTTP/1.1 + WebSocket protocol of
``engine serve`` (:mod:`engine.serve.protocols.http`) on engine's loop. What it takes from
gunicorn (the worker contract of ``gunicorn.workers.base.Worker``):

* the listening sockets the arbiter bound (``--bind``), shared by all workers;
* ``--timeout``: the worker calls ``notify()`` (its heartbeat file) from the loop, about once a
  second; a loop blocked longer than the timeout is killed and replaced by the arbiter;
* SIGTERM (sent by the arbiter on stop, on SIGHUP reload and for ``--max-requests``): graceful:
  stop accepting, let the requests in flight finish (until a little before
  ``--graceful-timeout``: a tenth of it, at most a second, earlier; then the rest are aborted),
  run the app's lifespan shutdown, exit 0. SIGINT/SIGQUIT: quick exit (open
  connections are aborted). SIGABRT (the arbiter's timeout): exit 1. SIGUSR1: reopen log files;
* ``--max-requests`` and ``--max-requests-jitter``: after that many requests the worker drains
  and exits, and the arbiter starts a new one;
* ``--worker-connections``: at most that many connections at once (the rest wait in the listen
  backlog); ``--keep-alive``: the idle keep-alive timeout; ``--limit-request-line`` and
  ``--limit-request-fields``: the parser's limits; ``--forwarded-allow-ips``: proxy headers;
  ``--certfile``/``--keyfile``/``--ca-certs``: TLS;
* ``--reload`` (development): a changed file stops the worker gracefully and the arbiter starts
  a new one, which imports the code again;
* ``--access-logfile``: one line per response in ``--access-logformat`` (gunicorn's atoms),
  written by gunicorn's access log handlers; engine's own messages go to gunicorn's error log;
* the app: gunicorn loads ``MODULE:APP`` (an ASGI app); its lifespan runs in each worker
  (``lifespan="auto"``, as ``engine serve``). Set :attr:`EngineWorker.CONFIG_KWARGS` in a
  subclass to pass other :class:`engine.serve.config.Config` settings.

:class:`EngineUvicornWorker` is the uvicorn worker (from the ``uvicorn-worker`` package, or the
deprecated ``uvicorn.workers`` module of older uvicorn releases) with engine's loop: uvicorn's
HTTP protocol, engine's event loop. It is built the first time it is looked up, so importing
this module needs no uvicorn.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, Any, ClassVar

from gunicorn.workers.base import Worker

import engine

if TYPE_CHECKING:
    from .serve.config import Config

__all__ = ["EngineWorker", "EngineUvicornWorker", "HEARTBEAT"]  # noqa: F822 (__getattr__)

HEARTBEAT = 1.0            # seconds between two notify() calls, at most (less with --timeout < 2)

_ENGINE_LOGGERS = ("engine.serve", "engine.server", "engine.http", "engine.lifespan")

# gunicorn's exit status for a worker that could not boot: the arbiter stops instead of
# restarting it in a loop (gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR)
_WORKER_BOOT_ERROR = 3


class EngineWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker serving an ASGI app with engine's compiled HTTP server and loop."""

    #: extra :class:`engine.serve.config.Config` settings (override in a subclass)
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quick = False                    # SIGINT/SIGQUIT: abort instead of drain
        self._stopping: asyncio.Future[str] | None = None
        self.exit_code = 0

    # --- gunicorn's hooks ---------------------------------------------------------------------

    def init_signals(self) -> None:
        # back to the default dispositions (the arbiter's handlers were inherited); the real
        # handlers are installed on the loop in run(), so that a signal only wakes the loop
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def run(self) -> None:
        self._route_logs()
        engine.run(self._main())
        if self.exit_code:
            sys.exit(self.exit_code)

    # --- configuration ------------------------------------------------------------------------

    def engine_config(self) -> Config:
        """The :class:`engine.serve.config.Config` this worker serves with, from gunicorn's
        settings (and :attr:`CONFIG_KWARGS`)."""
        from .serve.config import Config

        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "app": self.wsgi,
            "timeout_keep_alive": float(cfg.keepalive),
            "timeout_graceful_shutdown": _drain_timeout(float(cfg.graceful_timeout)),
            "forwarded_allow_ips": cfg.forwarded_allow_ips,
            "backlog": max(1, int(cfg.backlog)),
            "max_connections": int(cfg.worker_connections) or None,
            "log_level": None,
        }
        if cfg.limit_request_line > 0:
            kwargs["max_request_line"] = int(cfg.limit_request_line)
        if cfg.limit_request_fields > 0:
            kwargs["max_header_count"] = int(cfg.limit_request_fields)
        if cfg.accesslog:
            kwargs["access_log"] = True
            kwargs["access_log_format"] = cfg.access_log_format
        if cfg.is_ssl:
            opts = cfg.ssl_options
            kwargs.update(ssl_certfile=opts.get("certfile"), ssl_keyfile=opts.get("keyfile"),
                          ssl_keyfile_password=opts.get("password"),
                          ssl_ca_certs=opts.get("ca_certs"), ssl_ciphers=opts.get("ciphers"),
                          ssl_cert_reqs=int(opts.get("cert_reqs", 0)))
        kwargs.update(self.CONFIG_KWARGS)
        return Config(**kwargs)

    def _route_logs(self) -> None:
        """engine's loggers write through gunicorn's error and access log handlers."""
        error_log, access_log = self.log.error_log, self.log.access_log
        for name in _ENGINE_LOGGERS:
            logger = logging.getLogger(name)
            logger.handlers = list(error_log.handlers)
            logger.setLevel(error_log.level)
            logger.propagate = False
        logger = logging.getLogger("engine.access")
        logger.handlers = list(access_log.handlers)
        logger.setLevel(logging.INFO if self.cfg.accesslog else logging.CRITICAL + 1)
        logger.propagate = False

    # --- serving ------------------------------------------------------------------------------

    async def _main(self) -> None:
        from .serve.embed import AppServer, LifespanFailed

        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        for sig, handler in ((signal.SIGTERM, self._on_term), (signal.SIGINT, self._on_quit),
                             (signal.SIGQUIT, self._on_quit), (signal.SIGABRT, self._on_abort),
                             (signal.SIGUSR1, self._on_usr1)):
            loop.add_signal_handler(sig, handler)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)

        app: Any = self.wsgi
        if self.max_requests < sys.maxsize:
            app = _Countdown(app, self.max_requests, self._stop)
        served = AppServer(app, self.engine_config())
        try:
            await served.start([listener.sock for listener in self.sockets])
        except LifespanFailed:
            self.exit_code = _WORKER_BOOT_ERROR
            return
        heartbeat = loop.create_task(self._heartbeat())
        try:
            reason = await self._stopping
        finally:
            heartbeat.cancel()
        self.log.info("%s: %s", self, reason)
        await served.stop(quick=self._quick)

    async def _heartbeat(self) -> None:
        """notify() the arbiter; stop once the arbiter is gone, or once something else cleared
        ``alive`` (gunicorn's ``--reload`` does, from its file-watching thread)."""
        interval = min(HEARTBEAT, self.timeout) if self.timeout else HEARTBEAT
        while True:
            self.notify()
            if not self.alive:
                self._stop("asked to stop (alive is False), draining")
                return
            if os.getppid() != self.ppid:
                self._stop(f"parent changed (was {self.ppid}), shutting down")
                return
            await asyncio.sleep(interval)

    def _stop(self, reason: str) -> None:
        self.alive = False
        if self._stopping is not None and not self._stopping.done():
            self._stopping.set_result(reason)

    # --- signals (run by the loop, not in a signal handler) -------------------------------

    def _on_term(self) -> None:
        self._stop("SIGTERM, draining")

    def _on_quit(self) -> None:
        self._quick = True
        self.cfg.worker_int(self)
        self._stop("quick shutdown")

    def _on_abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        os._exit(1)                                # the arbiter's timeout: no cleanup

    def _on_usr1(self) -> None:
        self.log.reopen_files()


class _Countdown:
    """ASGI middleware of ``--max-requests``: the request that reaches the limit starts the
    worker's drain (it and the others in flight still complete)."""

    def __init__(self, app: Any, limit: int, stop: Any) -> None:
        self.app = app
        self.left = limit
        self.limit = limit
        self.stop = stop

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            self.left -= 1
            if self.left == 0:
                self.stop(f"served {self.limit} requests (max-requests), restarting")
        await self.app(scope, receive, send)


def _drain_timeout(graceful_timeout: float) -> float:
    """The worker's own drain limit: a little under gunicorn's --graceful-timeout (a tenth of
    it, at most a second, earlier), so that the connections still open are aborted and the
    lifespan shutdown runs before the arbiter's SIGKILL at --graceful-timeout."""
    return max(0.0, graceful_timeout - min(_DRAIN_MARGIN, graceful_timeout / 10))


_DRAIN_MARGIN = 1.0


def _uvicorn_worker_base() -> Any:
    try:
        from uvicorn_worker import UvicornWorker
    except ImportError:
        try:
            import warnings
            with warnings.catch_warnings():        # deprecated in favour of uvicorn-worker
                warnings.simplefilter("ignore", DeprecationWarning)
                from uvicorn.workers import UvicornWorker
        except ImportError:
            raise ImportError("engine.workers.EngineUvicornWorker needs uvicorn and the "
                              "uvicorn-worker package: pip install uvicorn-worker") from None
    return UvicornWorker


_lazy: dict[str, type] = {}


def __getattr__(name: str) -> type:
    """EngineUvicornWorker is made on first use (gunicorn looks worker classes up with
    getattr), so that ``import engine.workers`` works without uvicorn installed."""
    if name != "EngineUvicornWorker":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = _lazy.get(name)
    if cls is None:
        base = _uvicorn_worker_base()
        config_kwargs = {**base.CONFIG_KWARGS, "loop": "engine:new_event_loop"}

        async def callback_notify(self: Any) -> None:
            # uvicorn calls this every timeout/2 seconds: the heartbeat, and (not in uvicorn's
            # own worker) a look at the arbiter: an orphaned worker stops gracefully instead of
            # serving on forever
            self.notify()
            if os.getppid() != self.ppid:
                self.log.info("%s: parent changed (was %s), shutting down", self, self.ppid)
                os.kill(os.getpid(), signal.SIGTERM)

        cls = type(name, (base,), {
            "CONFIG_KWARGS": config_kwargs, "callback_notify": callback_notify,
            "__module__": __name__,
            "__doc__": "uvicorn's gunicorn worker (HTTP protocol and all) on engine's loop: "
                       "``CONFIG_KWARGS['loop'] = 'engine:new_event_loop'`` (needs uvicorn "
                       ">= 0.36, which takes ``module:function`` loop factories). It also "
                       "stops when its arbiter is gone (checked with each heartbeat)."})
        _lazy[name] = cls
    return cls

"""Processes: :func:`serve` runs a server in this process or in forked workers under a supervisor.

``workers=None`` serves in this process; ``workers=N`` forks N worker processes under a
supervisor. The supervisor binds every listener first (so errors show before any fork and port
0 resolves once), then each worker creates its own event loop (with ``loop_factory``) after the
fork: no loop, thread or selector crosses the fork. Workers share a listener two ways: by
inheriting the supervisor's listening socket (the default: the kernel queue is shared, a
restarting worker drops nothing), or, for ``Listener.tcp(..., reuse_port=True)``, each worker
binds its own socket with SO_REUSEPORT (SO_REUSEPORT_LB on FreeBSD) and the kernel spreads new
connections over them; connections still in a worker's own queue when it closes its socket are
reset by the kernel, which makes rolling restarts lossier.

Signals: SIGTERM or SIGINT = graceful drain (the supervisor closes its listeners and sends
SIGTERM to every worker, waits ``graceful_timeout`` plus a grace period, then SIGKILLs what is
left); a second SIGTERM/SIGINT to the supervisor, or SIGQUIT to a worker, drops the wait and
aborts open connections at once. SIGHUP = rolling restart: one worker at a time, a new worker is
started and, once it listens, the old one drains. A worker that dies is replaced; one that keeps
dying within seconds of starting is restarted after a delay that doubles up to 10 s, so a
crash-looping worker never spins. Workers also drain if the supervisor dies (they watch a pipe
whose other end only the supervisor holds). The supervisor's signal handlers only queue the
signal; its main loop (``select`` on a wake-up pipe) does the work: queued signals before
reaping, so that workers leaving on a group Ctrl-C count as drained, not as deaths. A worker
that has drained ignores further SIGTERM/SIGINT while it exits; so does ``serve()``'s process
after a drain that a signal started (it was told to stop already). A worker's clean exit (0)
outside a drain is not a crash: its slot gets a new worker at once. The first worker starts
alone, the others once it listens: an app that cannot load fails once, not once per worker.
``serve()`` returns 0 after a clean drain, 1 if a worker had to be killed or exited with an
error during it.

Logging goes to the ``engine.server`` logger.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import importlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from .. import new_event_loop
from .connections import DEFAULT_GRACEFUL_TIMEOUT, ProtocolFactory, ServerHandle, start
from .listeners import Bound, Listener, ListenerItem, describe, open_listener

__all__ = ["serve", "worker_identity", "Hook", "KILL_GRACE"]

logger = logging.getLogger("engine.server")

Hook = Callable[[], Awaitable[object]]

KILL_GRACE = 5.0                 # supervisor: seconds past graceful_timeout before SIGKILL
RESTART_DELAY_MIN = 0.1          # first restart delay of a worker that died young
RESTART_DELAY_MAX = 10.0         # the delay doubles per quick death up to this
STABLE_UPTIME = 5.0              # a worker that ran this long resets the restart delay
READY_TIMEOUT = 60.0             # rolling restart: how long a new worker may take to listen

_SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
_WORKER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
# blocked from before fork() until the worker's loop handles them, so that a signal sent to a
# worker that is still starting waits for its handlers instead of killing it
_FORK_BLOCKED = (*_SUPERVISOR_SIGNALS, signal.SIGQUIT)


@contextlib.contextmanager
def _signals_held(sigs: Iterable[int]) -> Any:
    """Block sigs in this thread while their handlers are changed. A signal caught by the old
    Python-level handler just before the change, and not yet run, would otherwise meet the new
    disposition (SIG_IGN or SIG_DFL) when the interpreter next checks, and CPython reports that
    as "Signal N ignored due to race condition" on stderr. Blocked, it waits in the kernel;
    signal.signal() runs what was caught before the block while the old handler is still there,
    and on unblock the kernel applies the new disposition (SIG_IGN discards it)."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclasses.dataclass
class _Spec:
    app: ProtocolFactory | str | None
    graceful_timeout: float | None
    max_connections: int | None
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    startup: Hook | None
    shutdown: Hook | None
    ready: Callable[[ServerHandle], object] | None
    fatal_statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    listening: Callable[[], object] | None = None
    retire: Callable[[], Awaitable[str]] | None = None


def _resolve_app(app: ProtocolFactory | str | None) -> ProtocolFactory:
    if app is None:
        raise TypeError("serve(app=None) needs a startup hook that returns the protocol factory")
    if not isinstance(app, str):
        return app
    module_name, sep, attr = app.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attribute', got {app!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{app!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _run_worker(spec: _Spec, sockets: list[ListenerItem], *, in_process: bool,
                ready_fd: int | None = None, alive_fd: int | None = None,
                sigmask: Any = None) -> int:
    """Run one server on a new event loop until it is told to stop; returns the exit status."""
    loop = spec.loop_factory()
    try:
        return loop.run_until_complete(
            _worker_main(spec, sockets, in_process=in_process, ready_fd=ready_fd,
                         alive_fd=alive_fd, sigmask=sigmask))
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


async def _worker_main(spec: _Spec, sockets: list[ListenerItem], *, in_process: bool,
                       ready_fd: int | None, alive_fd: int | None, sigmask: Any) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[str] = loop.create_future()
    handle: ServerHandle | None = None
    abort_now = False
    signals_seen = 0

    def request_stop(why: str) -> None:
        if not stop.done():
            stop.set_result(why)

    def on_signal(sig: signal.Signals) -> None:
        # SIGTERM/SIGINT: drain. SIGQUIT, or in this process a second SIGTERM/SIGINT: stop now.
        # In a worker a repeat is a no-op: Ctrl-C reaches it from the terminal *and* the
        # supervisor forwards SIGTERM, and that must still be a graceful drain.
        nonlocal signals_seen, abort_now
        signals_seen += 1
        request_stop(sig.name)
        if sig == signal.SIGQUIT or (in_process and signals_seen > 1):
            abort_now = True
            if handle is not None:
                handle.abort()

    for sig in _WORKER_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    if sigmask is not None:                          # handled now: let them in
        signal.pthread_sigmask(signal.SIG_SETMASK, sigmask)
    if in_process:
        loop.add_signal_handler(signal.SIGHUP, logger.warning,
                                "SIGHUP ignored: rolling restarts need workers (serve(workers=N))")
    if alive_fd is not None:
        def supervisor_gone() -> None:
            loop.remove_reader(alive_fd)
            logger.warning("worker %d: the supervisor is gone; draining", os.getpid())
            request_stop("supervisor gone")
        loop.add_reader(alive_fd, supervisor_gone)
    try:
        made = await spec.startup() if spec.startup is not None else None
        if not stop.done():
            factory = made if callable(made) else _resolve_app(spec.app)
            handle = await start(factory, sockets, max_connections=spec.max_connections)
            if ready_fd is not None:
                os.write(ready_fd, b"R")              # kept open: "X" asks for a replacement
            if spec.ready is not None:
                spec.ready(handle)
            retiring = None
            if spec.retire is not None:
                retiring = asyncio.ensure_future(
                    _retire_when(spec.retire, ready_fd, request_stop))
            try:
                why = await stop
            finally:
                if retiring is not None:
                    retiring.cancel()
            if abort_now:
                handle.abort()
            logger.info("worker %d: %s, draining (%d connection(s))", os.getpid(), why,
                        handle.connections)
            aborted = await handle.drain(spec.graceful_timeout)
            logger.info("worker %d: drained (%d aborted)", os.getpid(), aborted)
        if spec.shutdown is not None:
            await spec.shutdown()
        return 0
    finally:
        if ready_fd is not None:
            os.close(ready_fd)
        with _signals_held(_WORKER_SIGNALS):
            for sig in _WORKER_SIGNALS:
                loop.remove_signal_handler(sig)
                if not in_process or (signals_seen and sig != signal.SIGQUIT):
                    # drained: a late SIGTERM (the supervisor forwarding a group Ctrl-C) or
                    # SIGINT must not kill this process with the default action or a
                    # KeyboardInterrupt on its way out; it was told to stop and is exiting
                    signal.signal(sig, signal.SIG_IGN)
        if in_process:
            loop.remove_signal_handler(signal.SIGHUP)
        if alive_fd is not None:
            loop.remove_reader(alive_fd)


async def _retire_when(retire: Callable[[], Awaitable[str]], ready_fd: int | None,
                       request_stop: Callable[[str], None]) -> None:
    try:
        reason = await retire()
    except Exception:
        logger.exception("worker %d: the retire hook failed; recycling is off", os.getpid())
        return
    if ready_fd is None:                        # in this process: no one to replace us
        logger.info("worker %d: %s, stopping", os.getpid(), reason)
        request_stop(reason)
        return
    logger.info("worker %d: %s, asking the supervisor for a replacement", os.getpid(), reason)
    with contextlib.suppress(OSError):
        os.write(ready_fd, b"X")


_identity: tuple[int, int] | None = None


def worker_identity() -> tuple[int, int] | None:
    """In a worker forked by :func:`serve`: ``(slot, generation)`` — its slot (0 .. N-1) and
    how many workers that slot started before it (0 for the first; a restart or a rolling
    restart's replacement counts up). None in the supervisor or without workers."""
    return _identity


def serve(app: ProtocolFactory | str | None, listeners: Sequence[ListenerItem], *,
          workers: int | None = None,
          graceful_timeout: float | None = DEFAULT_GRACEFUL_TIMEOUT,
          max_connections: int | None = None,
          loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
          startup: Hook | None = None, shutdown: Hook | None = None,
          ready: Callable[[ServerHandle], object] | None = None,
          fatal_statuses: Collection[int] | Mapping[int, int] = (),
          listening: Callable[[], object] | None = None,
          retire: Callable[[], Awaitable[str]] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain; returns the exit status (0 = clean).

    ``app``: a protocol factory, or ``"module:attribute"`` naming one (imported in each worker,
    after the fork), or None when ``startup`` returns the factory. ``listeners``:
    :class:`Listener`, :class:`Bound` or listening ``socket.socket`` objects. ``workers``:
    ``None`` serves in this process; ``N >= 1`` runs a supervisor with N forked workers (see
    the module docstring for signals, restarts and sharing).
    ``graceful_timeout``: seconds a drain waits for connections before aborting them (None: no
    limit). ``max_connections``: per process. ``loop_factory``: makes each worker's loop
    (default ``engine.new_event_loop``). ``startup`` / ``shutdown``: coroutine functions run in
    each worker on its loop, before listening and after draining; what ``startup`` returns, if
    it is callable, is the protocol factory of that worker (made on its loop, after the fork,
    e.g. from an app loaded there). ``ready(handle)``: called in
    each worker once it listens. ``fatal_statuses``: a worker exiting with one of these
    statuses (say, a startup that cannot succeed) is not restarted: the supervisor drains the
    other workers and returns that status (or, given a mapping worker status -> status, the
    mapped one). ``listening()``: with workers, called once in the supervisor when the first
    worker listens (the first worker starts alone, the others once it listens, so that an
    app that cannot load fails once, not once per worker). ``retire()``: a coroutine
    function run in each worker once it listens; when it returns (a reason, e.g. "served 1000
    requests") the worker asks the supervisor to replace it: a new worker starts, and once it
    listens this one drains (one step of a SIGHUP rolling restart: no request lost). Without
    workers, the server drains and ``serve()`` returns 0 then. Call from the main thread,
    with no event loop running.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("serve() must be called from the main thread (it handles signals)")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("serve() cannot run inside a running event loop; use start()")
    if not listeners:
        raise ValueError("no listeners")
    if workers is not None and workers < 1:
        raise ValueError("workers must be None or >= 1")
    if app is None and startup is None:
        raise ValueError("serve(None, ...) needs a startup hook that returns the protocol factory")
    spec = _Spec(app, graceful_timeout, max_connections, loop_factory or new_event_loop,
                 startup, shutdown, ready,
                 dict(fatal_statuses) if isinstance(fatal_statuses, Mapping)
                 else {code: code for code in fatal_statuses}, listening, retire)
    if workers is None:
        return _run_worker(spec, list(listeners), in_process=True)
    return _Supervisor(spec, list(listeners), workers).run()


# =========================================================================== supervisor

@dataclasses.dataclass(eq=False)
class _Worker:
    pid: int
    slot: int
    started: float
    ready_fd: int | None
    ready: bool = False
    retiring: bool = False          # told to drain: its exit is expected
    incoming: bool = False          # rolling restart: started, not yet serving its slot


class _Supervisor:
    def __init__(self, spec: _Spec, listeners: list[ListenerItem], n: int) -> None:
        self.spec = spec
        self.listeners = listeners
        self.n = n
        self.workers: dict[int, _Worker] = {}          # pid -> worker
        self.slots: list[_Worker | None] = [None] * n
        self.failures = [0] * n                        # quick deaths in a row, per slot
        self.generations = [0] * n                     # workers started per slot so far
        self.restart_at: dict[int, float] = {}         # slot -> monotonic time
        self.rolling: collections.deque[int] = collections.deque()
        self.incoming: _Worker | None = None
        self.incoming_deadline = 0.0
        self.draining = False
        self.kill_deadline: float | None = None
        self.killed = False
        self.exit_status = 0
        self.signals: list[int] = []
        self.bound: list[Bound] = []                  # the supervisor's own listening sockets
        self.plan: list[ListenerItem] = []            # what each worker listens on
        self.alive_r = self.alive_w = -1
        self.wake_r = self.wake_w = -1
        self.deferred: list[int] = []                 # slots started once the first listens
        self.announced = False
        self.stop_signal = False                      # the drain began on SIGTERM/SIGINT

    # --- setup and teardown -------------------------------------------------------------------

    def _bind(self) -> None:
        for item in self.listeners:
            if isinstance(item, Listener) and item.kind == "tcp" and item.reuse_port:
                # bind (not listen) once here: port 0 becomes one concrete port for every
                # worker, and the port stays ours across rolling restarts. Never listening,
                # this socket receives no connections.
                family, _, v6only = item.tcp_plan()
                sock = item.bind()
                self.bound.append(Bound(sock, item.backlog))
                host, port = sock.getsockname()[:2]
                self.plan.append(dataclasses.replace(
                    item, host=host, port=port,
                    dualstack=(v6only is False) if family == socket.AF_INET6 else None))
            else:
                bound = open_listener(item)
                self.bound.append(bound)
                self.plan.append(bound)
        for bound in self.bound:
            logger.info("supervisor %d: listening on %s", os.getpid(), describe(bound.sock))

    def run(self) -> int:
        if threading.active_count() > 1:
            logger.warning("serve(workers=...) forks while %d threads run; threads do not "
                           "survive a fork", threading.active_count())
        try:
            self._bind()
            self.alive_r, self.alive_w = os.pipe()
            self.wake_r, self.wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
            with self._signals():
                self.deferred = list(range(1, self.n))
                self._spawn(0)
                return self._main_loop()
        finally:
            self._close_listeners()
            for fd in (self.alive_r, self.alive_w, self.wake_r, self.wake_w):
                if fd >= 0:
                    os.close(fd)
            for w in self.workers.values():
                if w.ready_fd is not None:
                    os.close(w.ready_fd)

    @contextlib.contextmanager
    def _signals(self) -> Any:
        def handler(sig: int, frame: object) -> None:
            self.signals.append(sig)
        previous = {sig: signal.signal(sig, handler) for sig in _SUPERVISOR_SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        try:
            yield
        finally:
            stopped_by_signal = self.draining and self.stop_signal
            with _signals_held(previous):
                signal.set_wakeup_fd(old_wakeup)
                for sig, prev in previous.items():
                    if stopped_by_signal and sig in (signal.SIGTERM, signal.SIGINT):
                        prev = signal.SIG_IGN  # told to stop already: a late repeat is moot
                    signal.signal(sig, prev)

    def _close_listeners(self) -> None:
        for bound in self.bound:
            bound.close()
        self.bound = []

    # --- workers ------------------------------------------------------------------------------

    def _spawn(self, slot: int, *, incoming: bool = False) -> _Worker | None:
        ready_r, ready_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        generation = self.generations[slot]
        self.generations[slot] += 1
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_BLOCKED)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(ready_r)
            os.close(ready_w)
            logger.error("supervisor: fork failed (%s)", exc)
            if not incoming:
                self._schedule_restart(slot, quick=True)
            return None
        if pid == 0:                                    # the worker; never returns
            status = 1
            global _identity
            _identity = (slot, generation)
            try:
                os.close(ready_r)
                self._child_setup()
                status = _run_worker(self.spec, list(self.plan), in_process=False,
                                     ready_fd=ready_w, alive_fd=self.alive_r, sigmask=mask)
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        worker = _Worker(pid, slot, time.monotonic(), ready_r, incoming=incoming)
        self.workers[pid] = worker
        if not incoming:
            self.slots[slot] = worker
        logger.info("supervisor: worker %d started (slot %d)", pid, slot)
        return worker

    def _child_setup(self) -> None:
        # nothing of the supervisor's signal handling or bookkeeping carries over; the signals
        # stay blocked until the worker's loop has its handlers (_worker_main)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)      # the supervisor's business
        for fd in (self.alive_w, self.wake_r, self.wake_w):
            os.close(fd)
        for w in self.workers.values():
            if w.ready_fd is not None:
                os.close(w.ready_fd)
        for bound, item in zip(self.bound, self.plan, strict=True):
            if isinstance(item, Listener):               # a reuse_port reservation
                bound.sock.close()
            bound.keep_path()                            # the supervisor removes Unix paths
        self.workers = {}

    def _schedule_restart(self, slot: int, *, quick: bool) -> None:
        if quick:
            self.failures[slot] += 1
            delay = min(RESTART_DELAY_MIN * 2 ** (self.failures[slot] - 1), RESTART_DELAY_MAX)
        else:
            self.failures[slot] = 0
            delay = 0.0
        self.restart_at[slot] = time.monotonic() + delay
        if delay:
            logger.warning("supervisor: restarting slot %d in %.1fs", slot, delay)

    def _reap(self) -> None:
        for worker in list(self.workers.values()):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid == 0:
                continue
            self._exited(worker, os.waitstatus_to_exitcode(status))

    def _exited(self, worker: _Worker, code: int) -> None:
        if not self.draining and self.signals:
            self._handle_signals()          # a stop already queued: this exit is part of it
        del self.workers[worker.pid]
        if worker.ready_fd is not None:
            os.close(worker.ready_fd)
            worker.ready_fd = None
        how = f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if self.draining:
            logger.info("supervisor: worker %d exited (%s)", worker.pid, how)
            if code != 0 and self.exit_status == 0:
                self.exit_status = 1
            return
        if worker.retiring:
            logger.info("supervisor: old worker %d exited (%s)", worker.pid, how)
            return
        if worker.incoming:
            logger.error("supervisor: new worker %d died before listening (%s); rolling restart "
                         "stopped, the old workers keep serving", worker.pid, how)
            self.incoming = None
            self.rolling.clear()
            self.failures[worker.slot] += 1
            return
        if code in self.spec.fatal_statuses:
            self.exit_status = self.spec.fatal_statuses[code]
            logger.error("supervisor: worker %d could not start (its exit status %d): stopping, "
                         "exit status %d", worker.pid, code, self.exit_status)
            self._drain(None)
            return
        if code == 0:
            # a clean exit nobody here asked for (the worker alone was sent SIGTERM/SIGINT):
            # not a crash; its slot gets a new worker at once
            logger.info("supervisor: worker %d exited (%s); starting a replacement",
                        worker.pid, how)
        else:
            logger.warning("supervisor: worker %d died (%s)", worker.pid, how)
        if self.slots[worker.slot] is worker:
            self.slots[worker.slot] = None
        with contextlib.suppress(ValueError):
            self.rolling.remove(worker.slot)
        quick = code != 0 and time.monotonic() - worker.started < STABLE_UPTIME
        self._schedule_restart(worker.slot, quick=quick)

    def _read_ready(self, readable: list[int]) -> None:
        for worker in list(self.workers.values()):
            fd = worker.ready_fd
            if fd is None or fd not in readable:
                continue
            try:
                data = os.read(fd, 16)
            except BlockingIOError:
                continue
            if not data:                                 # EOF: the worker is exiting
                os.close(fd)
                worker.ready_fd = None
                continue
            if b"X" in data:
                self._recycle(worker)
            if b"R" in data and not worker.ready:
                worker.ready = True
                logger.info("supervisor: worker %d listening", worker.pid)
                if not self.announced:
                    self.announced = True
                    if self.spec.listening is not None:
                        self.spec.listening()
                if self.deferred and not self.draining:
                    deferred, self.deferred = self.deferred, []
                    for slot in deferred:
                        self._spawn(slot)
                if worker is self.incoming:
                    self._incoming_ready(worker)

    def _recycle(self, worker: _Worker) -> None:
        """A worker asks to be replaced (a recycling limit): one rolling-restart step."""
        if self.draining or worker.retiring or self.slots[worker.slot] is not worker:
            return
        if worker.slot in self.rolling or (self.incoming is not None
                                           and self.incoming.slot == worker.slot):
            return
        logger.info("supervisor: worker %d asks to be replaced (slot %d)", worker.pid,
                    worker.slot)
        self.rolling.append(worker.slot)

    def _incoming_ready(self, worker: _Worker) -> None:
        old = self.slots[worker.slot]
        worker.incoming = False
        self.slots[worker.slot] = worker
        self.incoming = None
        if old is not None and old.pid in self.workers:
            old.retiring = True
            self._kill(old, signal.SIGTERM)
            logger.info("supervisor: worker %d replaces %d (slot %d)", worker.pid, old.pid,
                        worker.slot)

    def _kill(self, worker: _Worker, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, sig)

    # --- signals ------------------------------------------------------------------------------

    def _handle_signals(self) -> None:
        signals, self.signals = self.signals, []
        for sig in signals:
            if sig in (signal.SIGTERM, signal.SIGINT):
                self.stop_signal = True
                self._drain(sig)
            elif sig == signal.SIGHUP and not self.draining:
                logger.info("supervisor: SIGHUP, rolling restart of %d worker(s)", self.n)
                self.rolling = collections.deque(range(self.n))

    def _drain(self, sig: int | None) -> None:
        """Stop: on SIGTERM/SIGINT, or (sig None) when a worker exited with a fatal status."""
        if self.draining:
            if sig is None:
                return
            logger.warning("supervisor: second %s, aborting open connections",
                           signal.Signals(sig).name)
            for worker in self.workers.values():
                self._kill(worker, signal.SIGQUIT)
            return
        logger.info("supervisor: %s, draining %d worker(s)",
                    "stopping" if sig is None else signal.Signals(sig).name, len(self.workers))
        self.draining = True
        self.restart_at.clear()
        self.deferred = []
        self.rolling.clear()
        self._close_listeners()                         # no new connections reach us
        for worker in self.workers.values():
            if not worker.retiring:
                self._kill(worker, signal.SIGTERM)
        if self.spec.graceful_timeout is not None:
            self.kill_deadline = time.monotonic() + self.spec.graceful_timeout + KILL_GRACE

    # --- the loop -----------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        if self.draining:
            if self.kill_deadline is not None and now >= self.kill_deadline and not self.killed:
                self.killed = True
                self.exit_status = 1
                for worker in self.workers.values():
                    logger.error("supervisor: worker %d did not stop in time, killing it",
                                 worker.pid)
                    self._kill(worker, signal.SIGKILL)
            return
        for slot, due in list(self.restart_at.items()):
            if now >= due:
                del self.restart_at[slot]
                self._spawn(slot)
        if self.incoming is not None and now >= self.incoming_deadline:
            logger.error("supervisor: new worker %d did not listen within %ss; rolling restart "
                         "stopped", self.incoming.pid, READY_TIMEOUT)
            self.incoming.retiring = True
            self._kill(self.incoming, signal.SIGKILL)
            self.incoming = None
            self.rolling.clear()
        while self.incoming is None and self.rolling:
            slot = self.rolling.popleft()
            if self.slots[slot] is None:                # dead; its restart brings new code
                continue
            self.incoming = self._spawn(slot, incoming=True)
            self.incoming_deadline = now + READY_TIMEOUT

    def _timeout(self, now: float) -> float | None:
        deadlines = list(self.restart_at.values())
        if self.incoming is not None:
            deadlines.append(self.incoming_deadline)
        if self.draining and self.kill_deadline is not None and not self.killed:
            deadlines.append(self.kill_deadline)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def _main_loop(self) -> int:
        while True:
            # signals first: a worker that exited on a group SIGINT/SIGTERM is then reaped as
            # part of the drain, not as a death to restart
            self._handle_signals()
            self._reap()
            now = time.monotonic()
            self._advance(now)
            if self.draining and not self.workers:
                logger.info("supervisor: all workers stopped (exit status %d)",
                            self.exit_status)
                return self.exit_status
            fds = [self.wake_r] + [w.ready_fd for w in self.workers.values()
                                   if w.ready_fd is not None]
            readable, _, _ = select.select(fds, [], [], self._timeout(time.monotonic()))
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
            self._read_ready(readable)

"""engine.server: listeners, a bounded accept loop, worker processes and graceful drain.

Optional: ``import engine`` never imports this module (nor ``engine.tuning``). It is what
``engine serve`` runs, and is usable directly::

    from engine.server import Listener, serve, start

    serve(MyProtocol, [Listener.tcp("127.0.0.1", 8000)], workers=4)   # blocks; returns 0

    async def main():                                   # or inside a program of your own
        server = await start(MyProtocol, [Listener.tcp("127.0.0.1", 8000)], max_connections=1000)
        ...
        await server.drain(timeout=10)

Listeners (:class:`Listener`): TCP (IPv4, IPv6, dual stack; SO_REUSEADDR, SO_REUSEPORT, backlog),
a Unix socket path (with a file mode), an inherited file descriptor, and systemd socket
activation (``LISTEN_FDS``). A plain listening ``socket.socket`` is accepted too.

Accepting is the event loop's own accept path (``loop.create_server(sock=...)``): on engine's
loop a compiled loop that accepts up to ``backlog`` connections per readiness event and, when
accept() fails with EMFILE/ENFILE/ENOBUFS/ENOMEM, stops watching the listener for a second
(``asyncio.constants.ACCEPT_RETRY_DELAY``) instead of spinning, while existing connections keep
being served. asyncio's own loop behaves the same way. ``max_connections`` bounds the number of
live connections: at the limit the listeners stop being watched (new connections wait in the
kernel's backlog) and watching resumes when a connection closes; a connection accepted past the
limit within one accept batch is closed at once (counted in ``ServerHandle.rejected``).

Graceful drain -- the contract between this module and the protocols it serves:

1. the server stops accepting (listeners closed; a Unix socket path is removed);
2. it calls ``protocol.shutdown()`` (no arguments) on the current protocol of every live
   connection that has such a method -- also on a connection accepted just before the listener
   closed, right after its ``connection_made()``. The protocol finishes the request it is
   working on, if any, and then closes its transport; an idle connection closes at once. A
   protocol without ``shutdown()`` is left to finish on its own;
3. it waits until every connection is closed, or the timeout passes;
4. it aborts the connections still open (``transport.abort()``);
5. a worker then exits with status 0.

``shutdown()`` may be called on a protocol whose connection is already closing; it must be
harmless then. ``shutdown()`` is looked up on ``transport.get_protocol()``, so a connection that
switched protocols (``transport.set_protocol()``, e.g. an upgrade to websockets) is asked through
its new protocol.

Processes (:func:`serve`): ``workers=None`` serves in this process; ``workers=N`` forks N worker
processes under a supervisor. The supervisor binds every listener first (so errors show before
any fork and port 0 resolves once), then each worker creates its own event loop (with
``loop_factory``) after the fork: no loop, thread or selector crosses the fork. Workers share a
listener two ways: by inheriting the supervisor's listening socket (the default: the kernel
queue is shared, a restarting worker drops nothing), or, for ``Listener.tcp(...,
reuse_port=True)``, each worker binds its own socket with SO_REUSEPORT (SO_REUSEPORT_LB on
FreeBSD) and the kernel spreads new connections over them; connections still in a worker's own
queue when it closes its socket are reset by the kernel, which makes rolling restarts lossier.

Signals: SIGTERM or SIGINT = graceful drain (the supervisor closes its listeners and sends
SIGTERM to every worker, waits ``graceful_timeout`` plus a grace period, then SIGKILLs what is
left); a second SIGTERM/SIGINT to the supervisor, or SIGQUIT to a worker, drops the wait and
aborts open connections at once. SIGHUP = rolling restart: one worker at a time, a new worker is
started and, once it listens, the old one drains. A worker that dies is replaced; one that keeps
dying within seconds of starting is restarted after a delay that doubles up to 10 s, so a
crash-looping worker never spins. Workers also drain if the supervisor dies (they watch a pipe
whose other end only the supervisor holds). ``serve()`` returns 0 after a clean drain, 1 if a
worker had to be killed or exited with an error during it.

Logging goes to the ``engine.server`` logger.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import importlib
import logging
import os
import select
import signal
import socket
import stat
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Union

__all__ = [
    "Listener", "ServerHandle", "start", "serve", "DEFAULT_BACKLOG", "DEFAULT_GRACEFUL_TIMEOUT",
]

logger = logging.getLogger("engine.server")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
ListenerLike = Union["Listener", socket.socket]
_ListenerItem = Union["Listener", socket.socket, "_Bound"]     # _Bound: the supervisor's sockets
Hook = Callable[[], Awaitable[None]]

DEFAULT_BACKLOG = min(socket.SOMAXCONN, 4096)
DEFAULT_GRACEFUL_TIMEOUT = 30.0
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


# =========================================================================== listeners

@dataclasses.dataclass(frozen=True)
class Listener:
    """Where to listen. Build with :meth:`tcp`, :meth:`unix`, :meth:`fd` or :meth:`systemd`."""

    kind: str                            # "tcp", "unix" or "fd"
    host: str | None = None
    port: int = 0
    path: str | None = None
    mode: int | None = None
    fileno: int | None = None
    name: str | None = None              # systemd's FileDescriptorName=, for fd listeners
    backlog: int = DEFAULT_BACKLOG
    reuse_port: bool = False
    reuse_address: bool = True
    dualstack: bool | None = None

    @classmethod
    def tcp(cls, host: str | None, port: int, *, backlog: int = DEFAULT_BACKLOG,
            reuse_port: bool = False, reuse_address: bool = True,
            dualstack: bool | None = None) -> Listener:
        """A TCP listener on one address.

        ``host``: an IPv4 or IPv6 address or a name (the first address it resolves to is
        used); ``None`` or ``""`` = every interface, over IPv6 and IPv4 both where the host has
        IPv6 (``::`` with IPV6_V6ONLY off), else ``0.0.0.0``. ``dualstack`` (IPv6 addresses
        only): ``True`` also accepts IPv4 (as ``::ffff:a.b.c.d``), ``False`` IPv6 only; by
        default only the all-interfaces listener is dual stack. ``port`` 0 picks a free port.
        ``reuse_port``: SO_REUSEPORT, so several processes can each bind the port (see
        :func:`serve`). SO_REUSEADDR is on unless ``reuse_address=False``.
        """
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        return cls("tcp", host=host or None, port=port, backlog=backlog, reuse_port=reuse_port,
                   reuse_address=reuse_address, dualstack=dualstack)

    @classmethod
    def unix(cls, path: str | os.PathLike[str], *, mode: int | None = None,
             backlog: int = DEFAULT_BACKLOG) -> Listener:
        """A Unix stream socket at ``path``, chmod'ed to ``mode`` (e.g. ``0o660``) if given.

        A stale socket file at ``path`` (no one listening) is replaced; a live one, or a file
        that is not a socket, is an error. The path is removed when the server closes.
        """
        return cls("unix", path=os.fspath(path), mode=mode, backlog=backlog)

    @classmethod
    def fd(cls, fileno: int, *, backlog: int = DEFAULT_BACKLOG,
           name: str | None = None) -> Listener:
        """An inherited stream socket, by file descriptor (listen() is called if it isn't yet).

        The server re-arms listen() with ``backlog`` when it starts accepting.
        """
        if fileno < 0:
            raise ValueError("fileno must be >= 0")
        return cls("fd", fileno=fileno, backlog=backlog, name=name)

    @classmethod
    def systemd(cls, *, unset_environment: bool = True,
                backlog: int = DEFAULT_BACKLOG) -> list[Listener]:
        """The sockets passed by systemd socket activation (``sd_listen_fds(3)``).

        Reads ``LISTEN_FDS`` (count, starting at fd 3), ``LISTEN_PID`` (must be this process,
        else there are none) and ``LISTEN_FDNAMES``; removes the variables from the environment
        unless ``unset_environment=False``, so child processes do not take them for theirs.
        Returns ``[]`` when not socket-activated.
        """
        pid = os.environ.get("LISTEN_PID")
        count = os.environ.get("LISTEN_FDS")
        names_var = os.environ.get("LISTEN_FDNAMES")
        if unset_environment:
            for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(var, None)
        if not pid or not count:
            return []
        try:
            if int(pid) != os.getpid():
                return []
            n = int(count)
        except ValueError:
            return []
        names = names_var.split(":") if names_var else []
        out = []
        for i in range(n):
            fileno = SD_LISTEN_FDS_START + i
            os.set_inheritable(fileno, False)          # ours now, as sd_listen_fds() does
            out.append(cls.fd(fileno, backlog=backlog, name=names[i] if i < len(names) else None))
        return out

    def __str__(self) -> str:
        if self.kind == "tcp":
            host = self.host or "*"
            return f"tcp://[{host}]:{self.port}" if ":" in host else f"tcp://{host}:{self.port}"
        if self.kind == "unix":
            return f"unix:{self.path}"
        return f"fd://{self.fileno}" + (f" ({self.name})" if self.name else "")

    # --- opening ------------------------------------------------------------------------------

    def _tcp_plan(self) -> tuple[int, Any, bool | None]:
        """(family, sockaddr, v6only) for a TCP listener; v6only None = leave it alone."""
        if self.host is None:
            if _has_ipv6():
                return socket.AF_INET6, ("::", self.port), self.dualstack is False
            return socket.AF_INET, ("0.0.0.0", self.port), None
        infos = socket.getaddrinfo(self.host, self.port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
        if not infos:
            raise OSError(f"getaddrinfo({self.host!r}) returned no address")
        family, _, _, _, sockaddr = infos[0]
        if family == socket.AF_INET6:
            return family, sockaddr, not self.dualstack
        if self.dualstack:
            raise ValueError(f"dualstack needs an IPv6 address, not {self.host!r}")
        return family, sockaddr, None

    def open(self) -> socket.socket:
        """Create, bind and listen: a non-blocking, close-on-exec listening socket."""
        sock = self._bind()
        try:
            sock.listen(self.backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind(self) -> socket.socket:
        if self.kind == "tcp":
            return self._bind_tcp()
        if self.kind == "unix":
            return self._bind_unix()
        if self.kind == "fd":
            return self._adopt_fd()
        raise ValueError(f"unknown listener kind {self.kind!r}")

    def _bind_tcp(self) -> socket.socket:
        family, sockaddr, v6only = self._tcp_plan()
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self.reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self.reuse_port:
                _set_reuse_port(sock)
            if v6only is not None:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            sock.setblocking(False)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind_unix(self) -> socket.socket:
        assert self.path is not None
        path = self.path
        if not path.startswith("\0"):
            _remove_stale_unix_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.bind(path)
            if self.mode is not None and not path.startswith("\0"):
                os.chmod(path, self.mode)   # before listen(): no one can connect in between
        except OSError as exc:
            sock.close()
            raise OSError(exc.errno, f"cannot listen on {self}: {exc.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _adopt_fd(self) -> socket.socket:
        assert self.fileno is not None
        sock = socket.socket(fileno=self.fileno)
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise ValueError(f"fd {self.fileno} is not a stream socket")
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), False)
        return sock


SD_LISTEN_FDS_START = 3


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM):
            return True
    except OSError:
        return False


def _set_reuse_port(sock: socket.socket) -> None:
    # build facts: which SO_REUSEPORT this platform has
    from . import _loop
    opts = _loop.SOCKOPTS
    if _loop.PROBES.get("so_reuseport_lb") and "SO_REUSEPORT_LB" in opts:
        sock.setsockopt(socket.SOL_SOCKET, opts["SO_REUSEPORT_LB"], 1)    # FreeBSD: balances
        return
    number = opts.get("SO_REUSEPORT", getattr(socket, "SO_REUSEPORT", None))
    if number is None:
        raise ValueError("reuse_port: SO_REUSEPORT is not available on this platform")
    sock.setsockopt(socket.SOL_SOCKET, number, 1)


def _remove_stale_unix_socket(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(errno.EADDRINUSE, f"cannot listen on unix:{path}: "
                                        "the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)                      # no one listening: a stale file from a dead server
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"cannot listen on unix:{path}: a server is listening there")


@dataclasses.dataclass
class _Bound:
    """A listening socket and what to undo when it closes."""

    sock: socket.socket
    backlog: int
    unlink: tuple[str, int, int] | None = None      # (path, st_dev, st_ino) of our socket file

    def cleanup(self) -> None:
        if self.unlink is None:
            return
        path, dev, ino = self.unlink
        self.unlink = None
        try:
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (dev, ino):     # still ours, not a successor's
                os.unlink(path)
        except OSError:
            pass


def _open_listener(item: _ListenerItem) -> _Bound:
    if isinstance(item, _Bound):
        item.sock.setblocking(False)
        return item
    if isinstance(item, socket.socket):
        item.setblocking(False)
        return _Bound(item, DEFAULT_BACKLOG)
    sock = item.open()
    unlink = None
    if item.kind == "unix" and item.path and not item.path.startswith("\0"):
        st = os.stat(item.path)
        unlink = (item.path, st.st_dev, st.st_ino)
    return _Bound(sock, item.backlog, unlink)


# =========================================================================== accepting

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
        self._bound: list[_Bound] = []
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

    def _add(self, server: Any, bound: _Bound) -> None:
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
            bound.cleanup()
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


async def start(protocol_factory: ProtocolFactory, listeners: Iterable[_ListenerItem], *,
                max_connections: int | None = None) -> ServerHandle:
    """Listen on every listener and serve connections with ``protocol_factory`` on the running
    loop (engine's or asyncio's). Returns once listening.

    ``listeners``: :class:`Listener` objects (opened here; a Unix path is removed on close) or
    listening ``socket.socket`` objects (used as they are). ``max_connections``: at most this
    many live connections (the rest wait in the listen backlog).
    """
    if max_connections is not None and max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    loop = asyncio.get_running_loop()
    handle = ServerHandle(loop, max_connections)
    items = list(listeners)
    if not items:
        raise ValueError("no listeners")
    opened: list[_Bound] = []
    try:
        for item in items:
            opened.append(_open_listener(item))
        factory = handle._factory(protocol_factory)
        for bound in opened:
            server = await loop.create_server(factory, sock=bound.sock, backlog=bound.backlog)
            handle._add(server, bound)
    except BaseException:
        handle.close()
        for bound in opened[len(handle._bound):]:
            bound.sock.close()
            bound.cleanup()
        raise
    return handle


# =========================================================================== processes

@dataclasses.dataclass
class _Spec:
    app: ProtocolFactory | str
    graceful_timeout: float | None
    max_connections: int | None
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    startup: Hook | None
    shutdown: Hook | None
    ready: Callable[[ServerHandle], object] | None
    fatal_statuses: frozenset[int] = frozenset()


def _resolve_app(app: ProtocolFactory | str) -> ProtocolFactory:
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


def _default_loop_factory() -> asyncio.AbstractEventLoop:
    from . import new_event_loop
    return new_event_loop()


def _run_worker(spec: _Spec, sockets: list[_ListenerItem], *, in_process: bool,
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


async def _worker_main(spec: _Spec, sockets: list[_ListenerItem], *, in_process: bool,
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
        if spec.startup is not None:
            await spec.startup()
        if not stop.done():
            handle = await start(_resolve_app(spec.app), sockets,
                                 max_connections=spec.max_connections)
            if ready_fd is not None:
                os.write(ready_fd, b"R")
                os.close(ready_fd)
                ready_fd = None
            if spec.ready is not None:
                spec.ready(handle)
            why = await stop
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
        for sig in _WORKER_SIGNALS:
            loop.remove_signal_handler(sig)
        if in_process:
            loop.remove_signal_handler(signal.SIGHUP)
        if alive_fd is not None:
            loop.remove_reader(alive_fd)


def serve(app: ProtocolFactory | str, listeners: Sequence[ListenerLike], *,
          workers: int | None = None,
          graceful_timeout: float | None = DEFAULT_GRACEFUL_TIMEOUT,
          max_connections: int | None = None,
          loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
          startup: Hook | None = None, shutdown: Hook | None = None,
          ready: Callable[[ServerHandle], object] | None = None,
          fatal_statuses: Collection[int] = ()) -> int:
    """Serve until SIGTERM/SIGINT, then drain; returns the exit status (0 = clean).

    ``app``: a protocol factory, or ``"module:attribute"`` naming one (imported in each worker,
    after the fork). ``workers``: ``None`` serves in this process; ``N >= 1`` runs a supervisor
    with N forked workers (see the module docstring for signals, restarts and sharing).
    ``graceful_timeout``: seconds a drain waits for connections before aborting them (None: no
    limit). ``max_connections``: per process. ``loop_factory``: makes each worker's loop
    (default ``engine.new_event_loop``). ``startup`` / ``shutdown``: coroutine functions run in
    each worker on its loop, before listening and after draining. ``ready(handle)``: called in
    each worker once it listens. ``fatal_statuses``: a worker exiting with one of these
    statuses (say, a startup that cannot succeed) is not restarted: the supervisor drains the
    other workers and returns that status. Call from the main thread, with no event loop
    running.
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
    spec = _Spec(app, graceful_timeout, max_connections, loop_factory or _default_loop_factory,
                 startup, shutdown, ready, frozenset(fatal_statuses))
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
    def __init__(self, spec: _Spec, listeners: list[ListenerLike], n: int) -> None:
        self.spec = spec
        self.listeners = listeners
        self.n = n
        self.workers: dict[int, _Worker] = {}          # pid -> worker
        self.slots: list[_Worker | None] = [None] * n
        self.failures = [0] * n                        # quick deaths in a row, per slot
        self.restart_at: dict[int, float] = {}         # slot -> monotonic time
        self.rolling: collections.deque[int] = collections.deque()
        self.incoming: _Worker | None = None
        self.incoming_deadline = 0.0
        self.draining = False
        self.kill_deadline: float | None = None
        self.killed = False
        self.exit_status = 0
        self.signals: list[int] = []
        self.bound: list[_Bound] = []                  # the supervisor's own listening sockets
        self.plan: list[_ListenerItem] = []            # what each worker listens on
        self.alive_r = self.alive_w = -1
        self.wake_r = self.wake_w = -1

    # --- setup and teardown -------------------------------------------------------------------

    def _bind(self) -> None:
        for item in self.listeners:
            if isinstance(item, Listener) and item.kind == "tcp" and item.reuse_port:
                # bind (not listen) once here: port 0 becomes one concrete port for every
                # worker, and the port stays ours across rolling restarts. Never listening,
                # this socket receives no connections.
                family, _, v6only = item._tcp_plan()
                sock = item._bind()
                self.bound.append(_Bound(sock, item.backlog))
                host, port = sock.getsockname()[:2]
                self.plan.append(dataclasses.replace(
                    item, host=host, port=port,
                    dualstack=(v6only is False) if family == socket.AF_INET6 else None))
            else:
                bound = _open_listener(item)
                self.bound.append(bound)
                self.plan.append(bound)
        for bound in self.bound:
            logger.info("supervisor %d: listening on %s", os.getpid(), _describe(bound.sock))

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
                for slot in range(self.n):
                    self._spawn(slot)
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
            signal.set_wakeup_fd(old_wakeup)
            for sig, prev in previous.items():
                signal.signal(sig, prev)

    def _close_listeners(self) -> None:
        for bound in self.bound:
            bound.sock.close()
            bound.cleanup()
        self.bound = []

    # --- workers ------------------------------------------------------------------------------

    def _spawn(self, slot: int, *, incoming: bool = False) -> _Worker | None:
        ready_r, ready_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
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
            bound.unlink = None                          # the supervisor removes Unix paths
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
            logger.error("supervisor: worker %d exited with fatal status %d: stopping",
                         worker.pid, code)
            self.exit_status = code
            self._drain(None)
            return
        logger.warning("supervisor: worker %d died (%s)", worker.pid, how)
        if self.slots[worker.slot] is worker:
            self.slots[worker.slot] = None
        with contextlib.suppress(ValueError):
            self.rolling.remove(worker.slot)
        quick = time.monotonic() - worker.started < STABLE_UPTIME
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
            if data:
                worker.ready = True
                logger.info("supervisor: worker %d listening", worker.pid)
            os.close(fd)                                 # EOF or ready: done with it
            worker.ready_fd = None
            if data and worker is self.incoming:
                self._incoming_ready(worker)

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
                self._drain(sig)
            elif sig == signal.SIGHUP and not self.draining:
                logger.info("supervisor: SIGHUP, rolling restart of %d worker(s)", self.n)
                self.rolling = collections.deque(range(self.n))

    def _drain(self, sig: int | None) -> None:
        """Stop: on SIGTERM/SIGINT, or (sig None) when a worker exited with a fatal status."""
        if self.draining and sig is None:
            return
        if self.draining:
            logger.warning("supervisor: second %s, aborting open connections",
                           signal.Signals(sig).name)
            for worker in self.workers.values():
                self._kill(worker, signal.SIGQUIT)
            return
        logger.info("supervisor: %s, draining %d worker(s)",
                    "stopping" if sig is None else signal.Signals(sig).name, len(self.workers))
        self.draining = True
        self.restart_at.clear()
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
            self._reap()
            self._handle_signals()
            now = time.monotonic()
            self._advance(now)
            if self.draining and not self.workers:
                logger.info("supervisor: all workers stopped (status %d)", self.exit_status)
                return self.exit_status
            fds = [self.wake_r] + [w.ready_fd for w in self.workers.values()
                                   if w.ready_fd is not None]
            readable, _, _ = select.select(fds, [], [], self._timeout(time.monotonic()))
            if self.wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wake_r, 512):
                        pass
            self._read_ready(readable)


def _describe(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return f"fd {sock.fileno()}"
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == getattr(socket, "AF_INET6", None):
        return f"tcp://[{name[0]}]:{name[1]}"
    if isinstance(name, tuple):
        return f"tcp://{name[0]}:{name[1]}"
    return str(name)

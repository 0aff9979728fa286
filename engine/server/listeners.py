"""Where a server listens: :class:`Listener` (what to open) and :class:`Bound` (what was opened).

A :class:`Listener` describes a TCP address (IPv4, IPv6, dual stack; SO_REUSEADDR,
SO_REUSEPORT, backlog), a Unix socket path (with a file mode), an inherited file descriptor, or
the sockets of systemd socket activation (``LISTEN_FDS``). :func:`bind` opens listeners into
:class:`Bound` sockets: the one type every part of the server (the accept path, the worker
supervisor, ``engine serve``, its reloader) holds a listening socket in. A ``Bound`` knows the
Unix socket file it created and removes it when it closes, unless another server has replaced
the file since. Inherited descriptors are adopted in one place, :meth:`Listener.open`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import socket
import stat
from collections.abc import Iterable
from typing import Any

from .. import tuning

__all__ = [
    "Listener", "Bound", "bind", "open_listener", "describe", "DEFAULT_BACKLOG",
    "SD_LISTEN_FDS_START",
]

DEFAULT_BACKLOG = min(socket.SOMAXCONN, 4096)
SD_LISTEN_FDS_START = 3              # sd_listen_fds(3): the first passed descriptor


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
        :func:`engine.server.serve`). SO_REUSEADDR is on unless ``reuse_address=False``.
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

    def tcp_plan(self) -> tuple[int, Any, bool | None]:
        """(family, sockaddr, v6only) of a TCP listener; v6only None = leave it alone."""
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
        """Create, bind and listen: a non-blocking, close-on-exec listening socket. An ``fd``
        listener adopts the inherited socket (after checking it is a stream socket)."""
        sock = self.bind()
        try:
            sock.listen(self.backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def bind(self) -> socket.socket:
        """Create and bind (no listen()): what :meth:`open` does before listening."""
        if self.kind == "fd":
            return self._adopt_fd()
        if self.kind == "tcp":
            family, sockaddr, v6only = self.tcp_plan()
        elif self.kind == "unix":
            assert self.path is not None
            if not self.path.startswith("\0"):
                _remove_stale_unix_socket(self.path)
            family, sockaddr, v6only = socket.AF_UNIX, self.path, None
        else:
            raise ValueError(f"unknown listener kind {self.kind!r}")
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if self.kind == "tcp":
                if self.reuse_address:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self.reuse_port:
                    tuning.reuse_port(sock)
                if v6only is not None:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
            sock.setblocking(False)
            sock.bind(sockaddr)
            if self.mode is not None and self.path and not self.path.startswith("\0"):
                os.chmod(self.path, self.mode)   # before listen(): no one can connect between
        except tuning.UnsupportedOption:
            sock.close()
            raise ValueError("reuse_port: SO_REUSEPORT is not available on this platform") \
                from None
        except OSError as exc:
            sock.close()
            raise self._failed(exc) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _failed(self, exc: OSError) -> OSError:
        return OSError(exc.errno, f"cannot listen on {self}: {exc.strerror}")

    def _adopt_fd(self) -> socket.socket:
        assert self.fileno is not None
        try:
            sock = socket.socket(fileno=self.fileno)
        except OSError as exc:
            raise self._failed(exc) from None
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise OSError(errno.EPROTOTYPE, f"cannot listen on {self}: not a stream socket")
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), False)
        return sock


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM):
            return True
    except OSError:
        return False


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


class Bound:
    """A listening socket this process opened (or was handed), and what to undo when it closes:
    the Unix socket file it created, if any."""

    __slots__ = ("sock", "backlog", "_path")

    def __init__(self, sock: socket.socket, backlog: int = DEFAULT_BACKLOG,
                 path: str | None = None) -> None:
        self.sock = sock
        self.backlog = backlog
        self._path: tuple[str, int, int] | None = None     # (path, st_dev, st_ino): ours
        if path is not None and not path.startswith("\0"):
            st = os.stat(path)
            self._path = (path, st.st_dev, st.st_ino)

    def __repr__(self) -> str:
        return f"<Bound {describe(self.sock)}>"

    def fileno(self) -> int:
        return self.sock.fileno()

    def describe(self, scheme: str = "tcp") -> str:
        return describe(self.sock, scheme)

    def keep_path(self) -> None:
        """Leave the Unix socket file alone when this copy closes (a forked worker's copy: the
        process that created the file removes it)."""
        self._path = None

    def remove_path(self) -> None:
        """Remove the Unix socket file, if it is still ours (not a successor's) and a socket."""
        if self._path is None:
            return
        path, dev, ino = self._path
        self._path = None
        with contextlib.suppress(OSError):
            st = os.stat(path)
            if (st.st_dev, st.st_ino) == (dev, ino) and stat.S_ISSOCK(st.st_mode):
                os.unlink(path)

    def close(self) -> None:
        """Close the socket and remove its file; harmless when done already."""
        self.sock.close()
        self.remove_path()


ListenerItem = Listener | socket.socket | Bound


def open_listener(item: ListenerItem) -> Bound:
    """A :class:`Bound` for a listener (opened here), a listening socket (used as it is) or a
    ``Bound`` (returned as it is); every one non-blocking."""
    if isinstance(item, Bound):
        item.sock.setblocking(False)
        return item
    if isinstance(item, socket.socket):
        item.setblocking(False)
        return Bound(item, DEFAULT_BACKLOG)
    sock = item.open()
    try:
        return Bound(sock, item.backlog, item.path if item.kind == "unix" else None)
    except BaseException:
        sock.close()
        raise


def bind(items: Iterable[ListenerItem]) -> list[Bound]:
    """Open every listener, or none: on an error the ones opened already are closed again."""
    bound: list[Bound] = []
    try:
        for item in items:
            bound.append(open_listener(item))
    except BaseException:
        for b in bound:
            b.close()
        raise
    return bound


def describe(sock: socket.socket, scheme: str = "tcp") -> str:
    """``http://127.0.0.1:8000``, ``tcp://[::]:8000``, ``unix:/run/app.sock`` ... (``scheme``
    names the protocol spoken on a TCP socket)."""
    try:
        name = sock.getsockname()
    except OSError:
        return f"fd {sock.fileno()}"
    if sock.family == socket.AF_UNIX:
        path = name.decode("latin-1") if isinstance(name, bytes) else name
        return f"unix:{path or '(unnamed)'}"
    if not isinstance(name, tuple):
        return str(name)
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"

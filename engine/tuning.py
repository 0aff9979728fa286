"""engine.tuning: per-socket TCP tuning (Nagle, cork, delayed ACKs, buffers, keepalive).

No server code lives here and nothing here is needed to run the loop: ``import engine`` imports
neither this module nor ``engine.server``. Every function takes a *target*:

* a socket (``socket.socket`` or the ``asyncio.trsock.TransportSocket`` a transport exposes),
* a transport (``transport.get_extra_info('socket')`` is used), or
* a server: an ``asyncio.Server`` or an ``engine.server.ServerHandle`` (anything with
  ``.sockets``); the option is set on each listening socket. On Linux connections accepted later
  inherit options set on the listener (TCP_NODELAY, keepalive, buffer sizes, TCP_NOTSENT_LOWAT);
  other kernels may not, so set per connection there.

TCP options apply to the TCP sockets of the target and leave the others (Unix sockets) alone;
the setters return how many sockets they changed. An option this platform does not have raises
:class:`UnsupportedOption`; :func:`capabilities` says beforehand what is there. It is built from
the build probes (``engine._loop.PROBES``) and the option numbers found in the headers
(``engine._loop.SOCKOPTS``), falling back on the running ``socket`` module.

When each one helps (numbers: ``perf/bench_tuning.py``, README "engine.tuning"):

* :func:`nodelay` -- request/response traffic. With Nagle on, the second piece of a response
  written in two waits until the first is acknowledged, and the peer delays that ACK (at least
  40 ms on Linux): every such response costs a delayed-ACK timeout. engine's and asyncio's
  transports already set TCP_NODELAY on every TCP connection; ``nodelay(t, False)`` only suits
  senders of many tiny writes that do not care about latency.
* :func:`cork` -- a response written in pieces over a network: header + body, header +
  ``sendfile``. With TCP_NODELAY every write leaves at once as its own segment (a small header
  segment, then the body); corked, the kernel holds partial segments until the block ends, so
  the response leaves in full-sized segments: fewer packets, and the header rides with the
  first body bytes. Most useful for file serving (header + sendfile cannot be joined in user
  space); a body in memory is cheaper joined (one write, or ``transport.writelines()``, which
  engine sends with one sendmsg). Useless around a single write; costs three system calls,
  which over loopback (packets almost free) is more than it saves.
* :func:`quickack` -- the receiving side of a peer that still uses Nagle: ACK at once instead of
  delaying. Linux clears it again on its own, so set it after each read where it matters.
* :func:`notsent_lowat` -- streaming and bulk to many clients (server-sent events, websockets,
  large downloads): the socket reports writable only while fewer than ``nbytes`` bytes wait
  unsent in the kernel, so data queues in the application, where it can still be dropped,
  replaced or reprioritised, rather than in a deep kernel buffer; less memory per connection.
* :func:`buffer_sizes` -- bulk transfers over long fat paths (raise), or many mostly idle
  connections (lower). Setting a size turns Linux's buffer auto-tuning off for that socket (and
  Linux doubles the value for its bookkeeping): measure before fixing sizes.
* :func:`keepalive` -- long-lived, mostly idle connections: find peers that vanished without a
  FIN (crashed host, dropped NAT mapping) and keep NAT/firewall state alive, with no
  application-level ping.
"""
from __future__ import annotations

import _socket
import errno
import socket
import sys
from asyncio.trsock import TransportSocket
from types import TracebackType
from typing import Any, Protocol

from . import _loop

__all__ = [
    "UnsupportedOption", "capabilities", "nodelay", "cork", "quickack", "notsent_lowat",
    "buffer_sizes", "keepalive", "reuse_port", "tcp_info", "settings",
]


class SocketLike(Protocol):
    """What the functions need of a socket (``socket.socket``, ``TransportSocket``)."""

    @property
    def family(self) -> int: ...
    @property
    def type(self) -> int: ...
    def fileno(self) -> int: ...
    def setsockopt(self, level: int, optname: int, value: int, /) -> None: ...
    def getsockopt(self, level: int, optname: int, buflen: int = ..., /) -> Any: ...


class UnsupportedOption(OSError):
    """The option does not exist on this platform (errno ENOPROTOOPT)."""

    def __init__(self, option: str) -> None:
        super().__init__(errno.ENOPROTOOPT, f"{option} is not available on this platform")
        self.option = option


_TCP = socket.IPPROTO_TCP
_SOL = socket.SOL_SOCKET
_INET = (socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET))
# errors that mean "this connection is already gone" when uncorking after the block
_GONE = frozenset({errno.EBADF, errno.ENOTCONN, errno.EINVAL, errno.ECONNRESET, errno.EPIPE,
                   errno.ENOTSOCK})


def _opt(name: str) -> int | None:
    """The number of a socket option: from the build's headers, else the socket module."""
    value = _loop.SOCKOPTS.get(name)
    if value is None:
        value = getattr(socket, name, None)
    return value


def _probed(probe: str, name: str) -> int:
    """The option's number if the build probe found it, else UnsupportedOption."""
    value = _opt(name) if _loop.PROBES.get(probe) else None
    if value is None:
        raise UnsupportedOption(name)
    return value


def _first_probed(*names: str) -> tuple[str, int] | None:
    """The first of ``names`` (one option under each platform's name) the build probe found."""
    for name in names:
        if _loop.PROBES.get(name.lower()):
            value = _opt(name)
            if value is not None:
                return name, value
    return None


def _cork_option() -> tuple[str, int] | None:
    # TCP_CORK (Linux) or TCP_NOPUSH (BSD, macOS): the same idea under two names
    return _first_probed("TCP_CORK", "TCP_NOPUSH")


def _keepidle_option() -> tuple[str, int] | None:
    # Linux and FreeBSD: TCP_KEEPIDLE; macOS: TCP_KEEPALIVE (seconds before the first probe)
    return _first_probed("TCP_KEEPIDLE", "TCP_KEEPALIVE")


def capabilities() -> dict[str, bool]:
    """Which tuning options this platform (this build, this Python) has.

    Keys: ``nodelay``, ``cork`` (either of ``tcp_cork`` / ``tcp_nopush``), ``quickack``,
    ``notsent_lowat``, ``buffer_sizes``, ``keepalive``, ``keepalive_idle``,
    ``keepalive_interval``, ``keepalive_count``, ``tcp_info`` (and ``tcp_info_segs_out``: the
    segment counter), ``reuse_port``, ``reuse_port_lb`` (FreeBSD's load-balancing variant).
    """
    probes = _loop.PROBES

    def has(probe: str, name: str) -> bool:
        return bool(probes.get(probe)) and _opt(name) is not None

    tcp_info_ok = has("tcp_info", "TCP_INFO") and bool(_loop.TCP_INFO_FIELDS)
    return {
        "nodelay": hasattr(socket, "TCP_NODELAY"),
        "cork": _cork_option() is not None,
        "tcp_cork": has("tcp_cork", "TCP_CORK"),
        "tcp_nopush": has("tcp_nopush", "TCP_NOPUSH"),
        "quickack": has("tcp_quickack", "TCP_QUICKACK"),
        "notsent_lowat": has("tcp_notsent_lowat", "TCP_NOTSENT_LOWAT"),
        "buffer_sizes": hasattr(socket, "SO_SNDBUF") and hasattr(socket, "SO_RCVBUF"),
        "keepalive": hasattr(socket, "SO_KEEPALIVE"),
        "keepalive_idle": _keepidle_option() is not None,
        "keepalive_interval": has("tcp_keepintvl", "TCP_KEEPINTVL"),
        "keepalive_count": has("tcp_keepcnt", "TCP_KEEPCNT"),
        "tcp_info": tcp_info_ok,
        "tcp_info_segs_out": tcp_info_ok and "segs_out" in _loop.TCP_INFO_FIELDS,
        "reuse_port": has("so_reuseport", "SO_REUSEPORT"),
        "reuse_port_lb": has("so_reuseport_lb", "SO_REUSEPORT_LB"),
    }


# --------------------------------------------------------------------------- targets
# cork() sits on the path of every response, so targets are resolved cheaply: a TransportSocket
# is unwrapped to the socket it wraps, and family/type are read from the C-level slots
# (socket.socket's own properties build enum members on every access).

_raw_family = _socket.socket.family.__get__
_raw_type = _socket.socket.type.__get__


def _unwrap(obj: object) -> SocketLike | None:
    """``obj`` as a socket (a TransportSocket's inner socket), or None if it is not one."""
    if isinstance(obj, _socket.socket):
        return obj  # type: ignore[return-value]
    if isinstance(obj, TransportSocket):
        inner = getattr(obj, "_sock", None)
        return inner if isinstance(inner, _socket.socket) else obj  # type: ignore[return-value]
    if all(hasattr(obj, a) for a in ("setsockopt", "getsockopt", "fileno", "family")):
        return obj  # type: ignore[return-value]
    return None


def _connection_socket(target: object) -> SocketLike | None:
    """The socket of a connection target (a socket or a transport); None for anything else."""
    sock = _unwrap(target)
    if sock is not None:
        return sock
    get_extra_info = getattr(target, "get_extra_info", None)
    if get_extra_info is None:
        return None
    wrapped = get_extra_info("socket")
    if wrapped is None:
        raise ValueError(f"{target!r} has no socket (closed, or not a socket transport)")
    return _unwrap(wrapped)


def _sockets(target: object) -> list[SocketLike]:
    """The sockets of a target: a socket, a transport, or a server (its listening sockets)."""
    sock = _connection_socket(target)
    if sock is not None:
        return [sock]
    sockets = getattr(target, "sockets", None)
    if sockets is not None:
        return [s for s in map(_unwrap, sockets) if s is not None]
    raise TypeError(f"expected a socket, a transport or a server, not {type(target).__name__}")


def _is_tcp(sock: SocketLike) -> bool:
    if isinstance(sock, _socket.socket):
        return _raw_family(sock) in _INET and _raw_type(sock) == socket.SOCK_STREAM
    return sock.family in _INET and sock.type == socket.SOCK_STREAM


def _tcp_sockets(target: object) -> list[SocketLike]:
    return [s for s in _sockets(target) if _is_tcp(s)]


def _first_tcp(target: object) -> SocketLike:
    socks = _tcp_sockets(target)
    if not socks:
        raise ValueError(f"{target!r} has no TCP socket")
    return socks[0]


# --------------------------------------------------------------------------- setters

def nodelay(target: object, on: bool = True) -> int:
    """Set TCP_NODELAY (Nagle's algorithm off when ``on``). Returns the sockets changed."""
    socks = _tcp_sockets(target)
    for s in socks:
        s.setsockopt(_TCP, socket.TCP_NODELAY, int(bool(on)))
    return len(socks)


class cork:
    """Hold partial segments while the block runs; send them in full segments when it ends.

    TCP_CORK on Linux, TCP_NOPUSH on BSD/macOS. Uncorks on exit, also when the block raises. ::

        with tuning.cork(transport):
            transport.write(header)
            await loop.sendfile(transport, file)      # or transport.write(body)

    Corking works around ``transport.write()`` because engine's (and asyncio's) transports hand
    data to the kernel inside ``write()`` when nothing is queued; data the kernel did not take
    is sent later, uncorked. Nested blocks on one socket are fine: only the outermost uncorks.
    The target must be a connection (a socket or a transport), not a server.
    """

    __slots__ = ("_sock", "_option")

    def __init__(self, target: object) -> None:
        if _CORK is None:
            raise UnsupportedOption("TCP_CORK/TCP_NOPUSH")
        sock = _connection_socket(target)
        if sock is None:
            raise TypeError("cork() needs a connection: a socket or a transport")
        self._option: int = _CORK
        self._sock: SocketLike | None = sock if _is_tcp(sock) else None

    def __enter__(self) -> None:
        sock = self._sock
        if sock is not None:
            if sock.getsockopt(_TCP, self._option):     # corked by an outer block: its job
                self._sock = None
            else:
                sock.setsockopt(_TCP, self._option, 1)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        sock = self._sock
        if sock is not None:
            self._sock = None
            try:
                sock.setsockopt(_TCP, self._option, 0)    # pushes what is held
            except OSError as err:
                if err.errno not in _GONE:
                    raise


_cork_found = _cork_option()
_CORK: int | None = _cork_found[1] if _cork_found is not None else None


def quickack(target: object, on: bool = True) -> int:
    """Set TCP_QUICKACK: acknowledge at once instead of delaying ACKs (Linux).

    Not permanent: the kernel drops back to delayed ACKs on its own (after the quick-ACK phase);
    set it again after a read where it matters. Returns the sockets changed.
    """
    option = _probed("tcp_quickack", "TCP_QUICKACK")
    socks = _tcp_sockets(target)
    for s in socks:
        s.setsockopt(_TCP, option, int(bool(on)))
    return len(socks)


def reuse_port(target: object, on: bool = True) -> int:
    """Set SO_REUSEPORT (SO_REUSEPORT_LB where the build found it: FreeBSD's load-balancing
    variant) on each TCP socket of ``target``, before ``bind()``: then several processes can
    each bind the same port and the kernel spreads new connections over them. Returns the
    sockets changed."""
    found = _first_probed("SO_REUSEPORT_LB", "SO_REUSEPORT")
    if found is None:
        raise UnsupportedOption("SO_REUSEPORT")
    option = found[1]
    socks = _tcp_sockets(target)
    for s in socks:
        s.setsockopt(_SOL, option, int(bool(on)))
    return len(socks)


def notsent_lowat(target: object, nbytes: int) -> int:
    """Set TCP_NOTSENT_LOWAT: writable only while fewer than ``nbytes`` unsent bytes are queued.

    ``0`` returns to the system default (Linux: ``net.ipv4.tcp_notsent_lowat``, unlimited unless
    tuned). Returns the sockets changed.
    """
    if nbytes < 0:
        raise ValueError("nbytes must be >= 0")
    option = _probed("tcp_notsent_lowat", "TCP_NOTSENT_LOWAT")
    socks = _tcp_sockets(target)
    for s in socks:
        s.setsockopt(_TCP, option, nbytes)
    return len(socks)


def buffer_sizes(target: object, *, send: int | None = None, receive: int | None = None) -> int:
    """Set SO_SNDBUF and/or SO_RCVBUF (bytes) on every stream socket of the target (TCP and Unix).

    Setting a size turns off Linux's auto-tuning for that buffer, and Linux reports (and
    reserves) twice the value asked for. Returns the sockets changed.
    """
    for value in (send, receive):
        if value is not None and value <= 0:
            raise ValueError("buffer sizes must be > 0")
    socks = [s for s in _sockets(target) if s.type == socket.SOCK_STREAM]
    for s in socks:
        if send is not None:
            s.setsockopt(_SOL, socket.SO_SNDBUF, send)
        if receive is not None:
            s.setsockopt(_SOL, socket.SO_RCVBUF, receive)
    return len(socks)


def keepalive(target: object, on: bool = True, *, idle: int | None = None,
              interval: int | None = None, count: int | None = None) -> int:
    """Turn TCP keepalive on or off, and set its timing (whole seconds / probes).

    ``idle``: seconds of silence before the first probe; ``interval``: seconds between probes;
    ``count``: unanswered probes before the connection is dropped. A dead peer is found after
    about ``idle + interval * count`` seconds. Returns the sockets changed.
    """
    for name, value in (("idle", idle), ("interval", interval), ("count", count)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0")
    opts: list[tuple[int, int]] = []
    if idle is not None:
        idle_opt = _keepidle_option()
        if idle_opt is None:
            raise UnsupportedOption("TCP_KEEPIDLE")
        opts.append((idle_opt[1], idle))
    if interval is not None:
        opts.append((_probed("tcp_keepintvl", "TCP_KEEPINTVL"), interval))
    if count is not None:
        opts.append((_probed("tcp_keepcnt", "TCP_KEEPCNT"), count))
    socks = _tcp_sockets(target)
    for s in socks:
        s.setsockopt(_SOL, socket.SO_KEEPALIVE, int(bool(on)))
        for option, value in opts:
            s.setsockopt(_TCP, option, value)
    return len(socks)


# --------------------------------------------------------------------------- reading

def tcp_info(target: object) -> dict[str, int]:
    """Counters from TCP_INFO for the (first) TCP socket of the target.

    Only the members the build probes found in ``struct tcp_info`` and that the running kernel
    filled in: ``snd_mss``, ``rtt`` (µs), ``snd_cwnd`` (segments), ``total_retrans``,
    ``bytes_acked``, ``segs_out`` (segments sent, retransmissions and pure ACKs included),
    ``data_segs_out`` (segments that carried data), ``notsent_bytes``.
    """
    option = _probed("tcp_info", "TCP_INFO")
    fields = _loop.TCP_INFO_FIELDS
    size = max((off + n for off, n in fields.values()), default=0)
    if not size:
        raise UnsupportedOption("TCP_INFO")
    raw = _first_tcp(target).getsockopt(_TCP, option, size)
    out: dict[str, int] = {}
    for name, (off, n) in fields.items():
        if off + n <= len(raw):                 # an older kernel fills in a shorter struct
            out[name] = int.from_bytes(raw[off:off + n], sys.byteorder)
    return out


def settings(target: object) -> dict[str, int]:
    """Current values of the options above for the (first) socket of the target.

    TCP options are read only from a TCP socket, and only those the platform has.
    """
    socks = _sockets(target)
    if not socks:
        raise ValueError(f"{target!r} has no socket")
    s = socks[0]
    out = {"send_buffer": s.getsockopt(_SOL, socket.SO_SNDBUF),
           "receive_buffer": s.getsockopt(_SOL, socket.SO_RCVBUF)}
    if not _is_tcp(s):
        return out
    out["nodelay"] = s.getsockopt(_TCP, socket.TCP_NODELAY)
    out["keepalive"] = s.getsockopt(_SOL, socket.SO_KEEPALIVE)
    cork_opt = _cork_option()
    if cork_opt is not None:
        out["cork"] = s.getsockopt(_TCP, cork_opt[1])
    idle_opt = _keepidle_option()
    if idle_opt is not None:
        out["keepalive_idle"] = s.getsockopt(_TCP, idle_opt[1])
    for key, probe, name in (("keepalive_interval", "tcp_keepintvl", "TCP_KEEPINTVL"),
                             ("keepalive_count", "tcp_keepcnt", "TCP_KEEPCNT"),
                             ("notsent_lowat", "tcp_notsent_lowat", "TCP_NOTSENT_LOWAT"),
                             ("quickack", "tcp_quickack", "TCP_QUICKACK")):
        value = _opt(name)
        if _loop.PROBES.get(probe) and value is not None:
            out[key] = s.getsockopt(_TCP, value)
    return out

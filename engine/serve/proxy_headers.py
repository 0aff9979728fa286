"""ASGI middleware: the client address and scheme from a trusted proxy's X-Forwarded-* headers.

Behind a reverse proxy the connection's peer is the proxy. When that peer is trusted
(``forwarded_allow_ips``: IP addresses, networks such as ``10.0.0.0/8``, or ``*`` for any peer;
``engine serve`` defaults to ``$FORWARDED_ALLOW_IPS`` or ``127.0.0.1``), the middleware rewrites
the ``http`` and ``websocket`` scopes:

* ``client``: from ``X-Forwarded-For``, read from the right (the entry the nearest proxy added)
  past every trusted proxy address; the first untrusted entry is the client (port 0: unknown).
  If every entry is trusted, the leftmost one is taken. Entries on the left of the first
  untrusted one can be written by anyone and are never used.
* ``scheme``: from ``X-Forwarded-Proto`` (its last entry): ``http``/``https`` for HTTP,
  ``ws``/``wss`` for WebSockets; other values are ignored.

Headers from an untrusted peer are ignored. A peer without an address (a Unix socket) is
trusted only with ``*``; the IPv4 peers of a dual-stack listener (``::ffff:a.b.c.d``) are
matched as IPv4. The scope is changed in place and the app's own coroutine is
returned, so the middleware adds no coroutine frame per request.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Iterable, Sequence

from .asgi_types import ASGIApp, Receive, Scope, Send

__all__ = ["ProxyHeadersMiddleware", "TrustedHosts"]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


class TrustedHosts:
    """A set of trusted proxy addresses: literal IPs, networks, or ``*`` (everyone)."""

    def __init__(self, trusted: str | Iterable[str]) -> None:
        items = ([t.strip() for t in trusted.split(",")] if isinstance(trusted, str)
                 else [t.strip() for t in trusted])
        self.always = "*" in items
        self.addresses: set[str] = set()
        self.networks: list[_IPNetwork] = []
        for item in items:
            if not item or item == "*":
                continue
            try:
                if "/" in item:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    ip = ipaddress.ip_address(item)
                    self.addresses.add(str(ip))
                    if ip.version == 4:            # as a dual-stack listener reports it
                        self.addresses.add(f"::ffff:{ip}")
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {item!r} is not an IP address or "
                                 "network") from None

    def __contains__(self, host: object) -> bool:
        if self.always:
            return True
        if not isinstance(host, str):
            return False
        if host in self.addresses:
            return True
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return any(ip in net or ip.ipv4_mapped in net for net in self.networks)
        return any(ip in net for net in self.networks)

    def client_from(self, forwarded_for: Sequence[str]) -> str | None:
        """The client of an X-Forwarded-For chain (see the module docstring)."""
        for entry in reversed(forwarded_for):
            if entry not in self:
                return entry
        return forwarded_for[0] if forwarded_for else None


def _host_of(entry: str) -> str:
    """An X-Forwarded-For entry without a port: ``1.2.3.4:80`` -> ``1.2.3.4``,
    ``[::1]:80`` -> ``::1``; a bare IPv6 address stays as it is."""
    entry = entry.strip()
    if entry.startswith("["):
        end = entry.find("]")
        return entry[1:end] if end > 0 else entry
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


class ProxyHeadersMiddleware:
    """Wraps an ASGI app; see the module docstring."""

    def __init__(self, app: ASGIApp, trusted_hosts: str | Iterable[str] = "127.0.0.1") -> None:
        self.app = app
        self.trusted = TrustedHosts(trusted_hosts)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        kind = scope["type"]
        if (kind == "http" or kind == "websocket") and self.trusts(scope.get("client")):
            self.rewrite(scope, kind)
        return self.app(scope, receive, send)

    def trusts(self, client: Sequence[object] | None) -> bool:
        """Whether a scope's ``client`` (None: a peer without an address) is a trusted proxy.
        engine serve's HTTP/1.1 protocol asks this once per connection and does the
        middleware's work itself (see engine.serve.protocols.http)."""
        trusted = self.trusted
        if client is None:
            return trusted.always
        return bool(client[0] in trusted.addresses or trusted.always
                    or (trusted.networks and client[0] in trusted))

    def rewrite(self, scope: Scope, kind: str) -> None:
        """Rewrite ``client`` and ``scheme`` of a scope from a trusted peer."""
        proto: bytes | None = None
        forwarded: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-proto":
                proto = value
            elif name == b"x-forwarded-for":
                forwarded.append(value)
        if proto is not None:
            last = proto.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            scheme = (_WS_SCHEMES if kind == "websocket" else _HTTP_SCHEMES).get(last)
            if scheme is not None:
                scope["scheme"] = scheme
        if forwarded:
            entries = [_host_of(e) for e in b",".join(forwarded).decode("latin-1").split(",")]
            entries = [e for e in entries if e]
            host = self.trusted.client_from(entries)
            if host is not None:
                scope["client"] = (host, 0)

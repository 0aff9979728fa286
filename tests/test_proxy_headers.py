"""engine.serve.proxy_headers.ProxyHeadersMiddleware: which peers are trusted, which X-Forwarded-For
entry becomes the client, X-Forwarded-Proto for HTTP and WebSocket scopes."""
import asyncio

import pytest

import engine
from engine.serve.proxy_headers import ProxyHeadersMiddleware, TrustedHosts


def scope_for(client, headers=(), kind="http", scheme=None):
    return {"type": kind, "client": client,
            "scheme": scheme or ("http" if kind == "http" else "ws"),
            "headers": [(k.encode(), v.encode()) for k, v in headers]}


def through(trusted, scope):
    """The scope the wrapped app sees."""
    seen = []

    async def app(scope, receive, send):
        seen.append(dict(scope))

    async def nothing():
        return {}

    async def ignore(message):
        pass

    engine.run(asyncio.wait_for(ProxyHeadersMiddleware(app, trusted)(scope, nothing, ignore),
                                30))
    return seen[0]


XFF = ("x-forwarded-for", "203.0.113.7")
HTTPS = ("x-forwarded-proto", "https")


def test_trusted_peer_rewrites_client_and_scheme():
    s = through("127.0.0.1", scope_for(("127.0.0.1", 4000), [XFF, HTTPS]))
    assert s["client"] == ("203.0.113.7", 0) and s["scheme"] == "https"


def test_untrusted_peer_changes_nothing():
    s = through("127.0.0.1", scope_for(("198.51.100.1", 4000), [XFF, HTTPS]))
    assert s["client"] == ("198.51.100.1", 4000) and s["scheme"] == "http"


def test_star_trusts_everyone_even_unix_sockets():
    s = through("*", scope_for(("198.51.100.1", 4000), [XFF]))
    assert s["client"] == ("203.0.113.7", 0)
    s = through("*", scope_for(None, [XFF]))                     # a Unix socket peer
    assert s["client"] == ("203.0.113.7", 0)
    s = through("127.0.0.1", scope_for(None, [XFF]))
    assert s["client"] is None


def test_networks_and_lists():
    trusted = ["10.0.0.0/8", "192.0.2.1", "::1"]
    assert through(trusted, scope_for(("10.1.2.3", 1), [XFF]))["client"][0] == "203.0.113.7"
    assert through(trusted, scope_for(("::1", 1), [XFF]))["client"][0] == "203.0.113.7"
    assert through(trusted, scope_for(("11.0.0.1", 1), [XFF]))["client"][0] == "11.0.0.1"
    assert through("10.0.0.0/8, 192.0.2.1", scope_for(("192.0.2.1", 1), [XFF]))[
        "client"][0] == "203.0.113.7"


def test_chain_takes_the_first_untrusted_entry_from_the_right():
    chain = ("x-forwarded-for", "1.1.1.1, 203.0.113.7, 10.0.0.5, 10.0.0.6")
    s = through("127.0.0.1, 10.0.0.0/8", scope_for(("127.0.0.1", 1), [chain]))
    assert s["client"] == ("203.0.113.7", 0)       # 1.1.1.1 could be forged by the client
    all_trusted = ("x-forwarded-for", "10.0.0.1, 10.0.0.2")
    s = through("127.0.0.1, 10.0.0.0/8", scope_for(("127.0.0.1", 1), [all_trusted]))
    assert s["client"] == ("10.0.0.1", 0)


def test_several_header_lines_ports_and_ipv6():
    lines = [("x-forwarded-for", "203.0.113.7:5555"), ("x-forwarded-for", "[2001:db8::1]:80")]
    s = through("127.0.0.1", scope_for(("127.0.0.1", 1), lines))
    assert s["client"] == ("2001:db8::1", 0)
    s = through("127.0.0.1", scope_for(("127.0.0.1", 1), [("x-forwarded-for", "2001:db8::2")]))
    assert s["client"] == ("2001:db8::2", 0)
    s = through("127.0.0.1", scope_for(("127.0.0.1", 1), [("x-forwarded-for", " , ")]))
    assert s["client"] == ("127.0.0.1", 1)


@pytest.mark.parametrize("kind, proto, expected", [
    ("http", "https", "https"), ("http", "http", "http"), ("http", "HTTPS", "https"),
    ("http", "wss", "https"), ("websocket", "https", "wss"), ("websocket", "http", "ws"),
    ("websocket", "wss", "wss"), ("http", "http, https", "https"),
    ("http", "gopher", "http"), ("websocket", "ftp", "ws"),
])
def test_scheme_mapping(kind, proto, expected):
    s = through("127.0.0.1", scope_for(("127.0.0.1", 1), [("x-forwarded-proto", proto)], kind))
    assert s["scheme"] == expected


def test_no_headers_no_change_and_lifespan_untouched():
    s = through("127.0.0.1", scope_for(("127.0.0.1", 1)))
    assert s["client"] == ("127.0.0.1", 1) and s["scheme"] == "http"
    lifespan = {"type": "lifespan", "state": {}}
    assert through("*", lifespan) == {"type": "lifespan", "state": {}}


def test_middleware_returns_the_apps_own_awaitable():
    marker = object()

    def app(scope, receive, send):
        return marker

    assert ProxyHeadersMiddleware(app)(scope_for(("127.0.0.1", 1)), None, None) is marker


def test_bad_entries_are_rejected():
    with pytest.raises(ValueError, match="not an IP address"):
        TrustedHosts("localhost")
    hosts = TrustedHosts(["127.0.0.1", "fd00::/8"])
    assert "127.0.0.1" in hosts and "fd00::5" in hosts and "fe80::1" not in hosts
    assert "not-an-ip" not in hosts and None not in hosts


def test_ipv4_peers_of_a_dual_stack_listener():
    assert "::ffff:127.0.0.1" in TrustedHosts("127.0.0.1")
    assert "::ffff:10.1.1.1" in TrustedHosts("10.0.0.0/8")
    assert "::ffff:11.1.1.1" not in TrustedHosts("10.0.0.0/8")

"""engine.tuning: options really set (read back with getsockopt), cork really coalescing
(segments counted by the kernel, TCP_INFO tcpi_data_segs_out), targets of every kind.

Socket-level tests use blocking loopback sockets; transport tests are a mixin run on engine's
loop and on asyncio's own loop. Every read has a timeout; servers listen on 127.0.0.1 only.
"""
from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from loop_case import LoopCase

import engine
from engine import _loop, tuning
from engine.server import Listener, start

TIMEOUT = 10.0
CAPS = tuning.capabilities()


@pytest.fixture
def pair():
    """A connected loopback TCP pair (server side, client side) and its listener."""
    ls = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(ls.getsockname(), timeout=TIMEOUT)
    s, _ = ls.accept()
    s.settimeout(TIMEOUT)
    yield s, c, ls
    for x in (s, c, ls):
        x.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        assert chunk, "peer closed"
        out += chunk
    return out


# =========================================================================== capabilities

def test_capabilities_follow_the_build_probes():
    assert set(CAPS) >= {"nodelay", "cork", "quickack", "notsent_lowat", "buffer_sizes",
                         "keepalive", "keepalive_idle", "keepalive_interval", "keepalive_count",
                         "tcp_info", "reuse_port"}
    assert all(isinstance(v, bool) for v in CAPS.values())
    assert CAPS["cork"] == (CAPS["tcp_cork"] or CAPS["tcp_nopush"])
    assert CAPS["tcp_cork"] == (_loop.PROBES["tcp_cork"] and "TCP_CORK" in _loop.SOCKOPTS)
    assert CAPS["quickack"] == _loop.PROBES["tcp_quickack"]
    assert CAPS["notsent_lowat"] == _loop.PROBES["tcp_notsent_lowat"]
    assert CAPS["keepalive_idle"] == (_loop.PROBES["tcp_keepidle"]
                                      or _loop.PROBES["tcp_keepalive"])


def test_option_numbers_from_the_build_match_the_socket_module():
    shared = [n for n in _loop.SOCKOPTS if hasattr(socket, n)]
    assert shared, "no option both in the build and the socket module"
    for name in shared:
        assert _loop.SOCKOPTS[name] == getattr(socket, name), name


def test_every_capability_works_or_raises(pair):
    s, _, _ = pair
    def cork():
        with tuning.cork(s):
            pass

    checks = {
        "cork": cork,
        "quickack": lambda: tuning.quickack(s),
        "notsent_lowat": lambda: tuning.notsent_lowat(s, 4096),
        "keepalive_idle": lambda: tuning.keepalive(s, idle=30),
        "keepalive_interval": lambda: tuning.keepalive(s, interval=5),
        "keepalive_count": lambda: tuning.keepalive(s, count=4),
        "tcp_info": lambda: tuning.tcp_info(s),
    }
    for cap, call in checks.items():
        if CAPS[cap]:
            call()
        else:
            with pytest.raises(tuning.UnsupportedOption):
                call()


def test_missing_probe_means_unsupported(pair, monkeypatch):
    s, _, _ = pair
    monkeypatch.setitem(_loop.PROBES, "tcp_quickack", False)
    monkeypatch.setitem(_loop.PROBES, "tcp_cork", False)
    monkeypatch.setitem(_loop.PROBES, "tcp_nopush", False)
    caps = tuning.capabilities()
    assert not caps["quickack"] and not caps["cork"]
    with pytest.raises(tuning.UnsupportedOption) as info:
        tuning.quickack(s)
    assert info.value.option == "TCP_QUICKACK" and isinstance(info.value, OSError)
    monkeypatch.setattr(tuning, "_CORK", None)          # cork's option is looked up at import
    with pytest.raises(tuning.UnsupportedOption):
        with tuning.cork(s):
            pass


def test_reuse_port_sets_the_probed_option_or_is_unsupported(monkeypatch):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        if CAPS["reuse_port"] or CAPS["reuse_port_lb"]:
            assert tuning.reuse_port(s) == 1
            name = "SO_REUSEPORT_LB" if CAPS["reuse_port_lb"] else "SO_REUSEPORT"
            assert s.getsockopt(socket.SOL_SOCKET, _loop.SOCKOPTS.get(name, getattr(
                socket, name, -1))) == 1
            assert tuning.reuse_port(s, False) == 1
            assert s.getsockopt(socket.SOL_SOCKET, _loop.SOCKOPTS.get(name, getattr(
                socket, name, -1))) == 0
        monkeypatch.setitem(_loop.PROBES, "so_reuseport", False)
        monkeypatch.setitem(_loop.PROBES, "so_reuseport_lb", False)
        with pytest.raises(tuning.UnsupportedOption):
            tuning.reuse_port(s)
    # a listener asking for it then fails with a clear error, before binding anything
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        Listener.tcp("127.0.0.1", 0, reuse_port=True).open()


# =========================================================================== setters, read back

def test_nodelay_on_and_off(pair):
    s, _, _ = pair
    assert tuning.nodelay(s, False) == 1
    assert tuning.settings(s)["nodelay"] == 0
    assert tuning.nodelay(s) == 1
    assert tuning.settings(s)["nodelay"] == 1


@pytest.mark.skipif(not CAPS["keepalive_interval"], reason="platform lacks TCP_KEEPINTVL")
def test_keepalive_timing(pair):
    s, _, _ = pair
    tuning.keepalive(s, idle=61, interval=7, count=3)
    got = tuning.settings(s)
    assert (got["keepalive"], got["keepalive_idle"], got["keepalive_interval"],
            got["keepalive_count"]) == (1, 61, 7, 3)
    tuning.keepalive(s, False)
    assert tuning.settings(s)["keepalive"] == 0
    with pytest.raises(ValueError):
        tuning.keepalive(s, idle=0)


def test_buffer_sizes(pair):
    s, _, _ = pair
    before = tuning.settings(s)
    assert tuning.buffer_sizes(s, send=32768) == 1
    after = tuning.settings(s)
    # Linux reports twice what was asked for (its bookkeeping overhead); others report it as is
    assert after["send_buffer"] in (32768, 65536)
    assert after["receive_buffer"] == before["receive_buffer"]
    tuning.buffer_sizes(s, receive=49152)
    assert tuning.settings(s)["receive_buffer"] in (49152, 98304)
    with pytest.raises(ValueError):
        tuning.buffer_sizes(s, send=0)


@pytest.mark.skipif(not CAPS["notsent_lowat"], reason="platform lacks TCP_NOTSENT_LOWAT")
def test_notsent_lowat(pair):
    s, _, _ = pair
    tuning.notsent_lowat(s, 16384)
    assert tuning.settings(s)["notsent_lowat"] == 16384
    with pytest.raises(ValueError):
        tuning.notsent_lowat(s, -1)


@pytest.mark.skipif(not CAPS["quickack"], reason="platform lacks TCP_QUICKACK")
def test_quickack(pair):
    s, _, _ = pair
    assert tuning.quickack(s, True) == 1
    assert tuning.settings(s)["quickack"] == 1
    tuning.quickack(s, False)
    assert tuning.settings(s)["quickack"] == 0


def test_tcp_options_leave_unix_sockets_alone():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert tuning.nodelay(a) == 0
        assert tuning.keepalive(a, idle=30) == 0
        assert tuning.buffer_sizes(a, send=65536) == 1         # buffers exist on Unix sockets
        assert set(tuning.settings(a)) == {"send_buffer", "receive_buffer"}
        with tuning.cork(a):                                    # nothing to cork: a no-op
            a.send(b"x")
        assert b.recv(1) == b"x"
    finally:
        a.close()
        b.close()


def test_bad_targets():
    with pytest.raises(TypeError):
        tuning.nodelay(object())
    with pytest.raises(TypeError):
        tuning.nodelay(3)


def test_listener_options_are_inherited_by_accepted_connections():
    ls = socket.create_server(("127.0.0.1", 0))
    try:
        tuning.keepalive(ls, idle=77)
        tuning.buffer_sizes(ls, send=65536)
        if CAPS["notsent_lowat"]:
            tuning.notsent_lowat(ls, 12345)
        c = socket.create_connection(ls.getsockname(), timeout=TIMEOUT)
        s, _ = ls.accept()
        got = tuning.settings(s)
        assert got["keepalive"] == 1 and got["keepalive_idle"] == 77
        assert got["send_buffer"] == tuning.settings(ls)["send_buffer"]
        if CAPS["notsent_lowat"]:
            assert got["notsent_lowat"] == 12345
        s.close()
        c.close()
    finally:
        ls.close()


# =========================================================================== tcp_info and cork

@pytest.mark.skipif(not CAPS["tcp_info_segs_out"], reason="no tcpi_segs_out in struct tcp_info")
def test_tcp_info_counts_what_is_sent(pair):
    s, c, _ = pair
    before = tuning.tcp_info(s)
    assert {"segs_out", "snd_mss"} <= set(before)
    for _ in range(5):
        s.sendall(b"x" * 100)
        _recv_exactly(c, 100)
    after = tuning.tcp_info(s)
    assert after["segs_out"] - before["segs_out"] >= 5
    if "data_segs_out" in after:
        assert after["data_segs_out"] - before["data_segs_out"] == 5
    if "bytes_acked" in after:
        deadline = time.monotonic() + TIMEOUT
        while tuning.tcp_info(s)["bytes_acked"] - before["bytes_acked"] < 500:
            assert time.monotonic() < deadline, "ACKs never counted"
            time.sleep(0.01)


def _segments(sock) -> int:
    info = tuning.tcp_info(sock)
    return info.get("data_segs_out", info["segs_out"])


def _responses(s, c, n: int, corked: bool, header=b"H" * 120, body=b"B" * 900) -> int:
    """Data segments the server side sent for n two-write responses."""
    before = _segments(s)
    for _ in range(n):
        if corked:
            with tuning.cork(s):
                s.send(header)
                s.send(body)
        else:
            s.send(header)
            s.send(body)
        _recv_exactly(c, len(header) + len(body))      # request/response: one at a time
    return _segments(s) - before


@pytest.mark.skipif(not (CAPS["cork"] and CAPS["tcp_info_segs_out"]),
                    reason="needs cork and TCP_INFO segment counters")
def test_cork_coalesces_header_and_body(pair):
    s, c, _ = pair
    tuning.nodelay(s)                                   # what transports do
    n = 50
    plain = _responses(s, c, n, corked=False)
    corked = _responses(s, c, n, corked=True)
    assert corked == n                                  # one segment per response
    assert plain >= 2 * n - n // 10                     # header and body apart, nearly always
    assert tuning.settings(s)["cork"] == 0


@pytest.mark.skipif(not CAPS["cork"], reason="needs TCP_CORK or TCP_NOPUSH")
def test_cork_uncorks_on_error_and_nests(pair):
    s, c, _ = pair
    with pytest.raises(RuntimeError):
        with tuning.cork(s):
            assert tuning.settings(s)["cork"] == 1
            s.send(b"partial")
            raise RuntimeError("handler failed")
    assert tuning.settings(s)["cork"] == 0
    assert _recv_exactly(c, 7) == b"partial"
    with tuning.cork(s):
        with tuning.cork(s):
            pass
        assert tuning.settings(s)["cork"] == 1         # the inner block did not uncork
    assert tuning.settings(s)["cork"] == 0


@pytest.mark.skipif(not CAPS["cork"], reason="needs TCP_CORK or TCP_NOPUSH")
def test_cork_tolerates_a_socket_closed_inside_the_block():
    ls = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(ls.getsockname(), timeout=TIMEOUT)
    s, _ = ls.accept()
    with tuning.cork(s):
        s.close()
    c.close()
    ls.close()


def test_cork_refuses_a_server():
    ls = socket.create_server(("127.0.0.1", 0))

    class FakeServer:
        sockets = (ls,)
    try:
        with pytest.raises(TypeError):
            with tuning.cork(FakeServer()):
                pass
    finally:
        ls.close()


# =========================================================================== transports, servers

class Responder(asyncio.Protocol):
    """Answers each request line with a header write and a body write, corked or not."""

    corked = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        for _ in range(data.count(b"\n")):
            if self.corked:
                with tuning.cork(self.transport):
                    self.transport.write(b"H" * 120)
                    self.transport.write(b"B" * 900)
            else:
                self.transport.write(b"H" * 120)
                self.transport.write(b"B" * 900)


class TransportTuning(LoopCase):
    timeout = 3 * TIMEOUT

    @pytest.mark.skipif(not (CAPS["cork"] and CAPS["tcp_info_segs_out"]),
                        reason="needs cork and TCP_INFO segment counters")
    def test_cork_around_transport_writes_coalesces(self):
        async def main():
            transports = []

            def factory():
                p = Responder()
                transports.append(p)
                return p
            loop = asyncio.get_running_loop()
            server = await loop.create_server(factory, "127.0.0.1", 0)
            reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname())
            counts = {}
            for corked in (False, True):
                writer.write(b"warm-up\n")
                await asyncio.wait_for(reader.readexactly(1020), TIMEOUT)
                proto = transports[0]
                proto.corked = corked
                before = _segments(proto.transport)
                for _ in range(30):
                    writer.write(b"GET\n")
                    await asyncio.wait_for(reader.readexactly(1020), TIMEOUT)
                counts[corked] = _segments(proto.transport) - before
            writer.close()
            server.close()
            await server.wait_closed()
            ring = getattr(loop, "_ring_stats", lambda: None)()
            return counts, bool(ring and ring["sends"])
        counts, batched = self.run_in_runner(main())
        assert counts[True] == 30
        if batched:
            # io_uring's completion sends: the writes of one iteration leave in one request,
            # corked or not
            assert counts[False] == 30
        else:
            assert counts[False] >= 2 * 30 - 3

    def test_targets_transport_asyncio_server_and_server_handle(self):
        async def main():
            loop = asyncio.get_running_loop()
            server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
            assert tuning.keepalive(server, idle=91) == len(server.sockets)
            assert tuning.settings(server.sockets[0])["keepalive_idle"] == 91
            handle = await start(asyncio.Protocol, [Listener.tcp("127.0.0.1", 0),
                                                    Listener.unix(f"/tmp/eng-t{os.getpid()}")])
            assert tuning.nodelay(handle, False) == 1           # the TCP listener only
            assert tuning.buffer_sizes(handle, receive=65536) == 2
            reader, writer = await asyncio.open_connection(*handle.addresses[0])
            transport = writer.transport
            assert tuning.nodelay(transport, False) == 1
            assert tuning.settings(transport)["nodelay"] == 0
            writer.close()
            await handle.drain(TIMEOUT)
            server.close()
            await server.wait_closed()
        self.run_in_runner(main())


class TestTuningEngineLoop(TransportTuning):
    factory = staticmethod(engine.new_event_loop)


class TestTuningAsyncioLoop(TransportTuning):
    factory = staticmethod(asyncio.new_event_loop)

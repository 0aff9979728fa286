"""engine.server: listeners, the accept limit, graceful drain, worker processes.

In-process tests are a mixin run on engine's loop and on asyncio's own loop. Process tests run
tests/line_server.py (engine.server.serve() around a line protocol) in a subprocess in its own
session, killed at the end whatever happens. Every wait is bounded; servers listen on
127.0.0.1 or Unix sockets only.
"""
from __future__ import annotations

import asyncio
import errno
import json
import math
import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from line_server import LineProtocol
from loop_case import LoopCase

import engine
from engine.server import Listener, ServerHandle, serve, start
from engine.server.workers import RESTART_DELAY_MIN

HERE = Path(__file__).resolve().parent
WAIT = 20.0            # upper bound of any single wait in these tests (never reached when passing)


# =========================================================================== helpers

async def _line(reader: asyncio.StreamReader) -> str:
    return (await asyncio.wait_for(reader.readline(), WAIT)).decode().strip()


async def _request(reader, writer, line: str) -> str:
    writer.write(line.encode() + b"\n")
    return await _line(reader)


def _short_tmpdir() -> str:
    return tempfile.mkdtemp(prefix="eng-", dir="/tmp")      # AF_UNIX paths are short


class Client:
    """Blocking line client with a timeout on every read."""

    def __init__(self, address, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(WAIT)
        self.sock.connect(address)
        self.file = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def line(self) -> str:
        """The next line; '' at EOF (a reset counts as EOF)."""
        try:
            return self.file.readline().decode().strip()
        except ConnectionResetError:
            return ""

    def request(self, line: str) -> str:
        self.send(line)
        return self.line()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class ServerProcess:
    """tests/line_server.py in a subprocess (own session); JSON events read by a thread."""

    def __init__(self, *args: str, env=None, pass_fds=(), launcher=None):
        self.stderr = tempfile.TemporaryFile()
        cmd = [sys.executable, str(HERE / "line_server.py"), *args]
        if launcher is not None:
            cmd = launcher + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr,
                                     cwd=str(HERE), env=env, pass_fds=pass_fds,
                                     start_new_session=True)
        self.events: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            try:
                self.events.put(json.loads(raw))
            except ValueError:
                self.events.put({"event": "garbage", "line": raw.decode(errors="replace")})
        self.events.put({"event": "eof"})

    def event(self, name: str, timeout: float = WAIT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name!r} event in {timeout}s; seen {self.seen}; "
                                     f"stderr: {self.log()}")
            try:
                ev = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(ev)
            if ev["event"] == name:
                return ev
            if ev["event"] == "eof":
                raise AssertionError(f"server exited before {name!r}; seen {self.seen}; "
                                     f"stderr: {self.log()}")

    def remaining(self) -> list[dict]:
        """Every event not consumed yet, once the process has exited and stdout is drained."""
        self._reader.join(WAIT)
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

    def log(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"server did not exit in {timeout}s; stderr: {self.log()}") from None

    def cleanup(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)        # the session we created, nothing else
        except ProcessLookupError:
            pass
        self.proc.wait(WAIT)
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def spawn():
    started: list[ServerProcess] = []

    def _spawn(*args: str, **kw) -> ServerProcess:
        sp = ServerProcess(*args, **kw)
        started.append(sp)
        return sp

    yield _spawn
    for sp in started:
        sp.cleanup()


def _gone(pid: int) -> bool:
    """True once pid has exited and been reaped (a zombie counts as gone too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _until(predicate, what: str, timeout: float = WAIT, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# =========================================================================== in-process, mixin

class ServerBehaviour(LoopCase):
    timeout = 3 * WAIT

    def test_tcp_listener_serves_then_close_refuses(self):
        async def main():
            handle = await start(LineProtocol, [Listener.tcp("127.0.0.1", 0)])
            assert isinstance(handle, ServerHandle) and handle.is_serving()
            (host, port), = handle.addresses
            assert host == "127.0.0.1" and port > 0
            reader, writer = await asyncio.open_connection(host, port)
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            assert handle.connections == 1 and handle.accepted == 1
            handle.close()
            assert not handle.is_serving() and handle.sockets == ()
            with pytest.raises(ConnectionRefusedError):
                await asyncio.open_connection(host, port)
            # the open connection is not touched by close()
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            writer.close()
            await asyncio.wait_for(handle.wait_closed(), WAIT)
            assert handle.connections == 0
        self.run_in_runner(main())

    def test_unix_listener_mode_stale_file_and_cleanup(self):
        d = _short_tmpdir()
        path = os.path.join(d, "s.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)                        # a socket file no one listens on
        stale.close()

        async def main():
            handle = await start(LineProtocol, [Listener.unix(path, mode=0o600)])
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            reader, writer = await asyncio.open_unix_connection(path)
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            # a live server's path is refused, not stolen
            with pytest.raises(OSError) as info:
                await start(LineProtocol, [Listener.unix(path)])
            assert info.value.errno == errno.EADDRINUSE
            writer.close()
            await handle.drain(WAIT)
            assert not os.path.exists(path)
        try:
            self.run_in_runner(main())
        finally:
            if os.path.exists(path):
                os.unlink(path)
            os.rmdir(d)

    def test_unix_listener_refuses_a_regular_file(self):
        d = _short_tmpdir()
        path = os.path.join(d, "f")
        Path(path).write_text("data")

        async def main():
            with pytest.raises(OSError) as info:
                await start(LineProtocol, [Listener.unix(path)])
            assert info.value.errno == errno.EADDRINUSE
        try:
            self.run_in_runner(main())
            assert Path(path).read_text() == "data"
        finally:
            os.unlink(path)
            os.rmdir(d)

    def test_fd_listener_serves_an_inherited_socket(self):
        sock = socket.create_server(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        fd = os.dup(sock.fileno())
        sock.close()

        async def main():
            handle = await start(LineProtocol, [Listener.fd(fd)])
            assert handle.sockets[0].fileno() == fd
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            writer.close()
            await handle.drain(WAIT)
        self.run_in_runner(main())
        with pytest.raises(OSError):
            os.fstat(fd)                        # the server owned it and closed it

    def test_plain_socket_listener(self):
        sock = socket.create_server(("127.0.0.1", 0))

        async def main():
            handle = await start(LineProtocol, [sock])
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            writer.close()
            await handle.drain(WAIT)
        self.run_in_runner(main())
        assert sock.fileno() == -1

    @pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 in this Python build")
    def test_dualstack_ipv6_listener_accepts_ipv4(self):
        # the IPv4-mapped loopback keeps the test on 127.0.0.1
        async def main():
            handle = await start(LineProtocol, [Listener.tcp("::ffff:127.0.0.1", 0,
                                                             dualstack=True)])
            sock = handle.sockets[0]
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
            port = handle.addresses[0][1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await _request(reader, writer, "PING") == f"PONG {os.getpid()}"
            writer.close()
            await handle.drain(WAIT)
            # IPv6-only cannot hold an IPv4-mapped address
            with pytest.raises(OSError):
                await start(LineProtocol, [Listener.tcp("::ffff:127.0.0.1", 0, dualstack=False)])
        self.run_in_runner(main())

    def test_max_connections_pauses_accepting_and_resumes(self):
        async def main():
            handle = await start(LineProtocol, [Listener.tcp("127.0.0.1", 0)], max_connections=2)
            addr = handle.addresses[0]
            conns = []
            for _ in range(2):
                r, w = await asyncio.open_connection(*addr)
                assert await _request(r, w, "PING") == f"PONG {os.getpid()}"
                conns.append((r, w))
            assert handle.connections == 2 and not handle.is_serving()
            # a third connection completes in the kernel but is not accepted
            r3, w3 = await asyncio.open_connection(*addr)
            w3.write(b"PING\n")
            for _ in range(20):
                await asyncio.sleep(0.01)        # give the loop every chance to (wrongly) accept
            assert handle.connections == 2 and handle.accepted == 2
            assert not r3._buffer                # no answer yet (StreamReader's buffer)
            conns[0][1].close()                  # one leaves: accepting resumes
            assert await _line(r3) == f"PONG {os.getpid()}"
            assert handle.accepted == 3 and handle.connections == 2
            w3.close()
            conns[1][1].close()
            await handle.drain(WAIT)
            assert handle.rejected == 0
        self.run_in_runner(main())

    def test_max_connections_is_never_exceeded_by_a_burst(self):
        async def main():
            limit = 3
            handle = await start(LineProtocol, [Listener.tcp("127.0.0.1", 0)],
                                 max_connections=limit)
            addr = handle.addresses[0]
            peak = 0

            async def one():
                nonlocal peak
                r, w = await asyncio.open_connection(*addr)
                peak = max(peak, handle.connections)
                w.write(b"SLOW x 0.05\n")
                try:
                    await asyncio.wait_for(r.readline(), 0.3)
                except (TimeoutError, ConnectionError):
                    pass
                peak = max(peak, handle.connections)
                w.close()
            await asyncio.gather(*(one() for _ in range(12)))
            assert 0 < peak <= limit
            assert handle.accepted + handle.rejected >= limit
            await handle.drain(WAIT)
        self.run_in_runner(main())

    def test_drain_contract(self):
        """shutdown() on each connection, in-flight finishes, idle closes, the rest aborted."""
        class NoShutdown(asyncio.Protocol):
            lost = None

            def connection_made(self, transport):
                self.transport = transport

            def connection_lost(self, exc):
                NoShutdown.lost = True

        protocols: list = []

        def factory():
            # the second connection gets a protocol without shutdown()
            p = NoShutdown() if len(protocols) == 1 else LineProtocol()
            protocols.append(p)
            return p

        async def main():
            handle = await start(factory, [Listener.tcp("127.0.0.1", 0)])
            addr = handle.addresses[0]
            busy_r, busy_w = await asyncio.open_connection(*addr)
            plain_r, plain_w = await asyncio.open_connection(*addr)
            idle_r, idle_w = await asyncio.open_connection(*addr)
            assert await _request(idle_r, idle_w, "PING") == f"PONG {os.getpid()}"
            assert await _request(busy_r, busy_w, "SLOW 1 0.3") == "ACCEPTED 1"
            assert handle.connections == 3
            aborted = await handle.drain(1.0)
            # in flight: answered, then closed by the protocol
            assert await _line(busy_r) == f"DONE 1 {os.getpid()}"
            assert await _line(busy_r) == ""
            # idle: closed at once
            assert await _line(idle_r) == ""
            # no shutdown(): aborted when the timeout passed
            assert aborted == 1 and NoShutdown.lost
            assert handle.connections == 0
            assert [p.shutdown_calls for p in protocols if isinstance(p, LineProtocol)] == [1, 1]
            for w in (busy_w, plain_w, idle_w):
                w.close()
            await asyncio.wait_for(handle.wait_closed(), WAIT)
        self.run_in_runner(main())

    def test_drain_asks_the_current_protocol_after_set_protocol(self):
        upgraded: list = []

        class Upgrading(asyncio.Protocol):
            def connection_made(self, transport):
                new = LineProtocol()
                upgraded.append(new)
                transport.set_protocol(new)
                new.connection_made(transport)

            def shutdown(self):                    # must not be called: it is not current
                raise AssertionError("shutdown() on a protocol that was switched away")

        async def main():
            handle = await start(Upgrading, [Listener.tcp("127.0.0.1", 0)])
            r, w = await asyncio.open_connection(*handle.addresses[0])
            assert await _request(r, w, "PING") == f"PONG {os.getpid()}"
            assert await handle.drain(WAIT) == 0
            assert upgraded[0].shutdown_calls == 1
            assert await _line(r) == ""
            w.close()
        self.run_in_runner(main())

    def test_buffered_protocol_is_served_through_the_handoff(self):
        got = bytearray()

        class Buffered(asyncio.BufferedProtocol):
            def connection_made(self, transport):
                self.transport = transport
                self.buf = bytearray(64)

            def get_buffer(self, sizehint):
                return self.buf

            def buffer_updated(self, nbytes):
                got.extend(self.buf[:nbytes])
                if got.endswith(b"\n"):
                    self.transport.write(b"got %d\n" % len(got))

        async def main():
            handle = await start(Buffered, [Listener.tcp("127.0.0.1", 0)])
            r, w = await asyncio.open_connection(*handle.addresses[0])
            assert await _request(r, w, "x" * 200) == "got 201"
            w.close()
            await handle.drain(WAIT)
        self.run_in_runner(main())

    def test_abort_closes_everything_now(self):
        async def main():
            handle = await start(LineProtocol, [Listener.tcp("127.0.0.1", 0)])
            r, w = await asyncio.open_connection(*handle.addresses[0])
            assert await _request(r, w, "SLOW 1 30") == "ACCEPTED 1"
            assert handle.abort() == 1
            assert await _line(r) == ""
            await asyncio.wait_for(handle.wait_closed(), WAIT)
            w.close()
        self.run_in_runner(main())

    def test_context_manager_drains(self):
        async def main():
            async with await start(LineProtocol, [Listener.tcp("127.0.0.1", 0)]) as handle:
                r, w = await asyncio.open_connection(*handle.addresses[0])
                assert await _request(r, w, "PING") == f"PONG {os.getpid()}"
            assert handle.connections == 0 and not handle.is_serving()
            assert await _line(r) == ""
            w.close()
        self.run_in_runner(main())


class TestServerEngineLoop(ServerBehaviour):
    factory = staticmethod(engine.new_event_loop)


class TestServerAsyncioLoop(ServerBehaviour):
    factory = staticmethod(asyncio.new_event_loop)


# =========================================================================== listeners (no loop)

def test_tcp_listener_plans():
    fam, addr, v6only = Listener.tcp("127.0.0.1", 8080).tcp_plan()
    assert (fam, addr, v6only) == (socket.AF_INET, ("127.0.0.1", 8080), None)
    with pytest.raises(ValueError):
        Listener.tcp("127.0.0.1", 8080, dualstack=True).tcp_plan()
    with pytest.raises(ValueError):
        Listener.tcp("127.0.0.1", 70000)
    fam, addr, v6only = Listener.tcp(None, 0).tcp_plan()
    if socket.has_ipv6:
        assert fam == socket.AF_INET6 and addr[0] == "::" and v6only is False
        assert Listener.tcp("", 0, dualstack=False).tcp_plan()[2] is True
        assert Listener.tcp("::1", 0).tcp_plan()[2] is True
    else:
        assert fam == socket.AF_INET and addr[0] == "0.0.0.0"
    assert str(Listener.tcp("127.0.0.1", 80)) == "tcp://127.0.0.1:80"
    assert str(Listener.unix("/run/x.sock")) == "unix:/run/x.sock"


def test_systemd_listeners_need_our_pid(monkeypatch):
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    assert Listener.systemd() == []
    assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ
    monkeypatch.delenv("LISTEN_FDS", raising=False)
    assert Listener.systemd() == []


def test_reuse_port_sockets_share_a_port():
    if not engine._loop.PROBES["so_reuseport"]:
        pytest.fail("this Linux test machine is expected to have SO_REUSEPORT")
    a = Listener.tcp("127.0.0.1", 0, reuse_port=True).open()
    try:
        port = a.getsockname()[1]
        b = Listener.tcp("127.0.0.1", port, reuse_port=True).open()
        b.close()
        with pytest.raises(OSError) as info:
            Listener.tcp("127.0.0.1", port).open()
        assert info.value.errno == errno.EADDRINUSE
    finally:
        a.close()


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (outside the checkout); its stripped stdout."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=WAIT, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_engine_imports_neither_server_nor_tuning():
    code = ("import sys, engine, asyncio\n"
            "engine.run(asyncio.sleep(0))\n"
            "print(sorted(m for m in sys.modules if m.startswith(('engine.server', "
            "'engine.serve', 'engine.tuning', 'engine.bench'))))")
    assert _python(code) == "[]"


def test_old_module_paths_are_aliases_of_the_moved_modules():
    # engine.config & co. moved into engine.serve: the old paths import the same module objects,
    # with a DeprecationWarning that names the new place
    code = ("import warnings, importlib, sys, engine, engine._moved as m\n"
            "warnings.simplefilter('error', DeprecationWarning)\n"
            "for old, new in sorted(m.MOVED.items()):\n"
            "    try:\n"
            "        importlib.import_module(old)\n"
            "    except DeprecationWarning as w:\n"
            "        assert new in str(w), (old, str(w))\n"
            "    else:\n"
            "        raise AssertionError(old + ' did not warn')\n"
            "warnings.simplefilter('ignore', DeprecationWarning)\n"
            "for old, new in sorted(m.MOVED.items()):\n"
            "    sys.modules.pop(old, None)\n"
            "    assert importlib.import_module(old) is importlib.import_module(new), old\n"
            "from engine.config import Config\n"
            "from engine.serve.config import Config as C2\n"
            "from engine.cli import run_server\n"
            "from engine.serve.runner import run_server as r2\n"
            "assert Config is C2 and run_server is r2\n"
            "assert engine.config is sys.modules['engine.serve.config']\n"
            "print('ok')")
    assert _python(code) == "ok"


def test_serve_without_an_app_needs_a_startup_hook():
    with pytest.raises(ValueError, match="startup"):
        serve(None, [Listener.tcp("127.0.0.1", 0)])


# =========================================================================== processes

def _addr(ev: dict):
    host, port = ev["addresses"][0]
    return host, port


@pytest.mark.parametrize("loop", ["engine", "asyncio"])
def test_emfile_backs_off_keeps_serving_and_resumes(spawn, loop):
    sp = spawn("--loop", loop, "--emfile-headroom", "3")
    addr = _addr(sp.event("ready"))
    first = Client(addr)
    assert first.request("PING").startswith("PONG")

    others = []
    try:
        def out_of_fds():
            others.append(Client(addr))
            others[-1].send("PING")
            return json.loads(first.request("STATS"))["emfile"] > 0
        _until(out_of_fds, "accept() to fail with EMFILE", interval=0.1)
        assert len(others) < 40
        # existing connections are still served while accept() cannot proceed
        assert first.request("PING").startswith("PONG")
        # and accept() is retried about once per ACCEPT_RETRY_DELAY (1 s), not in a loop
        before = json.loads(first.request("STATS"))["emfile"]
        time.sleep(2.0)
        after = json.loads(first.request("STATS"))["emfile"]
        assert after - before <= 2.0 / asyncio.constants.ACCEPT_RETRY_DELAY + 2, (before, after)
    finally:
        for c in others:
            c.close()
    # descriptors are free again: new connections are accepted and served
    late = _until(lambda: _try_ping(addr), "a new connection to be served")
    assert late.startswith("PONG")
    first.close()
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0


def _try_ping(addr) -> str:
    try:
        c = Client(addr)
    except OSError:
        return ""
    try:
        c.sock.settimeout(2.0)
        try:
            return c.request("PING")
        except OSError:
            return ""
    finally:
        c.close()


def _worker_pids(sp: ServerProcess, n: int) -> set[int]:
    return {sp.event("ready")["pid"] for _ in range(n)}


def test_killed_worker_is_replaced(spawn):
    sp = spawn("--workers", "2")
    pids = _worker_pids(sp, 2)
    assert len(pids) == 2 and sp.proc.pid not in pids
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    new = sp.event("ready")["pid"]
    assert new not in pids
    _until(lambda: _gone(victim), "the killed worker to be reaped")
    addr = _addr(sp.seen[-1])
    answers = {_try_ping(addr) for _ in range(5)}
    assert answers <= {f"PONG {p}" for p in (pids - {victim}) | {new}}
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0
    assert all(_gone(p) for p in (pids - {victim}) | {new})


@pytest.mark.parametrize("workers", [None, 2], ids=["in-process", "2-workers"])
def test_sigterm_loses_no_in_flight_response(spawn, workers):
    args = ["--graceful-timeout", "10"] + (["--workers", str(workers)] if workers else [])
    sp = spawn(*args)
    pids = _worker_pids(sp, workers or 1)
    addr = _addr(sp.seen[-1])
    clients = [Client(addr) for _ in range(6)]
    # a stream of requests; the signal lands while every connection has one in flight
    for rnd in range(3):
        for i, c in enumerate(clients):
            c.send(f"SLOW {rnd}-{i} {0.05 if rnd < 2 else 0.5}")
        for i, c in enumerate(clients):
            assert c.line() == f"ACCEPTED {rnd}-{i}"
        if rnd < 2:
            for i, c in enumerate(clients):
                assert c.line().startswith(f"DONE {rnd}-{i} ")
    sp.signal(signal.SIGTERM)
    for c in clients:
        done = c.line()
        assert done.startswith("DONE 2-") and done.endswith(tuple(str(p) for p in pids)), done
        assert c.line() == ""                  # then the server closes the connection
        c.close()
    assert sp.wait() == 0
    # listeners are gone: new connections are refused
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr, timeout=WAIT).close()


@pytest.mark.parametrize("workers", [None, 1], ids=["in-process", "1-worker"])
def test_second_signal_stops_waiting(spawn, workers):
    # the graceful timeout is longer than any wait here: only the second signal can end it
    args = ["--graceful-timeout", "60"] + (["--workers", str(workers)] if workers else [])
    sp = spawn(*args)
    addr = _addr(sp.event("ready"))
    c = Client(addr)
    assert c.request("SLOW long 60") == "ACCEPTED long"
    sp.signal(signal.SIGTERM)
    _until(lambda: _refused(addr), "the listener to close")
    sp.signal(signal.SIGINT)                # a second one: abort what is in flight
    assert c.line() == ""                   # closed without its DONE
    c.close()
    assert sp.wait() == 0


def _refused(addr) -> bool:
    try:
        socket.create_connection(addr, timeout=WAIT).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # the listener closed while this connection sat in its accept queue: ask again
        return False
    return False


def test_sighup_rolls_workers_without_dropping_requests(spawn):
    sp = spawn("--workers", "2", "--graceful-timeout", "10")
    old = _worker_pids(sp, 2)
    addr = _addr(sp.seen[-1])
    slow = Client(addr)
    assert slow.request("SLOW roll 1.0") == "ACCEPTED roll"
    errors: list[str] = []
    served: list[str] = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            for _attempt in range(3):          # a connection closed as the old worker drains
                answer = _try_ping(addr)       # before reading is retried, as HTTP clients do
                if answer:
                    served.append(answer)
                    break
            else:
                errors.append("no answer in 3 attempts")
    t = threading.Thread(target=traffic)
    t.start()
    try:
        sp.signal(signal.SIGHUP)
        new = _worker_pids(sp, 2)
        assert not new & old
        # the in-flight request on an old worker still completes
        assert slow.line().startswith("DONE roll ")
        assert slow.line() == ""
        _until(lambda: all(_gone(p) for p in old), "the old workers to exit")
        _until(lambda: any(s in {f"PONG {p}" for p in new} for s in served),
               "a request served by a new worker")
    finally:
        stop.set()
        t.join(WAIT)
        slow.close()
    assert not errors
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0


def test_crash_looping_worker_backs_off(spawn):
    sp = spawn("--workers", "1", "--crash-startup")
    sp.event("startup")
    t0 = time.monotonic()
    time.sleep(2.0)
    window = time.monotonic() - t0
    starts = 1
    while True:
        try:
            ev = sp.events.get_nowait()
        except queue.Empty:
            break
        starts += ev["event"] == "startup"
    # restart delays double from RESTART_DELAY_MIN (0.1, 0.2, 0.4, 0.8 s...): k restarts take
    # at least MIN * (2**k - 1) seconds, so the window holds at most log2(window/MIN + 1) of
    # them (+1 for a start that lands while the events are read). A spin would be dozens.
    bound = 1 + math.log2(window / RESTART_DELAY_MIN + 1) + 1
    assert 2 <= starts <= bound, (starts, bound)
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0


def test_sigterm_during_worker_startup_exits_cleanly(spawn):
    sp = spawn("--workers", "2", "--startup-delay", "2.0")   # SIGTERM lands well inside it
    sp.event("startup")
    sp.event("startup")
    sp.signal(signal.SIGTERM)               # the workers are still in startup()
    assert sp.wait() == 0
    events = [ev["event"] for ev in sp.remaining()]
    assert "ready" not in events and events[-2:] == ["exit", "eof"], events


def test_workers_drain_when_the_supervisor_dies(spawn):
    sp = spawn("--workers", "2")
    pids = _worker_pids(sp, 2)
    addr = _addr(sp.seen[-1])
    c = Client(addr)
    assert c.request("SLOW last 0.5") == "ACCEPTED last"
    os.kill(sp.proc.pid, signal.SIGKILL)
    assert c.line().startswith("DONE last ")    # drained, not killed
    assert c.line() == ""
    c.close()
    _until(lambda: all(_gone(p) for p in pids), "the orphaned workers to exit")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(addr, timeout=WAIT).close()


def test_reuse_port_workers_each_bind_the_port(spawn):
    sp = spawn("--workers", "2", "--reuse-port")
    pids = _worker_pids(sp, 2)
    addrs = {tuple(ev["addresses"][0]) for ev in sp.seen if ev["event"] == "ready"}
    assert len(addrs) == 1                      # port 0 resolved once, by the supervisor
    addr = addrs.pop()
    answers = set()
    for _ in range(40):
        answers.add(_try_ping(addr))
        if len(answers) == 2:
            break
    assert answers and answers <= {f"PONG {p}" for p in pids}
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0


def test_unix_listener_with_workers_and_import_string(spawn):
    d = _short_tmpdir()
    path = os.path.join(d, "w.sock")
    try:
        sp = spawn("--workers", "2", "--listen", f"unix:{path},660", "--import-string")
        pids = _worker_pids(sp, 2)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        c = Client(path, socket.AF_UNIX)
        assert c.request("PING") in {f"PONG {p}" for p in pids}
        c.close()
        sp.signal(signal.SIGTERM)
        assert sp.wait() == 0
        assert not os.path.exists(path)         # removed by the supervisor, once
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(d)


def test_inherited_fd_listener_in_a_subprocess(spawn):
    sock = socket.create_server(("127.0.0.1", 0))
    addr = sock.getsockname()
    try:
        sp = spawn("--listen", f"fd:{sock.fileno()}", pass_fds=(sock.fileno(),))
        sp.event("ready")
    finally:
        sock.close()                            # the child holds its own copy
    c = Client(addr)
    assert c.request("PING") == f"PONG {sp.seen[-1]['pid']}"
    c.close()
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0


def test_systemd_socket_activation(spawn):
    sock = socket.create_server(("127.0.0.1", 0))
    addr = sock.getsockname()
    # what systemd does: the socket as fd 3, LISTEN_FDS/LISTEN_PID for the exec'ed process
    launcher = [sys.executable, "-c",
                "import os, sys\n"
                "os.dup2(int(sys.argv[1]), 3)\n"
                "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()),"
                " LISTEN_FDNAMES='web')\n"
                "os.execv(sys.argv[2], sys.argv[2:])\n",
                str(sock.fileno())]
    try:
        sp = spawn("--listen", "systemd", pass_fds=(sock.fileno(),), launcher=launcher)
        ev = sp.event("ready")
    finally:
        sock.close()
    assert tuple(ev["addresses"][0]) == addr
    c = Client(addr)
    assert c.request("PING") == f"PONG {ev['pid']}"
    c.close()
    sp.signal(signal.SIGTERM)
    assert sp.wait() == 0

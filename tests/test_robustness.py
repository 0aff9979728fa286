"""Transports under hostile or unlucky peers, on engine's loop AND asyncio's: resets, half-close,
peers vanishing mid-write, writes after close, a 1 GiB transfer through a slow reader with bounded
memory, 10k concurrent connections, and accept() running out of file descriptors."""
import asyncio
import hashlib
import logging
import os
import socket
import struct
import subprocess
import sys
import textwrap

from loop_case import LoopCase

import engine


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def tcp_pair():
    """A connected pair of TCP sockets (ours, the peer's): a real peer, which can reset
    (SO_LINGER 0), half-close and shrink its receive buffer, as a socketpair can't."""
    ls = socket.create_server(("127.0.0.1", 0))
    c = socket.create_connection(ls.getsockname())
    s, _ = ls.accept()
    ls.close()
    return c, s


class Collect(asyncio.Protocol):
    def __init__(self, loop, keep_open=False):
        self.data = bytearray()
        self.eof = False
        self.keep_open = keep_open
        self.lost = loop.create_future()
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.eof = True
        return self.keep_open

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)


class RobustnessBehaviour(LoopCase):
    timeout = 60

    def test_peer_reset_while_reading(self, loop):
        async def main():
            c, s = tcp_pair()
            tr, pr = await loop.create_connection(lambda: Collect(loop), sock=c)
            # SO_LINGER 0: close() sends RST instead of FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.send(b"last words")
            s.close()
            exc = await pr.lost
            assert isinstance(exc, ConnectionResetError) or (exc is None and pr.eof)
            assert tr.is_closing()

        self.run(loop, main())

    def test_half_close_keeps_writing(self, loop):
        async def main():
            c, s = tcp_pair()
            tr, pr = await loop.create_connection(lambda: Collect(loop, keep_open=True), sock=c)
            s.sendall(b"request")
            s.shutdown(socket.SHUT_WR)                 # peer is done sending
            while not pr.eof:
                await asyncio.sleep(0.005)
            assert bytes(pr.data) == b"request" and not tr.is_closing()
            tr.write(b"response after peer's EOF")
            assert tr.can_write_eof()
            tr.write_eof()
            s.settimeout(10)
            got = b""
            while chunk := await loop.run_in_executor(None, s.recv, 65536):
                got += chunk
            assert got == b"response after peer's EOF"
            tr.close()
            assert await pr.lost is None
            s.close()

        self.run(loop, main())

    def test_peer_vanishes_mid_write_then_writes_are_dropped(self, loop, caplog):
        async def main():
            c, s = tcp_pair()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            tr, pr = await loop.create_connection(lambda: Collect(loop), sock=c)
            tr.write(os.urandom(8 << 20))             # far more than the socket buffers hold
            assert tr.get_write_buffer_size() > 0
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()                                 # RST while we still have data queued
            exc = await pr.lost
            assert isinstance(exc, (ConnectionResetError, BrokenPipeError))
            assert tr.get_write_buffer_size() == 0    # nothing retained for a dead peer
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                for _ in range(10):
                    tr.write(b"into the void")        # never raises
            assert "socket.send() raised exception." in caplog.text

        self.run(loop, main())

    def test_write_after_close_is_ignored(self, loop, caplog):
        async def main():
            a, b = socket.socketpair()
            tr, pr = await loop.create_connection(lambda: Collect(loop), sock=a)
            tr.close()
            with caplog.at_level(logging.WARNING, logger="asyncio"):
                for _ in range(10):
                    tr.write(b"late")
            assert await pr.lost is None
            assert "socket.send() raised exception." in caplog.text
            b.settimeout(5)
            assert b.recv(100) == b""                 # the late writes never went out
            b.close()

        self.run(loop, main())

    def test_one_gib_through_a_slow_reader(self, loop):
        # 1 GiB written as fast as drain() allows, read by a reader that stalls now and then:
        # flow control must keep memory bounded, and every byte must arrive once, in order.
        total = 1 << 30
        block = 1 << 20
        base = os.urandom(block)
        peak = [0]

        async def writer_side(reader, writer):
            h = hashlib.blake2b()
            for i in range(total // block):
                chunk = struct.pack("!Q", i) + base[8:]   # numbered: reordering shows up
                h.update(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            sent_digest.set_result(h.hexdigest())

        async def main():
            server = await asyncio.start_server(writer_side, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            h = hashlib.blake2b()
            start_rss = _rss_bytes()
            got = 0
            n = 0
            while chunk := await reader.read(256 * 1024):
                h.update(chunk)
                got += len(chunk)
                n += 1
                if n % 512 == 0:                          # stall: the writer must wait
                    await asyncio.sleep(0.02)
                    peak[0] = max(peak[0], _rss_bytes() - start_rss)
            assert got == total
            assert h.hexdigest() == await sent_digest
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        sent_digest = loop.create_future()
        self.run(loop, main(), timeout=240)
        assert peak[0] < 64 << 20, f"RSS grew by {peak[0] >> 20} MiB during the transfer"

    def test_ten_thousand_concurrent_connections(self, loop):
        # server here, 10k clients in a child process (each side needs 10k fds)
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 10_000 + 200
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, need), hard))
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need, "fd limit too low"
        client = textwrap.dedent("""
            import resource, socket, sys
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            port, n = int(sys.argv[1]), int(sys.argv[2])
            conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
            for i, c in enumerate(conns):
                c.sendall(b"%d\\n" % i)
            for i, c in enumerate(conns):
                c.settimeout(30)
                buf = b""
                while not buf.endswith(b"\\n"):
                    buf += c.recv(64)
                assert buf == b"echo %d\\n" % i, buf
            sys.stdout.write("ok\\n"); sys.stdout.flush()
            sys.stdin.readline()              # hold the connections until told to go
        """)
        live = [0]
        peak = [0]

        class Echo(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport = transport
                live[0] += 1
                peak[0] = max(peak[0], live[0])

            def data_received(self, data):
                self.transport.write(b"echo " + data)

            def connection_lost(self, exc):
                live[0] -= 1

        async def main():
            server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", client, str(port), "10000",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            line = await proc.stdout.readline()
            assert line == b"ok\n", line
            assert live[0] == 10_000
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
            assert await proc.wait() == 0
            while live[0]:
                await asyncio.sleep(0.01)
            server.close()
            await server.wait_closed()

        self.run(loop, main(), timeout=180)
        assert peak[0] == 10_000


class TestEngineRobustness(RobustnessBehaviour):
    factory = staticmethod(engine.new_event_loop)

    def test_accept_backs_off_on_emfile_and_recovers(self, tmp_path):
        # In a child with RLIMIT_NOFILE lowered: fill the fd table, let clients connect; the
        # server must report the error, keep serving its existing connection, not spin, and
        # accept again once fds are free.
        code = textwrap.dedent("""
            import asyncio, os, resource, socket, sys, time, engine
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
            errors = []

            class Echo(asyncio.Protocol):
                def connection_made(self, t): self.t = t
                def data_received(self, d): self.t.write(d)

            async def main():
                loop = asyncio.get_running_loop()
                loop.set_exception_handler(lambda l, ctx: errors.append(ctx["message"]))
                server = await loop.create_server(Echo, "127.0.0.1", 0)
                addr = server.sockets[0].getsockname()
                r0, w0 = await asyncio.open_connection(*addr)   # an existing connection
                hog = []
                try:
                    while True:
                        hog.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    pass
                os.close(hog.pop()); os.close(hog.pop())        # room for one client socket
                c = socket.socket(); c.setblocking(False)
                try:
                    c.connect(addr)
                except BlockingIOError:
                    pass
                cpu0 = time.process_time()
                await asyncio.sleep(1.0)                         # accept() hits EMFILE
                cpu = time.process_time() - cpu0
                w0.write(b"still here"); await w0.drain()        # existing one keeps working
                assert await r0.readexactly(10) == b"still here"
                for fd in hog: os.close(fd)                      # fds come back
                await asyncio.sleep(0.5)
                await loop.sock_sendall(c, b"ping")              # the pending client is served
                assert await asyncio.wait_for(loop.sock_recv(c, 4), 10) == b"ping"
                print("errors", len(errors), errors[0] if errors else None)
                print("cpu", round(cpu, 3))
                c.close(); w0.close(); server.close()

            engine.run(main())
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        assert int(lines["errors"].split()[0]) >= 1
        assert "out of system resource" in lines["errors"]
        # backing off: a second of EMFILE costs a few retries, not a spinning core
        assert float(lines["cpu"]) < 0.5, lines["cpu"]


class TestAsyncioRobustness(RobustnessBehaviour):
    factory = staticmethod(asyncio.new_event_loop)

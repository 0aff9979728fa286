"""Network behaviour (TLS, UDP, pipes, subprocesses, loop.sendfile), written once and run on
engine's loop AND on asyncio's own loop. If asyncio's loop fails one of these, the test is wrong.
"""
import asyncio
import os
import signal
import socket
import ssl
import sys

import pytest
import trustme
from loop_case import LoopCase

import engine


@pytest.fixture(scope="module")
def tls():
    """A throw-away CA and a server certificate for 'localhost' / 127.0.0.1, made for this run."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


async def close_and_wait(*closing):
    """close() each of these (stream writers, servers), in order, and wait until it is closed."""
    for c in closing:
        c.close()
        await c.wait_closed()


class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t

    def data_received(self, data):
        self.t.write(data)


class Recorder(asyncio.Protocol):
    """Records what it receives; ``made``/``lost`` futures, ``wait_for(n)`` bytes."""

    def __init__(self, loop):
        self.loop = loop
        self.data = bytearray()
        self.eof = False
        self.made = loop.create_future()
        self.lost = loop.create_future()
        self.waiting = None

    def connection_made(self, t):
        self.transport = t
        self.made.set_result(None)

    def data_received(self, data):
        assert isinstance(data, bytes)
        self.data += data
        if self.waiting and len(self.data) >= self.waiting[0]:
            self.waiting[1].set_result(None)
            self.waiting = None

    def eof_received(self):
        self.eof = True

    def connection_lost(self, exc):
        self.lost.set_result(exc)

    async def wait_for(self, n):
        if len(self.data) < n:
            self.waiting = (n, self.loop.create_future())
            await self.waiting[1]


class NetworkBehaviour(LoopCase):
    timeout = 20

    # --- TLS ------------------------------------------------------------------------------------

    def test_tls_streams_echo_and_extra_info(self, loop, tls):
        server_ctx, client_ctx = tls
        seen = {}

        async def handle(reader, writer):
            seen["server_peercert"] = writer.get_extra_info("peercert")
            seen["cipher"] = writer.get_extra_info("cipher")
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
            assert writer.get_extra_info("sslcontext") is client_ctx
            peer = writer.get_extra_info("peercert")
            assert ("DNS", "localhost") in peer["subjectAltName"]
            payload = os.urandom(1 << 20)            # 1 MiB through TLS records both ways
            writer.write(payload)
            await writer.drain()
            got = await reader.readexactly(len(payload))
            assert got == payload
            await close_and_wait(writer, server)

        self.run(loop, main())
        assert seen["cipher"] is not None
        assert seen["server_peercert"] is None          # no client certificate was asked for

    def test_tls_untrusted_certificate_fails_handshake(self, loop, tls):
        server_ctx, _ = tls

        async def handle(reader, writer):
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
            port = server.sockets[0].getsockname()[1]
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context(),
                                              server_hostname="localhost")
            await close_and_wait(server)

        self.run(loop, main())

    def test_tls_handshake_timeout(self, loop, tls):
        _, client_ctx = tls
        listener = socket.create_server(("127.0.0.1", 0))    # accepts, never speaks TLS

        async def main():
            with pytest.raises(ConnectionAbortedError, match="handshake"):
                await loop.create_connection(
                    asyncio.Protocol, *listener.getsockname(), ssl=client_ctx,
                    server_hostname="localhost", ssl_handshake_timeout=0.2)

        try:
            self.run(loop, main())
        finally:
            listener.close()

    def test_tls_argument_checks(self, loop, tls):
        server_ctx, client_ctx = tls

        async def main():
            with pytest.raises(ValueError, match="server_hostname"):
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                             server_hostname="x")
            with pytest.raises(ValueError, match="ssl_handshake_timeout"):
                await loop.create_connection(asyncio.Protocol, "127.0.0.1", 1,
                                             ssl_handshake_timeout=1)
            s = socket.socket()
            try:
                with pytest.raises(ValueError, match="server_hostname"):
                    await loop.create_connection(asyncio.Protocol, sock=s, ssl=client_ctx)
            finally:
                s.close()
            with pytest.raises(TypeError):
                await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=True)
            with pytest.raises(TypeError):
                await loop.start_tls(None, None, "not a context")

        self.run(loop, main())

    def test_start_tls_upgrades_a_plain_connection(self, loop, tls):
        server_ctx, client_ctx = tls

        async def handle(reader, writer):
            line = await reader.readline()            # plaintext "STARTTLS\n"
            assert line == b"STARTTLS\n"
            writer.write(b"GO\n")
            await writer.drain()
            await writer.start_tls(server_ctx)
            data = await reader.readline()
            writer.write(b"secure:" + data)
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"STARTTLS\n")
            assert await reader.readline() == b"GO\n"
            await writer.start_tls(client_ctx, server_hostname="localhost")
            assert writer.get_extra_info("ssl_object") is not None
            writer.write(b"hello\n")
            assert await reader.readline() == b"secure:hello\n"
            await close_and_wait(writer, server)

        self.run(loop, main())

    # the TLS layer's reading, writing and flow control (engine's is compiled, asyncio's is
    # Python: both must do the same)

    async def _tls_pair(self, loop, tls, server_protocol, rcvbuf=None):
        """A TLS server whose connections get ``server_protocol`` and a client connection to
        it (a Recorder); ``rcvbuf``: the client socket's SO_RCVBUF."""
        server_ctx, client_ctx = tls
        server = await loop.create_server(lambda: server_protocol, "127.0.0.1", 0,
                                          ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Recorder(loop)
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        transport, _ = await loop.create_connection(
            lambda: client, sock=sock, ssl=client_ctx, server_hostname="localhost")
        return server, transport, client

    @staticmethod
    async def _tls_close(transport, client, server):
        transport.close()
        await client.lost
        await close_and_wait(server)

    def test_tls_corrupted_record_fails_with_the_ssl_modules_error(self, loop, tls):
        # a record whose ciphertext was altered in transit: the connection ends with the
        # error the ssl module itself raises for it (same type, same OpenSSL reason), and the
        # application never sees the record's bytes
        server_ctx, client_ctx = tls

        def pump_handshake(obj, out, inc, send, recv):
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    send(out.read())
                    inc.write(recv())
            send(out.read())

        def corrupt(record):
            record = bytearray(record)
            record[-3] ^= 0x5A                       # inside the AEAD tag
            return bytes(record)

        # what the ssl module raises for it, between two memory-BIO objects
        s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
        srv_obj = server_ctx.wrap_bio(s_in, s_out, server_side=True)
        cli_obj = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
        for _ in range(10):
            for obj in (cli_obj, srv_obj):
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
            s_in.write(c_out.read())
            c_in.write(s_out.read())
        cli_obj.write(b"x" * 100)
        s_in.write(corrupt(c_out.read()))
        with pytest.raises(ssl.SSLError) as expected:
            srv_obj.read(1000)
        assert expected.value.reason

        async def main():
            rec = Recorder(loop)
            server = await loop.create_server(lambda: rec, "127.0.0.1", 0, ssl=server_ctx)
            port = server.sockets[0].getsockname()[1]

            def client():
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
                obj = client_ctx.wrap_bio(inc, out, server_hostname="localhost")
                pump_handshake(obj, out, inc, sock.sendall, lambda: sock.recv(65536))
                obj.write(b"y" * 50)
                sock.sendall(out.read())                 # one good record
                obj.write(b"x" * 100)
                return sock, corrupt(out.read())

            sock, bad = await loop.run_in_executor(None, client)
            await asyncio.wait_for(rec.wait_for(50), 10)
            sock.sendall(bad)                            # then a bad one
            exc = await asyncio.wait_for(rec.lost, 10)
            assert type(exc) is type(expected.value)
            assert exc.reason == expected.value.reason
            assert bytes(rec.data) == b"y" * 50
            sock.close()
            await close_and_wait(server)

        self.run(loop, main())

    def test_tls_random_sizes_echo_intact(self, loop, tls):
        # messages from 1 byte to several records (and several buffer-pool chunks), by write()
        # and writelines() of many small pieces: every byte comes back, in order
        import random
        rng = random.Random(7)
        sizes = [1, 5, 16383, 16384, 16385, 100_000, 300_000] + [rng.randrange(1, 70_000)
                                                                for _ in range(40)]
        payload = rng.randbytes(sum(sizes))

        async def main():
            echo = Echo()
            server, transport, client = await self._tls_pair(loop, tls, echo)
            offset = 0
            for i, size in enumerate(sizes):
                piece = payload[offset:offset + size]
                offset += size
                if i % 3 == 0:
                    transport.writelines([piece[j:j + 97] for j in range(0, size, 97)])
                else:
                    transport.write(piece if i % 3 == 1 else bytearray(piece))
            await client.wait_for(len(payload))
            assert bytes(client.data) == payload
            await self._tls_close(transport, client, server)

        self.run(loop, main())

    def test_tls_buffered_protocol_small_buffer(self, loop, tls):
        # a BufferedProtocol whose buffer is smaller than a record gets every byte
        payload = os.urandom(400_000)

        class Small(asyncio.BufferedProtocol):
            def __init__(self):
                self.buf = bytearray(1000)
                self.got = bytearray()
                self.done = loop.create_future()

            def connection_made(self, t):
                self.t = t

            def get_buffer(self, hint):
                # a memoryview: asyncio's own TLS layer (3.11-3.13) reads the rest of a record
                # into buf[offset:], a copy when buf is a bytearray
                return memoryview(self.buf)

            def buffer_updated(self, n):
                assert 0 < n <= len(self.buf)
                self.got += self.buf[:n]
                if len(self.got) == len(payload):
                    self.t.write(b"ok")

            def connection_lost(self, exc):
                pass

        async def main():
            small = Small()
            server, transport, client = await self._tls_pair(loop, tls, small)
            transport.write(payload)
            await client.wait_for(2)
            assert bytes(small.got) == payload and bytes(client.data) == b"ok"
            await self._tls_close(transport, client, server)

        self.run(loop, main())

    def test_tls_app_pause_reading_holds_data(self, loop, tls):
        class Paused(Recorder):
            def connection_made(self, t):
                super().connection_made(t)
                t.pause_reading()

        async def main():
            paused = Paused(loop)
            server, transport, client = await self._tls_pair(loop, tls, paused)
            await paused.made
            assert not paused.transport.is_reading()
            transport.write(b"x" * 100_000)
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert paused.data == b""                      # held while paused
            paused.transport.resume_reading()
            assert paused.transport.is_reading()
            await paused.wait_for(100_000)
            assert bytes(paused.data) == b"x" * 100_000
            await self._tls_close(transport, client, server)

        self.run(loop, main())

    def test_tls_slow_reader_pauses_the_writer_then_everything_arrives(self, loop, tls):
        total = 8 << 20

        class Writer(Recorder):
            def connection_made(self, t):
                super().connection_made(t)
                # small kernel buffers, so that what the client does not read stays here
                t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                      16384)
                t.set_write_buffer_limits(high=64 * 1024)
                self.pauses = 0
                self.sent = 0
                self.resumed = asyncio.Event()
                loop.create_task(self.pump())

            async def pump(self):
                chunk = b"y" * 65536
                while self.sent < total:
                    self.transport.write(chunk)
                    self.sent += len(chunk)
                    if self.paused:
                        await self.resumed.wait()
                        self.resumed.clear()

            def pause_writing(self):
                self.paused = True
                self.pauses += 1
                self.max_buffered = max(getattr(self, "max_buffered", 0),
                                        self.transport.get_write_buffer_size())

            def resume_writing(self):
                self.paused = False
                self.resumed.set()

        async def main():
            writer = Writer(loop)
            writer.paused = False
            server, transport, client = await self._tls_pair(loop, tls, writer, rcvbuf=16384)
            transport.pause_reading()                  # the client does not read for a while
            await writer.made
            for _ in range(30):
                await asyncio.sleep(0.01)
            assert writer.pauses >= 1 and writer.sent < total    # held back, not buffered
            assert writer.max_buffered < 1 << 20
            transport.resume_reading()
            await client.wait_for(total)
            assert len(client.data) == total and client.data.count(b"y") == total
            await self._tls_close(transport, client, server)

        self.run(loop, main(), timeout=60)

    def test_tls_transport_api(self, loop, tls):
        async def main():
            rec = Recorder(loop)
            server, transport, client = await self._tls_pair(loop, tls, rec)
            await rec.made
            for t in (transport, rec.transport):
                assert isinstance(t, asyncio.Transport)
                assert "ssl" in type(t).__name__.lower()
                assert not t.can_write_eof()
                with pytest.raises(NotImplementedError):
                    t.write_eof()
                with pytest.raises(TypeError):
                    t.write("text")
                t.set_write_buffer_limits(high=1000)
                assert t.get_write_buffer_limits() == (250, 1000)
                with pytest.raises(ValueError):
                    t.set_write_buffer_limits(high=1, low=2)
                obj = t.get_extra_info("ssl_object")
                assert isinstance(obj, ssl.SSLObject) and obj.version() == "TLSv1.3"
                assert t.get_extra_info("peername") is not None
                assert t.get_extra_info("no such thing", 42) == 42
            assert transport.get_protocol() is client
            other = Recorder(loop)
            transport.set_protocol(other)
            assert transport.get_protocol() is other
            transport.set_protocol(client)
            # the client closes: close_notify reaches the server as EOF, then connection_lost
            transport.close()
            assert transport.is_closing()
            transport.write(b"after close")            # dropped, as asyncio does
            await client.lost
            assert await rec.lost is None and rec.eof
            server.close()
            await server.wait_closed()

        self.run(loop, main())

    def test_tls_unix_socket(self, loop, tls, tmp_path):
        server_ctx, client_ctx = tls
        path = str(tmp_path / "tls.sock")

        async def handle(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        async def main():
            server = await asyncio.start_unix_server(handle, path, ssl=server_ctx)
            reader, writer = await asyncio.open_unix_connection(
                path, ssl=client_ctx, server_hostname="localhost")
            writer.write(b"abc\n")
            assert await reader.readline() == b"ABC\n"
            await close_and_wait(writer, server)

        self.run(loop, main())

    # --- UDP ------------------------------------------------------------------------------------

    def test_udp_echo_and_addresses(self, loop):
        class Echo(asyncio.DatagramProtocol):
            def connection_made(self, transport):
                self.transport = transport

            def datagram_received(self, data, addr):
                self.transport.sendto(data.upper(), addr)

        class Client(asyncio.DatagramProtocol):
            def __init__(self):
                self.got = asyncio.Queue()
                self.lost = loop.create_future()

            def datagram_received(self, data, addr):
                self.got.put_nowait((data, addr))

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        async def main():
            st, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
            addr = st.get_extra_info("sockname")
            assert st.get_extra_info("peername") is None
            # unconnected client: sendto with an address
            ct, cp = await loop.create_datagram_endpoint(Client, family=socket.AF_INET)
            for i in range(20):
                ct.sendto(b"msg%d" % i, addr)
            got = [await cp.got.get() for _ in range(20)]
            assert sorted(d for d, _ in got) == sorted(b"MSG%d" % i for i in range(20))
            assert all(a == addr for _, a in got)
            ct.close()
            assert await cp.lost is None
            # connected client: remote_addr, sendto(data) and a wrong address is refused
            ct, cp = await loop.create_datagram_endpoint(Client, remote_addr=addr)
            assert ct.get_extra_info("peername") == addr
            ct.sendto(b"connected")
            assert (await cp.got.get()) == (b"CONNECTED", addr)
            with pytest.raises(ValueError, match="Invalid address"):
                ct.sendto(b"x", ("127.0.0.1", 9))
            with pytest.raises(TypeError):
                ct.sendto("text")
            assert ct.get_write_buffer_size() == 0
            ct.abort()
            assert await cp.lost is None
            st.close()

        self.run(loop, main())

    def test_udp_error_received_for_refused_port(self, loop):
        # a connected UDP socket gets ECONNREFUSED (from the ICMP port-unreachable) on its next
        # operation: asyncio hands it to error_received and the transport stays usable
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()
        probe.close()

        class Client(asyncio.DatagramProtocol):
            def __init__(self):
                self.errors = asyncio.Queue()

            def error_received(self, exc):
                self.errors.put_nowait(exc)

        async def main():
            ct, cp = await loop.create_datagram_endpoint(Client, remote_addr=dead)
            ct.sendto(b"anyone?")
            exc = await cp.errors.get()
            assert isinstance(exc, ConnectionRefusedError)
            assert not ct.is_closing()
            ct.close()

        self.run(loop, main())

    def test_udp_argument_checks(self, loop):
        async def main():
            with pytest.raises(ValueError, match="unexpected address family"):
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                with pytest.raises(ValueError, match="(?i)(UDP|datagram) socket was expected"):
                    await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=s)
            finally:
                s.close()
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                with pytest.raises(ValueError, match="socket modifier"):
                    await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=s,
                                                        local_addr=("127.0.0.1", 0))
            finally:
                s.close()
            with pytest.raises(TypeError, match="2-tuple"):
                await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                    local_addr="127.0.0.1")

        self.run(loop, main())

    def test_unix_datagram_endpoint(self, loop, tmp_path):
        server_path = str(tmp_path / "srv.sock")
        client_path = str(tmp_path / "cli.sock")
        got = []

        class Recv(asyncio.DatagramProtocol):
            def __init__(self):
                self.done = loop.create_future()

            def datagram_received(self, data, addr):
                got.append((data, addr))
                if len(got) == 3:
                    self.done.set_result(None)

        async def main():
            st, sp = await loop.create_datagram_endpoint(
                Recv, local_addr=server_path, family=socket.AF_UNIX)
            ct, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=client_path, remote_addr=server_path,
                family=socket.AF_UNIX)
            for i in range(3):
                ct.sendto(b"d%d" % i)
            await sp.done
            assert got == [(b"d0", client_path), (b"d1", client_path), (b"d2", client_path)]
            ct.close()
            st.close()

        self.run(loop, main())

    # --- pipes ----------------------------------------------------------------------------------

    def test_read_and_write_pipes(self, loop):
        class Reader(asyncio.Protocol):
            def __init__(self):
                self.data = bytearray()
                self.eof = False
                self.lost = loop.create_future()

            def data_received(self, data):
                self.data += data

            def eof_received(self):
                self.eof = True

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        class Writer(asyncio.Protocol):
            def __init__(self):
                self.paused = 0
                self.lost = loop.create_future()

            def pause_writing(self):
                self.paused += 1

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        async def main():
            rfd, wfd = os.pipe()
            rpipe, wpipe = open(rfd, "rb", 0), open(wfd, "wb", 0)
            rt, rp = await loop.connect_read_pipe(Reader, rpipe)
            wt, wp = await loop.connect_write_pipe(Writer, wpipe)
            assert rt.get_extra_info("pipe") is rpipe and wt.get_extra_info("pipe") is wpipe
            payload = os.urandom(3 << 20)       # bigger than the pipe: queued, paused, drained
            wt.write(payload)
            assert wt.get_write_buffer_size() > 0 and wp.paused == 1
            assert wt.can_write_eof()
            wt.write_eof()                       # closes once the buffer has drained
            assert await wp.lost is None
            assert await rp.lost is None
            assert bytes(rp.data) == payload and rp.eof
            assert rt.is_closing() and wt.is_closing()

        self.run(loop, main())

    def test_write_pipe_reader_goes_away(self, loop):
        class Writer(asyncio.Protocol):
            def __init__(self):
                self.lost = loop.create_future()

            def connection_lost(self, exc):
                self.lost.set_result(exc)

        async def main():
            rfd, wfd = os.pipe()
            wt, wp = await loop.connect_write_pipe(Writer, open(wfd, "wb", 0))
            wt.write(b"x" * (1 << 20))           # the pipe fills, the rest is queued
            assert wt.get_write_buffer_size() > 0
            os.close(rfd)                         # the reader vanishes mid-write
            exc = await wp.lost
            assert isinstance(exc, BrokenPipeError)
            wt.write(b"after close")              # ignored (logged after a few), never raises

        self.run(loop, main())

    def test_pipe_transports_reject_regular_files(self, loop, tmp_path):
        path = tmp_path / "f"
        path.write_bytes(b"x")

        async def main():
            with open(path, "rb") as f:
                with pytest.raises(ValueError, match="pipes/sockets only"):
                    await loop.connect_read_pipe(asyncio.Protocol, f)

        self.run(loop, main())

    # --- subprocesses ---------------------------------------------------------------------------

    def test_subprocess_exec_communicate(self, loop):
        code = ("import sys; data = sys.stdin.buffer.read(); "
                "sys.stdout.buffer.write(data[::-1]); sys.stderr.write('err'); sys.exit(3)")

        async def main():
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", code, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            payload = os.urandom(2 << 20)
            out, err = await proc.communicate(payload)
            assert out == payload[::-1] and err == b"err"
            assert proc.returncode == 3

        self.run(loop, main())

    def test_subprocess_shell_and_signals(self, loop):
        async def main():
            proc = await asyncio.create_subprocess_shell(
                "echo $((6 * 7))", stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            assert out == b"42\n" and proc.returncode == 0
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", "import time; time.sleep(60)")
            proc.terminate()
            assert await proc.wait() == -signal.SIGTERM
            with pytest.raises(FileNotFoundError):
                await asyncio.create_subprocess_exec("/nonexistent/program")

        self.run(loop, main())

    def test_subprocess_argument_checks(self, loop):
        async def main():
            with pytest.raises(ValueError, match="shell must be False"):
                await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", shell=True)
            with pytest.raises(ValueError, match="cmd must be a string"):
                await loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"])
            with pytest.raises(ValueError, match="bufsize must be 0"):
                await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", bufsize=1)
            with pytest.raises(ValueError, match="universal_newlines"):
                await loop.subprocess_shell(asyncio.SubprocessProtocol, "true",
                                            universal_newlines=True)

        self.run(loop, main())

    def test_many_concurrent_subprocesses(self, loop):
        async def one(i):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", f"print({i})", stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            return int(out), proc.returncode

        async def main():
            results = await asyncio.gather(*(one(i) for i in range(20)))
            assert results == [(i, 0) for i in range(20)]

        self.run(loop, main(), timeout=60)

    # --- loop.sendfile --------------------------------------------------------------------------

    async def _sink_server(self, loop, received, ctx=None):
        """A server that collects every byte into received[0] until EOF."""
        done = loop.create_future()

        async def handle(reader, writer):
            received.append(await reader.read())
            writer.close()
            done.set_result(None)

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
        return server, done

    def test_sendfile_flushes_pending_writes_keeps_order(self, loop, tmp_path):
        data = os.urandom(3 << 20)
        path = tmp_path / "blob"
        path.write_bytes(data)
        received = []

        async def main():
            server, done = await self._sink_server(loop, received)
            port = server.sockets[0].getsockname()[1]
            tr, pr = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            tr.write(b"HEAD" * 50000)                  # may be partly queued
            with open(path, "rb") as f:
                sent = await loop.sendfile(tr, f, 1000, 1 << 20)
                assert sent == 1 << 20
                assert f.tell() == 1000 + (1 << 20)
                sent = await loop.sendfile(tr, f)       # from 0 to EOF
                assert sent == len(data) and f.tell() == len(data)
            tr.write(b"TAIL")
            tr.close()
            await done
            await close_and_wait(server)

        self.run(loop, main())
        assert received[0] == b"HEAD" * 50000 + data[1000:1000 + (1 << 20)] + data + b"TAIL"

    def test_sendfile_write_during_native_sendfile_raises(self, loop, tmp_path):
        path = tmp_path / "blob"
        path.write_bytes(os.urandom(16 << 20))
        received = []

        async def main():
            server, done = await self._sink_server(loop, received)
            port = server.sockets[0].getsockname()[1]
            tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(tr, f))
                await asyncio.sleep(0)
                if not task.done():
                    with pytest.raises(RuntimeError, match="sendfile is in progress"):
                        tr.write(b"x")
                assert await task == 16 << 20
            tr.close()
            await done
            await close_and_wait(server)

        self.run(loop, main())
        assert len(received[0]) == 16 << 20

    def test_sendfile_over_tls_uses_fallback(self, loop, tmp_path, tls):
        server_ctx, client_ctx = tls
        data = os.urandom(1 << 20)
        path = tmp_path / "blob"
        path.write_bytes(data)
        received = []

        async def main():
            server, done = await self._sink_server(loop, received, server_ctx)
            port = server.sockets[0].getsockname()[1]
            tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                 ssl=client_ctx, server_hostname="localhost")
            with open(path, "rb") as f:
                with pytest.raises(RuntimeError, match="fallback is disabled"):
                    await loop.sendfile(tr, f, fallback=False)
                assert await loop.sendfile(tr, f, 10) == len(data) - 10
            tr.close()
            await done
            await close_and_wait(server)

        self.run(loop, main())
        assert received[0] == data[10:]

    def test_sendfile_errors(self, loop, tmp_path):
        path = tmp_path / "blob"
        path.write_bytes(b"x" * 100)

        async def main():
            a, b = socket.socketpair()
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            with open(path, "rb") as f:
                with pytest.raises(ValueError):
                    await loop.sendfile(tr, f, -1)
                with pytest.raises(TypeError):
                    await loop.sendfile(tr, f, 0, "10")
                # not a file with a descriptor: native sendfile is unavailable
                with pytest.raises(asyncio.SendfileNotAvailableError):
                    await loop.sendfile(tr, __import__("io").BytesIO(b"abc"), fallback=False)
            tr.close()
            await asyncio.sleep(0)
            with open(path, "rb") as f:
                with pytest.raises(RuntimeError, match="Transport is closing"):
                    await loop.sendfile(tr, f)
            b.close()

        self.run(loop, main())


class TestEngineNetwork(NetworkBehaviour):
    factory = staticmethod(engine.new_event_loop)

    def test_close_during_sendfile(self, loop, tmp_path):
        # engine only: asyncio's own loop hangs here (its _call_connection_lost fails with
        # InvalidStateError on the sendfile's empty-waiter and the sendfile never returns)
        # the reader never reads: sendfile parks; closing the transport ends it with an
        # error and nothing is left registered for the (reusable) fd
        path = tmp_path / "blob"
        path.write_bytes(os.urandom(64 << 20))

        async def main():
            a, b = socket.socketpair()
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            tr, pr = await loop.create_connection(asyncio.Protocol, sock=a)
            with open(path, "rb") as f:
                task = asyncio.ensure_future(loop.sendfile(tr, f))
                for _ in range(5):
                    await asyncio.sleep(0.01)
                assert not task.done()
                tr.abort()
                with pytest.raises((ConnectionError, OSError)):
                    await task
            b.close()
            # the loop still works on a new socket that may reuse the fd number
            c, d = socket.socketpair()
            tr2, _ = await loop.create_connection(asyncio.Protocol, sock=c)
            tr2.write(b"ok")
            d.settimeout(5)
            assert await loop.run_in_executor(None, d.recv, 2) == b"ok"
            tr2.close()
            d.close()

        self.run(loop, main())


    def test_write_then_sendfile_sends_what_the_kernel_takes_and_keeps_order(self, loop, tmp_path):
        # the ASGI server's file fast path: a head and the file without waiting; with the
        # socket buffer full (or data queued before) it leaves the rest to loop.sendfile
        data = os.urandom(8 << 20)
        path = tmp_path / "blob"
        path.write_bytes(data)

        async def main():
            a, b = socket.socketpair()
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            b.setblocking(False)
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            got = bytearray()
            reading = loop.create_future()

            async def reader():
                await reading
                while chunk := await loop.sock_recv(b, 1 << 20):
                    got.extend(chunk)

            task = asyncio.ensure_future(reader())
            fd = os.open(path, os.O_RDONLY)
            try:
                n = tr._write_then_sendfile(b"HEAD", fd, 10, 100)
                assert n == 100                              # all of it, at once
                n = tr._write_then_sendfile(b"HEAD2", fd, 0, len(data))
                assert 0 < n < len(data)                     # the buffer filled up
                assert os.lseek(fd, 0, os.SEEK_CUR) == 0    # the fd's position is left alone
                reading.set_result(None)
                with open(path, "rb") as f:
                    assert await loop.sendfile(tr, f, n, len(data) - n) == len(data) - n
                    # something queued: the head waits its turn and no file byte jumps it
                    tr.write(b"Q" * (4 << 20))
                    assert tr.get_write_buffer_size() > 0
                    assert tr._write_then_sendfile(b"HEAD3", fd, 0, 5) == 0
                    assert await loop.sendfile(tr, f, 0, 5) == 5
            finally:
                os.close(fd)
            tr.close()
            await task
            b.close()
            assert bytes(got) == (b"HEAD" + data[10:110] + b"HEAD2" + data
                                  + b"Q" * (4 << 20) + b"HEAD3" + data[:5])

        self.run(loop, main())



class TestAsyncioNetwork(NetworkBehaviour):
    factory = staticmethod(asyncio.new_event_loop)


class TestEngineTLSViaSslModule(LoopCase):
    """The TLS tests again on engine's loop with OpenSSL reached through the ssl module's
    methods (what runs where OpenSSL cannot be called directly: ENGINE_TLS_DIRECT=0, another
    CPython, an sslobject_class of one's own)."""
    factory = staticmethod(engine.new_event_loop)
    timeout = NetworkBehaviour.timeout

    @pytest.fixture(autouse=True)
    def _via_ssl_module(self):
        engine._loop._tls_direct(False)
        yield
        engine._loop._tls_direct(True)

    _tls_pair = NetworkBehaviour._tls_pair
    _tls_close = vars(NetworkBehaviour)["_tls_close"]


for _name, _test in list(vars(NetworkBehaviour).items()):
    if _name.startswith(("test_tls", "test_start_tls")):
        setattr(TestEngineTLSViaSslModule, _name, _test)


def test_tls_connections_call_openssl_directly(tls):
    # on this machine's CPython (3.11-3.13, the ssl module's OpenSSL exported), a TLS
    # connection of the standard SSLObject calls OpenSSL directly; one made with an
    # sslobject_class of its own, or with the direct calls turned off, goes through the ssl
    # module's methods; all three carry the same bytes
    assert engine._loop._tls_direct()
    server_ctx, client_ctx = tls

    class MySSLObject(ssl.SSLObject):
        pass

    custom_ctx = ssl.create_default_context()
    for der in client_ctx.get_ca_certs(binary_form=True):
        custom_ctx.load_verify_locations(cadata=der)
    custom_ctx.sslobject_class = MySSLObject

    async def one(ctx):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client = Recorder(loop)
        transport, _ = await loop.create_connection(
            lambda: client, "127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        transport.write(b"ping" * 5000)
        await client.wait_for(20000)
        assert bytes(client.data) == b"ping" * 5000
        direct = transport._ssl_protocol._openssl_direct
        transport.close()
        await client.lost
        await close_and_wait(server)
        return direct

    async def main():
        assert await one(client_ctx) is True
        assert await one(custom_ctx) is False
        engine._loop._tls_direct(False)
        try:
            assert await one(client_ctx) is False
        finally:
            engine._loop._tls_direct(True)
        assert await one(client_ctx) is True

    engine.run(asyncio.wait_for(main(), 20))


# --- engine.BufferPool (engine only: asyncio has none) ----------------------------------------

def test_buffer_pool_bounds_views_and_stats():
    pool = engine.BufferPool(chunk_size=1024, slab_chunks=4, max_slabs=2)
    bufs = [pool.acquire() for _ in range(8)]
    st = pool.stats()
    assert (st["slabs"], st["capacity"], st["in_use"], st["free"]) == (2, 8, 8, 0)
    with pytest.raises(BufferError, match="exhausted"):
        pool.acquire()                              # bounded: no ninth chunk
    assert pool.stats()["exhausted"] == 1
    view = memoryview(bufs[0])
    view[:5] = b"hello"                             # writable, zero-copy into the slab
    with pytest.raises(BufferError, match="still alive"):
        bufs[0].release()                           # never recycled under a live view
    view.release()
    bufs[0].release()
    assert bufs[0].released and len(bufs[0]) == 0
    with pytest.raises(ValueError):
        memoryview(bufs[0])
    again = pool.acquire()                          # the freed chunk comes back
    assert bytes(memoryview(again)[:5]) == b"hello"
    del bufs, again                                 # garbage-collected buffers return too
    assert pool.stats()["in_use"] == 0
    with pytest.raises(TypeError):
        engine.PooledBuffer()
    with pytest.raises(ValueError):
        engine.BufferPool(chunk_size=0)


async def _queue_transport(loop):
    """A transport over one end of a socketpair whose protocol queues what it receives."""
    a, b = socket.socketpair()
    got = asyncio.Queue()

    class P(asyncio.Protocol):
        def data_received(self, data):
            got.put_nowait(data)

    tr, _ = await loop.create_connection(P, sock=a)
    return tr, b, got


def test_transports_receive_into_the_loop_pool(loop):
    # on epoll a transport recv(2)s into a chunk of loop.buffer_pool; on io_uring the kernel
    # receives into the ring's own pool of buffers (loop._ring_stats()), given back once copied
    async def main():
        tr, b, got = await _queue_transport(loop)
        before = loop.buffer_pool.stats()["acquired"]
        ring = loop._ring_stats()
        b.sendall(b"pooled")
        assert await got.get() == b"pooled"
        if ring is None:
            st = loop.buffer_pool.stats()
            assert st["acquired"] > before and st["in_use"] == 0
        else:
            st = loop._ring_stats()
            assert st["bytes"] - ring["bytes"] == len(b"pooled")
            assert st["free"] == st["buffers"]
        tr.close()
        b.close()

    loop.run_until_complete(main())


def test_pause_reading_is_lazy_and_stops_polling_once_data_waits(loop):
    # engine-specific: pause_reading() leaves the fd in the poller until it turns readable
    # (no epoll_ctl pair per request/response); then the fd leaves it, so the loop does not
    # spin on a level-triggered event, and resume_reading() delivers what waited.
    async def main():
        tr, b, got = await _queue_transport(loop)
        await asyncio.sleep(0)
        assert "read=polling" in repr(tr)
        tr.pause_reading()
        assert not tr.is_reading()
        assert "read=polling" in repr(tr)          # no syscall yet
        tr.resume_reading()
        tr.pause_reading()
        b.sendall(b"waits")
        for _ in range(20):
            await asyncio.sleep(0.01)
            if "read=idle" in repr(tr):
                break
        assert "read=idle" in repr(tr)             # readable while paused: unwatched
        assert got.empty()
        tr.resume_reading()
        assert tr.is_reading()
        assert await asyncio.wait_for(got.get(), 5) == b"waits"
        tr.close()
        b.close()

    loop.run_until_complete(main())


def test_buffered_protocol_with_pool_chunks_into_numpy(loop):
    import numpy as np
    pool = engine.BufferPool(chunk_size=4096, slab_chunks=8, max_slabs=1)
    async def main():
        a, b = socket.socketpair()
        done = loop.create_future()
        chunks = []

        class P(asyncio.BufferedProtocol):
            def get_buffer(self, sizehint):
                self.buf = pool.acquire()
                return self.buf

            def buffer_updated(self, nbytes):
                arr = np.frombuffer(self.buf, dtype=np.uint8, count=nbytes)
                chunks.append(arr.copy())
                del arr
                self.buf.release()

            def eof_received(self):
                self.buf.release()          # the chunk offered for the read that saw EOF
                done.set_result(None)

        tr, _ = await loop.create_connection(P, sock=a)
        payload = bytes(range(256)) * 64
        b.sendall(payload)
        b.shutdown(socket.SHUT_WR)
        await done
        assert np.concatenate(chunks).tobytes() == payload
        assert pool.stats()["in_use"] == 0
        tr.close()
        b.close()

    loop.run_until_complete(main())


"""Network behaviour (TLS, UDP, pipes, subprocesses, loop.sendfile), written once and run on
engine's loop AND on asyncio's own loop. If asyncio's loop fails one of these, the test is wrong.
"""
import asyncio
import os
import socket
import ssl

import pytest
import trustme

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


class NetworkBehaviour:
    factory = None

    @pytest.fixture
    def loop(self):
        loop = type(self).factory()
        yield loop
        if not loop.is_closed():
            loop.close()

    def run(self, loop, coro, timeout=20):
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

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
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

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
            server.close()
            await server.wait_closed()

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
            writer.close()
            await writer.wait_closed()
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
            writer.close()
            await writer.wait_closed()
            server.close()
            await server.wait_closed()

        self.run(loop, main())


class TestEngineNetwork(NetworkBehaviour):
    factory = staticmethod(engine.new_event_loop)


class TestAsyncioNetwork(NetworkBehaviour):
    factory = staticmethod(asyncio.new_event_loop)

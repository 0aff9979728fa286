"""engine's ASGI HTTP/1.1 + WebSocket protocol (engine._asgi), driven over real sockets with raw
bytes. The protocol is an asyncio.Protocol: every test runs on engine's loop AND asyncio's."""
import asyncio
import gc
import os
import socket
import sys
import weakref

import pytest
from loop_case import LoopCase

import engine
from engine import _ws
from engine.serve.protocols.http import HttpProtocol, server_config
from engine.serve.proxy_headers import ProxyHeadersMiddleware


class Cfg:
    """A Config-like object (engine.serve.config.Config has these attribute names)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


async def read_response(reader):
    """One HTTP/1.1 response: (status, headers dict, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    return status, headers, body


async def echo_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            break
    if scope["path"].startswith("/sleep/"):
        await asyncio.sleep(float(scope["path"].rsplit("/", 1)[1]))
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body",
                "body": scope["method"].encode() + b" " + scope["path"].encode() + b" " + body})


class HttpBehaviour(LoopCase):
    timeout = 30

    async def serve(self, loop, app, **cfg):
        config = server_config(app, Cfg(**cfg) if cfg else None)
        server = await loop.create_server(lambda: HttpProtocol(config, loop), "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    def run_client(self, loop, app, client, timeout=None, **cfg):
        """Serve ``app`` (``cfg``: server settings) on a free port, run ``await client(port)``
        and close the server (``timeout``: as for run())."""
        async def main():
            server, port = await self.serve(loop, app, **cfg)
            try:
                return await client(port)
            finally:
                server.close()

        return self.run(loop, main(), timeout)

    async def answers_ok(self, port):
        """The server still serves a new connection (the app answers /ok with b"ok")."""
        r, w = await self.connect(port)
        w.write(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await read_response(r))[2] == b"ok"
        w.close()

    async def connect(self, port):
        return await asyncio.open_connection("127.0.0.1", port)

    # --- framing, keep-alive, pipelining ---------------------------------------------------------

    def test_pipelined_responses_come_back_in_request_order(self, loop):
        async def client(port):
            r, w = await self.connect(port)
            # the first response is the slowest: order must hold anyway
            w.write(b"GET /sleep/0.2 HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
                    b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n")
            got = [await read_response(r) for _ in range(3)]
            assert [b for _, _, b in got] == [b"GET /sleep/0.2 ", b"POST /two xyz",
                                              b"GET /three "]
            assert all(s == 200 for s, _, _ in got)
            assert got[0][1]["content-length"] == "15" and "date" in got[0][1]
            w.close()

        self.run_client(loop, echo_app, client)

    def test_the_app_runs_in_a_task_of_the_serving_loop(self, loop):
        # each request runs in its own asyncio Task on the loop that serves it; on engine's
        # loop under Python 3.11 that task is named "engine-request" (docs/pages/serve.md), and
        # Content-Length is written right for lengths of every digit count
        seen = []

        async def app(scope, receive, send):
            task = asyncio.current_task()
            seen.append((task, task.get_loop(), task.get_name()))
            n = int(scope["path"][1:])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x" * n})

        sizes = [0, 1, 9, 10, 99, 100, 12345, 1000000]

        async def client(port):
            r, w = await self.connect(port)
            for n in sizes:
                w.write(f"GET /{n} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                status, headers, body = await read_response(r)
                assert status == 200 and headers["content-length"] == str(n)
                assert body == b"x" * n
            w.close()

        self.run_client(loop, app, client)
        assert len(seen) == len(sizes)
        assert len({id(t) for t, _, _ in seen}) == len(sizes)
        assert all(task_loop is loop for _, task_loop, _ in seen)
        if isinstance(loop, engine.Loop) and sys.version_info < (3, 12):
            assert {name for _, _, name in seen} == {"engine-request"}
        else:
            assert all(name.startswith("Task-") for _, _, name in seen)

    def test_a_closed_loop_is_not_kept_alive_by_the_server(self):
        # nothing of the server's (such as a cache of per-loop task arguments) holds on to a
        # loop that served requests once it is closed and dropped
        loop = self.factory()

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, _headers, body = await read_response(r)
            assert (status, body) == (200, b"ok")
            w.close()

        try:
            self.run_client(loop, app, client)
        finally:
            loop.close()
        ref = weakref.ref(loop)
        del loop
        for _ in range(3):
            gc.collect()
        assert ref() is None

    def test_responses_leave_together_at_the_end_of_the_iteration(self, loop):
        # write batching: what the app sends is held while the loop dispatches the iteration
        # that produced it, and handed to the transport (one write per connection) before the
        # loop polls again. Checked with a transport that records its calls.
        seen = []

        class Transport(asyncio.Transport):
            def __init__(self):
                super().__init__()
                self.writes = []

            def get_extra_info(self, name, default=None):
                return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 80)}.get(
                    name, default)

            def write(self, data):
                self.writes.append(bytes(data))

            def writelines(self, chunks):
                self.writes.append(b"".join(chunks))

            def is_closing(self):
                return False

            def pause_reading(self):
                pass

            def resume_reading(self):
                pass

        transport = Transport()

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["path"].encode()})
            seen.append(len(transport.writes))        # sent, not yet written
            if scope["path"] == "/3":
                # a callback of a later iteration finds it written
                loop.call_soon(lambda: seen.append(len(transport.writes)))

        async def main():
            config = server_config(app)
            proto = HttpProtocol(config, loop)
            proto.connection_made(transport)
            proto.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                                b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                                b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
            while len(seen) < 4:
                await asyncio.sleep(0)
            proto.connection_lost(None)

        self.run(loop, main())
        out = b"".join(transport.writes)
        assert [part.split(b"\r\n\r\n")[1][:2] for part in out.split(b"HTTP/1.1 200")[1:]] \
            == [b"/1", b"/2", b"/3"]
        # every response was held when the app's send() returned, and written by the time a
        # later iteration ran. 3.12+ starts each request's task eagerly: all three are answered
        # inside data_received(), one iteration, and leave in one write; 3.11 runs each task an
        # iteration later, so one response (one write) per iteration
        if sys.version_info >= (3, 12):
            assert seen == [0, 0, 0, 1] and len(transport.writes) == 1
        else:
            assert seen == [0, 1, 2, 3] and len(transport.writes) == 3

    def test_held_response_goes_before_a_pipelined_file(self, loop, tmp_path):
        # a small response waiting for the iteration's end, then a pathsend response to the
        # next pipelined request: the file (sendfile, bypassing the held bytes) must follow
        path = tmp_path / "f"
        data = os.urandom(200_000)
        path.write_bytes(data)

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if scope["path"] == "/file":
                await send({"type": "http.response.pathsend", "path": str(path)})
            else:
                await send({"type": "http.response.body", "body": b"small" + scope["path"].encode()})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /file HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
            got = [await read_response(r) for _ in range(3)]
            assert [b for _, _, b in got] == [b"small/a", data, b"small/b"]
            w.close()

        self.run_client(loop, app, client)

    def test_streaming_chunked_response_and_close_delimited_for_http10(self, loop):
        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for i in range(3):
                await send({"type": "http.response.body", "body": b"p%d" % i, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            status, headers, body = await read_response(r)
            assert headers["transfer-encoding"] == "chunked" and body == b"p0p1p2"
            w.close()
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.0\r\n\r\n")
            raw = await r.read()                      # HTTP/1.0: ends when the server closes
            head, body = raw.split(b"\r\n\r\n", 1)
            assert b"transfer-encoding" not in head.lower() and body == b"p0p1p2"

        self.run_client(loop, app, client)

    def test_send_result_is_awaitable_every_way_and_headers_are_normalized(self, loop):
        # send() returns a finished awaitable when it did the work at once (not a coroutine);
        # it must still work under wait_for / ensure_future / gather, and errors raise
        errors = []

        async def app(scope, receive, send):
            await asyncio.wait_for(send({
                "type": "http.response.start", "status": 201,
                "headers": [(b"X-Mixed-Case", b"v1"), [b"x-list-pair", bytearray(b"v2")],
                            (b"Content-Length", b"5"), (b"connection", b"keep-alive")]}), 5)
            try:
                await send({"type": "http.response.start", "status": 200})
            except RuntimeError as exc:
                errors.append(str(exc))
            await asyncio.gather(asyncio.ensure_future(
                send({"type": "http.response.body", "body": b"ab", "more_body": True})))
            aw = send({"type": "http.response.body", "body": b"cde"})
            assert await aw is None
            try:
                await send({"type": "http.response.body", "body": b"x"})
            except RuntimeError as exc:
                errors.append(str(exc))

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await r.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 201 Created\r\n")
            assert b"\r\nx-mixed-case: v1\r\n" in head and b"\r\nx-list-pair: v2\r\n" in head
            assert head.lower().count(b"content-length") == 1 and b"content-length: 5" in head
            assert b"connection:" not in head.lower()     # the server decides Connection
            assert await r.readexactly(5) == b"abcde"
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")   # the connection was kept
            assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 201")
            await r.readexactly(5)
            w.close()

        self.run_client(loop, app, client)
        assert len(errors) == 4
        assert "'http.response.start' sent, after response started" in errors[0]
        assert "after response already completed" in errors[1] and errors[2:] == errors[:2]

    def test_head_has_headers_but_no_body(self, loop):
        async def client(port):
            r, w = await self.connect(port)
            w.write(b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await r.readuntil(b"\r\n\r\n")
            assert b"content-length: 8" in head.lower()   # that of "HEAD /x "
            status, _, body = await read_response(r)      # next bytes: the GET's response
            assert body == b"GET /y "
            w.close()

        self.run_client(loop, echo_app, client)

    def test_large_request_body_streams_with_backpressure(self, loop):
        seen = []

        async def app(scope, receive, send):
            total = 0
            chunks = 0
            while True:
                m = await receive()
                total += len(m["body"])
                chunks += 1
                await asyncio.sleep(0)                 # a slowish consumer
                if not m["more_body"]:
                    break
            seen.append((total, chunks))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(total).encode()})

        async def client(port):
            r, w = await self.connect(port)
            size = 16 << 20
            w.write(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            block = os.urandom(1 << 16)
            for _ in range(size // len(block)):
                w.write(b"%x\r\n" % len(block) + block + b"\r\n")
                await w.drain()
            w.write(b"0\r\n\r\n")
            status, _, body = await read_response(r)
            assert status == 200 and int(body) == size
            w.close()

        self.run_client(loop, app, client)
        assert seen[0][0] == 16 << 20 and seen[0][1] > 1

    def test_streamed_response_waits_for_a_slow_reader(self, loop):
        # response backpressure through the write batching: an app streaming small chunks to a
        # client that does not read stops in send() once the kernel's and the transport's
        # buffers are full (bounded memory), and every byte arrives, in order, once it reads
        chunk, total = 4096, 16384                     # 64 MiB in 4 KiB chunks
        progress = [0]

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % (chunk * total))]})
            for i in range(total):
                await send({"type": "http.response.body", "body": bytes([i % 251]) * chunk,
                            "more_body": i < total - 1})
                progress[0] = i + 1

        async def client(port):
            r, w = await self.connect(port)
            w.transport.pause_reading()                  # the client reads nothing for now
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            before = -1
            while progress[0] != before:                 # until the app stops making progress
                before = progress[0]
                await asyncio.sleep(0.2)
            assert 0 < progress[0] < total               # it waits in send(), not finished
            w.transport.resume_reading()
            status, headers, body = await read_response(r)
            assert status == 200 and len(body) == chunk * total
            assert all(body[i * chunk] == i % 251 and body[(i + 1) * chunk - 1] == i % 251
                       for i in range(total))
            assert progress[0] == total
            w.close()

        self.run_client(loop, app, client, timeout=60)

    def test_expect_100_continue_only_when_the_app_reads(self, loop):
        async def reject(scope, receive, send):
            await send({"type": "http.response.start", "status": 417, "headers": []})
            await send({"type": "http.response.body", "body": b"no"})

        request = (b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                   b"Expect: 100-continue\r\n\r\n")

        async def read_by_the_app(port):
            r, w = await self.connect(port)
            w.write(request)
            assert await r.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            w.write(b"data")
            assert (await read_response(r))[2] == b"POST /up data"
            w.close()

        async def refused_by_the_app(port):
            r, w = await self.connect(port)
            w.write(request)
            status, _, body = await read_response(r)
            assert status == 417                      # no 100 Continue before it
            w.close()

        self.run_client(loop, echo_app, read_by_the_app)
        self.run_client(loop, reject, refused_by_the_app)

    # --- the ASGI scope -------------------------------------------------------------------------

    def test_tls_extension_in_http_and_websocket_scopes(self, loop, tmp_path):
        import ssl
        trustme = pytest.importorskip("trustme")
        ca = trustme.CA()
        server_cert = ca.issue_cert("127.0.0.1")
        client_cert = ca.issue_cert("client@example.org", organization_name="Acme, Inc.")
        cert_file = tmp_path / "cert.pem"
        key_file = tmp_path / "key.pem"
        server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
        server_cert.private_key_pem.write_to_path(str(key_file))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(str(cert_file), str(key_file))
        server_ctx.verify_mode = ssl.CERT_OPTIONAL
        ca.configure_trust(server_ctx)
        seen = []

        async def app(scope, receive, send):
            seen.append((scope["type"], scope["scheme"], scope["extensions"].get("tls")))
            if scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.close"})
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def main():
            config = server_config(app, Cfg(ssl_certfile=str(cert_file),
                                            ssl_keyfile=str(key_file),
                                            ssl_context=lambda: server_ctx))
            server = await loop.create_server(lambda: HttpProtocol(config, loop), "127.0.0.1",
                                              0, ssl=server_ctx)
            port = server.sockets[0].getsockname()[1]
            for with_cert in (False, True):
                client_ctx = ssl.create_default_context()
                ca.configure_trust(client_ctx)
                if with_cert:
                    client_cert.configure_cert(client_ctx)
                r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
                w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                assert (await read_response(r))[2] == b"ok"
                if with_cert:
                    w.write(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
                    await r.readuntil(b"\r\n\r\n")
                w.close()
            server.close()

        self.run(loop, main())
        (t1, scheme1, anon), (t2, scheme2, tls), (t3, scheme3, ws_tls) = seen
        assert (t1, scheme1, t2, scheme2, t3, scheme3) == ("http", "https", "http", "https",
                                                           "websocket", "wss")
        assert anon["server_cert"] == server_cert.cert_chain_pems[0].bytes().decode()
        assert anon["tls_version"] in (0x0303, 0x0304)
        assert isinstance(anon["cipher_suite"], int) and 0 < anon["cipher_suite"] < 0x10000
        assert anon["client_cert_chain"] == [] and anon["client_cert_name"] is None
        assert anon["client_cert_error"] is None
        pem = client_cert.cert_chain_pems[0].bytes().decode()
        assert tls["client_cert_chain"][0].split() == pem.split()
        assert "O=Acme\\, Inc." in tls["client_cert_name"]
        assert ws_tls == tls

    def test_scope_fields(self, loop):
        scopes = []

        async def app(scope, receive, send):
            scopes.append(scope)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET /caf%C3%A9/a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: example\r\n"
                    b"X-Custom: One\r\nx-custom: two\r\n\r\n")
            status, headers, body = await read_response(r)
            assert status == 204 and "content-length" not in headers and body == b""
            local = w.get_extra_info("sockname")
            w.close()
            return local

        local = self.run_client(loop, app, client, root_path="/api")
        s = scopes[0]
        assert s["type"] == "http" and s["asgi"]["version"] == "3.0"
        assert s["http_version"] == "1.1" and s["method"] == "GET" and s["scheme"] == "http"
        assert s["path"] == "/api/café/a/b" and s["raw_path"] == b"/caf%C3%A9/a%2Fb"
        assert s["root_path"] == "/api" and s["query_string"] == b"x=1&y=%20"
        assert s["headers"] == [(b"host", b"example"), (b"x-custom", b"One"),
                                (b"x-custom", b"two")]
        assert s["client"] == (local[0], local[1])
        assert s["server"][0] == "127.0.0.1"
        assert "http.response.pathsend" in s["extensions"]

    # --- errors and bad input -------------------------------------------------------------------

    @pytest.mark.parametrize("raw,status", [
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\n" + b"".join(b"h%d: v\r\n" % i for i in range(200)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413),
    ])
    def test_malformed_requests_get_4xx_and_close(self, loop, raw, status):
        calls = []

        async def app(scope, receive, send):
            calls.append(scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def client(port):
            r, w = await self.connect(port)
            w.write(raw)
            st, _, _ = await read_response(r)
            assert st == status
            assert await r.read() == b""              # and the connection is closed
            # the server keeps answering other clients
            r2, w2 = await self.connect(port)
            w2.write(b"GET /fine HTTP/1.1\r\nHost: a\r\n\r\n")
            st2, _, body2 = await read_response(r2)
            assert (st2, body2) == (200, b"ok")
            w.close()
            w2.close()

        self.run_client(loop, app, client, max_body=1 << 20)
        assert calls == ["/fine"]                     # the bad request never reached the app

    def test_app_errors_become_500_or_a_close(self, loop, caplog):
        async def app(scope, receive, send):
            if scope["path"] == "/before":
                raise ValueError("boom")
            if scope["path"] == "/nothing":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise ValueError("after start")

        async def client(port):
            for path in (b"/before", b"/nothing"):
                r, w = await self.connect(port)
                w.write(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                status, headers, _ = await read_response(r)
                assert status == 500 and headers.get("connection") == "close"
                w.close()
            r, w = await self.connect(port)
            w.write(b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
            raw = await r.read()                      # cut short: no terminating chunk
            assert raw.endswith(b"partial\r\n") and b"0\r\n\r\n" not in raw
            w.close()

        self.run_client(loop, app, client)
        assert "Exception in ASGI application" in caplog.text

    def test_disconnect_reaches_the_app(self, loop):
        got = []

        async def app(scope, receive, send):
            got.append(await receive())               # the body ("abc") ...
            got.append(await receive())               # ... then the client goes away

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
            while not got:
                await asyncio.sleep(0.01)
            w.close()
            while len(got) < 2:
                await asyncio.sleep(0.01)

        self.run_client(loop, app, client)
        assert got[0] == {"type": "http.request", "body": b"abc", "more_body": True}
        assert got[1] == {"type": "http.disconnect"}

    def test_slow_headers_time_out_with_408_and_idle_connections_close(self, loop):
        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n")   # ... and never the blank line
            status, _, _ = await read_response(r)
            assert status == 408
            assert await r.read() == b""
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await read_response(r)
            assert await r.read() == b""              # keep-alive idle timeout closes

        self.run_client(loop, echo_app, client, timeout_request_header=0.3, timeout_keep_alive=0.3)

    # --- files ----------------------------------------------------------------------------------

    def test_pathsend_and_zerocopysend(self, loop, tmp_path):
        data = os.urandom((1 << 20) + 123)
        path = tmp_path / "blob"
        path.write_bytes(data)

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream")]})
            if scope["path"] == "/path":
                await send({"type": "http.response.pathsend", "path": str(path)})
            else:
                with open(path, "rb") as f:
                    await send({"type": "http.response.zerocopysend", "file": f,
                                "offset": 100, "count": 1000})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET /path HTTP/1.1\r\nHost: a\r\n\r\nGET /zc HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"HEAD /path HTTP/1.1\r\nHost: a\r\n\r\n")
            s1, h1, b1 = await read_response(r)
            s2, h2, b2 = await read_response(r)
            head = await r.readuntil(b"\r\n\r\n")
            assert b1 == data and int(h1["content-length"]) == len(data)
            assert b2 == data[100:1100]
            assert b"content-length: %d" % len(data) in head
            w.close()

        self.run_client(loop, app, client)

    def test_zerocopysend_of_a_file_object_without_a_descriptor(self, loop):
        # not what the extension is for, but a file-like object with no fileno() still gets
        # its bytes sent (loop.sendfile's read/write fallback)
        import io
        data = os.urandom(300_000)

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.zerocopysend", "file": io.BytesIO(data),
                        "offset": 5, "count": 200_000})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
            for _ in range(2):
                status, headers, body = await read_response(r)
                assert status == 200 and body == data[5:200_005]
            w.close()

        self.run_client(loop, app, client)

    def test_file_responses_larger_than_the_socket_buffer(self, loop, tmp_path):
        # engine sends a file's first part at once and the rest when the socket drains: a
        # client that waits before reading gets every byte, in order, then the next response
        data = os.urandom(24 << 20)
        path = tmp_path / "big"
        path.write_bytes(data)
        positions = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if scope["path"] == "/path":
                await send({"type": "http.response.pathsend", "path": str(path)})
            elif scope["path"] == "/zc":
                with open(path, "rb") as f:
                    await send({"type": "http.response.zerocopysend", "file": f,
                                "offset": 7, "count": len(data) - 100})
                    positions.append(f.tell())
            else:
                await send({"type": "http.response.body", "body": b"small"})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET /path HTTP/1.1\r\nHost: a\r\n\r\nGET /zc HTTP/1.1\r\nHost: a\r\n\r\n"
                    b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n")
            await asyncio.sleep(0.2)                  # the server's socket buffer fills
            got = [await read_response(r) for _ in range(3)]
            assert got[0][2] == data and got[1][2] == data[7:len(data) - 93]
            assert got[2][2] == b"small"
            assert positions == [len(data) - 93]       # where loop.sendfile leaves it
            w.close()

        self.run_client(loop, app, client)

    def test_client_gone_during_a_file_response(self, loop, tmp_path):
        # the client resets while a large file is on its way: the app's send() returns (no
        # error for the app), its receive() says http.disconnect, the server goes on
        import struct
        path = tmp_path / "big"
        path.write_bytes(os.urandom(64 << 20))
        outcome = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if scope["path"] == "/ok":
                await send({"type": "http.response.body", "body": b"ok"})
                return
            try:
                if scope["path"] == "/path":
                    await send({"type": "http.response.pathsend", "path": str(path)})
                else:
                    with open(path, "rb") as f:
                        await send({"type": "http.response.zerocopysend", "file": f})
            except Exception as exc:
                outcome.append(exc)
                raise
            outcome.append((await receive())["type"])

        async def client(port):
            for target in (b"/path", b"/zc"):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.setblocking(False)
                await loop.sock_connect(s, ("127.0.0.1", port))
                await loop.sock_sendall(s, b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                await loop.sock_recv(s, 100)             # the response has begun
                await asyncio.sleep(0.05)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()                                  # RST
                for _ in range(200):
                    if len(outcome) == (1 if target == b"/path" else 2):
                        break
                    await asyncio.sleep(0.01)
            assert outcome == ["http.disconnect", "http.disconnect"]
            await self.answers_ok(port)

        self.run_client(loop, app, client)

    def test_pathsend_refuses_what_is_not_a_regular_file(self, loop, tmp_path):
        # a directory or a FIFO (which open(2) would block on, stalling every connection)
        # raises in the app's send(); the app fails after its response started, so the
        # connection ends with no response, and the server goes on
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        errors = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            if scope["path"] == "/ok":
                await send({"type": "http.response.body", "body": b"ok"})
                return
            target = {"/dir": tmp_path, "/fifo": fifo, "/missing": tmp_path / "nope"}
            try:
                await send({"type": "http.response.pathsend",
                            "path": str(target[scope["path"]])})
            except Exception as exc:
                errors.append(type(exc))
                raise

        async def client(port):
            for target in (b"/dir", b"/fifo", b"/missing"):
                r, w = await self.connect(port)
                w.write(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                assert await r.read() == b""
                w.close()
            assert errors == [IsADirectoryError, ValueError, FileNotFoundError]
            await self.answers_ok(port)

        self.run_client(loop, app, client)

    def test_no_pipelined_request_runs_after_a_response_that_closes(self, loop):
        # the app ends the connection with its response: requests pipelined behind it are
        # never handed to the app (their responses could not be delivered)
        seen = []

        async def app(scope, receive, send):
            seen.append(scope["path"])
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"connection", b"close")]})
            await send({"type": "http.response.body", "body": b"bye"})

        async def client(port):
            r, w = await self.connect(port)
            w.write(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\n"
                    b"Content-Length: 2\r\n\r\nhiGET /c HTTP/1.1\r\nHost: a\r\n\r\n")
            status, headers, body = await read_response(r)
            assert (status, body, headers["connection"]) == (200, b"bye", "close")
            assert await r.read() == b""
            await asyncio.sleep(0.05)
            assert seen == ["/a"]
            w.close()

        self.run_client(loop, app, client)

    def test_file_shorter_than_announced_ends_the_connection(self, loop, tmp_path):
        # a zerocopysend count past the end of the file (a file that shrank): the response
        # can't have the length it announced, so the connection ends after what was sent --
        # never a chunked terminator or a next response that would make it look complete
        path = tmp_path / "f"
        path.write_bytes(b"x" * 1000)
        after = []

        async def app(scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            chunked = scope["path"] == "/chunked"
            with open(path, "rb") as f:
                await send({"type": "http.response.zerocopysend", "file": f,
                            "count": 5000, "more_body": chunked})
            if chunked:
                await send({"type": "http.response.body", "body": b"TAIL"})
            after.append(scope["path"])

        async def client(port):
            for target, framing in ((b"/length", b"content-length: 5000"),
                                    (b"/chunked", b"transfer-encoding: chunked")):
                r, w = await self.connect(port)
                w.write(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"
                        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
                head = await r.readuntil(b"\r\n\r\n")
                assert framing in head.lower()
                rest = await r.read()                  # EOF: the server closed
                assert rest.count(b"x") == 1000
                assert b"TAIL" not in rest and b"HTTP/1.1" not in rest
                assert not rest.endswith(b"0\r\n\r\n")
                w.close()
            assert after == ["/length", "/chunked"]    # the apps finished without an error

        self.run_client(loop, app, client)

    # --- websocket ------------------------------------------------------------------------------

    async def ws_connect(self, port, path=b"/ws", extra=b""):
        r, w = await self.connect(port)
        w.write(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
        head = await r.readuntil(b"\r\n\r\n")
        return r, w, head

    async def ws_read(self, r):
        parser = _ws.MessageParser(is_server=False)
        while True:
            parser.feed_data(await r.read(65536))
            ev = parser.events()
            if ev:
                return ev

    def test_websocket_echo_ping_and_close(self, loop):
        async def app(scope, receive, send):
            assert scope["type"] == "websocket" and scope["path"] == "/ws"
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept", "subprotocol": None})
            while True:
                m = await receive()
                if m["type"] == "websocket.disconnect":
                    closed.append(m["code"])
                    return
                if m.get("text") is not None:
                    await send({"type": "websocket.send", "text": m["text"].upper()})
                else:
                    await send({"type": "websocket.send", "bytes": m["bytes"][::-1]})

        closed = []

        async def client(port):
            r, w, head = await self.ws_connect(port)
            assert head.startswith(b"HTTP/1.1 101")
            assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
            w.write(_ws.build_frame(_ws.OP_TEXT, "héllo", mask=True))
            assert await self.ws_read(r) == [("text", "HÉLLO")]
            w.write(_ws.build_frame(_ws.OP_BINARY, b"\x01\x02\x03", mask=True))
            assert await self.ws_read(r) == [("binary", b"\x03\x02\x01")]
            w.write(_ws.build_frame(_ws.OP_PING, b"hi", mask=True))
            assert await self.ws_read(r) == [("pong", b"hi")]
            w.write(_ws.build_close(1000, "bye", mask=True))
            ev = await self.ws_read(r)
            assert ev[0][0] == "close" and ev[0][1] == 1000
            assert await r.read() == b""
            while not closed:
                await asyncio.sleep(0.01)

        self.run_client(loop, app, client)
        assert closed == [1000]

    def test_websocket_deny_and_bad_handshakes(self, loop):
        async def app(scope, receive, send):
            await receive()
            if scope["path"] == "/deny":
                await send({"type": "websocket.close"})
            else:
                await send({"type": "websocket.http.response.start", "status": 401,
                            "headers": [(b"content-length", b"4")]})
                await send({"type": "websocket.http.response.body", "body": b"nope"})

        async def client(port):
            r, w, head = await self.ws_connect(port, b"/deny")
            assert head.startswith(b"HTTP/1.1 403")
            w.close()
            r, w, head = await self.ws_connect(port, b"/custom")
            assert head.startswith(b"HTTP/1.1 401") and await r.read() == b"nope"
            w.close()
            r, w = await self.connect(port)
            w.write(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")   # no key
            status, _, _ = await read_response(r)
            assert status == 400
            w.close()

        self.run_client(loop, app, client)

    def test_websocket_protocol_errors_close_with_the_right_code(self, loop):
        codes = []

        async def app(scope, receive, send):
            await receive()
            await send({"type": "websocket.accept"})
            while True:
                m = await receive()
                if m["type"] == "websocket.disconnect":
                    codes.append(m["code"])
                    return

        async def client(port):
            # unmasked client frame: 1002
            r, w, _ = await self.ws_connect(port)
            w.write(_ws.build_frame(_ws.OP_TEXT, "x"))
            ev = await self.ws_read(r)
            assert ev[0][:2] == ("close", 1002)
            w.close()
            # invalid UTF-8 in a text message: 1007
            r, w, _ = await self.ws_connect(port)
            w.write(_ws.build_frame(_ws.OP_TEXT, b"\xff\xfe", mask=True))
            assert (await self.ws_read(r))[0][:2] == ("close", 1007)
            w.close()
            # bigger than ws_max_size: 1009
            r, w, _ = await self.ws_connect(port)
            w.write(_ws.build_frame(_ws.OP_BINARY, b"x" * 4096, mask=True))
            assert (await self.ws_read(r))[0][:2] == ("close", 1009)
            w.close()
            while len(codes) < 3:
                await asyncio.sleep(0.01)

        self.run_client(loop, app, client, ws_max_size=1024)
        assert sorted(codes) == [1002, 1007, 1009]

    # --- graceful shutdown ------------------------------------------------------------------------

    def test_shutdown_finishes_the_in_flight_response(self, loop):
        protos = []

        async def main():
            config = server_config(echo_app)

            def factory():
                p = HttpProtocol(config, loop)
                protos.append(p)
                return p

            server = await loop.create_server(factory, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            r, w = await self.connect(port)
            w.write(b"GET /sleep/0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
            r2, w2 = await self.connect(port)              # an idle keep-alive connection
            await asyncio.sleep(0.1)
            for p in protos:
                p.shutdown()
            status, headers, body = await read_response(r)
            assert status == 200 and body == b"GET /sleep/0.3 "
            assert headers.get("connection") == "close"
            assert await r.read() == b"" and await r2.read() == b""
            server.close()

        self.run(loop, main())

    def test_reading_paused_only_while_pipelined_bytes_wait(self, loop):
        # a request whose response is not done yet pauses the parser; the socket is paused
        # only once bytes of a next request are held (one read's worth), and resumed when
        # the response is done
        calls = []
        release = []

        class Transport(asyncio.Transport):
            def get_extra_info(self, name, default=None):
                return {"peername": ("127.0.0.1", 5), "sockname": ("127.0.0.1", 80)}.get(
                    name, default)

            def write(self, data):
                calls.append("write")

            def writelines(self, chunks):
                calls.append("write")

            def is_closing(self):
                return False

            def pause_reading(self):
                calls.append("pause")

            def resume_reading(self):
                calls.append("resume")

        async def app(scope, receive, send):
            if scope["path"] == "/wait":
                gate = loop.create_future()
                release.append(gate)
                await gate
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"x"})

        async def settle():
            for _ in range(5):
                await asyncio.sleep(0)

        async def main():
            proto = HttpProtocol(server_config(app), loop)
            proto.connection_made(Transport())
            proto.data_received(b"GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
            await settle()
            assert calls == [] and len(release) == 1          # waiting, reading not paused
            proto.data_received(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
            assert calls == ["pause"]                         # a pipelined request is held
            release[0].set_result(None)
            await settle()
            assert calls[:2] == ["pause", "resume"] and calls.count("write") >= 1
            proto.connection_lost(None)

        self.run(loop, main())

    def test_send_reads_body_messages_that_are_mappings_and_content_lengths(self, loop):
        # the ASGI message of a body may be any mapping (read with .get()); a Content-Length
        # the app gives is read as int() reads it, digits or not
        from types import MappingProxyType

        async def app(scope, receive, send):
            length = {"/digits": b"5", "/spaced": b" 5 ", "/plus": b"+5"}[scope["path"]]
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", length)]})
            await send(MappingProxyType({"type": "http.response.body", "body": b"hello"}))

        async def client(port):
            r, w = await self.connect(port)
            for path in (b"/digits", b"/spaced", b"/plus"):
                w.write(b"GET " + path + b" HTTP/1.1\r\nHost: a\r\n\r\n")
                status, headers, body = await read_response(r)
                assert (status, headers["content-length"], body) == (200, "5", b"hello")
            w.close()

        self.run_client(loop, app, client)

    # --- proxy headers ---------------------------------------------------------------------------

    def test_proxy_headers_middleware_work_done_by_the_protocol(self, loop):
        # server_config() takes engine.serve.proxy_headers' middleware into HTTP/1.1 (the app
        # it wraps is called directly): a trusted peer's X-Forwarded-* rewrite the scope's
        # client and scheme, an untrusted peer's are ignored, requests without them unchanged
        seen = []

        async def app(scope, receive, send):
            seen.append((tuple(scope["client"]), scope["scheme"]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        async def client(port):
            r, w = await self.connect(port)
            for extra in (b"", b"X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
                               b"X-Forwarded-Proto: https\r\n", b"x-forwarded-proto: https\r\n"):
                w.write(b"GET / HTTP/1.1\r\nHost: a\r\n" + extra + b"\r\n")
                assert (await read_response(r))[2] == b"ok"
            w.close()

        trusted = ProxyHeadersMiddleware(app, "127.0.0.1")
        config = server_config(trusted)
        assert config.proxy is trusted and config.proxy_app is app
        self.run_client(loop, trusted, client)
        here = seen[0][0][0]
        assert here == "127.0.0.1" and seen[0][1] == "http"
        assert seen[1:] == [(("203.0.113.7", 0), "https"), (seen[0][0], "https")]
        seen.clear()
        self.run_client(loop, ProxyHeadersMiddleware(app, "10.0.0.1"), client)
        assert [s for _, s in seen] == ["http"] * 3
        assert all(c[0] == "127.0.0.1" for c, _ in seen)


class TestEngineHttp(HttpBehaviour):
    factory = staticmethod(engine.new_event_loop)


class TestAsyncioHttp(HttpBehaviour):
    factory = staticmethod(asyncio.new_event_loop)

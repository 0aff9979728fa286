"""Each one-liner of docs/pages/integrations.md, exactly as documented, run against the real
tool: every test shows that the code ran on ``engine.Loop`` (the app or the test reports the
running loop's class) and that it did real I/O over a socket on 127.0.0.1. A test is skipped only
when its tool is not installed (CI installs the ``test`` extra, which has all of them)."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import textwrap
import threading
import urllib.request

import pytest
from integ_util import BIN, Process, get, listening_socket, wait_until, write_app

import engine

ENGINE_LOOP = "engine.Loop"


def loop_name() -> str:
    cls = type(asyncio.get_running_loop())
    return f"{cls.__module__}.{cls.__qualname__}"


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


class EchoServer:
    """A plain blocking TCP echo server in a thread: the peer of apps that must do real I/O."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    def close(self):
        self.sock.close()


@pytest.fixture
def echo_server():
    server = EchoServer()
    yield server
    server.close()


async def echo_roundtrip(port: int, payload: bytes = b"ping\n") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return line


# --- uvicorn ---------------------------------------------------------------------------------

def test_uvicorn_loop_option(tmp_path):
    pytest.importorskip("uvicorn")
    app = write_app(tmp_path)
    sock = listening_socket()
    sock.listen(16)
    fd = sock.fileno()
    # the documented line, with --fd instead of --port (a socket the test bound to port 0)
    server = Process([os.path.join(BIN, "uvicorn"), app, "--loop", "engine:new_event_loop",
                      "--fd", str(fd)], cwd=tmp_path, pass_fds=(fd,))
    port = sock.getsockname()[1]
    sock.close()
    try:
        status, body = wait_until(lambda: get(port, "/x", timeout=5), "uvicorn to answer")
        assert status == 200 and body["loop"] == ENGINE_LOOP
        assert body["pid"] == server.pid
    finally:
        server.stop()


def test_uvicorn_run_from_python(tmp_path):
    uvicorn = pytest.importorskip("uvicorn")
    write_app(tmp_path)
    sys.path.insert(0, str(tmp_path))
    sock = listening_socket()
    sock.listen(16)
    config = uvicorn.Config("loopapp:app", loop="engine:new_event_loop", log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, "uvicorn to start")
        status, body = get(sock.getsockname()[1])
        assert status == 200 and body["loop"] == ENGINE_LOOP
    finally:
        server.should_exit = True
        thread.join(30)
        sys.path.remove(str(tmp_path))
        sys.modules.pop("loopapp", None)
        sock.close()


# --- hypercorn -------------------------------------------------------------------------------

def test_hypercorn_serve(tmp_path):
    pytest.importorskip("hypercorn")
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    namespace: dict = {}
    exec(compile(_app_source(), "loopapp", "exec"), namespace)
    sock = listening_socket()
    port = sock.getsockname()[1]
    fd = sock.detach()                       # hypercorn adopts the socket (fd://)
    stop = threading.Event()
    config = Config.from_mapping(bind=[f"fd://{fd}"])

    async def main():
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopped.set)),
                         daemon=True).start()
        await serve(namespace["app"], config, shutdown_trigger=stopped.wait)

    thread = threading.Thread(target=lambda: engine.run(main()), daemon=True)
    thread.start()
    try:
        status, body = wait_until(lambda: get(port, "/h", timeout=5), "hypercorn to answer")
        assert status == 200 and body["loop"] == ENGINE_LOOP
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()


def _app_source() -> str:
    from integ_util import APP_SOURCE
    return APP_SOURCE


# --- anyio -----------------------------------------------------------------------------------

def test_anyio_backend_options():
    anyio = pytest.importorskip("anyio")

    async def main():
        async def handle(stream):
            async with stream:
                await stream.send(await stream.receive())

        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handle)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"over anyio")
                got = await client.receive()
            tg.cancel_scope.cancel()
        return loop_name(), got

    name, got = anyio.run(main, backend_options={"loop_factory": engine.new_event_loop})
    assert name == ENGINE_LOOP and got == b"over anyio"


# --- aiohttp ---------------------------------------------------------------------------------

def test_aiohttp_apprunner_and_client_session():
    pytest.importorskip("aiohttp")
    from aiohttp import ClientSession, web

    async def handler(request):
        return web.json_response({"loop": loop_name()})

    async def main():
        app = web.Application()
        app.router.add_get("/", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{port}/") as resp:
                return resp.status, await resp.json(), loop_name()
        finally:
            await runner.cleanup()

    status, body, client_loop = engine.run(main())
    assert status == 200 and body["loop"] == ENGINE_LOOP and client_loop == ENGINE_LOOP


def test_aiohttp_run_app(tmp_path):
    pytest.importorskip("aiohttp")
    sock = listening_socket()
    fd = sock.fileno()
    (tmp_path / "aioapp.py").write_text(textwrap.dedent(f"""
        import asyncio, socket
        import engine
        from aiohttp import web

        async def handler(request):
            cls = type(asyncio.get_running_loop())
            return web.json_response({{"loop": f"{{cls.__module__}}.{{cls.__qualname__}}"}})

        app = web.Application()
        app.router.add_get("/", handler)
        sock = socket.socket(fileno={fd})
        web.run_app(app, sock=sock, loop=engine.new_event_loop(), print=None)
        """))
    server = Process([sys.executable, "aioapp.py"], cwd=tmp_path, pass_fds=(fd,))
    port = sock.getsockname()[1]
    sock.close()
    try:
        status, body = wait_until(lambda: get(port, "/", timeout=5), "aiohttp to answer")
        assert status == 200 and body["loop"] == ENGINE_LOOP
        server.proc.send_signal(2)                   # SIGINT: run_app's clean exit
        assert server.wait() == 0, server.output()
    finally:
        server.stop()


# --- Starlette's TestClient ------------------------------------------------------------------

def test_starlette_testclient(echo_server):
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    async def home(request):
        # the endpoint does real socket I/O on the loop TestClient runs it on
        echoed = await echo_roundtrip(echo_server.port, b"from starlette\n")
        return JSONResponse({"loop": loop_name(), "echo": echoed.decode()})

    app = Starlette(routes=[Route("/", home)])
    with TestClient(app, backend_options={"loop_factory": engine.new_event_loop}) as client:
        body = client.get("/").json()
    assert body == {"loop": ENGINE_LOOP, "echo": "from starlette\n"}


# --- FastAPI, Litestar, Django ---------------------------------------------------------------

def test_fastapi_on_engine_serve():
    pytest.importorskip("fastapi")
    from fastapi import FastAPI

    from engine.pytest_plugin import LiveServer

    app = FastAPI()

    @app.get("/items/{item}")
    async def item(item: int):
        return {"loop": loop_name(), "item": item}

    with LiveServer(app) as server:
        assert fetch_json(server.url + "/items/7") == {"loop": ENGINE_LOOP, "item": 7}


def test_fastapi_under_uvicorn_with_engine_loop(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    (tmp_path / "fastapp.py").write_text(textwrap.dedent("""
        import asyncio
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/")
        async def home():
            cls = type(asyncio.get_running_loop())
            return {"loop": f"{cls.__module__}.{cls.__qualname__}"}
        """))
    sock = listening_socket()
    sock.listen(16)
    fd = sock.fileno()
    server = Process([os.path.join(BIN, "uvicorn"), "fastapp:app", "--loop",
                      "engine:new_event_loop", "--fd", str(fd)], cwd=tmp_path, pass_fds=(fd,))
    port = sock.getsockname()[1]
    sock.close()
    try:
        status, body = wait_until(lambda: get(port, "/", timeout=5), "uvicorn to answer")
        assert status == 200 and body["loop"] == ENGINE_LOOP
    finally:
        server.stop()


def test_litestar_on_engine_serve():
    pytest.importorskip("litestar")
    from litestar import Litestar
    from litestar import get as route

    from engine.pytest_plugin import LiveServer

    @route("/")
    async def home() -> dict[str, str]:
        return {"loop": loop_name()}

    app = Litestar(route_handlers=[home])
    with LiveServer(app) as server:
        assert fetch_json(server.url + "/") == {"loop": ENGINE_LOOP}


def test_django_asgi_under_engine_serve(tmp_path):
    pytest.importorskip("django")
    (tmp_path / "djsite.py").write_text(textwrap.dedent("""
        import asyncio
        from django.conf import settings
        from django.http import JsonResponse
        from django.urls import path

        settings.configure(DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
                           SECRET_KEY="test-only")

        async def home(request):
            cls = type(asyncio.get_running_loop())
            return JsonResponse({"loop": f"{cls.__module__}.{cls.__qualname__}"})

        urlpatterns = [path("", home)]

        from django.core.asgi import get_asgi_application
        application = get_asgi_application()
        """))
    sock = listening_socket()
    sock.listen(16)
    fd = sock.fileno()
    server = Process([os.path.join(BIN, "engine"), "serve", "djsite:application",
                      "--fd", str(fd)], cwd=tmp_path, pass_fds=(fd,))
    port = sock.getsockname()[1]
    sock.close()
    try:
        status, body = wait_until(lambda: get(port, "/", timeout=5), "engine serve to answer")
        assert status == 200 and body["loop"] == ENGINE_LOOP
    finally:
        server.stop()


# --- pytest-asyncio without engine's plugin (the conftest one-liner) -------------------------

def test_pytest_asyncio_hook_in_a_conftest(pytester):
    pytest.importorskip("pytest_asyncio")
    pytester.makeconftest("""
        import engine

        def pytest_asyncio_loop_factories(config, item):
            return {"engine": engine.new_event_loop}
        """)
    pytester.makepyfile("""
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_on_engine():
            assert type(asyncio.get_running_loop()).__module__ == "engine"
            server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await reader.read() == b""
            writer.close()
            server.close()
            await server.wait_closed()
        """)
    pytester.runpytest_inprocess().assert_outcomes(passed=1)

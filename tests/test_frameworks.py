"""Real frameworks on engine's ASGI server: Starlette, FastAPI and Django apps served by
engine.serve.protocols.http on engine's loop (in a background thread), driven by real clients: urllib for
HTTP and the `websockets` library for WebSocket."""
import asyncio
import json
import threading
import urllib.request

import pytest
import websockets.sync.client as ws_client

import engine
from engine.serve.protocols.http import HttpProtocol, server_config


class ServerThread:
    """Serves an ASGI app (with its lifespan) on an engine loop in a thread."""

    def __init__(self, app, lifespan=True):
        self.app = app
        self.lifespan = lifespan
        self.ready = threading.Event()
        self.loop = None
        self.port = None
        self.state = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.loop = loop = engine.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._main())
        loop.close()

    async def _startup(self):
        """ASGI lifespan startup (the app keeps running its lifespan task until we exit)."""
        queue = asyncio.Queue()
        await queue.put({"type": "lifespan.startup"})
        done = asyncio.get_running_loop().create_future()

        async def send(message):
            if not done.done():
                done.set_result(message)

        self._lifespan_queue = queue
        self._lifespan_task = asyncio.ensure_future(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state},
                     queue.get, send))
        message = await done
        assert message["type"] == "lifespan.startup.complete", message

    async def _main(self):
        if self.lifespan:
            await self._startup()
        loop = asyncio.get_running_loop()
        cfg = server_config(self.app)
        cfg.lifespan_state = self.state
        self.stop = loop.create_future()
        server = await loop.create_server(lambda: HttpProtocol(cfg, loop), "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await self.stop
        server.close()
        for proto in list(cfg.connections):
            proto.shutdown()
        await server.wait_closed()
        if self.lifespan:
            await self._lifespan_queue.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(self._lifespan_task, 10)

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop.set_result, None)
        self.thread.join(30)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.url(path), data=data, headers=headers or {},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def test_starlette_routes_streaming_websocket_and_lifespan():
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route, WebSocketRoute

    @asynccontextmanager
    async def lifespan(app):
        yield {"greeting": "hello from lifespan"}

    async def home(request):
        return PlainTextResponse(request.state.greeting)

    async def echo(request):
        body = await request.body()
        return JSONResponse({"method": request.method, "len": len(body),
                             "q": request.query_params.get("q"),
                             "task": asyncio.current_task() is not None})

    async def stream(request):
        async def gen():
            for i in range(5):
                yield b"chunk%d;" % i
        return StreamingResponse(gen(), media_type="text/plain")

    async def ws(websocket):
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text[::-1])

    app = Starlette(routes=[Route("/", home), Route("/echo", echo, methods=["GET", "POST"]),
                            Route("/stream", stream), WebSocketRoute("/ws", ws)],
                    lifespan=lifespan)
    with ServerThread(app) as srv:
        status, headers, body = srv.get("/")
        assert (status, body) == (200, b"hello from lifespan")
        status, headers, body = srv.get("/echo?q=x%20y", data=b"a" * 100000)
        assert status == 200
        assert json.loads(body) == {"method": "POST", "len": 100000, "q": "x y", "task": True}
        status, headers, body = srv.get("/stream")
        assert body == b"chunk0;chunk1;chunk2;chunk3;chunk4;"
        assert srv.get("/missing")[0] == 404
        with ws_client.connect(f"ws://127.0.0.1:{srv.port}/ws") as conn:
            for text in ("abc", "héllo", "x" * 70000):
                conn.send(text)
                assert conn.recv(timeout=10) == text[::-1]


def test_fastapi_json_validation_and_dependencies():
    from fastapi import Depends, FastAPI, WebSocket
    from pydantic import BaseModel

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    def token(x_token: str | None = None):
        return x_token

    @app.post("/items/{item_id}")
    async def create(item_id: int, item: Item, t=Depends(token)):
        return {"id": item_id, "name": item.name, "double": item.price * 2}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})
        await websocket.close()

    with ServerThread(app) as srv:
        status, _, body = srv.get("/items/7", data=json.dumps({"name": "n", "price": 2.5}).encode(),
                                  headers={"content-type": "application/json"})
        assert status == 200 and json.loads(body) == {"id": 7, "name": "n", "double": 5.0}
        status, _, body = srv.get("/items/x", data=b"{}",
                                  headers={"content-type": "application/json"})
        assert status == 422                                  # validation errors pass through
        status, _, body = srv.get("/docs")
        assert status == 200 and b"swagger" in body.lower()
        with ws_client.connect(f"ws://127.0.0.1:{srv.port}/ws") as conn:
            conn.send(json.dumps({"a": 1}))
            assert json.loads(conn.recv(timeout=10)) == {"got": {"a": 1}}


def test_django_asgi_application():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="engine-tests", ROOT_URLCONF=__name__,
            ALLOWED_HOSTS=["127.0.0.1", "localhost"], MIDDLEWARE=[],
            INSTALLED_APPS=[], DATABASES={})
        django.setup()
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    with ServerThread(app, lifespan=False) as srv:
        status, headers, body = srv.get("/hello/world?x=1")
        assert status == 200 and body == b"hello world x=1"
        status, _, body = srv.get("/upload/", data=b"z" * 50000)
        assert status == 200 and body == b"50000"
        assert srv.get("/nope/")[0] == 404


# Django URLconf for test_django_asgi_application (ROOT_URLCONF is this module)
def _django_urls():
    from django.http import HttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    def hello(request, name):
        return HttpResponse(f"hello {name} x={request.GET.get('x')}")

    @csrf_exempt
    def upload(request):
        return HttpResponse(str(len(request.body)))

    return [path("hello/<str:name>", hello), path("upload/", upload)]


def __getattr__(name):
    if name == "urlpatterns":
        return _django_urls()
    raise AttributeError(name)

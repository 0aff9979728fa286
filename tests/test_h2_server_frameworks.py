"""Real frameworks over HTTP/2: Starlette, FastAPI and Django apps served by engine's HTTP
protocol (tests/test_frameworks.py's ServerThread, same port for HTTP/1.1 and h2c) and driven by
httpx with HTTP/2 prior knowledge on one connection."""
import asyncio
import json

import httpx
from test_frameworks import ServerThread


def _h2_client(srv):
    return httpx.Client(http1=False, http2=True, base_url=f"http://127.0.0.1:{srv.port}",
                        timeout=30)


def test_starlette_over_http2():
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app):
        yield {"greeting": "hello from lifespan"}

    async def home(request):
        return PlainTextResponse(request.state.greeting)

    async def echo(request):
        body = await request.body()
        return JSONResponse({"method": request.method, "len": len(body),
                             "q": request.query_params.get("q"),
                             "http_version": request.scope["http_version"],
                             "host": request.headers.get("host"),
                             "cookies": request.cookies})

    async def stream(request):
        async def gen():
            for i in range(5):
                yield b"chunk%d;" % i
                await asyncio.sleep(0)
        return StreamingResponse(gen(), media_type="text/plain")

    app = Starlette(routes=[Route("/", home), Route("/echo", echo, methods=["GET", "POST"]),
                            Route("/stream", stream)], lifespan=lifespan)
    with ServerThread(app) as srv, _h2_client(srv) as client:
        r = client.get("/")
        assert (r.http_version, r.status_code, r.text) == ("HTTP/2", 200, "hello from lifespan")
        r = client.post("/echo?q=x%20y", content=b"a" * 200000,
                        headers={"cookie": "a=1; b=2"})
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert r.json() == {"method": "POST", "len": 200000, "q": "x y", "http_version": "2",
                            "host": f"127.0.0.1:{srv.port}", "cookies": {"a": "1", "b": "2"}}
        r = client.get("/stream")
        assert r.content == b"chunk0;chunk1;chunk2;chunk3;chunk4;"
        assert client.get("/missing").status_code == 404
        # HTTP/1.1 on the same port still answers
        assert srv.get("/")[0] == 200


def test_fastapi_over_http2():
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Item(BaseModel):
        name: str
        price: float

    @app.post("/items/{item_id}")
    async def create(item_id: int, item: Item):
        return {"id": item_id, "name": item.name, "double": item.price * 2}

    with ServerThread(app) as srv, _h2_client(srv) as client:
        r = client.post("/items/7", json={"name": "n", "price": 2.5})
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json() == {"id": 7, "name": "n", "double": 5.0}
        assert client.post("/items/x", json={}).status_code == 422
        r = client.get("/docs")
        assert r.status_code == 200 and b"swagger" in r.content.lower()


def test_django_over_http2():
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="engine-tests", ROOT_URLCONF="test_frameworks",
            ALLOWED_HOSTS=["127.0.0.1", "localhost"], MIDDLEWARE=[],
            INSTALLED_APPS=[], DATABASES={})
        django.setup()
    # in-process Django is configured only here and in tests/test_frameworks.py, both with that
    # module as the URLconf (tests/integrations run Django in a subprocess)
    assert settings.ROOT_URLCONF in ("test_frameworks", "tests.test_frameworks"), \
        settings.ROOT_URLCONF
    from django.core.asgi import get_asgi_application

    app = get_asgi_application()
    with ServerThread(app, lifespan=False) as srv, _h2_client(srv) as client:
        r = client.get("/hello/world?x=1")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.content == b"hello world x=1"
        r = client.post("/upload/", content=b"z" * 150000)
        assert r.status_code == 200 and r.content == b"150000"
        assert client.get("/nope/").status_code == 404


def test_concurrent_streams_on_one_connection_reach_the_app_concurrently():
    # 20 requests on one HTTP/2 connection that each wait until all 20 have arrived: they can
    # only all finish if the streams are served concurrently
    arrived = []
    everyone = None

    async def app(scope, receive, send):
        nonlocal everyone
        if scope["type"] != "http":
            return
        if everyone is None:
            everyone = asyncio.Event()
        arrived.append(scope["path"])
        if len(arrived) == 20:
            everyone.set()
        await everyone.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps(len(arrived)).encode()})

    async def main(port):
        async with httpx.AsyncClient(http1=False, http2=True, timeout=30,
                                     base_url=f"http://127.0.0.1:{port}") as client:
            return await asyncio.gather(*(client.get(f"/{i}") for i in range(20)))

    with ServerThread(app, lifespan=False) as srv:
        rs = asyncio.run(main(srv.port))
    assert [r.status_code for r in rs] == [200] * 20
    assert all(r.json() == 20 for r in rs)

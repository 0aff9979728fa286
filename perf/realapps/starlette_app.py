"""The TechEmpower test types as a Starlette app on asyncpg (see db.py)."""
from __future__ import annotations

import contextlib

import db
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


async def json_view(request: Request) -> Response:
    return JSONResponse({"message": "Hello, World!"})


async def db_view(request: Request) -> Response:
    return JSONResponse(await db.single_query())


async def queries_view(request: Request) -> Response:
    return JSONResponse(await db.multiple_queries(db.query_count(request.query_params.get(
        "queries"))))


async def fortunes_view(request: Request) -> Response:
    return HTMLResponse(await db.fortunes_html())


async def updates_view(request: Request) -> Response:
    return JSONResponse(await db.updates(db.query_count(request.query_params.get("queries"))))


async def plaintext_view(request: Request) -> Response:
    return PlainTextResponse(b"Hello, World!")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    await db.connect()
    yield
    await db.close()


app = Starlette(lifespan=lifespan, routes=[
    Route("/json", json_view), Route("/db", db_view), Route("/queries", queries_view),
    Route("/fortunes", fortunes_view), Route("/updates", updates_view),
    Route("/plaintext", plaintext_view),
])

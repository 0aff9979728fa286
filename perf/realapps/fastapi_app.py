"""The TechEmpower test types as a FastAPI app on asyncpg (see db.py)."""
from __future__ import annotations

import contextlib

import db
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, ORJSONResponse, PlainTextResponse


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    await db.connect()
    yield
    await db.close()


app = FastAPI(lifespan=lifespan, default_response_class=ORJSONResponse, openapi_url=None)


@app.get("/json")
async def json_view() -> ORJSONResponse:
    return ORJSONResponse({"message": "Hello, World!"})


@app.get("/db")
async def db_view() -> ORJSONResponse:
    return ORJSONResponse(await db.single_query())


@app.get("/queries")
async def queries_view(queries: str | None = None) -> ORJSONResponse:
    return ORJSONResponse(await db.multiple_queries(db.query_count(queries)))


@app.get("/fortunes")
async def fortunes_view() -> HTMLResponse:
    return HTMLResponse(await db.fortunes_html())


@app.get("/updates")
async def updates_view(queries: str | None = None) -> ORJSONResponse:
    return ORJSONResponse(await db.updates(db.query_count(queries)))


@app.get("/plaintext")
async def plaintext_view() -> PlainTextResponse:
    return PlainTextResponse(b"Hello, World!")

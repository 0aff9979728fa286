"""What the real-app benchmark apps share: the asyncpg pool (from the environment that
perf/bench_realapps.py sets), the TechEmpower test types' database work, and the fortunes
template. The apps (starlette_app.py, fastapi_app.py) only route to these.

TechEmpower rules followed (Framework Benchmarks, "test types"): World has 10,000 rows
(id 1..10000, randomNumber 1..10000); each query picks a random id; "queries" and "updates"
take ?queries=N clamped to 1..500 (non-numbers count as 1); updates read each row, then write
all the new random numbers in one batch; fortunes adds one fortune at request time, sorts by
message and renders an HTML table through a template (escaped).
"""
from __future__ import annotations

import os
import random
from operator import itemgetter

import asyncpg
import jinja2

WORLD_ROWS = 10000
READ_ROW = 'SELECT "randomnumber" FROM "world" WHERE id = $1'
WRITE_ROWS = 'UPDATE "world" SET "randomnumber" = $1 WHERE id = $2'
READ_FORTUNES = 'SELECT * FROM "fortune"'
ADDED_FORTUNE = "Additional fortune added at request time."

TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
    "<tr><th>id</th><th>message</th></tr>"
    "{% for id, message in fortunes %}<tr><td>{{ id }}</td><td>{{ message }}</td></tr>"
    "{% endfor %}</table></body></html>")

pool: asyncpg.Pool | None = None


async def connect() -> None:
    """Open the pool (not with BENCH_NO_DB=1: a loop that cannot run asyncpg serves the json
    and plaintext tests only)."""
    global pool
    if os.environ.get("BENCH_NO_DB") == "1":
        return
    pool = await asyncpg.create_pool(
        host=os.environ["BENCH_PGHOST"], port=int(os.environ.get("BENCH_PGPORT", "5432")),
        user=os.environ.get("BENCH_PGUSER", "bench"),
        database=os.environ.get("BENCH_PGDATABASE", "hello_world"),
        min_size=int(os.environ.get("BENCH_DB_POOL", "8")),
        max_size=int(os.environ.get("BENCH_DB_POOL", "8")))


async def close() -> None:
    if pool is not None:
        await pool.close()


def query_count(raw: str | None) -> int:
    try:
        n = int(raw or "1")
    except ValueError:
        return 1
    return min(max(n, 1), 500)


def _ids(n: int) -> list[int]:
    return random.sample(range(1, WORLD_ROWS + 1), n)


async def single_query() -> dict[str, int]:
    assert pool is not None
    row_id = random.randint(1, WORLD_ROWS)
    async with pool.acquire() as conn:
        number = await conn.fetchval(READ_ROW, row_id)
    return {"id": row_id, "randomNumber": number}


async def multiple_queries(n: int) -> list[dict[str, int]]:
    assert pool is not None
    async with pool.acquire() as conn:
        statement = await conn.prepare(READ_ROW)
        return [{"id": i, "randomNumber": await statement.fetchval(i)} for i in _ids(n)]


async def updates(n: int) -> list[dict[str, int]]:
    assert pool is not None
    ids = sorted(_ids(n))                   # a fixed order: concurrent batches do not deadlock
    worlds = []
    async with pool.acquire() as conn:
        statement = await conn.prepare(READ_ROW)
        for i in ids:
            await statement.fetchval(i)
            worlds.append({"id": i, "randomNumber": random.randint(1, WORLD_ROWS)})
        await conn.executemany(WRITE_ROWS, [(w["randomNumber"], w["id"]) for w in worlds])
    return worlds


async def fortunes_html() -> str:
    assert pool is not None
    async with pool.acquire() as conn:
        rows = [tuple(r) for r in await conn.fetch(READ_FORTUNES)]
    rows.append((0, ADDED_FORTUNE))
    rows.sort(key=itemgetter(1))
    return TEMPLATE.render(fortunes=rows)

"""The ceiling of the real-app benchmark: the ASGI app called directly, no server.

    python perf/realapps/direct.py APP PATH SECONDS [CONCURRENCY] [LOOP] [--hold]
        [--requests N]

Imports ``APP_app:app`` (starlette or fastapi, from this folder), runs its lifespan startup (the
asyncpg pool), then CONCURRENCY (default 64, wrk's connections) coroutines call it for SECONDS,
each with a fresh GET scope for PATH, an empty body and a send() that only keeps the status;
prints ``requests N status-errors E cpu S`` (S: this process's CPU seconds during those
SECONDS) and runs the lifespan shutdown (with --hold, only once stdin is closed: the caller
reads PostgreSQL's CPU time while the pool's connections still exist). No sockets, no HTTP
parsing, no server: what is left is the framework, the driver, the loop's scheduling and the
database, so the requests/s it reaches on the server's CPU bounds what any server can reach
with the same app there (perf/bench_realapps.py reports it per case as the ceiling).
LOOP: uvloop (default), engine or asyncio.

``--requests N`` counts instead of timing (SECONDS is then ignored): one warm-up request per
coroutine, then N requests shared by them, no clock read per request -- the counted run of
perf/callgrind_loops.py's ``direct`` scenario (the ceiling of its ``serve`` scenario).
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time


async def run(app_name: str, path: str, seconds: float, concurrency: int,
              hold: bool, requests: int | None = None) -> None:
    app = importlib.import_module(f"{app_name}_app").app
    startup: asyncio.Queue[dict] = asyncio.Queue()
    replies: asyncio.Queue[dict] = asyncio.Queue()
    state: dict = {}

    async def lifespan_receive() -> dict:
        return await startup.get()

    async def lifespan_send(message: dict) -> None:
        await replies.put(message)

    lifespan = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                          "state": state}, lifespan_receive, lifespan_send))
    await startup.put({"type": "lifespan.startup"})
    reply = await replies.get()
    if reply["type"] != "lifespan.startup.complete":
        raise SystemExit(f"startup failed: {reply}")
    raw, _, query = path.partition("?")
    done = errors = 0
    if hold:
        print("started", flush=True)            # the pool is open: the caller's mark
    cpu = time.process_time()
    deadline = time.monotonic() + seconds
    left = 0                                  # --requests: requests not yet started

    def more() -> bool:
        nonlocal left
        if requests is None:
            return time.monotonic() < deadline
        left -= 1
        return left >= 0

    async def client() -> None:
        nonlocal done, errors
        body = {"type": "http.request", "body": b"", "more_body": False}
        status: list[int] = []

        async def receive() -> dict:
            return body

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        while more():
            status.clear()
            await app({"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                       "http_version": "1.1", "method": "GET", "scheme": "http",
                       "path": raw, "raw_path": raw.encode(), "query_string": query.encode(),
                       "root_path": "", "headers": [(b"host", b"127.0.0.1")],
                       "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 40000),
                       "state": dict(state)}, receive, send)
            done += 1
            if status != [200]:
                errors += 1

    if requests is not None:
        left = concurrency                    # the warm-up: one request per coroutine
        await asyncio.gather(*(client() for _ in range(concurrency)))
        left = requests
    await asyncio.gather(*(client() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    print(f"requests {done} status-errors {errors} cpu {cpu:.3f}", flush=True)
    if hold:
        # the caller reads PostgreSQL's CPU while the pool's backends still exist: wait for
        # its go (stdin closed) before the shutdown closes them
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await startup.put({"type": "lifespan.shutdown"})
    await replies.get()
    await lifespan


def main() -> None:
    argv = sys.argv[1:]
    requests = None
    if "--requests" in argv:
        at = argv.index("--requests")
        requests = int(argv[at + 1])
        del argv[at:at + 2]
    args = [a for a in argv if a != "--hold"]
    app_name, path, seconds = args[0], args[1], float(args[2])
    concurrency = int(args[3]) if len(args) > 3 else 64
    loop_name = args[4] if len(args) > 4 else "uvloop"
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if loop_name == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    elif loop_name == "engine":
        import engine
        factory = engine.new_event_loop
    else:
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run(app_name, path, seconds, concurrency, "--hold" in argv, requests))


if __name__ == "__main__":
    main()

"""engine's loop vs uvloop (vs rloop) under third-party protocols, by instruction counts.

    python perf/callgrind_loops.py [--loops engine,uvloop,rloop] [--scenarios uvicorn,asyncpg]
        [--requests 2000] [--queries 2000] [--annotate DIR]

The same Python workload runs on each loop under valgrind's callgrind, twice: with 0 and with N
operations. (Ir(N) - Ir(0)) / N is the instructions one operation costs in the process under
callgrind (interpreter, loop, protocol, app), startup, imports and warm-up cancelled out. Counts
repeat for the same binaries and input whatever else the machine does, so they compare two
loops' paths where wall-clock runs on a shared machine cannot (they say nothing about the
kernel's share or about cache misses: a final figure still needs a timed run on a quiet machine).

Scenarios (only the Python process on the loop is counted; its peers run outside valgrind):

* ``uvicorn``: uvicorn's httptools protocol (``uvicorn.protocols.http.httptools_impl``)
  serving a plain ASGI app answering ``Hello, World!``; a client process (plain sockets, not
  counted) keeps 8 keep-alive connections, sends one warm-up request on each, then N requests
  spread over them, one outstanding per connection, then asks the app to stop. One op = one
  request/response (it includes the keep-alive timer uvicorn arms and cancels per request).
* ``asyncpg``: 8 tasks share N ``async with pool.acquire(): conn.fetchval('SELECT randomnumber
  FROM world WHERE id=$1', i)`` through an asyncpg pool of 4 connections (so acquire() also
  waits), after a warm-up of 16 queries (statement cache filled). PostgreSQL (Debian's server,
  apt ``postgresql``) is started in a scratch directory by perf/bench_realapps.py's
  ``Postgres`` and seeded with the World table. One op = one query.

The server's share (not in the default ``--scenarios``; one app, ``--app``, and its
``--paths``, by default ``/json`` and ``/plaintext``, with the database off, BENCH_NO_DB=1):

* ``serve``: ``engine serve APP_app:app`` (perf/realapps/, as perf/bench_realapps.py starts it,
  ``--loop`` engine or asyncio) under callgrind, the same HTTP client as above but in waves
  (each connection's next request goes once all have their answer: the server's poll sees the
  same batch however busy the machine is, so counts repeat); stopped by SIGTERM (its graceful
  drain) once the client has closed its connections. One op = one request.
* ``direct``: the same app called in-process by perf/realapps/direct.py ``--requests N`` (no
  server, no sockets: a warm-up request per coroutine, then N, ``--connections`` coroutines):
  the ceiling. ``serve`` minus ``direct`` per request is what the server costs.

rloop 0.5 cannot run asyncpg (its transport refuses ``set_protocol()``): that cell says so.

``--annotate DIR`` keeps the callgrind files in DIR and prints, per loop, the functions with
the most self instructions per op ((self Ir in the N-run - in the 0-run) / N, from
``callgrind_annotate``), to see where engine pays more than uvloop (engine's functions have
names only in a build installed with ``pip install -C install.strip=false .``). ``--sim`` adds
callgrind's cache and branch simulation. Busy polling is off (ENGINE_BUSY_POLL_US=0: it spins
by the clock) and PYTHONHASHSEED is fixed. Needs valgrind, uvicorn, httptools, asyncpg, uvloop
(rloop optional); the starlette scenario also starlette and orjson; serve and direct also
fastapi (``pip install '.[perf-realapps]'``). The counting helpers are engine.bench.callgrind's
(also behind ``engine bench loop-callgrind``, the loop suite's scenarios by instructions).

    python perf/callgrind_loops.py --loops engine --scenarios serve,direct --app fastapi \
        --paths /json,/plaintext [--annotate DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from engine.bench import callgrind as cg  # the counting helpers (shared with engine bench)

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPS = ("engine", "uvloop", "rloop")
SCENARIOS = {"uvicorn": 2000, "starlette": 2000, "asyncpg": 2000}
CONNECTIONS = 8                  # the HTTP client's, --connections
WORKERS = 8
POOL = 4
WARMUP_QUERIES = 16
BODY = b"Hello, World!"
QUERY = "SELECT randomnumber FROM world WHERE id=$1"
WORLD_ROWS = 10000
NO_ASYNCPG = {"rloop": "rloop's TCP transport refuses set_protocol(), which asyncpg uses"}
APPS_DIR = os.path.join(HERE, "realapps")
SERVE_SCENARIOS = {"serve": 2000, "direct": 2000}   # --scenarios serve,direct (not the default)
SERVE_LOOPS = ("engine", "asyncio")                 # engine serve --loop
ANSWER_ENDS = {"/json": b'"}', "/plaintext": BODY}  # how the app's answer to a path ends


def _new_loop(name: str) -> asyncio.AbstractEventLoop:
    if name == "engine":
        import engine
        return engine.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if name == "rloop":
        import rloop
        return rloop.new_event_loop()
    if name == "asyncio":
        return asyncio.new_event_loop()
    raise ValueError(f"unknown loop {name!r}")


# --- the counted process -----------------------------------------------------------------------

async def _uvicorn_server(portfile: str, framework: str) -> None:
    import uvicorn

    stop = asyncio.Event()
    inner = None
    if framework == "starlette":
        sys.path.insert(0, os.path.join(HERE, "realapps"))
        os.environ["BENCH_NO_DB"] = "1"
        from starlette_app import app as inner

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if inner is not None and scope.get("path") != "/stop":
            return await inner(scope, receive, send)
        if scope["type"] != "http":
            return
        if scope["path"] == "/stop":
            stop.set()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"),
                                (b"content-length", str(len(BODY)).encode())]})
        await send({"type": "http.response.body", "body": BODY})

    class Server(uvicorn.Server):
        # uvicorn's main loop wakes every 0.1 s: a count proportional to the run's (valgrind)
        # wall time, not to its work. Here it waits for /stop instead.
        # The port is published once serving (listening) has started.
        async def main_loop(self) -> None:
            await self.on_tick(0)
            with open(portfile + ".tmp", "w") as f:
                f.write(str(port))
            os.rename(portfile + ".tmp", portfile)
            await stop.wait()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]             # (rloop takes the socket's fd over)
    config = uvicorn.Config(app, http="httptools", loop="none",
                            lifespan="on" if inner is not None else "off",
                            log_level="error", access_log=False, ws="none")
    server = Server(config)
    await server.serve(sockets=[sock])


async def _asyncpg_client(port: int, n: int) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(host="127.0.0.1", port=port, user="bench",
                                     database="hello_world", min_size=POOL, max_size=POOL)

    async def worker(ids: range) -> int:
        total = 0
        for i in ids:
            async with pool.acquire() as conn:
                total += await conn.fetchval(QUERY, i % WORLD_ROWS + 1)
        return total

    async def run(count: int) -> None:
        per = [range(w, count, WORKERS) for w in range(WORKERS)]
        await asyncio.gather(*(worker(ids) for ids in per))

    await run(WARMUP_QUERIES)
    await run(n)
    await pool.close()


def _child(loop_name: str, scenario: str, arg: str, n: int) -> None:
    loop = _new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        if scenario in ("uvicorn", "starlette"):
            loop.run_until_complete(_uvicorn_server(arg, scenario))
        else:
            loop.run_until_complete(_asyncpg_client(int(arg), n))
    finally:
        loop.close()


# --- the uncounted peers -----------------------------------------------------------------------

def _http_client(port: int, n: int, timeout: float, path: str = "/",
                 connections: int = CONNECTIONS, end: bytes = BODY, waves: bool = False) -> None:
    """CONNECTIONS keep-alive connections: a warm-up request on each, then n requests (one
    outstanding per connection), then /stop; every answer checked to end with ``end``. With
    ``waves``, a connection sends its next request only once every connection has its answer
    (the server then finds the same number of requests per poll however fast this client
    runs, so its per-iteration costs split the same way in every run)."""
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.setblocking(False)
        conns.append(s)
    request = b"GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path.encode()

    def exchange(counts: list[int]) -> None:
        left = {s: c for s, c in zip(conns, counts, strict=True) if c}
        buf = {s: b"" for s in left}
        answered: list[socket.socket] = []       # waves: answered in this wave
        for s in left:
            s.sendall(request)
            sel.register(s, selectors.EVENT_READ)
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError("the server under callgrind did not answer in time")
            for key, _ in sel.select(1.0):
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("server closed a keep-alive connection")
                buf[s] += data
                if buf[s].endswith(end) and b"\r\n\r\n" in buf[s]:
                    if not buf[s].startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"bad answer {buf[s][:200]!r}")
                    buf[s] = b""
                    left[s] -= 1
                    if waves:
                        answered.append(s)
                        if len(answered) == len(left):
                            for t in answered:
                                if left[t]:
                                    t.sendall(request)
                                else:
                                    del left[t]
                                    sel.unregister(t)
                            answered.clear()
                    elif left[s]:
                        s.sendall(request)
                    else:
                        del left[s]
                        sel.unregister(s)

    exchange([1] * connections)
    exchange([n // connections + (1 if i < n % connections else 0) for i in range(connections)])
    stop = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    stop.sendall(b"GET /stop HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    while stop.recv(65536):
        pass
    stop.close()
    for s in conns:
        s.close()


SIM_OPTIONS: list[str] = []      # --cache-sim=yes --branch-sim=yes with --sim


def _callgrind(loop_name: str, scenario: str, arg: str, n: int, out: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *SIM_OPTIONS,
            sys.executable,
            "-P", os.path.abspath(__file__), "--child", loop_name, scenario, arg, str(n)]


def events(loop_name: str, scenario: str, n: int, pg_port: int, keep: str | None,
           timeout: float, connections: int = CONNECTIONS) -> dict[str, int]:
    """The event totals (Ir; with --sim also cache misses and mispredicted branches) of one
    run under callgrind (its callgrind file copied to ``keep`` if given)."""
    env = cg.env()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        if scenario in ("uvicorn", "starlette"):
            portfile = os.path.join(tmp, "port")
            proc = subprocess.Popen(_callgrind(loop_name, scenario, portfile, n, out), cwd=tmp,
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            try:
                deadline = time.monotonic() + timeout
                while not os.path.exists(portfile):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        err = proc.communicate()[1]
                        raise RuntimeError(f"server did not start:\n{err[-3000:]}")
                    time.sleep(0.2)
                with open(portfile) as f:
                    _http_client(int(f.read()), n, timeout,
                                 "/plaintext" if scenario == "starlette" else "/", connections)
                _, err = proc.communicate(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        else:
            done = subprocess.run(_callgrind(loop_name, scenario, str(pg_port), n, out), cwd=tmp,
                                  env=env, capture_output=True, text=True, timeout=timeout)
            err = done.stderr
        if proc_failed(err):
            raise RuntimeError(f"{loop_name}/{scenario} failed:\n{err[-3000:]}")
        return _totals(out, err, keep)


def _totals(out: str, err: str, keep: str | None) -> dict[str, int]:
    """The event totals of the callgrind file ``out`` (copied to ``keep`` if given)."""
    try:
        found = cg.totals(out)
    except (OSError, cg.CallgrindError) as exc:
        raise RuntimeError(f"no callgrind totals in:\n{err[-3000:]}") from exc
    if keep:
        shutil.copy(out, keep)
    return found


def serve_events(loop_name: str, scenario: str, app: str, path: str, n: int,
                 keep: str | None, timeout: float,
                 connections: int = CONNECTIONS) -> dict[str, int]:
    """The event totals of one ``serve`` run (engine serve under callgrind, the HTTP client
    outside it) or one ``direct`` run (perf/realapps/direct.py under callgrind)."""
    sys.path.insert(0, HERE)
    from bench_realapps import free_port, server_command

    env = cg.env({"BENCH_NO_DB": "1"})
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *SIM_OPTIONS]
        if scenario == "direct":
            done = subprocess.run(
                grind + [sys.executable, os.path.join(APPS_DIR, "direct.py"), app, path, "0",
                         str(connections), loop_name, "--requests", str(n)],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
            err = done.stderr
            if f"requests {n + connections} status-errors 0 " not in done.stdout:
                raise RuntimeError(f"direct failed: {done.stdout[-500:]}\n{err[-3000:]}")
        else:
            port = free_port()
            cmd = server_command("engine", app, port) + ["--loop", loop_name]
            proc = subprocess.Popen(grind + cmd, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + timeout
                while True:                # listening (the app may still be loading)
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"server did not start:\n"
                                           f"{proc.communicate()[1][-3000:]}")
                    try:
                        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
                        break
                    except OSError:
                        time.sleep(0.2)
                _http_client(port, n, timeout, path, connections, ANSWER_ENDS.get(path, b""),
                             waves=True)
                proc.send_signal(signal.SIGTERM)        # engine serve's graceful drain
                _, err = proc.communicate(timeout=timeout)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if proc_failed(err):
            raise RuntimeError(f"{scenario} {app} {path} failed:\n{err[-3000:]}")
        return _totals(out, err, keep)


# the counting helpers are engine.bench.callgrind's (shared with engine bench loop-callgrind)
derived = cg.derived
proc_failed = cg.failed
annotate = cg.annotate


def serve_share(loops: list[str], scenarios: list[str], app: str, paths: list[str], n: int,
                annotate_dir: str | None, top: int, timeout: float,
                connections: int) -> list[str]:
    """The serve and direct scenarios: per path, Ir per request of each, and serve/direct."""
    summary = []
    for path in paths:
        per_op: dict[str, float] = {}
        for scenario in scenarios:
            for loop_name in loops:
                if scenario == "serve" and loop_name not in SERVE_LOOPS:
                    continue
                name = f"{scenario}-{loop_name}"
                keep = (os.path.join(annotate_dir, f"{name}-{app}{path.replace('/', '-')}")
                        if annotate_dir else None)
                try:
                    base, full = (derived(serve_events(loop_name, scenario, app, path, count,
                                                       keep and f"{keep}-{count}.cg", timeout,
                                                       connections))
                                  for count in (0, n))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    summary.append(f"{app}{path} {name}: failed: "
                                   f"{str(exc).strip().splitlines()[-1]}")
                    continue
                per_op[name] = (full["Ir"] - base["Ir"]) / n
                print(f"{app}{path} {name}: " + ", ".join(
                    f"{k}/op {(full[k] - base[k]) / n:.0f}" for k in full), flush=True)
                if keep:
                    print(annotate(keep + "-0.cg", f"{keep}-{n}.cg", n, top), flush=True)
        for name, ir in per_op.items():
            ceiling = per_op.get(f"direct-{name.split('-', 1)[1]}")
            vs = (f" {ir / ceiling:.3f}x direct, server {ir - ceiling:.0f}"
                  if ceiling and name.startswith("serve") else "")
            summary.append(f"{app + path:<20} {name:<14} {n:>6} {ir:>9.0f}{vs}")
    return summary


def main() -> int:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--loops", default=",".join(LOOPS))
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--requests", type=int, default=SCENARIOS["uvicorn"],
                   help="N of the uvicorn and starlette scenarios")
    p.add_argument("--connections", type=int, default=CONNECTIONS,
                   help="keep-alive connections of the HTTP client")
    p.add_argument("--queries", type=int, default=SCENARIOS["asyncpg"],
                   help="N of the asyncpg scenario")
    p.add_argument("--annotate", metavar="DIR",
                   help="keep callgrind files here, print the top functions per op")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--app", default="fastapi", choices=("fastapi", "starlette"),
                   help="the app of the serve and direct scenarios (perf/realapps/)")
    p.add_argument("--paths", default="/json,/plaintext",
                   help="the paths the serve and direct scenarios request")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per callgrind run")
    p.add_argument("--sim", action="store_true",
                   help="also simulate caches and branch prediction (slower): L1 and last-level "
                        "misses, mispredicted branches and callgrind's cycle estimate per op")
    args = p.parse_args()
    if args.sim:
        SIM_OPTIONS.extend(cg.SIM_OPTIONS)
    loops = args.loops.split(",")
    scenarios = args.scenarios.split(",")
    share = [sc for sc in scenarios if sc in SERVE_SCENARIOS]
    scenarios = [sc for sc in scenarios if sc not in SERVE_SCENARIOS]
    counts = {"uvicorn": args.requests, "starlette": args.requests, "asyncpg": args.queries}
    if args.annotate:
        os.makedirs(args.annotate, exist_ok=True)

    db = None
    workdir = None
    pg_port = 0
    if "asyncpg" in scenarios:
        sys.path.insert(0, HERE)
        from bench_realapps import Postgres
        workdir = tempfile.mkdtemp(prefix="cg-loops-")
        db = Postgres(workdir, cpu=0, max_connections=4 * POOL + 20)
        db.start()
        pg_port = db.port
        asyncio.run(db.seed())
    try:
        summary: list[str] = []
        cols: list[str] = []
        for scenario in scenarios:
            n = counts[scenario]
            per_op: dict[str, dict[str, float]] = {}
            for loop_name in loops:
                if scenario == "asyncpg" and loop_name in NO_ASYNCPG:
                    summary.append(f"{scenario:<9} {loop_name:<8} n/a: {NO_ASYNCPG[loop_name]}")
                    continue
                keep = (os.path.join(args.annotate, f"{scenario}-{loop_name}")
                        if args.annotate else None)
                try:
                    base = derived(events(loop_name, scenario, 0, pg_port,
                                          keep and keep + "-0.cg", args.timeout,
                                          args.connections))
                    full = derived(events(loop_name, scenario, n, pg_port,
                                          keep and f"{keep}-{n}.cg", args.timeout,
                                          args.connections))
                except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    summary.append(f"{scenario:<9} {loop_name:<8} failed: "
                                   f"{str(exc).strip().splitlines()[-1]}")
                    continue
                per_op[loop_name] = {k: (full[k] - base[k]) / n for k in full}
                cols = list(full)
                print(f"{scenario} {loop_name}: " + ", ".join(
                    f"{k}/op {v:.0f}" for k, v in per_op[loop_name].items()), flush=True)
                if keep:
                    print(annotate(keep + "-0.cg", f"{keep}-{n}.cg", n, args.top), flush=True)
            for loop_name, row in per_op.items():
                ratio = (f"{row['Ir'] / per_op['uvloop']['Ir']:.3f}" if "uvloop" in per_op
                         else "-")
                summary.append(f"{scenario:<9} {loop_name:<8} {n:>6} "
                               + " ".join(f"{row[k]:>9.0f}" for k in cols) + f" {ratio:>9}")
        if scenarios:
            print(f"\n{'scenario':<9} {'loop':<8} {'ops':>6} "
                  + " ".join(f"{k + '/op':>9}" for k in cols) + f" {'Ir/uvloop':>9}")
            print("\n".join(summary))
        if share:
            lines = serve_share(loops, share, args.app, args.paths.split(","), args.requests,
                                args.annotate, args.top, args.timeout, args.connections)
            print(f"\n{'app/path':<20} {'run':<14} {'ops':>6} {'Ir/op':>9}")
            print("\n".join(lines))
    finally:
        if db is not None:
            db.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

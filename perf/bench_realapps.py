"""Real-app benchmarks: TechEmpower's test types in Starlette and FastAPI apps on PostgreSQL.

What it compares, in one run on one machine:

* the server's share: ``engine serve`` vs uvicorn (uvloop + httptools) vs granian, each serving
  the same app with one worker;
* the loop's share: the same apps under uvicorn (httptools) on engine's loop
  (``--loop engine:new_event_loop``) vs uvloop vs rloop (``--loop rloop:new_event_loop``).

Test types (perf/realapps/db.py has the rules followed): ``json`` (/json), ``db`` (one query),
``queries`` (20 queries), ``fortunes`` (a query, one row added, sorted, rendered by a jinja2
template), ``updates`` (20 reads and one batch of 20 writes), ``plaintext``. The apps use asyncpg
with a pool of --db-pool connections per worker.

PostgreSQL: Debian's server (``/usr/lib/postgresql/*/bin``, apt package ``postgresql``) is
started by this script in a scratch data directory (initdb; run as the ``postgres`` user when
the script runs as root), listening on 127.0.0.1 on a free port (TCP for every peer: rloop has
no Unix-socket connections), seeded with the World (10,000 rows)
and Fortune tables, and stopped at the end. It is set for measuring the app side: fsync,
synchronous_commit and full_page_writes off (the updates test then measures the app's and the
driver's round trips, not the disk).

CPUs: the server under test AND PostgreSQL share --server-cpu (default 0): both are pinned to it
with taskset, so every request's whole cost (HTTP, framework, loop, driver, and the database's
own work answering it) is paid on one CPU, and a server that spends less CPU per request leaves
more of that CPU to the database; wrk runs alone on --client-cpu (default 1). Each (app, test,
server) is run --rounds times, the servers interleaved within a round; the median is kept.

    python perf/bench_realapps.py [--apps starlette,fastapi] [--tests json,db,...]
        [--servers engine,granian,uvicorn,uvicorn-engine,uvicorn-rloop] [--duration 10]
        [--rounds 3] [--connections 64] [--scenarios starlette-db,...] [--results results/]

The ceiling (``--servers ...,direct``): realapps/direct.py calls the same app in-process, no
server, no sockets (64 coroutines, as wrk's connections), on the server's CPU with PostgreSQL.
No server can pass its requests/s there, so "ceiling/granian" says how far ahead of granian
any server could be with that app: a target above it is out of reach for any server. It is
reported beside engine's figures (extras ``ceiling_*``), not as a peer.

Smoke run (a second per case; proves the suite works, measures nothing):

    python perf/bench_realapps.py --duration 1 --rounds 1

Through the harness (perf/suites.toml), one suite at a time: ``engine bench realapps`` (servers
engine, granian, uvicorn) and ``engine bench realapps-loop`` (uvicorn-engine, uvicorn-uvloop,
uvicorn-rloop); each writes the document of the suite whose subject it ran.

Needs: ``pip install '.[perf-realapps]'``, wrk and postgresql (apt).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_DIR = os.path.join(HERE, "realapps")

TESTS = {
    # name: (path, label)
    "json": ("/json", "JSON serialization"),
    "db": ("/db", "single query"),
    "queries": ("/queries?queries=20", "multiple queries (20)"),
    "fortunes": ("/fortunes", "fortunes (template)"),
    "updates": ("/updates?queries=20", "updates (20)"),
    "plaintext": ("/plaintext", "plaintext"),
}
DB_TESTS = ("db", "queries", "fortunes", "updates")
SERVERS = ("engine", "granian", "uvicorn", "uvicorn-engine", "uvicorn-rloop", "direct",
           "engine-nobusy", "uvicorn-engine-nobusy")
# "direct" is no server: the ceiling, the app called in-process (realapps/direct.py) on uvloop;
# *-nobusy: engine's loop with busy polling off (ENGINE_BUSY_POLL_US=0), printed only
DEFAULT_SERVERS = SERVERS[:5]
# servers that cannot run the database tests, and why (they run json and plaintext only)
NO_DB = {"uvicorn-rloop": "rloop 0.5's TCP transport refuses set_protocol(), which asyncpg's "
                          "connect uses (NotImplementedError)"}
APPS = ("starlette", "fastapi")

# the Fortune table: our own messages, with markup and non-ASCII text that the template must
# escape and keep
FORTUNES = [
    "A watched pot never boils, but a watched loop never blocks.",
    "Premature optimization is the root of all evil.",
    "<script>alert(\"escape me\");</script>",
    "Weather forecast for tonight: dark.",
    "Any program that runs right is obsolete.",
    "Computers make very fast, very accurate mistakes.",
    "フレームワークのベンチマーク",
    "A bug in the hand is better than one as yet undetected.",
    "Feature: a bug with seniority.",
    "There are two hard things: naming, cache invalidation and off-by-one errors.",
    "Emacs is a nice operating system, but I prefer UNIX. & so on",
    "The cheapest request is the one you never make.",
]
WORLD_ROWS = 10000


# --- PostgreSQL --------------------------------------------------------------------------------

def pg_bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(re.search(r"/(\d+)/bin", p).group(1)))
    if not found:
        raise SystemExit("PostgreSQL's server is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


class Postgres:
    """A PostgreSQL cluster in a scratch directory, on 127.0.0.1:``port``, pinned to a CPU (its
    Unix socket, in the scratch directory, serves only pg_ctl)."""

    def __init__(self, workdir: str, cpu: int, max_connections: int) -> None:
        self.bindir = pg_bindir()
        self.datadir = os.path.join(workdir, "pgdata")
        self.sockdir = os.path.join(workdir, "pgsock")
        self.logfile = os.path.join(workdir, "postgres.log")
        self.cpu = cpu
        self.max_connections = max_connections
        self.port = free_port()
        self.as_user: list[str] = []
        os.makedirs(self.sockdir)
        if os.geteuid() == 0:              # the server refuses to run as root
            import pwd
            pw = pwd.getpwnam("postgres")
            os.chmod(workdir, 0o755)
            for path in (self.sockdir,):
                os.chown(path, pw.pw_uid, pw.pw_gid)
            open(self.logfile, "w").close()
            os.chown(self.logfile, pw.pw_uid, pw.pw_gid)
            os.mkdir(self.datadir, 0o700)
            os.chown(self.datadir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run(["taskset", "-c", str(self.cpu), *self.as_user, *args], check=True,
                       stdout=subprocess.DEVNULL, timeout=120)

    def start(self) -> None:
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", "bench",
                  "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C")
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}",
            f"-c unix_socket_directories={self.sockdir}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            f"-c max_connections={self.max_connections}", "-c shared_buffers=128MB"])
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                  "-w", "-t", "60", "-o", options, "start")

    def pid(self) -> int:
        """The postmaster's pid (first line of postmaster.pid)."""
        with open(os.path.join(self.datadir, "postmaster.pid")) as f:
            return int(f.readline())

    def stop(self) -> None:
        subprocess.run([*self.as_user, os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir,
                        "-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL, timeout=120)

    async def seed(self) -> None:
        import asyncpg
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="bench",
                                     database="postgres")
        await conn.execute("CREATE DATABASE hello_world")
        await conn.close()
        conn = await asyncpg.connect(host="127.0.0.1", port=self.port, user="bench",
                                     database="hello_world")
        await conn.execute('CREATE TABLE "world" (id integer PRIMARY KEY, '
                           '"randomnumber" integer NOT NULL)')
        await conn.copy_records_to_table("world", records=[
            (i, random.randint(1, WORLD_ROWS)) for i in range(1, WORLD_ROWS + 1)])
        await conn.execute('CREATE TABLE "fortune" (id integer PRIMARY KEY, '
                           'message varchar(2048) NOT NULL)')
        await conn.copy_records_to_table("fortune", records=list(enumerate(FORTUNES, 1)))
        await conn.execute("VACUUM ANALYZE")
        await conn.close()


# --- servers -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(name: str, app: str, port: int) -> list[str]:
    py = sys.executable
    spec = f"{app}_app:app"
    uvicorn = [py, "-m", "uvicorn", spec, "--port", str(port), "--http", "httptools",
               "--log-level", "error", "--no-access-log", "--app-dir", APPS_DIR]
    if name == "engine":
        return [py, "-m", "engine", "serve", spec, "--port", str(port), "--log-level", "error",
                "--app-dir", APPS_DIR]
    if name == "uvicorn":
        return uvicorn + ["--loop", "uvloop"]
    if name == "uvicorn-engine":
        return uvicorn + ["--loop", "engine:new_event_loop"]
    if name == "uvicorn-rloop":
        return uvicorn + ["--loop", "rloop:new_event_loop"]
    if name == "granian":
        exe = shutil.which("granian", path=os.path.dirname(py)) or "granian"
        return [exe, "--interface", "asgi", "--port", str(port), "--workers", "1",
                "--loop", "uvloop", "--log-level", "error", "--no-ws", "--working-dir", APPS_DIR,
                spec]
    raise ValueError(f"unknown server {name!r}")


def start_server(name: str, app: str, cpu: int, env: dict[str, str],
                 log: str) -> tuple[subprocess.Popen, int]:
    """Start a server (its output into the file ``log``); returns once /json answers."""
    port = free_port()
    if name.endswith("-nobusy"):
        name, env = name[:-len("-nobusy")], dict(env, ENGINE_BUSY_POLL_US="0")
    cmd = ["taskset", "-c", str(cpu), *server_command(name, app, port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=APPS_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            status, _ = request(port, "/json")
            if status == 200:
                return proc, port
        except OSError:
            time.sleep(0.1)
    stop_server(proc)
    with open(log, errors="replace") as f:
        raise RuntimeError(f"{name} did not start: {f.read()[-2000:]}")


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def request(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def validate(port: int, test: str) -> None:
    """One request of the test type, its answer checked (a server must be right to be timed)."""
    status, body = request(port, TESTS[test][0])
    if status != 200:
        raise RuntimeError(f"{test}: status {status}: {body[:300]!r}")
    if test == "json":
        ok = json.loads(body) == {"message": "Hello, World!"}
    elif test == "plaintext":
        ok = body == b"Hello, World!"
    elif test == "db":
        row = json.loads(body)
        ok = set(row) == {"id", "randomNumber"} and 1 <= row["id"] <= WORLD_ROWS
    elif test in ("queries", "updates"):
        rows = json.loads(body)
        ok = len(rows) == 20 and all(set(r) == {"id", "randomNumber"} for r in rows)
    else:
        text = body.decode()
        ok = (text.count("<tr>") == len(FORTUNES) + 2 and "&lt;script&gt;" in text
              and "フレームワーク" in text and "Additional fortune added at request time." in text)
    if not ok:
        raise RuntimeError(f"{test}: wrong answer: {body[:300]!r}")


def parse_wrk(out: str) -> dict[str, float | int | None]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat: dict[str, float | int | None] = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", out)
        if m:
            scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
            lat[f"p{p}_ms"] = float(m.group(1)) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    return {"rps": rps, **lat, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def _procs() -> dict[int, tuple[int, int, float]]:
    """pid -> (parent pid, session id, user+system CPU seconds) of every process."""
    hz = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue                       # gone meanwhile
        out[int(name)] = (int(fields[1]), int(fields[3]),
                          (int(fields[11]) + int(fields[12])) / hz)
    return out


def cpu_split(server_sid: int, pg_pid: int) -> tuple[float, float]:
    """CPU seconds so far of the server (its whole session: a supervisor and its workers)
    and of PostgreSQL (the postmaster and its backends). Processes that ended are not counted:
    call it around a run in which neither starts nor stops processes."""
    procs = _procs()
    server = sum(c for _, sid, c in procs.values() if sid == server_sid)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    pg, todo = 0.0, [pg_pid]
    while todo:
        pid = todo.pop()
        if pid in procs:
            pg += procs[pid][2]
            todo.extend(children.get(pid, ()))
    return server, pg


def run_wrk(port: int, test: str, duration: int, connections: int,
            cpu: int) -> dict[str, float | int | None]:
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
           "--latency", f"http://127.0.0.1:{port}{TESTS[test][0]}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if "Requests/sec" not in proc.stdout:
        raise RuntimeError(f"wrk failed on {test}: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    return parse_wrk(proc.stdout)


def progress(round_no: int, app: str, server: str, test: str, result: dict) -> None:
    """One case's line while the run goes on: requests/s and the CPU split per request."""
    who = "app" if server == "direct" else "server"
    print(f"round {round_no + 1} {app:9} {server:14} {test:9} {result['rps']:>10,.0f} req/s   "
          f"CPU per request: {who} {result.get('server_cpu_us', 0):6.1f} us, "
          f"PostgreSQL {result.get('db_cpu_us', 0):6.1f} us", flush=True)


def run_direct(app: str, test: str, args: argparse.Namespace, env: dict[str, str],
               pg_pid: int) -> dict[str, float | int | None]:
    """The ceiling of one case: realapps/direct.py (the app without a server) on the server's
    CPU for --duration seconds, after a one-second warm-up run."""
    cmd = ["taskset", "-c", str(args.server_cpu), sys.executable,
           os.path.join(APPS_DIR, "direct.py"), app, TESTS[test][0]]
    subprocess.run([*cmd, "1", str(args.connections)], env=env, cwd=APPS_DIR, check=True,
                   capture_output=True, timeout=120)
    proc = subprocess.Popen([*cmd, str(args.duration), str(args.connections), "uvloop",
                             "--hold"], env=env, cwd=APPS_DIR, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdout.readline()            # "started": the pool's backends exist from here
        before = cpu_split(-1, pg_pid)
        line = proc.stdout.readline()     # printed after the timed part; backends still alive
        after = cpu_split(-1, pg_pid)
        out, err = proc.communicate("", timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    m = re.search(r"requests (\d+) status-errors (\d+) cpu ([\d.]+)", line)
    if proc.returncode != 0 or not m:
        raise RuntimeError(f"direct {app} {test} failed: {line}{out[-800:]} {err[-2000:]}")
    done = int(m.group(1))
    return {"rps": done / args.duration, "non2xx": int(m.group(2)), "socket_errors": 0,
            "server_cpu_us": float(m.group(3)) * 1e6 / max(done, 1),
            "db_cpu_us": (after[1] - before[1]) * 1e6 / max(done, 1)}


# --- the run -----------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", default=",".join(APPS))
    ap.add_argument("--tests", default=",".join(TESTS))
    ap.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                    help="among " + ",".join(SERVERS) + " (direct: the ceiling, the app called "
                    "without a server; reported beside engine's figures)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of wrk per case")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--db-pool", type=int, default=8, help="asyncpg connections per worker")
    ap.add_argument("--server-cpu", type=int, default=0,
                    help="CPU of the server under test and of PostgreSQL")
    ap.add_argument("--client-cpu", type=int, default=1, help="CPU of wrk")
    ap.add_argument("--scenarios", help="APP-TEST cases (e.g. starlette-db,fastapi-json); "
                    "overrides --apps and --tests")
    ap.add_argument("--results", help="write the results documents into this directory")
    args = ap.parse_args()
    apps, tests = args.apps.split(","), args.tests.split(",")
    # uvicorn-uvloop is the loop suite's name for the uvicorn run (uvloop + httptools)
    servers = list(dict.fromkeys("uvicorn" if s == "uvicorn-uvloop" else s
                                 for s in args.servers.split(",")))
    for name, known in (("app", APPS), ("test", TESTS), ("server", SERVERS)):
        chosen = {"app": apps, "test": tests, "server": servers}[name]
        bad = [c for c in chosen if c not in known]
        if bad:
            raise SystemExit(f"unknown {name}(s): {', '.join(bad)} (choose among "
                             f"{', '.join(known)})")
    cases = [(a, t) for a in apps for t in tests]
    if args.scenarios:
        known_cases = {f"{a}-{t}": (a, t) for a in APPS for t in TESTS}
        chosen = args.scenarios.split(",")
        bad = [c for c in chosen if c not in known_cases]
        if bad:
            raise SystemExit(f"unknown scenario(s): {', '.join(bad)} (APP-TEST, e.g. "
                             "starlette-db)")
        cases = [known_cases[c] for c in chosen]
        apps = list(dict.fromkeys(a for a, _ in cases))
        tests = list(dict.fromkeys(t for _, t in cases))
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    for server, why in NO_DB.items():
        if server in servers and set(tests) & set(DB_TESTS):
            print(f"note: {server} runs no database test: {why}")
    started = datetime.datetime.now(datetime.UTC)
    samples: dict[tuple[str, str, str], list[dict]] = {
        (a, t, s): [] for a, t in cases for s in servers}
    with tempfile.TemporaryDirectory(prefix="engine-realapps-") as workdir:
        db = Postgres(workdir, args.server_cpu, max_connections=args.db_pool * 4 + 20)
        print(f"PostgreSQL ({db.bindir}) on CPU {args.server_cpu}, 127.0.0.1:{db.port}",
              flush=True)
        db.start()
        try:
            asyncio.run(db.seed())
            pg_pid = db.pid()
            env = dict(os.environ, BENCH_PGHOST="127.0.0.1", BENCH_PGPORT=str(db.port),
                       BENCH_PGUSER="bench",
                       BENCH_PGDATABASE="hello_world", BENCH_DB_POOL=str(args.db_pool),
                       PYTHONPATH=os.pathsep.join(
                           [APPS_DIR, *filter(None, [os.environ.get("PYTHONPATH")])]))
            for round_no in range(args.rounds):
                for app in apps:
                    for server in servers:
                        if server == "direct":
                            for test in tests:
                                if (app, test) in cases:
                                    result = run_direct(app, test, args, env, pg_pid)
                                    samples[(app, test, server)].append(result)
                                    progress(round_no, app, server, test, result)
                            continue
                        server_env = dict(env, BENCH_NO_DB="1") if server in NO_DB else env
                        proc, port = start_server(server, app, args.server_cpu, server_env,
                                                  os.path.join(workdir, f"{server}.log"))
                        try:
                            for test in tests:
                                if (app, test) not in cases:
                                    continue
                                if server in NO_DB and test in DB_TESTS:
                                    continue
                                validate(port, test)
                                run_wrk(port, test, 1, args.connections, args.client_cpu)
                                before = cpu_split(proc.pid, pg_pid)
                                result = run_wrk(port, test, args.duration, args.connections,
                                                 args.client_cpu)
                                after = cpu_split(proc.pid, pg_pid)
                                done = result["rps"] * args.duration
                                if done:
                                    result["server_cpu_us"] = (after[0] - before[0]) * 1e6 / done
                                    result["db_cpu_us"] = (after[1] - before[1]) * 1e6 / done
                                samples[(app, test, server)].append(result)
                                progress(round_no, app, server, test, result)
                        finally:
                            stop_server(proc)
        finally:
            db.stop()
    report(args, cases, servers, samples, started)


def report(args: argparse.Namespace, cases: list[tuple[str, str]], servers: list[str],
           samples: dict[tuple[str, str, str], list[dict]],
           started: datetime.datetime) -> None:
    """A results document per suite whose subject ran: ``realapps``, the server's share
    (subject engine), and ``realapps-loop``, the loop's share (subject uvicorn-engine; the
    uvicorn run is uvicorn-uvloop there). ``engine bench realapps`` / ``realapps-loop`` run the
    script with one suite's servers, so each writes one document."""
    from engine.bench import results as R

    groups = [
        ("realapps", "engine", [s for s in ("granian", "uvicorn") if s in servers], {},
         "TechEmpower test types (Starlette, FastAPI on asyncpg/PostgreSQL): engine serve vs "
         "granian (uvloop) and uvicorn (uvloop+httptools), one worker; server and PostgreSQL "
         "on one CPU, wrk on the other"),
        ("realapps-loop", "uvicorn-engine",
         [p for p, s in (("uvicorn-uvloop", "uvicorn"), ("uvicorn-rloop", "uvicorn-rloop"))
          if s in servers], {"uvicorn-uvloop": "uvicorn"},
         "the same apps under uvicorn (httptools) on engine's loop vs uvloop vs rloop"),
    ]
    full = (args.rounds >= 3 and args.duration >= 10
            and len(cases) == len(APPS) * len(TESTS))
    for suite, subject, peers, alias, description in groups:
        names = [subject, *peers]
        source = {n: alias.get(n, n) for n in names}
        if source[subject] not in servers:
            continue
        scenarios = {}
        for app, test in cases:
            runs = {n: samples[(app, test, source[n])] for n in names}
            extra = {n: {"non2xx": sum(r["non2xx"] for r in rs),
                         "socket_errors": sum(r["socket_errors"] for r in rs),
                         "p99_ms_rounds": [r.get("p99_ms") for r in rs],
                         "server_cpu_us_per_req_rounds": [
                             round(r.get("server_cpu_us", 0), 1) for r in rs],
                         "db_cpu_us_per_req_rounds": [
                             round(r.get("db_cpu_us", 0), 1) for r in rs]}
                     for n, rs in runs.items()}
            ceiling = samples.get((app, test, "direct"))
            if ceiling and suite == "realapps":
                # beside the subject: what no server can pass with this app on this CPU
                extra[subject]["ceiling_rps_rounds"] = [round(r["rps"], 1) for r in ceiling]
                extra[subject]["ceiling_app_cpu_us_per_req_rounds"] = [
                    round(r["server_cpu_us"], 1) for r in ceiling]
                extra[subject]["ceiling_db_cpu_us_per_req_rounds"] = [
                    round(r["db_cpu_us"], 1) for r in ceiling]
            scenarios[f"{app}-{test}"] = {
                "label": f"{app}: {TESTS[test][1]}", "kind": "throughput",
                "unit": "requests/s", "in_geomean": True,
                "samples": {n: [r["rps"] for r in rs] for n, rs in runs.items()},
                "extra": extra}
        doc = R.samples_doc(
            suite=suite, subject=subject, peers=peers, mode="full" if full else "custom",
            description=description, command="python " + " ".join(sys.argv),
            started=started.isoformat(timespec="seconds"),
            pinning={"server+postgres": str(args.server_cpu), "client": str(args.client_cpu)},
            scenarios=scenarios, repo=os.path.dirname(HERE),
            extra_meta={"duration_s_per_round": args.duration, "rounds": args.rounds,
                        "wrk": {"threads": 1, "connections": args.connections},
                        "db_pool_per_worker": args.db_pool,
                        "no_database_tests": {k: v for k, v in NO_DB.items() if k in servers},
                        "postgres": "fsync=off synchronous_commit=off full_page_writes=off, "
                                    "TCP 127.0.0.1, same CPU as the server"})
        print(f"\n{suite}: {description}")
        print(f"{'case':22} " + " ".join(f"{n:>15}" for n in names))
        for name, sc in doc["scenarios"].items():
            print(f"{name:22} " + " ".join(
                f"{sc['impls'][n]['value']:>15,.0f}" if n in sc["impls"] else f"{'-':>15}"
                for n in names))
            ratios = "  ".join(f"{subject}/{p} {r['value']:.2f}x"
                               for p, r in sc.get("ratios", {}).items())
            if ratios:
                print(f"{'':22} {ratios}")
            top = sc["impls"][subject].get("ceiling_rps_rounds")
            if top:
                top_rps = statistics.median(top)
                bounds = "  ".join(f"ceiling/{p} {top_rps / sc['impls'][p]['value']:.2f}x"
                                   for p in peers if p in sc["impls"])
                print(f"{'':22} ceiling (the app without a server) {top_rps:,.0f}: "
                      f"{subject} at {sc['impls'][subject]['value'] / top_rps:.0%} of it; "
                      f"{bounds}")
            errors = {n: sc["impls"][n].get("non2xx", 0) + sc["impls"][n].get("socket_errors", 0)
                      for n in names if n in sc["impls"]}
            if any(errors.values()):
                print(f"{'':22} WARNING errors (non-2xx + socket): {errors}")
        if args.results:
            print("wrote", R.write_result(doc, args.results))


if __name__ == "__main__":
    main()

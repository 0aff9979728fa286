"""HTTP benchmarks with wrk: engine's ASGI server vs granian, uvicorn (uvloop + httptools) and
nginx, same machine, same run. The server runs pinned to --server-cpu (default 1, one worker),
wrk to --client-cpu (default 0).

Scenarios:
  hello       ASGI hello-world (13 bytes), 64 connections keep-alive      requests/s + latency
  pipelined   the same, 16 requests pipelined per connection (wrk Lua)    requests/s
  file_1m     a 1 MiB file: engine by http.response.pathsend (sendfile), granian/uvicorn by
              the same ASGI app (they do not advertise pathsend: the app streams the file),
              nginx static with `sendfile on`                              requests/s, MiB/s
  hello_tls   hello over TLS (wrk https, TLS 1.3): each server started with its own TLS
              options (engine serve --ssl-*, granian --ssl-*, uvicorn --ssl-*, nginx ssl),
              certificate made by trustme                                 requests/s

Each (scenario, server) runs --rounds times, interleaved; the median is kept. Each round also
records the server CPU's busy time (user + system + softirq, /proc/stat) per request: at these
rates the network stack's work on that CPU is part of what a server costs. Needs wrk (and nginx
for its column): apt-get install -y wrk nginx-light.

    python perf/bench_http.py [--servers engine,granian,uvicorn,nginx] [--duration 5]
                              [--rounds 3] [--results results/]
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

# the ASGI app of every server here and in bench_h2.py: hello world at /, a 64 KiB body at
# /64k, the file BENCH_FILE at /file (by pathsend where the server offers it)
APP = textwrap.dedent('''
    import os
    FILE = os.environ.get("BENCH_FILE", "")
    BODY_64K = b"x" * 65536

    async def app(scope, receive, send):
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while True:
                    m = await receive()
                    if m["type"] == "lifespan.startup":
                        await send({"type": "lifespan.startup.complete"})
                    else:
                        await send({"type": "lifespan.shutdown.complete"})
                        return
            return
        if scope["path"] == "/file":
            size = os.path.getsize(FILE)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"),
                                    (b"content-length", str(size).encode())]})
            if "http.response.pathsend" in scope.get("extensions", {}):
                await send({"type": "http.response.pathsend", "path": FILE})
            else:
                with open(FILE, "rb") as f:
                    while True:
                        chunk = f.read(256 * 1024)
                        more = f.tell() < size
                        await send({"type": "http.response.body", "body": chunk,
                                    "more_body": more})
                        if not more:
                            break
            return
        if scope["path"] == "/64k":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/octet-stream"),
                                    (b"content-length", b"65536")]})
            await send({"type": "http.response.body", "body": BODY_64K})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
''')

PIPELINE_LUA = textwrap.dedent('''
    init = function(args)
       local r = {}
       for i = 1, 16 do r[i] = wrk.format(nil, "/") end
       req = table.concat(r)
    end
    request = function() return req end
''')

ENGINE_SERVER = textwrap.dedent('''
    import sys, engine
    sys.path.insert(0, sys.argv[2])
    from benchapp import app
    from engine.serve.protocols.http import serve_app
    engine.run(serve_app(app, "127.0.0.1", int(sys.argv[1])))
''')

NGINX_CONF = textwrap.dedent('''
    worker_processes 1;
    daemon off;
    pid {dir}/nginx.pid;
    error_log {dir}/error.log crit;
    events {{ worker_connections 4096; }}
    http {{
        access_log off;
        sendfile on;
        tcp_nopush on;
        keepalive_requests 1000000;
        server {{
            listen {listen};
            location = / {{ default_type text/plain; return 200 "Hello, world!"; }}
            location = /file {{ alias {file}; default_type application/octet-stream; }}
        }}
    }}
''')


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


TLS_SCENARIOS = {"hello_tls"}


def tls_files(workdir):
    """A certificate for 127.0.0.1 and its key, as files in workdir: (cert, key)."""
    import trustme
    cert = trustme.CA().issue_cert("127.0.0.1")
    paths = (os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem"))
    cert.cert_chain_pems[0].write_to_path(paths[0])
    cert.private_key_pem.write_to_path(paths[1])
    return paths


def start_server(name, port, workdir, cpu, tls=None):
    """Start one server; tls: (certfile, keyfile) to serve HTTPS only."""
    env = dict(os.environ, BENCH_FILE=os.path.join(workdir, "file.bin"))
    if name in ("engine-epoll", "engine-io_uring", "engine-io_uring-poll", "engine-io_uring-noaccept"):
        # engine on the poller backend named (perf/bench_backends.py's A/B); -poll: io_uring
        # for readiness only (no completion receives and sends); -noaccept: without accept requests
        if name == "engine-io_uring-poll":
            env["ENGINE_IO_URING_RECV"] = "0"
        elif name == "engine-io_uring-noaccept":
            env["ENGINE_IO_URING_ACCEPT"] = "0"
        name, env["ENGINE_BACKEND"] = "engine", name.split("-")[1]
    taskset = ["taskset", "-c", str(cpu)]
    py = sys.executable
    bindir = os.path.dirname(py)
    if name == "engine" and tls:
        # what users run: engine serve, one worker, its TLS options
        cmd = taskset + [py, "-m", "engine", "serve", "benchapp:app", "--port", str(port),
                         "--workers", "1", "--log-level", "error", "--no-access-log",
                         "--app-dir", workdir, "--ssl-certfile", tls[0],
                         "--ssl-keyfile", tls[1]]
    elif name == "engine":
        cmd = taskset + [py, os.path.join(workdir, "engine_server.py"), str(port), workdir]
    elif name == "uvicorn":
        cmd = taskset + [py, "-m", "uvicorn", "benchapp:app", "--port", str(port),
                         "--loop", "uvloop", "--http", "httptools", "--log-level", "error",
                         "--no-access-log", "--app-dir", workdir]
        if tls:
            cmd += ["--ssl-certfile", tls[0], "--ssl-keyfile", tls[1]]
    elif name == "granian":
        exe = shutil.which("granian", path=bindir) or "granian"
        cmd = taskset + [exe, "--interface", "asgi", "--port", str(port), "--workers", "1",
                         "--log-level", "error", "--no-ws", "benchapp:app"]
        if tls:
            cmd[-1:-1] = ["--ssl-certificate", tls[0], "--ssl-keyfile", tls[1]]
    elif name == "nginx":
        conf = os.path.join(workdir, "nginx.conf")
        listen = f"127.0.0.1:{port}" + (
            f" ssl; ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}" if tls else "")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=workdir, listen=listen,
                                      file=os.path.join(workdir, "file.bin")))
        cmd = taskset + [shutil.which("nginx") or "/usr/sbin/nginx", "-c", conf, "-p", workdir]
    else:
        raise ValueError(name)
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    if not wait_port(port):
        proc.kill()
        raise RuntimeError(f"{name} did not start: {proc.stderr.read().decode()[-2000:]}")
    return proc


def stop_server(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def parse_wrk(out):
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / (1 << 20), "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(2)]
    lat = {}
    for p in ("50", "90", "99"):
        mm = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if mm:
            v = float(mm.group(1))
            lat[f"p{p}_ms"] = v / 1000 if mm.group(2) == "us" else v * 1000 \
                if mm.group(2) == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockerr = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "mib_s": float(m.group(1)) * scale, **lat,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": sockerr.group(1) if sockerr else None}


def cpu_times(cpu):
    """(busy, total) seconds of one CPU from /proc/stat (None off Linux). Busy counts user,
    system and the softirq time the kernel's network stack spends there (loopback TCP
    receive processing runs on the sender's CPU), which no per-process counter shows."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith(f"cpu{cpu} "):
                    v = [int(x) for x in line.split()[1:]]
                    hz = os.sysconf("SC_CLK_TCK")
                    return (sum(v) - v[3] - v[4]) / hz, sum(v) / hz   # minus idle, iowait
    except OSError:
        pass
    return None


def run_wrk(port, scenario, duration, cpu, workdir, server_cpu=None, conns=None):
    path = "/file" if scenario == "file_1m" else "/"
    if conns is None:
        conns = 16 if scenario == "file_1m" else 64
    scheme = "https" if scenario in TLS_SCENARIOS else "http"
    cmd = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s",
           "--latency", f"{scheme}://127.0.0.1:{port}{path}"]
    if scenario == "pipelined":
        cmd[5:5] = ["-s", os.path.join(workdir, "pipeline.lua")]
    elif scenario == "hello_close":      # a new connection per request: the accept path
        cmd[5:5] = ["-H", "Connection: close"]
    before = cpu_times(server_cpu) if server_cpu is not None else None
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30)
    after = cpu_times(server_cpu) if server_cpu is not None else None
    if "Requests/sec" not in proc.stdout:
        raise RuntimeError(f"wrk failed on {scenario}: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    res = parse_wrk(proc.stdout)
    if before and after and res["rps"] > 0:
        busy, total = after[0] - before[0], after[1] - before[1]
        # the server CPU's busy time per answered request (wrk's start and end included:
        # the CPU is idle then) and how busy it was
        res["server_cpu_us_per_req"] = busy * 1e6 / (res["rps"] * duration)
        res["server_cpu_busy"] = busy / total if total else None
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="engine,granian,uvicorn,nginx")
    ap.add_argument("--scenarios", default="hello,pipelined,file_1m,hello_tls")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--results")
    args = ap.parse_args()
    servers = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    started = datetime.datetime.now(datetime.UTC)
    results = {sc: {s: [] for s in servers} for sc in scenarios}
    with tempfile.TemporaryDirectory(prefix="engine-http-bench-") as wd:
        with open(os.path.join(wd, "benchapp.py"), "w") as f:
            f.write(APP)
        with open(os.path.join(wd, "engine_server.py"), "w") as f:
            f.write(ENGINE_SERVER)
        with open(os.path.join(wd, "pipeline.lua"), "w") as f:
            f.write(PIPELINE_LUA)
        with open(os.path.join(wd, "file.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        # nginx's workers run as an unprivileged user: let them read the file
        os.chmod(wd, 0o755)
        os.chmod(os.path.join(wd, "file.bin"), 0o644)
        tls = tls_files(wd) if TLS_SCENARIOS & set(scenarios) else None
        # one server start per (round, server, plaintext or TLS)
        groups = [g for g in ([sc for sc in scenarios if sc not in TLS_SCENARIOS],
                              [sc for sc in scenarios if sc in TLS_SCENARIOS]) if g]
        for _ in range(args.rounds):
            for name in servers:
                for group in groups:
                    secure = group[0] in TLS_SCENARIOS
                    port = free_port()
                    proc = start_server(name, port, wd, args.server_cpu,
                                        tls if secure else None)
                    try:
                        run_wrk(port, group[0], 1, args.client_cpu, wd)   # warm-up
                        for sc in group:
                            results[sc][name].append(
                                run_wrk(port, sc, args.duration, args.client_cpu, wd,
                                        args.server_cpu))
                    finally:
                        stop_server(proc)
    from engine.bench import results as R
    labels = {"hello": ("ASGI hello world, 64 conns", "requests/s", "rps"),
              "pipelined": ("hello, 16 pipelined per conn", "requests/s", "rps"),
              "file_1m": ("1 MiB file (pathsend / nginx sendfile)", "MiB/s", "mib_s"),
              "hello_tls": ("ASGI hello world over TLS, 64 conns", "requests/s", "rps")}
    peers = [s for s in servers if s != "engine"]
    docsc = {}
    print(f"{'scenario':10} " + " ".join(f"{s:>18}" for s in servers))
    for sc in scenarios:
        label, unit, key = labels[sc]
        extra = {}
        for s in servers:
            runs = results[sc][s]
            non2xx = sum(r["non2xx"] for r in runs)
            if non2xx:
                print(f"WARNING: {s} answered {non2xx} non-2xx responses in {sc}")
            extra[s] = {"rps_rounds": [r["rps"] for r in runs], "non2xx": non2xx,
                        "socket_errors": [r["socket_errors"] for r in runs],
                        "latency_ms_median_of_rounds": {
                            p: statistics.median(r[p] for r in runs)
                            for p in ("p50_ms", "p90_ms", "p99_ms")
                            if all(p in r for r in runs)}}
            if all(r.get("server_cpu_us_per_req") for r in runs):
                extra[s]["server_cpu_us_per_req_rounds"] = [
                    round(r["server_cpu_us_per_req"], 1) for r in runs]
                extra[s]["server_cpu_busy_rounds"] = [
                    round(r["server_cpu_busy"], 3) for r in runs]
        docsc[sc] = {"label": label, "kind": "throughput", "unit": unit,
                     "in_geomean": sc != "file_1m",
                     "samples": {s: [r[key] for r in results[sc][s]] for s in servers},
                     "extra": extra}
    full = (set(servers) == {"engine", "granian", "uvicorn", "nginx"}
            and set(scenarios) >= {"hello", "pipelined", "file_1m"}
            and args.rounds >= 3 and args.duration >= 5)
    doc = R.samples_doc(
        suite="http", subject="engine", peers=peers, mode="full" if full else "custom",
        description="wrk against engine serve's HTTP protocol vs granian, uvicorn "
                    "(uvloop+httptools) and nginx; one worker pinned, wrk on the other CPU",
        command="python " + " ".join(sys.argv), started=started.isoformat(timespec="seconds"),
        pinning={"server": str(args.server_cpu), "client": str(args.client_cpu)},
        scenarios=docsc, repo=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        extra_meta={"duration_s_per_round": args.duration, "rounds": args.rounds,
                    "wrk": {"threads": 1, "connections": {"hello": 64, "pipelined": 64,
                                                          "file_1m": 16, "hello_tls": 64}}})
    for sc in scenarios:
        d = doc["scenarios"][sc]
        print(f"{sc:10} " + " ".join(f"{d['impls'][s]['value']:>12,.0f} {d['unit'][:5]}"
                                     for s in servers))
        print(f"{'':10} " + "  ".join(f"engine/{p} {r['value']:.2f}x"
                                      for p, r in d["ratios"].items()))
        cpu = {s: docsc[sc]["extra"][s].get("server_cpu_us_per_req_rounds") for s in servers}
        if all(cpu.values()):
            print(f"{'':10} server CPU per request (median, us): " + "  ".join(
                f"{s} {statistics.median(v):,.0f}" for s, v in cpu.items()))
    if args.results:
        path = R.write_result(doc, args.results)
        print("wrote", path)


if __name__ == "__main__":
    main()

"""io_uring vs epoll: engine's two poller backends side by side, with uvloop and rloop, same run.

Server and client in separate processes pinned to different CPUs (server --server-cpu, default 1;
client --client-cpu, default 0). Scenarios:

  echo_1k_c1 / _c64 / _c1000      Protocol echo (perf/bench_net.py's server), 1 KiB messages, 1, 64
  echo_100k_c1 / _c64 / _c1000    or 1,000 connections each with one message in flight; the client
                                  is perf/echo_client.c (C, one epoll loop), compiled here with cc
  streams_pingpong, sock_pingpong perf/bench_net.py's scenarios and client (64-byte round trips)
  http_hello_c64 / _c1000         engine's HTTP server (perf/bench_http.py's app) under wrk -t1;
  http_file_1m                    engine's two backends only (uvloop and rloop serve no HTTP)

For each (scenario, server): throughput (median of --rounds interleaved rounds), the server's CPU
time per operation, and, in one more short run under `strace -c -f`, its system calls per
operation (strace slows the server; only the counts are kept).

    python perf/bench_backends.py [--impls engine-io_uring,engine-epoll,engine-io_uring-poll,uvloop,rloop]
        [--scenarios a,b] [--seconds 3] [--rounds 3] [--no-strace] [--results results/]
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_http as H  # noqa: E402
import bench_net as N  # noqa: E402

ECHO = {f"echo_{k}_c{c}": (size, c) for k, size in (("1k", 1024), ("100k", 100 * 1024))
        for c in (1, 64, 1000)}
NET = ("streams_pingpong", "sock_pingpong")
HTTP = {"http_hello_c64": ("hello", 64), "http_hello_c1000": ("hello", 1000),
        "http_close_c64": ("hello_close", 64), "http_file_1m": ("file_1m", 16)}
SCENARIOS = list(ECHO) + list(NET) + list(HTTP)
ENGINES = ("engine-io_uring", "engine-epoll")
# -poll: io_uring for readiness only; -noaccept: without accept requests
VARIANTS = ENGINES + ("engine-io_uring-poll", "engine-io_uring-noaccept")


def label(sc):
    if sc in ECHO:
        size, c = ECHO[sc]
        return f"Protocol echo {size // 1024} KiB, {c} conn"
    if sc in HTTP:
        return {"http_hello_c64": "HTTP hello, wrk -c64", "http_hello_c1000": "HTTP hello, wrk -c1000",
                "http_close_c64": "HTTP hello, a connection per request, wrk -c64",
                "http_file_1m": "HTTP 1 MiB file, wrk -c16"}[sc]
    return N.LABELS[sc]


def unit(sc):
    return "req/s" if sc in HTTP else "round trips/s"


def build_client(workdir):
    exe = os.path.join(workdir, "echo_client")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("a C compiler (cc) is needed for perf/echo_client.c")
    subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "echo_client.c")], check=True)
    return exe


def start_net_server(impl, scenario, cpu, path):
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "bench_net.py"), "--serve", impl,
                             scenario, str(cpu), path], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    line = proc.stdout.readline().split()
    if not line:
        proc.kill()
        raise RuntimeError(f"{impl} did not start for {scenario}")
    return proc, int(line[0])


def strace_start(pid, out):
    st = subprocess.Popen(["strace", "-c", "-f", "-q", "-p", str(pid), "-o", out],
                          stderr=subprocess.DEVNULL)
    time.sleep(0.5)          # attached to every thread before the load starts
    return st


def strace_total(st, out):
    st.send_signal(signal.SIGINT)
    st.wait(30)
    with open(out) as f:
        text = f.read()
    m = re.search(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?total$", text, re.M)
    if not m:
        raise RuntimeError(f"no strace total in {text[-500:]}")
    calls = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[-1] != "total" and f[3].isdigit():
            calls[f[-1]] = int(f[3])
    return int(m.group(1)), calls


def measure(pid, args, trace, load):
    """Run load(trace) -> (rate, operations, server CPU seconds) against the server `pid`:
    (rate, CPU us per operation), or under strace (system calls per operation, the count of
    each call, operations)."""
    st = out = None
    if trace:
        out = os.path.join(args.workdir, "strace.txt")
        st = strace_start(pid, out)
    rate, count, cpu = load(trace)
    if trace:
        total, calls = strace_total(st, out)
        return total / max(count, 1), calls, count
    return rate, cpu * 1e6 / max(count, 1)


def run_echo(impl, sc, args, client, path, trace=False):
    size, conns = ECHO[sc]
    proc, port = start_net_server(impl, "proto_echo_1k", args.server_cpu, path)

    def load(trace):
        secs, warm = (1.0, 0.0) if trace else (args.seconds, 0.5)
        t = subprocess.Popen(["taskset", "-c", str(args.client_cpu), client, str(port),
                              str(conns), str(size), str(secs), str(warm)],
                             stdout=subprocess.PIPE, text=True)
        time.sleep(warm)
        cpu0 = N.cpu_seconds(proc.pid)
        stdout, _ = t.communicate(timeout=secs + 120)
        if t.returncode != 0:
            raise RuntimeError(f"echo_client failed ({impl}, {sc})")
        rate, count = stdout.split()
        return float(rate), int(count), N.cpu_seconds(proc.pid) - cpu0

    try:
        return measure(proc.pid, args, trace, load)
    finally:
        proc.kill()
        proc.wait()


def run_net(impl, sc, args, path, trace=False):
    proc, port = start_net_server(impl, sc, args.server_cpu, path)

    def load(trace):
        cpu0, t0 = N.cpu_seconds(proc.pid), time.perf_counter()
        rate = N.client(sc, port, 1.0 if trace else args.seconds, args.client_cpu, proc)
        return rate, rate * (time.perf_counter() - t0), N.cpu_seconds(proc.pid) - cpu0

    try:
        return measure(proc.pid, args, trace, load)
    finally:
        proc.kill()
        proc.wait()


def run_http(impl, sc, args, trace=False):
    scenario, conns = HTTP[sc]
    port = H.free_port()
    proc = H.start_server(impl, port, args.workdir, args.server_cpu)

    def load(trace):
        secs = 2 if trace else max(1, round(args.seconds))    # wrk takes whole seconds
        cpu0 = N.cpu_seconds(proc.pid)
        res = H.run_wrk(port, scenario, secs, args.client_cpu, args.workdir, conns=conns)
        return res["rps"], res["rps"] * secs, N.cpu_seconds(proc.pid) - cpu0

    try:
        H.run_wrk(port, scenario, 1, args.client_cpu, args.workdir, conns=conns)   # warm-up
        return measure(proc.pid, args, trace, load)
    finally:
        H.stop_server(proc)


def supported(impl, sc):
    return sc not in HTTP or impl in VARIANTS


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impls", default="engine-io_uring,engine-epoll,engine-io_uring-poll,uvloop,rloop")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--no-strace", action="store_true", help="skip the system-call counts")
    ap.add_argument("--results", help="directory to write backends-<UTC>-<commit>.json into")
    args = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    impls = args.impls.split(",")
    scenarios = args.scenarios.split(",")
    for sc in scenarios:
        if sc not in SCENARIOS:
            raise SystemExit(f"unknown scenario {sc}; known: {', '.join(SCENARIOS)}")
    trace = not args.no_strace and shutil.which("strace") is not None
    started = datetime.datetime.now(datetime.UTC)
    samples = {sc: {i: [] for i in impls} for sc in scenarios}
    cpu_us = {sc: {i: [] for i in impls} for sc in scenarios}
    syscalls = {sc: {} for sc in scenarios}
    with tempfile.TemporaryDirectory(prefix="engine-backends-") as wd:
        args.workdir = wd
        client = build_client(wd)
        with open(os.path.join(wd, "benchapp.py"), "w") as f:
            f.write(H.APP)
        with open(os.path.join(wd, "engine_server.py"), "w") as f:
            f.write(H.ENGINE_SERVER)
        with open(os.path.join(wd, "file.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        path = os.path.join(wd, "file.bin")

        def one(impl, sc, trace=False):
            if sc in ECHO:
                return run_echo(impl, sc, args, client, path, trace)
            if sc in HTTP:
                return run_http(impl, sc, args, trace)
            return run_net(impl, sc, args, path, trace)

        for sc in scenarios:
            runs = [i for i in impls if supported(i, sc)]
            for _ in range(args.rounds):
                for impl in runs:
                    rate, us = one(impl, sc)
                    samples[sc][impl].append(rate)
                    cpu_us[sc][impl].append(us)
            if trace:
                for impl in runs:
                    per_op, calls, count = one(impl, sc, trace=True)
                    top = dict(sorted(calls.items(), key=lambda kv: -kv[1])[:4])
                    syscalls[sc][impl] = {"per_op": round(per_op, 3), "ops": int(count),
                                          "top": {k: round(v / max(count, 1), 3)
                                                  for k, v in top.items()}}
            row = "  ".join(f"{i} {statistics.median(samples[sc][i]):,.0f}"
                            f" ({statistics.median(cpu_us[sc][i]):.1f} us"
                            + (f", {syscalls[sc][i]['per_op']:.2f} sc" if i in syscalls[sc] else "")
                            + ")" for i in runs)
            print(f"{sc:18} [{unit(sc)}] {row}", flush=True)
    from engine.bench import results as R
    docsc = {sc: {"label": label(sc), "kind": "throughput", "unit": unit(sc), "in_geomean": True,
                  "samples": samples[sc]} for sc in scenarios}
    full = (set(scenarios) == set(SCENARIOS) and set(ENGINES) <= set(impls)
            and args.rounds >= 3 and args.seconds >= 3.0 and trace)
    doc = R.samples_doc(
        suite="backends", subject=impls[0], peers=impls[1:], mode="full" if full else "custom",
        description="engine's io_uring backend vs its epoll backend vs uvloop and rloop: "
                    "Protocol echo at 1/64/1000 connections, ping-pongs, HTTP hello and a 1 MiB "
                    "file; server CPU and system calls per operation",
        command="python " + " ".join(sys.argv), started=started.isoformat(timespec="seconds"),
        pinning={"server": str(args.server_cpu), "client": str(args.client_cpu)},
        scenarios=docsc, repo=os.path.dirname(HERE),
        extra_meta={"seconds_per_round": args.seconds, "rounds": args.rounds,
                    "server_cpu_us_per_op_median": {
                        sc: {i: round(statistics.median(v), 2) for i, v in d.items() if v}
                        for sc, d in cpu_us.items()},
                    "syscalls_per_op": syscalls})
    print(f"\n{impls[0]} advantage (>1 = better):")
    for sc, d in doc["scenarios"].items():
        print(f"  {sc:18} " + "  ".join(f"vs {p} {r['advantage']:.2f}x"
                                        for p, r in d["ratios"].items()))
    if args.results:
        print("wrote", R.write_result(doc, args.results))


if __name__ == "__main__":
    main()

"""HTTP/2 benchmarks with h2load: engine's ASGI server (h2c, prior knowledge) vs granian
(`--http 2`) and hypercorn, same machine, same run; plus HTTP/1.1 hello world with wrk on the
same servers (the "HTTP/1.1 unchanged" check). The server runs pinned to --server-cpu (default
0, one worker), the load generator to --client-cpu (default 1).

Scenarios (h2load: -c connections, -m concurrent streams per connection):
  h2_hello_m10    ASGI hello world (13 bytes), -c64 -m10                 requests/s
  h2_hello_m100   the same, -c64 -m100                                   requests/s
  h2_body_64k     a 64 KiB response body, -c64 -m10                      requests/s, MiB/s
  h2_file_1m      a 1 MiB file: engine by http.response.pathsend, the peers by the same app
                  (they do not advertise pathsend: it streams the file), -c16 -m4   MiB/s
  h2_file_1m_f1m  the same with h2load --max-frame-size=1M (1 MiB DATA frames allowed;
                  not in the default set)                                MiB/s
  h1_hello        HTTP/1.1 hello world with wrk, 64 connections          requests/s

Servers: engine, granian, hypercorn, and engine-pread (engine with ENGINE_H2_SENDFILE=0:
pathsend's DATA frames read with pread and written with writev, the other side of the A/B
against engine's default, a frame header sent with MSG_MORE + sendfile(2) per frame; compare
them with --servers engine,engine-pread --scenarios h2_file_1m,h2_file_1m_f1m).

Each (scenario, server) runs --rounds times, interleaved; the median is kept; the results
document (engine.bench.results, results/SCHEMA.md) holds the ratios engine/peer of one run. A
scenario where a server answered fewer requests than h2load started is flagged in its extra.
Needs h2load (Debian: nghttp2-client), wrk, and `pip install granian hypercorn` for the peers.

    python perf/bench_h2.py [--servers engine,granian,hypercorn] [--duration 5] [--rounds 3]
                            [--scenarios CSV] [--results results/]
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_http as _bh  # noqa: E402

APP, ENGINE_SERVER, cpu_times, free_port = _bh.APP, _bh.ENGINE_SERVER, _bh.cpu_times, _bh.free_port
run_wrk, stop_server, wait_port = _bh.run_wrk, _bh.stop_server, _bh.wait_port

# scenario -> (path, h2load connections, streams per connection); h1_hello runs wrk
H2_SCENARIOS = {"h2_hello_m10": ("/", 64, 10), "h2_hello_m100": ("/", 64, 100),
                "h2_body_64k": ("/64k", 64, 10), "h2_file_1m": ("/file", 16, 4),
                "h2_file_1m_f1m": ("/file", 16, 4)}
# h2load options beyond -c/-m: the client's SETTINGS_MAX_FRAME_SIZE (default 16 KiB)
H2LOAD_EXTRA = {"h2_file_1m_f1m": ["--max-frame-size=1M"]}
DEFAULT_SCENARIOS = ["h2_hello_m10", "h2_hello_m100", "h2_body_64k", "h2_file_1m", "h1_hello"]
LABELS = {"h2_hello_m10": ("h2c hello world, -c64 -m10", "requests/s", "rps"),
          "h2_hello_m100": ("h2c hello world, -c64 -m100", "requests/s", "rps"),
          "h2_body_64k": ("h2c 64 KiB body, -c64 -m10", "requests/s", "rps"),
          "h2_file_1m": ("h2c 1 MiB file (pathsend), -c16 -m4", "MiB/s", "mib_s"),
          "h2_file_1m_f1m": ("h2c 1 MiB file (pathsend), -c16 -m4, 1 MiB frames", "MiB/s",
                             "mib_s"),
          "h1_hello": ("HTTP/1.1 hello world (wrk), 64 conns", "requests/s", "rps")}


def start_server(name, port, workdir, cpu, http="2"):
    env = dict(os.environ, BENCH_FILE=os.path.join(workdir, "file.bin"))
    taskset = ["taskset", "-c", str(cpu)]
    py = sys.executable
    bindir = os.path.dirname(py)
    if name == "engine-pread":
        # the A/B of pathsend over h2c: pread + writev instead of sendfile(2) per DATA frame
        env["ENGINE_H2_SENDFILE"] = "0"
    if name in ("engine", "engine-pread"):
        cmd = taskset + [py, os.path.join(workdir, "engine_server.py"), str(port), workdir]
    elif name == "granian":
        exe = shutil.which("granian", path=bindir) or "granian"
        cmd = taskset + [exe, "--interface", "asgi", "--http", http, "--port", str(port),
                         "--workers", "1", "--log-level", "error", "--no-ws", "benchapp:app"]
    elif name == "hypercorn":
        cmd = taskset + [py, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                         "--log-level", "error", "benchapp:app"]
    else:
        raise ValueError(name)
    # stderr to a file, not a pipe nobody reads: a server that logs a lot would block on it
    log = os.path.join(workdir, f"{name}-{port}.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)
    if not wait_port(port):
        proc.kill()
        with open(log, "rb") as f:
            raise RuntimeError(f"{name} did not start: {f.read().decode()[-2000:]}")
    return proc


def parse_h2load(out):
    m = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s", out)
    if not m:
        raise RuntimeError(f"unexpected h2load output: {out[-800:]}")
    scale = {"B": 1 / (1 << 20), "KB": 1 / 1024, "MB": 1, "GB": 1024}[m.group(5)]
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    return {"rps": float(m.group(3)), "mib_s": float(m.group(4)) * scale,
            "started": int(req.group(2)), "succeeded": int(req.group(4)),
            "failed": int(req.group(5)), "errored": int(req.group(6))}


def run_h2load(port, scenario, duration, cpu, server_cpu=None, warmup=1):
    path, conns, streams = H2_SCENARIOS[scenario]
    cmd = ["taskset", "-c", str(cpu), "h2load", "-t1", f"-c{conns}", f"-m{streams}",
           *H2LOAD_EXTRA.get(scenario, []),
           f"-D{int(duration)}", f"--warm-up-time={warmup}", f"http://127.0.0.1:{port}{path}"]
    before = cpu_times(server_cpu) if server_cpu is not None else None
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + warmup + 60)
    after = cpu_times(server_cpu) if server_cpu is not None else None
    res = parse_h2load(proc.stdout)
    if before and after and res["rps"] > 0:
        busy, total = after[0] - before[0], after[1] - before[1]
        res["server_cpu_us_per_req"] = busy * 1e6 / (res["rps"] * (duration + warmup))
        res["server_cpu_busy"] = busy / total if total else None
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="engine,granian,hypercorn")
    ap.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS))
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--results")
    args = ap.parse_args()
    servers = args.servers.split(",")
    scenarios = args.scenarios.split(",")
    for sc in scenarios:
        if sc not in LABELS:
            ap.error(f"unknown scenario {sc!r} (known: {', '.join(LABELS)})")
    started = datetime.datetime.now(datetime.UTC)
    results = {sc: {s: [] for s in servers} for sc in scenarios}
    with tempfile.TemporaryDirectory(prefix="engine-h2-bench-") as wd:
        with open(os.path.join(wd, "benchapp.py"), "w") as f:
            f.write(APP)
        with open(os.path.join(wd, "engine_server.py"), "w") as f:
            f.write(ENGINE_SERVER)
        with open(os.path.join(wd, "file.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        h2 = [sc for sc in scenarios if sc != "h1_hello"]
        for _ in range(args.rounds):
            for name in servers:
                # one server process for the HTTP/2 scenarios; HTTP/1.1 on a fresh one (granian
                # speaks one version per process: --http 2, then --http 1)
                for group, http in ((h2, "2"), (["h1_hello"] if "h1_hello" in scenarios
                                                 else [], "1")):
                    if not group:
                        continue
                    port = free_port()
                    proc = start_server(name, port, wd, args.server_cpu, http)
                    try:
                        for sc in group:
                            if sc == "h1_hello":
                                run_wrk(port, "hello", 1, args.client_cpu, wd)     # warm-up
                                r = run_wrk(port, "hello", args.duration, args.client_cpu,
                                            wd, args.server_cpu)
                            else:
                                r = run_h2load(port, sc, args.duration, args.client_cpu,
                                               args.server_cpu)
                            results[sc][name].append(r)
                    finally:
                        stop_server(proc)
    from engine.bench import results as R
    peers = [s for s in servers if s != "engine"]
    docsc = {}
    for sc in scenarios:
        label, unit, key = LABELS[sc]
        extra = {}
        for s in servers:
            runs = results[sc][s]
            e = {"rps_rounds": [r["rps"] for r in runs]}
            if sc != "h1_hello":
                e["unanswered"] = sum(r["started"] - r["succeeded"] for r in runs)
                e["failed"] = sum(r["failed"] + r["errored"] for r in runs)
                if e["failed"]:
                    print(f"WARNING: {s}: {e['failed']} failed/errored requests in {sc}")
            else:
                e["non2xx"] = sum(r["non2xx"] for r in runs)
            if all(r.get("server_cpu_us_per_req") for r in runs):
                e["server_cpu_us_per_req_rounds"] = [
                    round(r["server_cpu_us_per_req"], 1) for r in runs]
            extra[s] = e
        docsc[sc] = {"label": label, "kind": "throughput", "unit": unit,
                     "in_geomean": sc.startswith("h2_") and not sc.startswith("h2_file"),
                     "samples": {s: [r[key] for r in results[sc][s]] for s in servers},
                     "extra": extra}
    full = (set(servers) == {"engine", "granian", "hypercorn"}
            and set(scenarios) == set(DEFAULT_SCENARIOS) and args.rounds >= 3
            and args.duration >= 5)
    doc = R.samples_doc(
        suite="h2", subject="engine", peers=peers, mode="full" if full else "custom",
        description="h2load against engine serve's HTTP/2 (h2c prior knowledge) vs granian "
                    "--http 2 and hypercorn, plus HTTP/1.1 hello world with wrk; one worker "
                    "pinned, the load generator on the other CPU",
        command="python " + " ".join(sys.argv), started=started.isoformat(timespec="seconds"),
        pinning={"server": str(args.server_cpu), "client": str(args.client_cpu)},
        scenarios=docsc, repo=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        extra_meta={"duration_s_per_round": args.duration, "rounds": args.rounds,
                    "h2load": {sc: {"path": p, "connections": c, "streams": m, "threads": 1}
                               for sc, (p, c, m) in H2_SCENARIOS.items()},
                    "wrk": {"threads": 1, "connections": 64}})
    print(f"{'scenario':14} " + " ".join(f"{s:>18}" for s in servers))
    for sc in scenarios:
        d = doc["scenarios"][sc]
        print(f"{sc:14} " + " ".join(f"{d['impls'][s]['value']:>12,.0f} {d['unit'][:5]}"
                                     for s in servers))
        print(f"{'':14} " + "  ".join(f"engine/{p} {r['value']:.2f}x"
                                      for p, r in d["ratios"].items()))
    if args.results:
        path = R.write_result(doc, args.results)
        print("wrote", path)


if __name__ == "__main__":
    main()

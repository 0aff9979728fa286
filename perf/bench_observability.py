"""What observability costs: wrk against ``engine serve``'s hello world with the access log off,
on (default format), a custom ``--access-log-format``, ``json`` (and ``--metrics`` once that
flag exists), reporting requests/s and the ratio to the plain run.

    python perf/bench_observability.py --duration 5 --rounds 3 --results results/

The server's stderr (the access log) goes to a file, so a terminal is
not what is measured. One worker pinned to --server-cpu, wrk on --client-cpu. Needs wrk.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time

ENGINE = os.path.join(os.path.dirname(sys.executable), "engine")
HELLO = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})
'''
VARIANTS = {
    "plain": [],
    "access_default": ["--access-log"],
    "access_custom": ["--access-log-format", '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'],
    "access_json": ["--access-log-format", "json"],
    "metrics": ["--metrics", "127.0.0.1:{metrics_port}"],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


def supports(flag: str) -> bool:
    out = subprocess.run([ENGINE, "serve", "--help"], capture_output=True, text=True).stdout
    return flag in out


def run_variant(name: str, extra: list[str], args: argparse.Namespace, workdir: str) -> float:
    port = free_port()
    extra = [a.replace("{metrics_port}", str(free_port())) for a in extra]
    log = open(os.path.join(workdir, f"{name}.log"), "wb")
    cmd = ["taskset", "-c", str(args.server_cpu), ENGINE, "serve", "hello:app",
           "--port", str(port), "--lifespan", "off", *extra]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
    try:
        wait_port(port)
        wrk = subprocess.run(["taskset", "-c", str(args.client_cpu), "wrk", "-t1", "-c64",
                              f"-d{args.duration}s", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=args.duration + 30)
        m = re.search(r"Requests/sec:\s+([\d.]+)", wrk.stdout)
        if wrk.returncode != 0 or not m:
            raise RuntimeError(f"wrk failed for {name}: {wrk.stdout[-500:]} {wrk.stderr[-500:]}")
        return float(m.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--results", metavar="DIR")
    args = ap.parse_args()
    names = [n for n in args.variants.split(",") if n]
    for n in names:
        if n not in VARIANTS:
            ap.error(f"unknown variant {n!r} (known: {', '.join(VARIANTS)})")
    if "metrics" in names and not supports("--metrics"):
        print("skipping 'metrics': this engine serve has no --metrics", file=sys.stderr)
        names.remove("metrics")
    rates: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as wd:
        with open(os.path.join(wd, "hello.py"), "w") as f:
            f.write(HELLO)
        for _ in range(args.rounds):
            for n in names:                      # interleaved rounds: drift hits all alike
                rates[n].append(run_variant(n, VARIANTS[n], args, wd))
    best = {n: max(v) for n, v in rates.items()}
    plain = best.get("plain")
    report = {
        "description": "wrk -t1 -c64 against engine serve hello world: access log / metrics "
                       "variants vs plain; best of rounds",
        "python": platform.python_version(), "machine": platform.machine(),
        "duration": args.duration, "rounds": args.rounds,
        "variants": {n: {"args": VARIANTS[n], "rps": rates[n], "best_rps": best[n],
                         "ratio_vs_plain": (best[n] / plain) if plain else None}
                     for n in names},
    }
    for n in names:
        ratio = f"{best[n] / plain:6.3f}" if plain else "   n/a"
        print(f"{n:16} {best[n]:12.0f} req/s  x{ratio}")
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
        now = datetime.datetime.now(datetime.UTC)
        report["time"], report["commit"] = now.isoformat(timespec="seconds"), commit
        path = os.path.join(args.results,
                            f"observability-{now:%Y%m%dT%H%M%SZ}-{commit}.json")
        with open(path, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rolling restarts and worker recycling under load: does a keep-alive client lose requests?

Runs wrk (keep-alive, --connections, --duration) against `engine serve --workers 2`:
  sighup     SIGHUP to the supervisor at --at seconds (a rolling restart of both workers)
  recycle    --limit-max-requests N --max-requests-jitter J: workers replaced all along
and, if granian is installed, granian --workers 2 with SIGHUP (granian's reload) for
comparison; a server that is not installed is skipped, and said so in the output.

Parses wrk's "Socket errors: connect A, read B, write C, timeout D" and "Non-2xx or 3xx
responses: N" lines; writes results/restart-<UTC time>-<commit>.json:
  {"kind": "restart", "time", "commit", "duration", "connections",
   "runs": [{"server", "scenario", "requests", "errors": {"connect", "read", "write",
             "timeout", "non_2xx"}, "lost": total of errors, "workers_replaced"}]}

    python perf/bench_restart.py [--duration 10] [--connections 64] [--at 3]
                                 [--limit-max-requests 20000] [--results results/]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

APP = textwrap.dedent('''
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
''')

ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
REQUESTS = re.compile(r"(\d+) requests in")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def parse_wrk(out: str) -> dict[str, int]:
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "non_2xx": 0}
    m = ERRORS.search(out)
    if m:
        for key, value in zip(("connect", "read", "write", "timeout"), m.groups(), strict=True):
            errors[key] = int(value)
    m = NON2XX.search(out)
    if m:
        errors["non_2xx"] = int(m.group(1))
    return errors


def run_one(server: str, scenario: str, cmd: list[str], port: int, args: argparse.Namespace,
            cwd: str) -> dict[str, object]:
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_listening(port, proc)
        time.sleep(0.5)                                  # all workers up
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s",
                                f"http://127.0.0.1:{port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if scenario == "sighup":
            time.sleep(args.at)
            proc.send_signal(signal.SIGHUP)
        out, _ = wrk.communicate(timeout=args.duration + 60)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err_bytes = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err_bytes = proc.communicate()
    err = err_bytes.decode("utf-8", "replace")
    errors = parse_wrk(out)
    m = REQUESTS.search(out)
    result: dict[str, object] = {
        "server": server, "scenario": scenario,
        "requests": int(m.group(1)) if m else None,
        "errors": errors, "lost": sum(errors.values()),
        "workers_replaced": err.count(" replaces ") if server == "engine" else None,
        "exit_status": proc.returncode,
    }
    print(f"{server:8} {scenario:8} requests={result['requests']} lost={result['lost']} "
          f"{errors}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--at", type=float, default=3.0, help="SIGHUP after this many seconds")
    ap.add_argument("--limit-max-requests", type=int, default=20000)
    ap.add_argument("--max-requests-jitter", type=int, default=2000)
    ap.add_argument("--results", default="results", metavar="DIR")
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("bench_restart: wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    engine_cmd = [os.path.join(os.path.dirname(sys.executable), "engine"), "serve"]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "benchapp.py"), "w") as f:
            f.write(APP)
        port = free_port()
        base = [*engine_cmd, "--port", str(port), "--workers", "2", "benchapp:app"]
        runs.append(run_one("engine", "sighup", base, port, args, tmp))
        port = free_port()
        base = [*engine_cmd, "--port", str(port), "--workers", "2", "--limit-max-requests",
                str(args.limit_max_requests), "--max-requests-jitter",
                str(args.max_requests_jitter), "benchapp:app"]
        runs.append(run_one("engine", "recycle", base, port, args, tmp))
        # granian from this interpreter's environment first, then PATH
        granian = shutil.which("granian", path=os.pathsep.join(
            (os.path.dirname(sys.executable), os.environ.get("PATH", ""))))
        if granian:
            port = free_port()
            cmd = [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port",
                   str(port), "--workers", "2", "benchapp:app"]
            runs.append(run_one("granian", "sighup", cmd, port, args, tmp))
        else:
            print("granian   skipped (not installed)")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    now = datetime.datetime.now(datetime.UTC)
    doc = {"kind": "restart", "time": now.isoformat(timespec="seconds"), "commit": commit,
           "duration": args.duration, "connections": args.connections, "runs": runs}
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, f"restart-{now:%Y%m%dT%H%M%SZ}-{commit}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What engine.tuning's options do to request/response traffic: packets and throughput.

A server on engine's loop (pinned to one CPU with taskset) answers each request line with a
response written the way a server writes one -- a header and a body as two writes, or a header
and a file with sendfile(2) -- under each setting:

    nodelay        TCP_NODELAY (what engine's and asyncio's transports set), two writes
    cork           TCP_NODELAY + engine.tuning.cork() around the two writes
    nagle          Nagle on (tuning.nodelay(sock, False)), two writes
    joined         TCP_NODELAY, header + body joined in user space: one write (the ideal)
    file-nodelay   header write + loop.sock_sendfile() of the body, TCP_NODELAY
    file-cork      the same inside tuning.cork()

A client (a blocking socket, pinned to the other CPU) sends one request at a time and reads the
whole response. Per scenario: responses/s over repeated timed runs (median, min, max); the
server process's CPU time per response (over loopback that includes delivering its segments
into the client's socket, work done in the sender's context); and the data segments the
server's kernel sent per response (TCP_INFO tcpi_data_segs_out, read on the server side).
Loopback's MTU is 64 KiB, so a body under ~64 KiB fits one segment: the segment counts show
the coalescing; a real NIC's 1500-byte MTU multiplies the small-segment cost.

    python perf/bench_tuning.py                   # full run, writes results/tuning-<UTC>-<sha>.json
    python perf/bench_tuning.py --quick --no-save # a rough look
    python perf/bench_tuning.py --markdown results/tuning-....json   # the README table again

Run from the repository root with the installed package (a file, not `python -m`).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = 200                                    # bytes of the "header" write

SCENARIOS = {
    "nodelay": "two writes, TCP_NODELAY",
    "cork": "two writes, TCP_NODELAY + cork()",
    "nagle": "two writes, Nagle on (no TCP_NODELAY)",
    "joined": "one write (header+body joined)",
    "file-nodelay": "header + sendfile, TCP_NODELAY",
    "file-cork": "header + sendfile, cork()",
}


# =========================================================================== server

def serve(port_file: str, body_sizes: list[int]) -> None:
    import engine
    from engine import tuning

    files: dict[int, object] = {}
    tmp = tempfile.TemporaryDirectory()
    for size in body_sizes:
        path = Path(tmp.name) / f"body-{size}"
        path.write_bytes(b"F" * size)
        files[size] = open(path, "rb")  # noqa: SIM115 - open for the whole run
    bodies = {size: b"B" * size for size in body_sizes}

    async def handle(loop, sock: socket.socket) -> None:
        mode = "nodelay"
        buf = b""
        try:
            while True:
                while b"\n" not in buf:
                    chunk = await loop.sock_recv(sock, 4096)
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                words = line.decode().split()
                if words[0] == "MODE":
                    mode = words[1]
                    tuning.nodelay(sock, mode != "nagle")
                    await loop.sock_sendall(sock, b"OK\n")
                elif words[0] == "CPU":             # this process's CPU time, ns
                    await loop.sock_sendall(sock, b"%d\n" % time.process_time_ns())
                elif words[0] == "INFO":
                    await loop.sock_sendall(sock, json.dumps(tuning.tcp_info(sock)).encode()
                                            + b"\n")
                elif words[0] == "GET":
                    size = int(words[1])
                    header = (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n" % size).ljust(
                        HEADER - 2, b"x") + b"\r\n"
                    if mode == "joined":
                        await loop.sock_sendall(sock, header + bodies[size])
                    elif mode in ("cork", "file-cork"):
                        with tuning.cork(sock):
                            await loop.sock_sendall(sock, header)
                            await _body(loop, sock, mode, size)
                    else:
                        await loop.sock_sendall(sock, header)
                        await _body(loop, sock, mode, size)
        finally:
            sock.close()

    async def _body(loop, sock, mode: str, size: int) -> None:
        if mode.startswith("file"):
            await loop.sock_sendfile(sock, files[size], 0, size)
        else:
            await loop.sock_sendall(sock, bodies[size])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        ls = socket.create_server(("127.0.0.1", 0))
        ls.setblocking(False)
        tmp_port = port_file + ".tmp"
        Path(tmp_port).write_text(str(ls.getsockname()[1]))
        os.replace(tmp_port, port_file)
        while True:
            sock, _ = await loop.sock_accept(ls)
            sock.setblocking(False)
            loop.create_task(handle(loop, sock))

    engine.run(main())


# =========================================================================== client

class Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = bytearray(1 << 20)

    def line(self, req: bytes) -> bytes:
        self.sock.sendall(req)
        out = b""
        while not out.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed")
            out += chunk
        return out

    def get(self, size: int) -> None:
        self.sock.sendall(b"GET %d\n" % size)
        want = HEADER + size
        view = memoryview(self.buf)
        got = 0
        while got < want:
            n = self.sock.recv_into(view[got:], want - got)
            if not n:
                raise ConnectionError("server closed")
            got += n

    def close(self) -> None:
        self.sock.close()


def measure_size(port: int, size: int, runs: int, seconds: float) -> dict[str, dict]:
    """Every scenario for one body size; timed runs interleaved (run 1 of each, run 2 of
    each...) so that drift in the machine's load affects all scenarios alike."""
    conns = {mode: Conn(port) for mode in SCENARIOS}
    try:
        for mode, conn in conns.items():
            assert conn.line(f"MODE {mode}\n".encode()) == b"OK\n"
            for _ in range(3 if mode == "nagle" else 200):          # warm-up
                conn.get(size)
        info0 = {mode: json.loads(conn.line(b"INFO\n")) for mode, conn in conns.items()}
        rates: dict[str, list[float]] = {mode: [] for mode in SCENARIOS}
        cpu: dict[str, list[float]] = {mode: [] for mode in SCENARIOS}
        totals = dict.fromkeys(SCENARIOS, 0)
        for _ in range(runs):
            for mode, conn in conns.items():
                n = 0
                cpu0 = int(conn.line(b"CPU\n"))
                t0 = time.perf_counter()
                deadline = t0 + seconds
                while True:
                    conn.get(size)
                    n += 1
                    if (n % 8 == 0 or mode == "nagle") and time.perf_counter() >= deadline:
                        break
                rates[mode].append(n / (time.perf_counter() - t0))
                cpu[mode].append((int(conn.line(b"CPU\n")) - cpu0) / n / 1e3)
                totals[mode] += n
        info1 = {mode: json.loads(conn.line(b"INFO\n")) for mode, conn in conns.items()}
    finally:
        for conn in conns.values():
            conn.close()
    out = {}
    for mode in SCENARIOS:
        key = "data_segs_out" if "data_segs_out" in info1[mode] else "segs_out"
        # the first INFO reply and two CPU replies per run are data segments sent between
        # the two readings
        segs = info1[mode][key] - info0[mode][key] - 1 - 2 * runs
        total = totals[mode]
        out[mode] = {
            "label": SCENARIOS[mode], "mode": mode, "header_bytes": HEADER, "body_bytes": size,
            "responses": total,
            "responses_per_s": {"median": statistics.median(rates[mode]),
                                "min": min(rates[mode]), "max": max(rates[mode]),
                                "runs": rates[mode]},
            "server_cpu_us_per_response": {"median": statistics.median(cpu[mode]),
                                           "min": min(cpu[mode]), "max": max(cpu[mode]),
                                           "runs": cpu[mode]},
            "segments_per_response": segs / total,
            "bytes_per_segment": (HEADER + size) * total / segs if segs else None,
            "segment_counter": key,
        }
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def run(args: argparse.Namespace) -> dict:
    server_cpu, client_cpu = args.cpus.split(",") if args.cpus != "none" else (None, None)
    sizes = [int(x) for x in args.sizes.split(",")]
    port_file = tempfile.mktemp(prefix="bench-tuning-port-")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", port_file,
           "--sizes", args.sizes]
    if server_cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", server_cpu] + cmd
    if client_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(client_cpu)})
    server = subprocess.Popen(cmd)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(port_file):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        started = _dt.datetime.now(_dt.UTC)
        results = {}
        for size in sizes:
            for mode, r in measure_size(port, size, args.runs, args.seconds).items():
                name = f"{mode}/{size}"
                results[name] = r
                print(f"{name:<20} {r['responses_per_s']['median']:>10.0f} resp/s  "
                      f"{r['segments_per_response']:.2f} segs/resp", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(30)
        if os.path.exists(port_file):
            os.unlink(port_file)
    commit = _git("rev-parse", "HEAD")
    return {
        "schema": "engine-tuning-results", "schema_version": 1,
        "command": args.command,
        "meta": {
            "date": started.isoformat(timespec="seconds"),
            "kernel": f"{platform.system()} {platform.release()}",
            "python_version": platform.python_version(), "python_executable": sys.executable,
            "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
            "pinning": {"server": server_cpu, "client": client_cpu},
            "git": {"commit": commit, "short": commit[:7] if commit else None,
                    "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))},
            "runs": args.runs, "seconds_per_run": args.seconds,
            "mtu_note": "loopback (MTU 65536); segments = tcpi_data_segs_out on the server",
        },
        "scenarios": results,
    }


def markdown(doc: dict) -> str:
    rows = ["| response | setting | responses/s (median, min-max) | server CPU µs/response "
            "(median, min-max) | segments/response | bytes/segment |",
            "|:---|:---|---:|---:|---:|---:|"]
    for r in doc["scenarios"].values():
        rps = r["responses_per_s"]
        size = r["body_bytes"]
        body = f"{size // 1024} KiB" if size >= 1024 else f"{size} B"
        what = f"{r['header_bytes']} B header + {body}"
        bps = f"{r['bytes_per_segment']:.0f}" if r["bytes_per_segment"] else "-"
        cpu = r["server_cpu_us_per_response"]
        rows.append(f"| {what} | {r['label']} | {rps['median']:,.0f} "
                    f"({rps['min']:,.0f}-{rps['max']:,.0f}) | {cpu['median']:.1f} "
                    f"({cpu['min']:.1f}-{cpu['max']:.1f}) | {r['segments_per_response']:.2f} "
                    f"| {bps} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", default="1024,16384,262144", help="body sizes in bytes")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per scenario")
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per timed run")
    ap.add_argument("--quick", action="store_true", help="--runs 2 --seconds 0.3")
    ap.add_argument("--cpus", default="1,0", help="SERVER,CLIENT CPUs, or 'none'")
    ap.add_argument("--results-dir", default=None, help="default: results/ of this checkout")
    ap.add_argument("--no-save", action="store_true")
    ap.add_argument("--markdown", metavar="RESULTS_JSON", help="print the table of a results file")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, [int(x) for x in args.sizes.split(",")])
        return
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return
    if args.quick:
        args.runs, args.seconds = 2, 0.3
    args.command = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
    doc = run(args)
    print(markdown(doc))
    if not args.no_save:
        out_dir = Path(args.results_dir or Path(__file__).resolve().parent.parent / "results")
        stamp = _dt.datetime.fromisoformat(doc["meta"]["date"]).strftime("%Y%m%dT%H%M%SZ")
        short = doc["meta"]["git"]["short"] or "nogit"
        suffix = "-quick" if args.quick else ""
        path = out_dir / f"tuning-{stamp}-{short}{suffix}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

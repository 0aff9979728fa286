"""Kernel paths the io_uring backend could take, measured: splice vs sendfile, SEND_ZC vs SEND.

Compiles perf/kernel_paths.c and runs it (sender pinned to one CPU, the receiving thread to the
other) over loopback TCP, the path of every benchmark here:

  file -> socket   sendfile(2) (what loop.sendfile and engine serve's files use) against
                   splice(2) through a pipe, and pread(2) + send(2) of 1 MiB
  bytes -> socket  one send at a time of 4 KiB .. 1 MiB: IORING_OP_SEND (the backend's send
                   request), IORING_OP_SEND_ZC (zero-copy: the buffer is the kernel's until a
                   second completion) and send(2)

    python perf/bench_kernel_paths.py [--rounds 3] [--file-mib 64] [--sender-cpu 1]
        [--receiver-cpu 0] [--results results/]

Prints the median GB/s of the rounds per path and size; --results writes every round to
<dir>/kernel-paths-<UTC>-<commit>.json with the command.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def commit():
    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--file-mib", type=int, default=64)
    ap.add_argument("--sender-cpu", type=int, default=1)
    ap.add_argument("--receiver-cpu", type=int, default=0)
    ap.add_argument("--results")
    args = ap.parse_args()
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("a C compiler (cc) is needed for perf/kernel_paths.c")
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="engine-kernel-paths-") as wd:
        exe = os.path.join(wd, "kernel_paths")
        subprocess.run([cc, "-O2", "-o", exe, os.path.join(HERE, "kernel_paths.c"), "-lpthread"],
                       check=True)
        data = os.path.join(wd, "file.bin")
        with open(data, "wb") as f:
            for _ in range(args.file_mib):
                f.write(os.urandom(1 << 20))
        p = subprocess.run([exe, str(args.sender_cpu), str(args.receiver_cpu), str(args.rounds),
                            data], capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit(f"kernel_paths failed: {p.stderr.strip()}")
    rows = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    table: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        table.setdefault((r["path"], r["size"]), []).append(r["gbps"])
    print(f"{'path':20} {'bytes per call':>14} {'GB/s (median)':>14}  rounds")
    for (path, size), v in table.items():
        print(f"{path:20} {size:14} {statistics.median(v):14.2f}  "
              + " ".join(f"{x:.2f}" for x in v))
    if args.results:
        os.makedirs(args.results, exist_ok=True)
        out = os.path.join(args.results, "kernel-paths-%s-%s.json"
                           % (started.strftime("%Y%m%dT%H%M%SZ"), commit()))
        with open(out, "w") as f:
            json.dump({"command": "python " + " ".join(sys.argv), "started": started.isoformat(),
                       "kernel": os.uname().release, "file_bytes": args.file_mib << 20,
                       "pinning": {"sender": args.sender_cpu, "receiver": args.receiver_cpu},
                       "median_gbps": {f"{k[0]} {k[1]}": round(statistics.median(v), 3)
                                       for k, v in table.items()},
                       "rounds": rows}, f, indent=1)
        print("wrote", out)


if __name__ == "__main__":
    main()

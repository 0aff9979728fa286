"""RSS per idle WebSocket connection, compressed (permessage-deflate) vs not.

Starts `engine serve` with an echo app on 127.0.0.1, opens N connections (default 1000) with
the `websockets` asyncio client, exchanges one 1 KiB text message on each (so the deflater and
inflater are allocated), and reports the server's RSS growth per connection. Memory, not
speed: a few seconds per run.

    python perf/ws_deflate_memory.py [N]
"""
from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time

APP = """
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": m.get("text") or ""})
"""


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def run_clients(url: str, n: int, compression: str | None, pid: int) -> tuple[int, int]:
    from websockets.asyncio.client import connect
    msg = ("lorem ipsum dolor sit amet " * 40)[:1024]
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        ws = await connect(url, compression=compression, ping_interval=None)
        await ws.send(msg)
        assert await ws.recv() == msg
        conns.append(ws)
    await asyncio.sleep(0.5)
    after = rss_kib(pid)
    for ws in conns:
        await ws.close()
    return before, after


def measure(n: int, flag: str, compression: str | None) -> float:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "memapp.py"), "w") as f:
            f.write(APP)
        engine = os.path.join(os.path.dirname(sys.executable), "engine")
        proc = subprocess.Popen([engine, "serve", "memapp:app", "--port", "0", flag,
                                 "--backlog", "2048", "--ws-ping-interval", "0"],
                                cwd=d, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            deadline = time.monotonic() + 30
            url = None
            while url is None and time.monotonic() < deadline:
                line = proc.stdout.readline()
                m = re.search(r"(http://\S+)", line)
                if m:
                    url = m.group(1).replace("http://", "ws://")
            if url is None:
                raise RuntimeError("server did not start")
            before, after = asyncio.run(asyncio.wait_for(
                run_clients(url, n, compression, proc.pid), 60))
        finally:
            proc.terminate()
            proc.wait(10)
    return (after - before) / n


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    plain = measure(n, "--no-ws-per-message-deflate", None)
    deflate = measure(n, "--ws-per-message-deflate", "deflate")
    print(f"{n} idle connections, server RSS growth per connection:")
    print(f"  uncompressed:        {plain:7.1f} KiB")
    print(f"  permessage-deflate:  {deflate:7.1f} KiB  (+{deflate - plain:.1f} KiB)")


if __name__ == "__main__":
    main()

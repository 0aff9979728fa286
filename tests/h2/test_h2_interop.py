"""engine._h2 against real HTTP/2 clients (nghttp2's `nghttp` and `h2load`, curl), through a
minimal asyncio server written here on the IO-free core alone (the ASGI server is tested in
tests/test_h2_server*.py). Skipped only where the client tool is not installed."""
from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engine._h2 import H2EventConnection, H2Limits


class _Proto(asyncio.Protocol):
    """Echo server: answers each request with its body's SHA-256 and a fixed 100 KB body,
    honouring flow control (send_data takes what the windows allow; the rest waits for a
    'window' event)."""

    def __init__(self) -> None:
        self.conn = H2EventConnection(H2Limits(initial_window_size=1 << 20))
        self.bodies: dict[int, Any] = {}
        self.pending: dict[int, memoryview] = {}

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate()
        self.flush()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self.transport.write(out)
        if self.conn.closed:
            self.transport.close()

    def push(self) -> None:
        for sid in list(self.pending):
            rest = self.pending[sid]
            n = self.conn.send_data(sid, rest, True)
            if n == len(rest):
                del self.pending[sid]
            else:
                self.pending[sid] = rest[n:]

    def data_received(self, data: bytes) -> None:
        for ev in self.conn.receive(data):
            if ev[0] == "request":
                self.bodies[ev[1]] = hashlib.sha256()
                end = ev[3]
            elif ev[0] == "data":
                self.bodies[ev[1]].update(ev[2])
                self.conn.consume(ev[1], len(ev[2]))
                end = ev[3]
            else:
                continue
            if end:
                sid = ev[1]
                digest = self.bodies.pop(sid).hexdigest().encode()
                self.conn.send_headers(sid, [(b":status", b"200"), (b"x-sha256", digest),
                                             (b"content-length", b"100000")], False)
                self.pending[sid] = memoryview(b"z" * 100000)
        self.push()
        self.flush()


@pytest.fixture
def server() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    srv = loop.run_until_complete(loop.create_server(_Proto, "127.0.0.1", 0))
    port = srv.sockets[0].getsockname()[1]
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        srv.close()
        loop.run_until_complete(srv.wait_closed())
        loop.close()


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def test_curl_prior_knowledge(server: int, tmp_path: Any) -> None:
    curl = _need("curl")
    body = tmp_path / "body"
    body.write_bytes(b"q" * 300000)
    proc = subprocess.run(
        [curl, "-sS", "--http2-prior-knowledge", "--max-time", "20", "-D", "-", "-o",
         str(tmp_path / "out"), "--data-binary", f"@{body}",
         f"http://127.0.0.1:{server}/upload"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("HTTP/2 200")
    assert "x-sha256: " + hashlib.sha256(b"q" * 300000).hexdigest() in proc.stdout
    assert (tmp_path / "out").read_bytes() == b"z" * 100000


def test_nghttp_many_streams(server: int) -> None:
    nghttp = _need("nghttp")
    urls = [f"http://127.0.0.1:{server}/{i}" for i in range(20)]
    proc = subprocess.run([nghttp, "-ns", "-t", "20", "-w", "16", *urls],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    # -s prints one statistics row per stream: "... code size request-path"
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip().endswith(
        tuple(f" /{i}" for i in range(20)))]
    assert sorted(r[-1] for r in rows) == sorted(f"/{i}" for i in range(20))
    assert all(r[-3] == "200" and r[-2] == "97K" for r in rows), rows


def test_h2load_smoke(server: int) -> None:
    h2load = _need("h2load")
    proc = subprocess.run([h2load, "-n", "400", "-c", "4", "-m", "10", "-T", "20",
                           f"http://127.0.0.1:{server}/"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "400 succeeded, 0 failed, 0 errored" in proc.stdout, proc.stdout[-2000:]

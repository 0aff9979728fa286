"""``engine serve --metrics HOST:PORT``: Prometheus metrics of every worker, on their own listener.

The counters live in one shared anonymous memory map (``MAP_SHARED``) made before the workers
fork: a fixed-layout block of doubles per worker. A worker's connections count into its own
block from Cython (``ServerConfig.set_metrics``: a pointer, and one NULL test per event when
metrics are off); nobody else writes it, so no lock is needed. The supervisor binds the metrics
socket before the fork and every worker serves it on its loop: whichever worker accepts a
scrape sums all blocks, so the answer is the same whichever worker answers, and a worker that
exits (or restarts) does not take its counts with it.

Each slot of the supervisor has :data:`BLOCKS_PER_SLOT` blocks used in turn by its successive
workers (a rolling restart overlaps the old worker and its replacement; each keeps its own
block). Counters are monotonic over the server's life. Gauges (open connections, WebSocket
sessions, loop lag) are read only from blocks whose process is alive.

The block layout is ``engine._asgi.M_LAYOUT`` plus the fields below it owns (loop lag, the
process id, worker starts).
"""
from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import socket
from typing import Any

from .. import _asgi

__all__ = ["MetricsStore", "MetricsServer", "parse_address", "BLOCKS_PER_SLOT",
           "LAG_INTERVAL"]

_L = _asgi.M_LAYOUT
SIZE: int = _L["size"]
BUCKETS: tuple[float, ...] = _asgi.DURATION_BUCKETS
M_LOOP_LAG = 27              # gauge: seconds the loop's last lag probe ran late
M_PID = 28                   # the process using the block (0: none yet)
M_STARTS = 29                # worker processes started on this block
BLOCKS_PER_SLOT = 4
LAG_INTERVAL = 1.0           # seconds between loop-lag probes
MAX_REQUEST = 8192           # a scrape's request head, at most
REQUEST_TIMEOUT = 10.0       # a scrape connection that sends no full head in time is closed


def parse_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> (host, port); ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host, port


class MetricsStore:
    """The shared counters of ``slots`` workers (``slots=None``: one process)."""

    def __init__(self, slots: int | None) -> None:
        self.workers = slots or 1
        self.nblocks = 1 if slots is None else slots * BLOCKS_PER_SLOT
        self.mem = mmap.mmap(-1, self.nblocks * SIZE * 8)      # MAP_SHARED | MAP_ANONYMOUS
        self.view: memoryview[float] = memoryview(self.mem).cast("d")

    def block_index(self, identity: tuple[int, int] | None) -> int:
        """The block of the worker with ``identity`` (slot, generation); None: one process."""
        if identity is None or self.nblocks == 1:
            return 0
        slot, generation = identity
        return (slot * BLOCKS_PER_SLOT + generation % BLOCKS_PER_SLOT) % self.nblocks

    def claim(self, index: int) -> memoryview[float]:
        """This process starts counting into block ``index``: its gauges restart from zero,
        its counters go on."""
        block = self.view[index * SIZE:(index + 1) * SIZE]
        block[_L["open"]] = 0.0
        block[_L["ws_open"]] = 0.0
        block[M_LOOP_LAG] = 0.0
        block[M_PID] = float(os.getpid())
        block[M_STARTS] += 1.0
        return block

    def _alive(self, index: int) -> bool:
        pid = int(self.view[index * SIZE + M_PID])
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def snapshot(self) -> dict[str, Any]:
        """The server's metrics now, summed over the blocks."""
        v = self.view
        status = [0.0] * 5
        buckets = [0.0] * (len(BUCKETS) + 1)
        totals = dict.fromkeys(("duration_sum", "duration_count", "connections", "bytes_in",
                                "bytes_out", "ws_total", "open", "ws_open"), 0.0)
        lag = 0.0
        starts = 0.0
        for index in range(self.nblocks):
            base = index * SIZE
            if v[base + M_PID] == 0.0:
                continue
            for i in range(5):
                status[i] += v[base + _L["status"] + i]
            for i in range(len(buckets)):
                buckets[i] += v[base + _L["buckets"] + i]
            for name in ("duration_sum", "duration_count", "connections", "bytes_in",
                         "bytes_out", "ws_total"):
                totals[name] += v[base + _L[name]]
            starts += v[base + M_STARTS]
            if self._alive(index):
                totals["open"] += v[base + _L["open"]]
                totals["ws_open"] += v[base + _L["ws_open"]]
                lag = max(lag, v[base + M_LOOP_LAG])
        return {"status": status, "buckets": buckets, "loop_lag": lag,
                "restarts": max(0.0, starts - self.workers), **totals}

    def render(self) -> bytes:
        """The Prometheus text exposition format (version 0.0.4) of :meth:`snapshot`."""
        s = self.snapshot()
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        metric("engine_http_responses_total", "counter",
               "HTTP responses sent, by status class.")
        for i, count in enumerate(s["status"]):
            out.append(f'engine_http_responses_total{{status_class="{i + 1}xx"}} {_num(count)}')
        metric("engine_http_request_duration_seconds", "histogram",
               "Time from a request's head to the end of the app's response.")
        cumulative = 0.0
        for bound, count in zip(BUCKETS, s["buckets"], strict=False):
            cumulative += count
            out.append(f'engine_http_request_duration_seconds_bucket{{le="{bound}"}} '
                       f"{_num(cumulative)}")
        cumulative += s["buckets"][-1]
        out.append(f'engine_http_request_duration_seconds_bucket{{le="+Inf"}} {_num(cumulative)}')
        out.append(f"engine_http_request_duration_seconds_sum {s['duration_sum']!r}")
        out.append(f"engine_http_request_duration_seconds_count {_num(s['duration_count'])}")
        for name, kind, help_text, key in (
                ("engine_connections_open", "gauge", "Open client connections.", "open"),
                ("engine_connections_total", "counter", "Client connections accepted.",
                 "connections"),
                ("engine_received_bytes_total", "counter",
                 "Bytes received from clients (HTTP and WebSocket).", "bytes_in"),
                ("engine_response_body_bytes_total", "counter", "HTTP response body bytes sent.",
                 "bytes_out"),
                ("engine_websocket_sessions_open", "gauge", "Open WebSocket sessions.",
                 "ws_open"),
                ("engine_websocket_sessions_total", "counter", "WebSocket sessions accepted.",
                 "ws_total"),
                ("engine_loop_lag_seconds", "gauge",
                 "How late the slowest worker's last event-loop probe ran.", "loop_lag"),
                ("engine_worker_restarts_total", "counter",
                 "Worker processes started beyond the first of each slot.", "restarts")):
            metric(name, kind, help_text)
            value = s[key]
            out.append(f"{name} {value!r}" if key == "loop_lag" else f"{name} {_num(value)}")
        metric("engine_workers", "gauge", "Worker processes configured.")
        out.append(f"engine_workers {self.workers}")
        return ("\n".join(out) + "\n").encode()


def _num(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


async def _probe_lag(block: memoryview[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + LAG_INTERVAL
        await asyncio.sleep(LAG_INTERVAL)
        block[M_LOOP_LAG] = max(0.0, loop.time() - expected)


class _ScrapeProtocol(asyncio.Protocol):
    """One scrape: an HTTP/1.x request head in, one response out, then close."""

    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.buf = bytearray()
        self.transport: Any = None           # engine's or asyncio's stream transport
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            end = self.buf.find(b"\n\n")
        if end < 0:
            if len(self.buf) > MAX_REQUEST:
                self._answer(431, b"Request Header Fields Too Large", b"")
            return
        line = bytes(self.buf[:end]).split(b"\n", 1)[0].strip()
        parts = line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._answer(400, b"Bad Request", b"")
            return
        method, target = parts[0], parts[1]
        path = target.split(b"?", 1)[0]
        if path != b"/metrics":
            self._answer(404, b"Not Found", b"")
        elif method not in (b"GET", b"HEAD"):
            self._answer(405, b"Method Not Allowed", b"", extra=b"allow: GET, HEAD\r\n")
        else:
            body = self.store.render()
            self._answer(200, b"OK", body, head_only=method == b"HEAD",
                         content_type=b"text/plain; version=0.0.4; charset=utf-8")

    def _answer(self, status: int, reason: bytes, body: bytes, *, head_only: bool = False,
                content_type: bytes = b"text/plain; charset=utf-8", extra: bytes = b"") -> None:
        assert self.transport is not None
        if not body and status != 200:
            body = reason + b"\n"
        head = (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"connection: close\r\n%s\r\n" % (status, reason, content_type, len(body), extra))
        self.transport.write(head if head_only else head + body)
        self.transport.close()


class MetricsServer:
    """A worker's part: count into its block, probe loop lag, answer scrapes on ``sock``."""

    def __init__(self, store: MetricsStore, sock: socket.socket) -> None:
        self.store = store
        self.sock = sock
        self.block: memoryview[float] | None = None
        self.server: asyncio.AbstractServer | None = None
        self.probe: asyncio.Task[None] | None = None

    async def start(self, identity: tuple[int, int] | None) -> memoryview[float]:
        """Claim this worker's block, listen; returns the block for ServerConfig.set_metrics."""
        self.block = self.store.claim(self.store.block_index(identity))
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _ScrapeProtocol(self.store),
                                               sock=self.sock)
        self.probe = loop.create_task(_probe_lag(self.block))
        return self.block

    async def stop(self) -> None:
        if self.probe is not None:
            self.probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.probe
            self.probe = None
        if self.server is not None:
            self.server.close()
            self.server = None

"""A/B of two engine builds by instruction counts (valgrind's callgrind), not by seconds.

    python perf/callgrind_ab.py OLD_PYTHON NEW_PYTHON [--scenarios parse,timers,sockops,http]

Each interpreter has one build of engine installed (say, two virtualenvs). Every scenario runs
twice per build under callgrind, with 0 and with N operations; (Ir(N) - Ir(0)) / N is the
instructions per operation, startup and imports cancelled out. Counts repeat for the same
binary and input whatever else the machine does, so this decides between two implementations
of one path where wall-clock rounds on a busy 2-CPU VM move by more than the difference.
Busy polling is off (ENGINE_BUSY_POLL_US=0: it spins by the clock) and PYTHONHASHSEED is fixed.

Scenarios: ``parse`` (engine._http: a GET and a chunked POST per op), ``timers`` (a
call_later(0) timer and a call_soon callback per op), ``sockops`` (a 64-byte ping-pong over a
socketpair with loop.sock_*: four calls per op), ``http`` (one keep-alive request and response
through engine serve's HTTP protocol over TCP, per op).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile

from engine.bench import callgrind as cg  # the counting helpers (shared with engine bench)

SCENARIOS = {"parse": 2000, "timers": 5000, "sockops": 1000, "http": 500}


def _parse(n: int) -> None:
    from engine._http import RequestParser
    req = (b"GET /path/to/thing?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: cg\r\n"
           b"Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n"
           b"POST /up HTTP/1.1\r\nHost: e\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    p = RequestParser()
    for _ in range(n):
        p.feed_data(req)
        p.events()


async def _timers(n: int) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = [n]

    def fired() -> None:
        left[0] -= 1
        if left[0] == 0:
            done.set_result(None)

    for _ in range(n):
        loop.call_later(0, fired)
    if n:
        await done
    for _ in range(n):
        loop.call_soon(int)
    await asyncio.sleep(0)


async def _sockops(n: int) -> None:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    buf = bytearray(64)
    for _ in range(n):
        await loop.sock_sendall(a, b"x" * 64)
        await loop.sock_recv_into(b, buf)
        await loop.sock_sendall(b, b"y" * 64)
        await loop.sock_recv(a, 64)
    a.close()
    b.close()


async def _http(n: int) -> None:
    try:
        from engine.serve.protocols.http import HttpPlugin
    except ImportError:                                   # a build before engine.serve existed
        from engine.http_server import HttpPlugin  # type: ignore[import-not-found,no-redef]

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello"})

    loop = asyncio.get_running_loop()
    factory = HttpPlugin().create_protocol_factory(app, None, None)
    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(n):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"hello")
    writer.close()
    server.close()


def _child(scenario: str, n: int) -> None:
    import engine
    if scenario == "parse":
        _parse(n)
    else:
        engine.run({"timers": _timers, "sockops": _sockops, "http": _http}[scenario](n))


def instructions(python: str, scenario: str, n: int) -> int:
    """Ir of one run of ``python this-file --child scenario n`` under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        return cg.count([python, "-P", os.path.abspath(__file__), "--child", scenario, str(n)],
                        f"{tmp}/cg.out", cwd=tmp)["Ir"]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="Python with the baseline build of engine")
    p.add_argument("new", help="Python with the build under test")
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = p.parse_args()
    print(f"{'scenario':<10} {'ops':>6} {'old Ir/op':>11} {'new Ir/op':>11} {'new/old':>8}")
    for scenario in args.scenarios.split(","):
        n = SCENARIOS[scenario]
        per_op = []
        for python in (args.old, args.new):
            base = instructions(python, scenario, 0)
            per_op.append((instructions(python, scenario, n) - base) / n)
        print(f"{scenario:<10} {n:>6} {per_op[0]:>11.0f} {per_op[1]:>11.0f} "
              f"{per_op[1] / per_op[0]:>8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A line-based request/response protocol for engine.server's tests, and a CLI that serves it.

Requests (one per line) and responses:
    PING            -> PONG <pid>
    SLOW <id> <s>   -> ACCEPTED <id> at once, DONE <id> <pid> after <s> seconds
    STATS           -> one JSON line (this process's counters, see STATS below)
It implements the drain contract: shutdown() closes an idle connection at once and a busy one
after its last response; requests that arrive after shutdown() are not started.

Run as a script it serves with engine.server.serve() and prints JSON event lines on stdout
(`startup`, `ready` with the pid and listening addresses), one os.write() each, so lines from
several worker processes never interleave.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys

STATS = {"emfile": 0, "connections": 0}


class LineProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = 0
        self.closing = False
        self.timers: list[asyncio.TimerHandle] = []
        self.shutdown_calls = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        STATS["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            if not self.closing:
                self.handle(line.decode().split())

    def handle(self, words: list[str]) -> None:
        assert self.transport is not None
        if not words:
            return
        cmd = words[0]
        if cmd == "PING":
            self.transport.write(b"PONG %d\n" % os.getpid())
        elif cmd == "SLOW":
            rid, secs = words[1], float(words[2])
            self.transport.write(f"ACCEPTED {rid}\n".encode())
            self.busy += 1
            loop = asyncio.get_running_loop()
            self.timers.append(loop.call_later(secs, self.done, rid))
        elif cmd == "STATS":
            self.transport.write(json.dumps({"pid": os.getpid(), **STATS}).encode() + b"\n")
        else:
            self.transport.write(b"ERROR\n")

    def done(self, rid: str) -> None:
        assert self.transport is not None
        self.transport.write(f"DONE {rid} {os.getpid()}\n".encode())
        self.busy -= 1
        if self.closing and self.busy == 0:
            self.transport.close()

    def shutdown(self) -> None:
        self.shutdown_calls += 1
        self.closing = True
        if self.busy == 0 and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        for t in self.timers:
            t.cancel()
        STATS["connections"] -= 1


def emit(event: str, **fields: object) -> None:
    os.write(1, (json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\n").encode())


def parse_listener(spec: str, reuse_port: bool):  # type: ignore[no-untyped-def]
    from engine.server import Listener
    kind, _, rest = spec.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        return [Listener.tcp(host.strip("[]"), int(port), reuse_port=reuse_port)]
    if kind == "unix":
        path, _, mode = rest.partition(",")
        return [Listener.unix(path, mode=int(mode, 8) if mode else None)]
    if kind == "fd":
        return [Listener.fd(int(rest))]
    if kind == "systemd":
        return Listener.systemd()
    raise SystemExit(f"bad --listen {spec!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="tcp:127.0.0.1:0")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--reuse-port", action="store_true")
    ap.add_argument("--graceful-timeout", type=float, default=10.0)
    ap.add_argument("--loop", choices=("engine", "asyncio"), default="engine")
    ap.add_argument("--max-connections", type=int, default=None)
    ap.add_argument("--crash-startup", action="store_true", help="startup() always raises")
    ap.add_argument("--startup-delay", type=float, default=0.0, help="startup() sleeps this long")
    ap.add_argument("--emfile-headroom", type=int, default=None,
                    help="once listening, lower RLIMIT_NOFILE to leave this many free fds")
    ap.add_argument("--import-string", action="store_true",
                    help="pass the protocol as 'line_server:LineProtocol'")
    args = ap.parse_args()

    import engine
    from engine.server import ServerHandle, serve

    listeners = parse_listener(args.listen, args.reuse_port)
    if not listeners:
        emit("no-listeners")
        return 3

    async def startup() -> None:
        emit("startup")
        await asyncio.sleep(args.startup_delay)
        if args.crash_startup:
            raise RuntimeError("startup failed on purpose")

    def ready(handle: ServerHandle) -> None:
        loop = asyncio.get_running_loop()
        if args.emfile_headroom is not None:
            def on_error(loop: asyncio.AbstractEventLoop, context: dict) -> None:  # type: ignore[type-arg]
                exc = context.get("exception")
                if isinstance(exc, OSError) and exc.errno in (24, 23):       # EMFILE, ENFILE
                    STATS["emfile"] += 1
                else:
                    loop.default_exception_handler(context)
            loop.set_exception_handler(on_error)
            in_use = [int(fd) for fd in os.listdir("/dev/fd")]
            highest = max(fd for fd in in_use if _is_open(fd))
            limit = highest + 1 + args.emfile_headroom
            hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        addresses = []
        for sock in handle.sockets:
            name = sock.getsockname()
            addresses.append(name if isinstance(name, str) else list(name[:2]))
        emit("ready", addresses=addresses, loop=type(loop).__module__)

    app = "line_server:LineProtocol" if args.import_string else LineProtocol
    loop_factory = engine.new_event_loop if args.loop == "engine" else asyncio.new_event_loop
    status = serve(app, listeners, workers=args.workers, graceful_timeout=args.graceful_timeout,
                   max_connections=args.max_connections, loop_factory=loop_factory,
                   startup=startup, ready=ready)
    emit("exit", status=status)
    return status


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())

"""Network benchmarks: engine vs uvloop vs rloop vs asyncio, server and client in separate processes
pinned to different CPUs (server --server-cpu, default 1; client --client-cpu, default 0).

The server process runs the loop under test; the client is the same plain blocking-socket
program for every loop, so differences come from the server's loop. Scenarios:

  proto_echo_1k     asyncio.Protocol echo, 1 KiB request/response round trips     (round trips/s)
  proto_echo_100k   the same with 100 KiB messages                                (round trips/s)
  streams_echo_1k   asyncio streams server (read/write/drain), 1 KiB round trips  (round trips/s)
  streams_pingpong  asyncio streams server, 64-byte round trips                   (round trips/s)
  sock_pingpong     loop.sock_recv/sock_sendall server, 64-byte round trips       (round trips/s)
  tls_streams_pingpong  the streams ping-pong over TLS (start_server(ssl=)); the client
                    is a blocking ssl socket, TLS 1.3, AES-GCM                    (round trips/s)
  tls_proto_echo_16k  Protocol echo of 16 KiB messages over TLS (create_server(ssl=))
                                                                                  (round trips/s)
  sendfile          loop.sendfile of a 64 MiB file, repeatedly; client discards   (MiB/s)
  rss_per_conn      server RSS growth per idle connection, 10k connections        (bytes/conn)

--impls may add engine-epoll / engine-io_uring (engine on the poller backend named, whatever
ENGINE_BACKEND says; perf/bench_backends.py runs that A/B), or engine-nopoll: engine's loop with busy polling off (set_busy_poll(0)), to show
what the adaptive busy poll adds and what it costs; and engine-pytls: engine's loop with
asyncio's own pure-Python SSLProtocol (what engine's ssl= ran on before its compiled TLS layer)
wrapped around the protocols of the TLS scenarios, the other side of that A/B; and
engine-tlsmod: engine's compiled TLS layer reaching OpenSSL through the ssl module's methods
instead of calling it directly (engine._loop._tls_direct(False), what ENGINE_TLS_DIRECT=0 does).

Each (scenario, loop) runs --rounds times (interleaved across loops); the median is kept.

    python perf/bench_net.py [--scenarios a,b] [--impls engine,uvloop,rloop,asyncio] [--seconds 2]
                             [--rounds 3] [--results results/]
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

SCENARIOS = {
    "proto_echo_1k": ("round trips/s", True),
    "proto_echo_100k": ("round trips/s", True),
    "streams_echo_1k": ("round trips/s", True),
    "streams_pingpong": ("round trips/s", True),
    "sock_pingpong": ("round trips/s", True),
    "tls_streams_pingpong": ("round trips/s", True),
    "tls_proto_echo_16k": ("round trips/s", True),
    "sendfile": ("MiB/s", True),
    "rss_per_conn": ("bytes/conn", False),
}
LABELS = {
    "proto_echo_1k": "Protocol echo 1 KiB",
    "proto_echo_100k": "Protocol echo 100 KiB",
    "streams_echo_1k": "streams echo 1 KiB",
    "streams_pingpong": "streams ping-pong",
    "sock_pingpong": "sock_* ping-pong",
    "tls_streams_pingpong": "TLS streams ping-pong",
    "tls_proto_echo_16k": "TLS Protocol echo 16 KiB",
    "sendfile": "loop.sendfile 64 MiB",
    "rss_per_conn": "RSS per idle conn (10k)",
}
SIZES = {"proto_echo_1k": 1024, "proto_echo_100k": 100 * 1024, "streams_echo_1k": 1024,
         "streams_pingpong": 64, "sock_pingpong": 64, "tls_streams_pingpong": 64,
         "tls_proto_echo_16k": 16 * 1024}
# TLS scenarios: certificate files made once per run (trustme), named by this variable for the
# server processes
TLS_DIR_ENV = "ENGINE_BENCH_TLS_DIR"


def supported(impl, scenario):
    """rloop (0.5) has no TLS: its ssl= raises; that cell stays empty."""
    return not (impl == "rloop" and scenario.startswith("tls_"))


def tls_files(directory):
    """Write a CA and a certificate for 127.0.0.1 into directory; (ca, cert+key) paths."""
    import trustme
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = (os.path.join(directory, "ca.pem"), os.path.join(directory, "server.pem"))
    ca.cert_pem.write_to_path(paths[0])
    cert.private_key_and_cert_chain_pem.write_to_path(paths[1])
    return paths


def tls_context(server_side):
    import ssl
    ca, chain = (os.path.join(os.environ[TLS_DIR_ENV], name) for name in ("ca.pem", "server.pem"))
    if server_side:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain)
    else:
        ctx = ssl.create_default_context(cafile=ca)
    return ctx
SENDFILE_SIZE = 64 << 20
IDLE_CONNS = 10_000


# --- server side ------------------------------------------------------------------------------

def new_loop(impl):
    import asyncio
    if impl in ("engine", "engine-nopoll", "engine-pytls", "engine-tlsmod", "engine-epoll",
                "engine-io_uring", "engine-io_uring-poll", "engine-io_uring-noaccept",
                "engine-io_uring-views", "engine-epoll-views"):
        import engine
        if impl.startswith(("engine-epoll", "engine-io_uring")):
            # the backend named, whatever ENGINE_BACKEND says (io_uring falls back to epoll
            # where the kernel refuses a ring: the bench then reports which one ran);
            # engine-io_uring-poll: io_uring for readiness only (ENGINE_IO_URING_RECV=0: no
            # completion receives and sends)
            want = impl.split("-")[1]
            if impl == "engine-io_uring-poll":
                os.environ["ENGINE_IO_URING_RECV"] = "0"
            elif impl == "engine-io_uring-noaccept":
                os.environ["ENGINE_IO_URING_ACCEPT"] = "0"     # no accept requests
            got = engine._loop._set_backend(want)
            if got != want:
                raise SystemExit(f"{impl}: this kernel gives {got}")
        loop = engine.new_event_loop()
        if impl == "engine-nopoll":
            loop.set_busy_poll(0)       # engine with its adaptive busy polling turned off
        if impl == "engine-tlsmod":
            engine._loop._tls_direct(False)   # OpenSSL through the ssl module's methods
        return loop
    if impl == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    if impl == "rloop":
        import rloop
        return rloop.new_event_loop()
    return asyncio.new_event_loop()


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def serve(impl, scenario, cpu, path):
    import asyncio
    import socket
    os.sched_setaffinity(0, {cpu})
    loop = new_loop(impl)
    asyncio.set_event_loop(loop)

    class Echo(asyncio.Protocol):
        # engine-*-views: the protocol takes memoryviews (on io_uring, the kernel's receive
        # buffers lent without a copy; write() queues a read-only view without one either)
        data_received_memoryview = impl.endswith("-views")

        def connection_made(self, t):
            self.t = t

        def data_received(self, data):
            self.t.write(data)

    async def stream_echo(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    class Sender(asyncio.Protocol):
        def connection_made(self, t):
            self.t = t
            asyncio.ensure_future(self.send())

        async def send(self):
            with open(path, "rb") as f:
                while not self.t.is_closing():
                    try:
                        await loop.sendfile(self.t, f, 0)
                    except RuntimeError:
                        # uvloop has no loop.sendfile: what its users do instead
                        await self.read_write(f)
                    except ConnectionError:
                        break

        async def read_write(self, f):
            f.seek(0)
            while chunk := f.read(256 * 1024):
                if self.t.is_closing():
                    return
                self.t.write(chunk)
                if self.t.get_write_buffer_size() > 1 << 20:
                    self.drained = loop.create_future()
                    await self.drained

        def pause_writing(self):
            pass

        def resume_writing(self):
            d = getattr(self, "drained", None)
            if d is not None and not d.done():
                d.set_result(None)

        def connection_lost(self, exc):
            self.resume_writing()

    async def sock_server(lsock):
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            loop.create_task(sock_echo(conn))

    async def sock_echo(conn):
        while data := await loop.sock_recv(conn, 65536):
            await loop.sock_sendall(conn, data)
        conn.close()

    def tls_server(factory):
        # ssl= of create_server; engine-pytls: asyncio's SSLProtocol around each protocol
        ctx = tls_context(True)
        if impl != "engine-pytls":
            return loop.create_server(factory, "127.0.0.1", 0, ssl=ctx)
        from asyncio import sslproto
        return loop.create_server(
            lambda: sslproto.SSLProtocol(loop, factory(), ctx, None, server_side=True),
            "127.0.0.1", 0)

    def stream_factory():
        return asyncio.StreamReaderProtocol(asyncio.StreamReader(), stream_echo)

    async def main():
        if scenario in ("proto_echo_1k", "proto_echo_100k", "rss_per_conn"):
            server = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
        elif scenario in ("streams_echo_1k", "streams_pingpong"):
            server = await asyncio.start_server(stream_echo, "127.0.0.1", 0)
        elif scenario == "tls_streams_pingpong":
            server = await tls_server(stream_factory)       # what start_server(ssl=) does
        elif scenario == "tls_proto_echo_16k":
            server = await tls_server(Echo)
        elif scenario == "sendfile":
            server = await loop.create_server(Sender, "127.0.0.1", 0)
        else:
            lsock = socket.create_server(("127.0.0.1", 0), backlog=128)
            lsock.setblocking(False)
            loop.create_task(sock_server(lsock))
            server = None
        port = (server.sockets[0] if server else lsock).getsockname()[1]
        print(port, rss(), flush=True)
        return server

    def answer_rss():
        # the client asks for our RSS by writing a line to stdin (a thread: not every loop
        # has connect_read_pipe; rloop has not)
        for _ in sys.stdin:
            print(rss(), flush=True)
        loop.call_soon_threadsafe(loop.stop)

    server = loop.run_until_complete(main())
    import threading
    threading.Thread(target=answer_rss, daemon=True).start()
    loop.run_forever()
    if server is not None:
        server.close()


# --- client side ------------------------------------------------------------------------------

def client(scenario, port, seconds, cpu, server_proc):
    import socket
    os.sched_setaffinity(0, {cpu})
    if scenario == "rss_per_conn":
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(IDLE_CONNS)]
        for c in conns[:100]:                          # make sure they are all accepted
            c.sendall(b"x")
            c.recv(1)
        time.sleep(0.5)
        server_proc.stdin.write(b"rss\n")
        server_proc.stdin.flush()
        after = int(server_proc.stdout.readline())
        for c in conns:
            c.close()
        return after
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(30)
    if scenario.startswith("tls_"):
        s = tls_context(False).wrap_socket(s, server_hostname="127.0.0.1")
    if scenario == "sendfile":
        buf = bytearray(1 << 20)
        got = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline:
            got += s.recv_into(buf)
        dt = time.perf_counter() - t0
        s.close()
        return got / dt / (1 << 20)
    size = SIZES[scenario]
    msg = b"m" * size
    buf = bytearray(size)
    view = memoryview(buf)
    n = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while True:
        s.sendall(msg)
        got = 0
        while got < size:
            got += s.recv_into(view[got:])
        n += 1
        if n % 16 == 0 and time.perf_counter() >= deadline:
            break
    dt = time.perf_counter() - t0
    s.close()
    return n / dt


SERVER_CPU = {}     # scenario -> impl -> [server CPU % while the client ran]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(impl, scenario, args, sendfile_path):
    cmd = [sys.executable, __file__, "--serve", impl, scenario, str(args.server_cpu),
           sendfile_path]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        port, base_rss = map(int, proc.stdout.readline().split())
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        value = client(scenario, port, args.seconds, args.client_cpu, proc)
        SERVER_CPU.setdefault(scenario, {}).setdefault(impl, []).append(
            100.0 * (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0))
        if scenario == "rss_per_conn":
            value = (value - base_rss) / IDLE_CONNS
        return value
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--impls", default="engine,uvloop,rloop,asyncio")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=1)
    ap.add_argument("--client-cpu", type=int, default=0)
    ap.add_argument("--results", help="directory to write net-<UTC>-<commit>.json into")
    args = ap.parse_args()
    if args.serve:
        impl, scenario, cpu, path = args.serve
        serve(impl, scenario, int(cpu), path)
        return
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    scenarios = args.scenarios.split(",")
    impls = args.impls.split(",")
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.NamedTemporaryFile(prefix="engine-sendfile-") as f, \
            tempfile.TemporaryDirectory(prefix="engine-tls-") as tls_dir:
        if any(sc.startswith("tls_") for sc in scenarios):
            tls_files(tls_dir)
            os.environ[TLS_DIR_ENV] = tls_dir
        f.write(os.urandom(1 << 20) * (SENDFILE_SIZE >> 20))
        f.flush()
        samples = {}
        for sc in scenarios:
            samples[sc] = {impl: [] for impl in impls}
            runs = [impl for impl in impls if supported(impl, sc)]
            for _ in range(args.rounds):
                for impl in runs:
                    samples[sc][impl].append(run_one(impl, sc, args, f.name))
            unit, higher = SCENARIOS[sc]
            row = "  ".join(f"{impl} {statistics.median(samples[sc][impl]):,.0f}"
                            for impl in runs)
            cpu = "  ".join(f"{impl} {statistics.median(SERVER_CPU[sc][impl]):.0f}%"
                            for impl in runs)
            print(f"{sc:18} [{unit}] {row}   (server CPU: {cpu})", flush=True)
    from engine.bench import results as R
    docsc = {}
    for sc in scenarios:
        unit, higher = SCENARIOS[sc]
        docsc[sc] = {"label": LABELS[sc], "kind": "throughput" if higher else "cost",
                     "unit": unit, "in_geomean": higher, "samples": samples[sc]}
    full = (set(scenarios) == set(SCENARIOS)
            and {"engine", "uvloop", "rloop", "asyncio"} <= set(impls)
            and args.rounds >= 3 and args.seconds >= 2.0)
    doc = R.samples_doc(
        suite="net", subject=impls[0], peers=impls[1:], mode="full" if full else "custom",
        description="asyncio network surface: protocol/streams echo, sock_* and streams "
                    "ping-pong, TLS streams ping-pong and echo, loop.sendfile, RSS per idle "
                    "connection; server and client pinned to different CPUs",
        command="python " + " ".join(sys.argv), started=started.isoformat(timespec="seconds"),
        pinning={"server": str(args.server_cpu), "client": str(args.client_cpu)},
        scenarios=docsc, repo=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        extra_meta={"seconds_per_round": args.seconds, "rounds": args.rounds,
                    "sendfile_bytes": SENDFILE_SIZE, "idle_connections": IDLE_CONNS,
                    "server_cpu_percent_median": {
                        sc: {impl: round(statistics.median(v), 1) for impl, v in d.items()}
                        for sc, d in SERVER_CPU.items()}})
    print("\nengine advantage (>1 = engine better):")
    for sc, d in doc["scenarios"].items():
        print(f"  {sc:18} " + "  ".join(f"vs {p} {r['advantage']:.2f}x"
                                        for p, r in d["ratios"].items()))
    if args.results:
        path = R.write_result(doc, args.results)
        print("wrote", path)


if __name__ == "__main__":
    main()

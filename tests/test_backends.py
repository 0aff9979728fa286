"""The poller backends: epoll (the default) and io_uring (chosen at run time by ENGINE_BACKEND).

The whole suite runs on either backend (CI runs it once with ENGINE_BACKEND=io_uring); this file
holds what is specific to the choice: the policy, the fallback when the kernel refuses a ring, and
the io_uring facts the loop must hide (poll requests hold their file; a SINGLE_ISSUER ring used
from another thread or a forked child).
"""
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

import engine
from engine import _loop

URING = _loop.IO_URING_BUILT and _loop._probe_backend("io_uring") == "io_uring"
needs_uring = pytest.mark.skipif(not URING, reason="io_uring not built or refused by this kernel")


def _run_py(code, env_extra=None, timeout=60):
    env = dict(os.environ)
    env.pop("ENGINE_BACKEND", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-P", "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def uring_loop():
    if not URING:
        pytest.skip("io_uring not built or refused by this kernel")
    _loop._set_backend("io_uring")
    try:
        loop = engine.new_event_loop()
    finally:
        _loop._set_backend(os.environ.get("ENGINE_BACKEND"))
    assert loop.backend == "io_uring"
    yield loop
    loop.close()


ECHO = """
import asyncio, engine
async def main():
    async def handle(r, w):
        w.write(await r.read(100)); await w.drain(); w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    r, w = await asyncio.open_connection(*srv.sockets[0].getsockname()[:2])
    w.write(b"ping"); await w.drain()
    assert await r.read(100) == b"ping"
    w.close(); srv.close(); await srv.wait_closed()
    return asyncio.get_running_loop().backend
print(engine.BACKEND, engine.run(main()))
"""


@pytest.mark.parametrize("value,expect", [("epoll", "epoll"), ("auto", "epoll"), ("", "epoll"),
                                          ("io_uring", "io_uring"), ("IO-URING", "io_uring")])
def test_engine_backend_policy(value, expect):
    if expect == "io_uring" and not URING:
        expect = "epoll"     # the fallback is the answer where the kernel refuses a ring
    p = _run_py(ECHO, {"ENGINE_BACKEND": value})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [expect, expect]
    assert p.stderr == ""


def test_an_unknown_backend_warns_and_uses_the_default():
    p = _run_py("import warnings; warnings.simplefilter('always')\n" + ECHO,
                {"ENGINE_BACKEND": "select"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["epoll", "epoll"]
    assert "ENGINE_BACKEND='select'" in p.stderr and "RuntimeWarning" in p.stderr


SECCOMP = """
import ctypes, errno, struct
libc = ctypes.CDLL(None, use_errno=True)
NR_IO_URING_SETUP = 425          # the same on every architecture since 5.1
def ins(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    ins(0x20, 0, 0, 0),                                  # ld [nr]
    ins(0x15, 0, 1, NR_IO_URING_SETUP),                  # jeq io_uring_setup
    ins(0x06, 0, 0, 0x00050000 | errno.{err}),           # ret ERRNO(err)
    ins(0x06, 0, 0, 0x7fff0000),                         # ret ALLOW
])
buf = ctypes.create_string_buffer(prog)
class fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fp = fprog(len(prog) // 8, ctypes.addressof(buf))
assert libc.prctl(38, 1, 0, 0, 0) == 0                   # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fp), 0, 0) == 0, ctypes.get_errno()   # SECCOMP_MODE_FILTER
"""


@pytest.mark.skipif(not _loop.IO_URING_BUILT, reason="built without io_uring")
@pytest.mark.parametrize("err", ["EPERM", "ENOSYS"])
def test_io_uring_forbidden_by_seccomp_falls_back_to_epoll(err):
    # what Docker's default profile (ENOSYS... EPERM) or kernel.io_uring_disabled=2 (EPERM) do
    p = _run_py(SECCOMP.format(err=err) + ECHO, {"ENGINE_BACKEND": "io_uring"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["epoll", "epoll"]
    assert p.stderr == ""                      # quietly: nothing logged, nothing warned


def test_probe_tables_report_io_uring():
    assert _loop.PROBES["io_uring"] in (True, False, 0, 1)
    assert bool(_loop.FEATURES["io_uring"]) == _loop.IO_URING_BUILT
    if sys.platform.startswith("linux"):
        assert _loop.IO_URING_BUILT        # the build probe found the uapi header here


@needs_uring
def test_level_triggered_reader_fires_until_drained(uring_loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    calls = []

    def on_read():
        calls.append(1)
        if len(calls) == 3:
            assert a.recv(100) == b"data"       # drained: no more calls
            uring_loop.call_later(0.05, uring_loop.stop)

    uring_loop.add_reader(a, on_read)
    b.send(b"data")
    uring_loop.run_forever()
    uring_loop.remove_reader(a)
    assert len(calls) == 3
    a.close(); b.close()


@needs_uring
def test_writer_and_reader_on_one_fd(uring_loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    seen = []
    uring_loop.add_writer(a, lambda: (seen.append("w"), uring_loop.remove_writer(a)))
    uring_loop.add_reader(a, lambda: (seen.append("r"), a.recv(10), uring_loop.remove_reader(a),
                                      uring_loop.stop()))
    uring_loop.call_soon(b.send, b"x")
    uring_loop.run_forever()
    assert sorted(seen) == ["r", "w"]
    a.close(); b.close()


@needs_uring
def test_regular_files_are_refused_as_under_epoll(uring_loop):
    with tempfile.TemporaryFile() as f:
        with pytest.raises(PermissionError):
            uring_loop.add_reader(f.fileno(), lambda: None)
    r, w = os.pipe()
    os.close(r)
    with pytest.raises(OSError):
        uring_loop.add_reader(r, lambda: None)     # a closed fd: EBADF at once
    os.close(w)


@needs_uring
@pytest.mark.parametrize("how", ["sock_ops", "transport"])
def test_the_peer_sees_eof_when_a_socket_is_closed(uring_loop, how):
    # a poll request holds its file: a request left armed after sock_recv(), or after a
    # transport let go of its socket, would keep the socket open in the kernel, and the peer
    # would never see EOF
    a, b = socket.socketpair()
    a.setblocking(False)

    async def main():
        if how == "sock_ops":
            for _ in range(3):
                uring_loop.call_soon(b.send, b"x")
                assert await uring_loop.sock_recv(a, 10) == b"x"
            a.close()
        else:
            tr, _ = await uring_loop.connect_accepted_socket(asyncio.Protocol, a)
            tr.close()
            await asyncio.sleep(0)       # the transport closes its socket in the next iteration
        b.settimeout(10)
        return b.recv(10)

    assert uring_loop.run_until_complete(main()) == b""
    b.close()


@needs_uring
def test_ring_created_in_one_thread_runs_in_another(uring_loop):
    # SINGLE_ISSUER: the ring belongs to the thread that first submits; a loop made (and given
    # its readers) in the main thread, then run in a worker, and then in the main thread again
    a, b = socket.socketpair()
    a.setblocking(False)
    got = []

    def on_read():
        got.append(a.recv(10))
        uring_loop.stop()

    uring_loop.add_reader(a, on_read)
    b.send(b"1")
    t = threading.Thread(target=uring_loop.run_forever)
    t.start()
    t.join(30)
    assert not t.is_alive()
    b.send(b"2")
    uring_loop.run_forever()
    assert got == [b"1", b"2"]
    uring_loop.remove_reader(a)

    async def echo():
        uring_loop.call_soon(b.send, b"3")
        return await uring_loop.sock_recv(a, 10)

    assert uring_loop.run_until_complete(echo()) == b"3"
    a.close(); b.close()


@needs_uring
def test_threadsafe_wakeups(uring_loop):
    fut = uring_loop.create_future()

    def worker():
        for i in range(50):
            uring_loop.call_soon_threadsafe(lambda i=i: None)
        uring_loop.call_soon_threadsafe(fut.set_result, "done")

    uring_loop.call_later(0.01, threading.Thread(target=worker).start)
    assert uring_loop.run_until_complete(fut) == "done"


@needs_uring
def test_a_forked_child_gets_its_own_ring():
    code = """
    import asyncio, os, socket, engine
    loop = engine.new_event_loop()
    a, b = socket.socketpair(); a.setblocking(False)
    async def recv():
        loop.call_soon(b.send, b"x")
        return await loop.sock_recv(a, 10)
    assert loop.run_until_complete(recv()) == b"x"
    pid = os.fork()
    if pid == 0:
        try:
            # the child's loop: a fresh ring (the parent's is shared memory and not ours to submit to)
            ok = loop.run_until_complete(recv()) == b"x"
            child = engine.new_event_loop()
            ok = ok and child.run_until_complete(asyncio.sleep(0.01, "y")) == "y"
        except BaseException as exc:
            print("child", repr(exc), flush=True)
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert loop.run_until_complete(recv()) == b"x"     # the parent's ring is unharmed
    print(loop.backend)
    """
    p = _run_py(code, {"ENGINE_BACKEND": "io_uring"})
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip() == "io_uring"


@needs_uring
def test_plain_rings_without_single_issuer_work():
    # kernels before 6.1 have no SINGLE_ISSUER/DEFER_TASKRUN: ENGINE_IO_URING_PLAIN forces that path
    p = _run_py(ECHO, {"ENGINE_BACKEND": "io_uring", "ENGINE_IO_URING_PLAIN": "1"})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["io_uring", "io_uring"]


@needs_uring
def test_many_connections_and_a_full_submission_queue(uring_loop):
    # more registrations in one iteration than the ring's 256 submission entries
    n = 600

    async def main():
        async def handle(r, w):
            w.write(await r.readexactly(4)); await w.drain(); w.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=n)
        addr = srv.sockets[0].getsockname()[:2]

        async def one(i):
            r, w = await asyncio.open_connection(*addr)
            w.write(b"%04d" % i)
            got = await r.readexactly(4)
            w.close()
            return got

        out = await asyncio.gather(*(one(i) for i in range(n)))
        srv.close(); await srv.wait_closed()
        return out

    assert uring_loop.run_until_complete(main()) == [b"%04d" % i for i in range(n)]


def _uring_loop_with(monkeypatch, **env):
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    _loop._set_backend("io_uring")
    try:
        return engine.new_event_loop()
    finally:
        _loop._set_backend(os.environ.get("ENGINE_BACKEND"))


def _transport_and_peer(loop):
    """A socketpair: one end under a transport of loop (a plain Protocol), the other a blocking
    socket with a 10 s timeout for the test to read."""
    a, b = socket.socketpair()
    b.settimeout(10)

    async def connect():
        tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
        return tr

    return a, b, loop.run_until_complete(connect())


def _recv_exactly(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _pattern(i, n):
    # a per-connection byte pattern whose every window is distinct: a lost, repeated or
    # reordered chunk shows up as a mismatch
    return b"".join(b"%02d:%08d;" % (i, k) for k in range(n // 12 + 1))[:n]


@needs_uring
def test_transports_are_read_by_completion_receives(uring_loop):
    # a stream transport's reads come from the ring's receive queue (multishot recv into the
    # provided buffers), not from recv(2); every buffer goes back once its bytes are copied out
    st0 = uring_loop._ring_stats()
    assert st0 is not None and st0["free"] == st0["buffers"] > 0

    async def main():
        async def handle(r, w):
            while data := await r.read(1 << 20):
                w.write(data)
                await w.drain()
            w.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname()[:2])
        for size in (1, 1000, st0["buffer_size"], 100_000, 3_000_000):
            msg = _pattern(size % 97, size)
            w.write(msg)
            assert await r.readexactly(size) == msg
        w.write_eof()
        assert await r.read() == b""
        w.close(); await w.wait_closed()
        srv.close(); await srv.wait_closed()

    uring_loop.run_until_complete(main())
    st = uring_loop._ring_stats()
    # both ends of the connection are this loop's transports: every byte crossed the ring twice
    assert st["bytes"] - st0["bytes"] == 2 * (1 + 1000 + st0["buffer_size"] + 100_000 + 3_000_000)
    assert st["free"] == st["buffers"]


@needs_uring
def test_io_uring_recv_can_be_turned_off(monkeypatch):
    loop = _uring_loop_with(monkeypatch, ENGINE_IO_URING_RECV="0")
    try:
        assert loop.backend == "io_uring" and loop._ring_stats() is None
        assert loop.run_until_complete(loop.run_in_executor(None, len, "abc")) == 3
    finally:
        loop.close()


@needs_uring
@pytest.mark.parametrize("var,value", [("ENGINE_IO_URING_BUFS", "lots"),
                                       ("ENGINE_IO_URING_BUFS", "0"),
                                       ("ENGINE_IO_URING_BUF_SIZE", "64")])
def test_bad_ring_settings_are_named(monkeypatch, var, value):
    # refused before anything is opened, and the half-made loop closes nothing of anyone's
    # (it once closed fd 0, the number its unopened wake-up fds held)
    import gc
    r, w = os.pipe()
    saved = os.dup(0)
    try:
        os.dup2(r, 0)                         # fd 0 is ours for the test
        with pytest.raises(ValueError, match=var):
            _uring_loop_with(monkeypatch, **{var: value})
        gc.collect()
        assert os.fstat(0).st_ino == os.fstat(r).st_ino
    finally:
        os.dup2(saved, 0)
        for fd in (saved, r, w):
            os.close(fd)


@needs_uring
@pytest.mark.parametrize("buffered", [False, True], ids=["Protocol", "BufferedProtocol"])
def test_buffer_ring_exhaustion_pauses_reading_and_loses_nothing(monkeypatch, buffered):
    # 8 buffers of 4 KiB for 12 connections whose protocols pause reading at once and resume
    # one by one: the paused transports' queues hold every buffer, the kernel's receives end
    # with ENOBUFS, and are armed again as buffers come back. Each connection must still get its
    # bytes exactly, in order, and every buffer must be back in the ring at the end.
    loop = _uring_loop_with(monkeypatch, ENGINE_IO_URING_BUFS=8, ENGINE_IO_URING_BUF_SIZE=4096)
    nconn, size = 12, 300_000
    results = {}
    done = loop.create_future()

    class Slow(asyncio.BufferedProtocol if buffered else asyncio.Protocol):
        def connection_made(self, tr):
            self.tr, self.data, self.buf = tr, bytearray(), bytearray(1000)

        def _got(self, data):
            if not self.data:
                # the first bytes: stop reading for a while (the later the connection, the
                # longer), holding whatever the kernel receives for it meanwhile
                self.index = int(data[:2])
                self.tr.pause_reading()
                loop.call_later(0.05 * (1 + self.index), self.tr.resume_reading)
            self.data += data

        def data_received(self, data):
            self._got(data)

        def get_buffer(self, hint):
            return self.buf

        def buffer_updated(self, n):
            self._got(bytes(self.buf[:n]))

        def eof_received(self):
            results[self.index] = bytes(self.data)
            if len(results) == nconn:
                done.set_result(None)

    async def main():
        srv = await loop.create_server(Slow, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()[:2]
        socks = []
        for i in range(nconn):
            c = socket.create_connection(addr)
            socks.append(c)

        def send_all():
            for i, c in enumerate(socks):
                c.sendall(_pattern(i, size))
                c.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send_all)
        sender.start()
        await asyncio.wait_for(done, 60)
        sender.join()
        for c in socks:
            c.close()
        srv.close()
        await srv.wait_closed()

    try:
        loop.run_until_complete(main())
        st = loop._ring_stats()
    finally:
        loop.close()
    assert sorted(results) == list(range(nconn))
    for i in range(nconn):
        assert results[i] == _pattern(i, size), i
    assert st["buffers"] == 8 and st["free"] == 8
    assert st["enobufs"] > 0 and st["rearmed"] > 0


@needs_uring
def test_a_reset_connection_is_reported_as_under_epoll(uring_loop):
    # the recv request's error (ECONNRESET) is queued after the data: data_received first,
    # then connection_lost with the error, as asyncio's selector loop reports it
    got = []
    lost = uring_loop.create_future()

    class P(asyncio.Protocol):
        def data_received(self, data):
            got.append(data)

        def eof_received(self):
            got.append("eof")

        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        srv = await uring_loop.create_server(P, "127.0.0.1", 0)
        c = socket.create_connection(srv.sockets[0].getsockname()[:2])
        c.sendall(b"last words")
        await asyncio.sleep(0.05)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()                                    # RST
        exc = await asyncio.wait_for(lost, 10)
        srv.close(); await srv.wait_closed()
        return exc

    exc = uring_loop.run_until_complete(main())
    assert got == [b"last words"]
    assert isinstance(exc, ConnectionResetError)
    st = uring_loop._ring_stats()
    assert st["free"] == st["buffers"]


@needs_uring
def test_a_closed_transport_gives_its_queued_buffers_back(uring_loop):
    # data queued for a paused transport that is then closed: its buffers return to the ring
    async def main():
        ready = uring_loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr

            def data_received(self, data):
                self.tr.pause_reading()
                ready.set_result(self.tr)

        srv = await uring_loop.create_server(P, "127.0.0.1", 0)
        c = socket.create_connection(srv.sockets[0].getsockname()[:2])
        c.sendall(b"a")
        tr = await asyncio.wait_for(ready, 10)
        c.sendall(b"b" * 50_000)
        await asyncio.sleep(0.1)
        tr.close()
        await asyncio.sleep(0.05)
        c.close()
        srv.close(); await srv.wait_closed()

    uring_loop.run_until_complete(main())
    st = uring_loop._ring_stats()
    assert st["free"] == st["buffers"]


@needs_uring
def test_a_transport_keeps_its_data_when_the_loop_moves_to_another_thread(uring_loop):
    # a SINGLE_ISSUER ring is rebuilt when another thread runs the loop; what the old ring
    # received is queued first and the stream goes on, in order
    async def start():
        async def handle(r, w):
            while data := await r.read(65536):
                w.write(data)
            w.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        r, w = await asyncio.open_connection(*srv.sockets[0].getsockname()[:2])
        return srv, r, w

    async def echo(r, w, msg):
        w.write(msg)
        return await r.readexactly(len(msg))

    srv, r, w = uring_loop.run_until_complete(start())
    assert uring_loop.run_until_complete(echo(r, w, b"main" * 1000)) == b"main" * 1000
    out = []
    t = threading.Thread(target=lambda: out.append(
        uring_loop.run_until_complete(echo(r, w, _pattern(1, 200_000)))))
    t.start(); t.join(30)
    assert out == [_pattern(1, 200_000)]
    assert uring_loop.run_until_complete(echo(r, w, b"back")) == b"back"
    w.close()
    srv.close()
    uring_loop.run_until_complete(srv.wait_closed())


@needs_uring
def test_sendfile_between_writes_of_a_paused_protocol(uring_loop, tmp_path):
    # CPython's test_sendfile_pre_and_post_data, the case that once hung on io_uring: the
    # prefix's send completion is taken when loop.sendfile() asks for the drain, with the
    # transport still registered for WRITE; the sendfile takes the writer slot, and the
    # suffix written after it must still reach the peer before the transport closes
    data = b"x" * (256 * 1024 + 1)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    got = bytearray()

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.done = uring_loop.create_future()

        def data_received(self, d):
            got.extend(d)

        def connection_lost(self, exc):
            self.done.set_result(None)

    sink = Sink()

    async def main():
        srv = await uring_loop.create_server(lambda: sink, "127.0.0.1", 0)
        tr, _ = await uring_loop.create_connection(asyncio.Protocol,
                                                   *srv.sockets[0].getsockname()[:2])
        tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        tr.set_write_buffer_limits(high=4096)       # the prefix pauses the protocol
        tr.write(b"PREFIX__" * 1024)
        await asyncio.sleep(0)          # resumed in the iteration whose poll completes the send
        with open(path, "rb") as f:
            sent = await uring_loop.sendfile(tr, f)
        tr.write(b"--SUFFIX" * 1024)
        tr.close()
        await asyncio.wait_for(sink.done, 10)
        srv.close()
        await srv.wait_closed()
        return sent

    assert uring_loop.run_until_complete(main()) == len(data)
    assert got == b"PREFIX__" * 1024 + data + b"--SUFFIX" * 1024


@needs_uring
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.parametrize("then", ["stop", "close"])
def test_writes_leave_when_the_loop_stops_or_closes(uring_loop, then):
    # a write waits for the loop's next poll on io_uring; a loop that stops (or closes) before
    # polling again submits it then, so the peer gets it as under send(2) at write() time
    a, b, tr = _transport_and_peer(uring_loop)

    async def write_last():
        tr.write(b"last words")                 # the task's last act: the loop stops next

    if then == "stop":
        uring_loop.run_until_complete(write_last())
    else:
        tr.write(b"last words")                 # outside the running loop, then close it
        uring_loop.close()
    try:
        assert b.recv(100) == b"last words"      # the loop does not run again
    finally:
        if then == "stop":
            tr.close()
            uring_loop.run_until_complete(asyncio.sleep(0))
        else:
            a.close()                            # the transport of a closed loop is left as is
        b.close()


def test_large_writes_go_at_once_and_keep_their_order(uring_loop):
    # a large write to a transport with nothing queued or in flight is sent by send(2) at once
    # (nothing left in the write buffer, no loop iteration needed); small ones wait for the
    # iteration's send request. Mixed, the peer gets every byte in write() order
    _, b, tr = _transport_and_peer(uring_loop)
    try:
        big = _pattern(3, 64 * 1024)
        tr.write(big)
        assert tr.get_write_buffer_size() == 0             # sent within write()
        assert _recv_exactly(b, len(big)) == big
        tr.write(b"small")
        assert tr.get_write_buffer_size() == 5             # waits for the send request
        tr.write(big)                                      # queued behind it, not sent first
        assert tr.get_write_buffer_size() == 5 + len(big)
        tr.write(bytearray(big))                           # a writable buffer: copied when queued
        want = b"small" + big + big
        uring_loop.run_until_complete(asyncio.sleep(0.01))
        assert _recv_exactly(b, len(want)) == want
        # a large write the socket cannot take whole: the rest follows by the ring, in order
        parts = [_pattern(i, 1 << 20) for i in range(4)]

        async def write_all():
            for part in parts:
                tr.write(part)
            while tr.get_write_buffer_size():
                await asyncio.sleep(0.001)

        got = bytearray()
        reader = threading.Thread(target=lambda: got.extend(_recv_exactly(b, 4 << 20)))
        reader.start()
        uring_loop.run_until_complete(asyncio.wait_for(write_all(), 30))
        reader.join(30)
        assert bytes(got) == b"".join(parts)
    finally:
        tr.close()
        uring_loop.run_until_complete(asyncio.sleep(0))
        b.close()


@pytest.mark.skipif(not _loop.IO_URING_BUILT, reason="built without io_uring")
@pytest.mark.parametrize("forbidden", [False, True])
def test_engine_info_says_whether_io_uring_is_available(forbidden):
    code = (SECCOMP.format(err="EPERM") if forbidden else "") + \
        "from engine.__main__ import main\nmain(['info'])\n"
    p = _run_py(code)
    assert p.returncode == 0, p.stderr
    line = [x for x in p.stdout.splitlines() if x.startswith("io_uring: ")]
    if forbidden or not URING:
        assert line == ["io_uring: built, but this kernel refuses a ring (loops use epoll)"]
    else:
        assert line == ["io_uring: available (ENGINE_BACKEND=io_uring selects it)"]


# --- completion accepts -------------------------------------------------------------------------

class _Echo(asyncio.Protocol):
    """Answers each connection's first bytes with those bytes and the peer's address, then
    closes."""

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        host, port = self.tr.get_extra_info("peername")[:2]
        self.tr.write(data + b" %s:%d" % (host.encode(), port))
        self.tr.close()


def _ask(addr, i):
    with socket.create_connection(addr, timeout=10) as c:
        c.sendall(b"%04d" % i)
        got = _recv_exactly(c, 200)
        host, port = c.getsockname()[:2]
    assert got == b"%04d %s:%d" % (i, host.encode(), port)


@needs_uring
def test_servers_accept_by_a_multishot_request(uring_loop):
    # the listener has one accept request; every connection comes out of its queue with the
    # right peer address (asked for lazily), and none goes through accept4(2)
    n = 200

    async def main():
        srv = await uring_loop.create_server(_Echo, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        before = uring_loop._ring_stats()["accepts"]
        await asyncio.gather(*(asyncio.to_thread(_ask, addr, i) for i in range(n)))
        srv.close()
        await srv.wait_closed()
        return uring_loop._ring_stats()["accepts"] - before

    assert uring_loop.run_until_complete(main()) == n


@needs_uring
def test_accept_requests_can_be_turned_off(monkeypatch):
    loop = _uring_loop_with(monkeypatch, ENGINE_IO_URING_ACCEPT="0")
    try:
        async def main():
            srv = await loop.create_server(_Echo, "127.0.0.1", 0)
            await asyncio.to_thread(_ask, srv.sockets[0].getsockname(), 7)
            srv.close()
            await srv.wait_closed()

        loop.run_until_complete(main())
        assert loop._ring_stats()["accepts"] is None       # accept4(2) on readiness, as on epoll
    finally:
        loop.close()


@needs_uring
def test_a_full_accept_queue_stops_accepting_and_loses_no_connection(monkeypatch):
    # a queue of 1 socket stops the listener's request; the kernel's backlog holds what comes
    # meanwhile, and the request is armed again once the loop has taken the queue. The server
    # takes 4 sockets per event (backlog=4) and 5 arrive at once: one is left queued
    loop = _uring_loop_with(monkeypatch, ENGINE_IO_URING_ACCEPT_QUEUE=1)
    n = 5
    clients = []
    burst = []
    try:
        class Blocking(_Echo):
            def connection_made(self, tr):
                super().connection_made(tr)
                if not burst:
                    # the loop is stuck in the first connection while the others connect:
                    # its next wait finds them all accepted at once
                    burst.extend(socket.create_connection(addr, timeout=10) for _ in range(n))

        async def main():
            nonlocal addr
            srv = await loop.create_server(Blocking, "127.0.0.1", 0, backlog=4)
            addr = srv.sockets[0].getsockname()
            clients.append(await asyncio.to_thread(socket.create_connection, addr, 10))
            while not burst:
                await asyncio.sleep(0.001)
            clients.extend(burst)

            def talk():
                for i, c in enumerate(clients):
                    c.sendall(b"%04d" % i)
                for i, c in enumerate(clients):
                    got = _recv_exactly(c, 200)
                    assert got.startswith(b"%04d 127.0.0.1:" % i), (i, got)
                _ask(addr, n + 1)          # accepting goes on afterwards

            await asyncio.to_thread(talk)
            srv.close()
            await srv.wait_closed()

        addr = None
        loop.run_until_complete(main())
        stats = loop._ring_stats()
        assert stats["accepts"] == n + 2, str(stats)
        assert stats["accept_queue_full"] >= 1
    finally:
        for c in clients:
            c.close()
        loop.close()


@needs_uring
def test_sockets_accepted_for_a_closed_server_are_closed(uring_loop):
    # a burst of connections while the server closes: whatever the ring accepted and no one
    # took is closed (each client sees the end of its connection), no fd is left open
    def fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        base = fds()
        made = []

        class Keep(asyncio.Protocol):
            def connection_made(self, tr):
                made.append(tr)

        srv = await uring_loop.create_server(Keep, "127.0.0.1", 0, backlog=1)
        addr = srv.sockets[0].getsockname()
        conns = []

        def burst():
            for _ in range(50):
                try:
                    conns.append(socket.create_connection(addr, timeout=10))
                except OSError:
                    break        # the listener is gone

        t = threading.Thread(target=burst)
        t.start()
        while len(conns) < 5:
            await asyncio.sleep(0.001)
        srv.close()
        await asyncio.to_thread(t.join, 10)
        for tr in made:
            tr.close()
        await srv.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0.01)
        return base, conns

    base, conns = uring_loop.run_until_complete(main())
    try:
        for c in conns:
            c.settimeout(10)
            try:
                assert c.recv(10) == b""
            except ConnectionResetError:
                pass
        assert len(os.listdir("/proc/self/fd")) - len(conns) <= base
    finally:
        for c in conns:
            c.close()


@needs_uring
def test_a_connection_accepted_just_before_the_server_closes_is_served(uring_loop):
    # the kernel accepts for the ring's request in any io_uring_enter, also in one the loop
    # makes between two waits (here the removal of a reader); a server closed right after must
    # still serve what that accepted, not close it when the completion is reaped later
    made = []

    class Keep(asyncio.Protocol):
        def connection_made(self, tr):
            made.append(tr)

    async def main():
        srv = await uring_loop.create_server(Keep, "127.0.0.1", 0)
        addr = srv.sockets[0].getsockname()
        r, w = os.pipe()
        uring_loop.add_reader(r, lambda: None)
        await asyncio.sleep(0.01)                          # the accept request and the poll armed
        c = socket.create_connection(addr, timeout=10)     # accepted by the kernel ...
        time.sleep(0.05)
        uring_loop.remove_reader(r)                        # ... in this call's io_uring_enter
        srv.close()
        for _ in range(5):
            await asyncio.sleep(0.01)
        for tr in made:
            tr.close()
        await srv.wait_closed()
        os.close(r)
        os.close(w)
        return c

    c = uring_loop.run_until_complete(main())
    try:
        assert len(made) == 1
        assert made[0].get_extra_info("peername") == c.getsockname()
        assert c.recv(10) == b""
    finally:
        c.close()


# --- protocols that take memoryviews: io_uring's receive buffers lent, no copy ----------------

class _Viewer(asyncio.Protocol):
    """data_received_memoryview = True: keeps a slice of the first view (which must keep its
    bytes), the first view itself (which must be released after the call), and a copy of all."""
    data_received_memoryview = True

    def __init__(self, done, echo=False):
        self.done, self.echo = done, echo
        self.got, self.kinds, self.first, self.first_slice = bytearray(), set(), None, None

    def connection_made(self, tr):
        self.tr = tr

    def data_received(self, data):
        self.kinds.add((type(data).__name__, data.readonly))
        if self.first is None:
            self.first, self.first_slice = data, data[:12]
            self.first_bytes = bytes(data[:12])
        self.got += data
        if self.echo:
            self.tr.write(data)              # a read-only view: queued without a copy

    def eof_received(self):
        self.done.set_result(None)


def _viewer_run(loop, size, echo):
    payload = _pattern(5, size)

    async def main():
        done = loop.create_future()
        proto = _Viewer(done, echo)
        a, b = socket.socketpair()
        b.settimeout(10)
        await loop.create_connection(lambda: proto, sock=a)
        echoed = bytearray()

        def peer():
            b.sendall(payload)
            b.shutdown(socket.SHUT_WR)
            if echo:
                echoed.extend(_recv_exactly(b, size))

        t = threading.Thread(target=peer)
        t.start()
        await asyncio.wait_for(done, 20)
        await asyncio.to_thread(t.join, 20)
        proto.tr.close()
        b.close()
        await asyncio.sleep(0)
        return proto, bytes(echoed)

    return payload, loop.run_until_complete(main())


@pytest.mark.parametrize("backend", ["epoll", "io_uring"])
@pytest.mark.parametrize("echo", [False, True], ids=["keep-a-slice", "write-it-back"])
def test_a_protocol_can_take_memoryviews(backend, echo):
    if backend == "io_uring" and not URING:
        pytest.skip("io_uring not built or refused by this kernel")
    _loop._set_backend(backend)
    try:
        loop = engine.new_event_loop()
    finally:
        _loop._set_backend(os.environ.get("ENGINE_BACKEND"))
    try:
        payload, (proto, echoed) = _viewer_run(loop, 600_000, echo)
        assert bytes(proto.got) == payload
        assert proto.kinds == {("memoryview", True)}
        with pytest.raises(ValueError):              # the view itself: only for the call
            bytes(proto.first)
        assert bytes(proto.first_slice) == proto.first_bytes == payload[:12]   # kept, intact
        if echo:
            assert echoed == payload
        stats = loop._ring_stats()
        if stats is not None:
            # every buffer back in the kernel's ring (kept ones replaced), none lost
            assert stats["free"] == stats["buffers"]
            assert stats["pool_in_use"] == stats["buffers"] + 1   # + the chunk the slice keeps
            proto.first_slice.release()
            assert loop._ring_stats()["pool_in_use"] == stats["buffers"]
    finally:
        loop.close()


@needs_uring
def test_a_switch_to_a_protocol_taking_bytes_gets_bytes(uring_loop):
    # set_protocol() inside data_received: what is still queued goes to the new protocol, as
    # bytes, in order
    payload = _pattern(7, 300_000)
    got, kinds = bytearray(), []

    class Later(asyncio.Protocol):
        def data_received(self, data):
            kinds.append(type(data))
            got.extend(data)

        def eof_received(self):
            done.set_result(None)

    class First(asyncio.Protocol):
        data_received_memoryview = True

        def connection_made(self, tr):
            self.tr = tr

        def data_received(self, data):
            kinds.append(type(data))
            got.extend(data)
            self.tr.set_protocol(Later())

    async def main():
        nonlocal done
        done = uring_loop.create_future()
        a, b = socket.socketpair()
        tr, _ = await uring_loop.create_connection(First, sock=a)

        def peer():
            b.sendall(payload)
            b.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=peer)
        t.start()
        await asyncio.wait_for(done, 10)
        await asyncio.to_thread(t.join, 10)
        tr.close()
        b.close()

    done = None
    uring_loop.run_until_complete(main())
    assert bytes(got) == payload
    assert kinds[0] is memoryview and set(kinds[1:]) == {bytes}

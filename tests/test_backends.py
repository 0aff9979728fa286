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

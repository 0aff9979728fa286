"""engine's own surface: libev-style watchers, the public API, loop internals (heap, fd table)."""
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings

import pytest

import engine


def run_for(loop, seconds):
    loop.call_later(seconds, loop.stop)
    loop.run_forever()


# --- IO ----------------------------------------------------------------------------------------

def test_io_watcher_level_triggered_fires_until_drained(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    calls = []

    def cb(w, revents):
        calls.append(revents)
        if len(calls) == 3:
            a.recv(100)  # drained: no more calls
            loop.call_later(0.02, loop.stop)

    with engine.IO(loop, a, engine.READ, cb) as w:
        assert w.active and w.fd == a.fileno()
        b.send(b"x")
        loop.run_forever()
    assert not w.active
    assert calls == [engine.READ] * 3
    a.close()
    b.close()


def test_io_watcher_edge_triggered_fires_once_per_change(loop):
    a, b = socket.socketpair()
    a.setblocking(False)
    calls = []
    w = engine.IO(loop, a, engine.READ, lambda w, ev: calls.append(ev), edge=True)
    w.start()
    b.send(b"1")
    run_for(loop, 0.03)          # not drained, but edge-triggered: reported once
    assert len(calls) == 1
    b.send(b"2")                 # new data is a new edge
    run_for(loop, 0.03)
    assert len(calls) == 2
    assert a.recv(10) == b"12"
    w.stop()
    a.close()
    b.close()


def test_io_watcher_read_write_in_one_callback(loop):
    a, b = socket.socketpair()
    got = []

    def cb(w, revents):
        got.append(revents)
        w.stop()
        loop.stop()

    engine.IO(loop, a, engine.READ | engine.WRITE, cb).start()
    b.send(b"x")
    loop.run_forever()
    assert got == [engine.READ | engine.WRITE]
    a.close()
    b.close()


def test_io_watcher_conflicts_with_add_reader(loop):
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    w = engine.IO(loop, a, engine.READ, lambda w, e: None)
    with pytest.raises(RuntimeError, match="already watched"):
        w.start()
    assert not w.active
    loop.remove_reader(a)
    w.start()
    # nor does add_reader steal a public watcher's fd; remove_reader reports nothing to remove
    with pytest.raises(RuntimeError, match="IO watcher"):
        loop.add_reader(a, lambda: None)
    assert loop.remove_reader(a) is False
    assert w.active
    w.stop()
    a.close()
    b.close()


def test_io_watcher_argument_checks(loop):
    with pytest.raises(ValueError):
        engine.IO(loop, 0, 0, lambda w, e: None)
    with pytest.raises(ValueError):
        engine.IO(loop, -1, engine.READ, lambda w, e: None)
    with pytest.raises(TypeError):
        engine.IO(loop, 0, engine.READ, "not callable")
    other = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError):
            engine.IO(other, 0, engine.READ, None)
    finally:
        other.close()


def test_io_watcher_set_moves_to_another_fd(loop):
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    got = []
    w = engine.IO(loop, a, engine.READ, lambda w, ev: (got.append(w.fd), loop.stop()))
    w.start()
    w.set(fd=c)
    d.send(b"x")
    loop.run_forever()
    assert got == [c.fileno()]
    w.stop()
    for s in (a, b, c, d):
        s.close()


def test_io_watcher_exception_reaches_handler(loop):
    a, b = socket.socketpair()
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: (contexts.append(ctx), loop.stop()))

    def cb(w, ev):
        w.stop()
        raise ValueError("in watcher")

    engine.IO(loop, a, engine.WRITE, cb).start()
    loop.run_forever()
    assert isinstance(contexts[0]["exception"], ValueError)
    assert isinstance(contexts[0]["watcher"], engine.IO)
    a.close()
    b.close()


# --- Timer -------------------------------------------------------------------------------------

def test_timer_one_shot(loop):
    fired = []
    t = engine.Timer(loop, 0.01, 0, lambda w, ev: fired.append((w, ev)))
    t.start()
    assert t.active and 0 < t.remaining <= 0.01
    run_for(loop, 0.05)
    assert fired == [(t, engine.TIMEOUT)]
    assert not t.active and t.remaining is None


def test_timer_repeat_and_stop(loop):
    fired = []

    def cb(w, ev):
        fired.append(loop.time())
        if len(fired) == 4:
            w.stop()
            loop.stop()

    t = engine.Timer(loop, 0.005, 0.005, cb)
    t.start()
    loop.run_forever()
    assert len(fired) == 4 and not t.active
    assert all(b > a for a, b in zip(fired, fired[1:], strict=False))


def test_timer_again_restarts_with_repeat(loop):
    fired = []
    t = engine.Timer(loop, 10, 0.01, lambda w, ev: (fired.append(1), w.stop(), loop.stop()))
    t.start()
    t.again()                      # now due in `repeat` seconds, not 10
    assert t.remaining <= 0.01
    loop.run_forever()
    assert fired == [1]
    t.repeat = 0
    t.again()                      # repeat 0: again() stops the timer
    assert not t.active
    with pytest.raises(ValueError):
        t.repeat = -1


# --- Idle / TimedIdle --------------------------------------------------------------------------

def test_idle_runs_when_loop_goes_idle_and_does_not_spin(loop):
    idle_calls = []
    engine.Idle(loop, lambda w, ev: idle_calls.append(ev)).start()
    work = []
    loop.call_soon(work.append, 1)
    loop.call_soon(work.append, 2)
    t0 = time.process_time()
    run_for(loop, 0.2)             # idle for ~0.2 s apart from the stop timer
    cpu = time.process_time() - t0
    # goes idle once after the callbacks, maybe once more after the timer: never a spin
    assert len(idle_calls) in (1, 2, 3), idle_calls
    assert idle_calls[0] == engine.IDLE
    assert work == [1, 2]
    assert cpu < 0.1, cpu          # a busy spin would burn the whole 0.2 s


def test_idle_callback_can_schedule_work(loop):
    seen = []

    def on_idle(w, ev):
        seen.append("idle")
        if len(seen) == 1:
            loop.call_soon(seen.append, "scheduled from idle")
        else:
            w.stop()
            loop.stop()

    engine.Idle(loop, on_idle).start()
    loop.run_forever()
    assert seen == ["idle", "scheduled from idle", "idle"]


def test_timed_idle_runs_under_load(loop):
    calls = []
    ti = engine.TimedIdle(loop, 0.02, lambda w, ev: calls.append(ev))
    ti.start()
    deadline = loop.time() + 0.2

    def busy():                    # never lets the loop go idle
        if loop.time() < deadline:
            loop.call_soon(busy)
        else:
            loop.stop()

    loop.call_soon(busy)
    loop.run_forever()
    forced = [ev for ev in calls if ev & engine.TIMEOUT]
    assert len(forced) >= 3, calls
    ti.stop()
    assert not ti.active
    with pytest.raises(ValueError):
        engine.TimedIdle(loop, 0, lambda w, ev: None)


def test_timed_idle_also_runs_on_idle(loop):
    calls = []
    engine.TimedIdle(loop, 100, lambda w, ev: calls.append(ev)).start()
    run_for(loop, 0.02)
    assert calls and calls[0] == engine.IDLE


# --- Signal / Async ----------------------------------------------------------------------------

def test_signal_watcher(loop):
    got = []
    w = engine.Signal(loop, signal.SIGUSR2, lambda w, ev: (got.append((w.signum, ev)), loop.stop()))
    w.start()
    assert signal.getsignal(signal.SIGUSR2) not in (signal.SIG_DFL, None)
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR2)
    loop.run_forever()
    assert got == [(signal.SIGUSR2, engine.SIGNAL)]
    w.stop()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_signal_watcher_and_handler_share_a_signal(loop):
    got = []
    w = engine.Signal(loop, signal.SIGUSR1, lambda w, ev: got.append("watcher"))
    w.start()
    loop.add_signal_handler(signal.SIGUSR1, lambda: (got.append("handler"), loop.stop()))
    loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
    loop.run_forever()
    assert sorted(got) == ["handler", "watcher"]
    loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None)  # watcher still uses it
    w.stop()
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_async_watcher_from_thread_coalesces(loop):
    got = []
    sent = threading.Event()

    def cb(w, ev):
        got.append((threading.get_ident(), ev))
        loop.stop()

    a = engine.Async(loop, cb)
    a.start()

    def worker():
        for _ in range(5):
            a.send()
        sent.set()

    loop.call_later(0.01, threading.Thread(target=worker).start)
    loop.run_forever()
    assert sent.is_set()
    assert got == [(threading.get_ident(), engine.ASYNC)]   # five sends, one call back
    assert not a.pending
    a.stop()


def test_closed_loop_stops_watchers(loop):
    i = engine.Idle(loop, lambda w, e: None)
    i.start()
    loop.close()
    assert not i.active
    with pytest.raises(RuntimeError):
        engine.Timer(loop, 1, 0, None).start()
    with pytest.raises(RuntimeError):
        engine.Async(loop, None).send()


# --- internals: heap, fd table, poll array -----------------------------------------------------

def test_timer_heap_with_random_cancellations(loop):
    rng = random.Random(1234)
    base = loop.time() + 0.01
    fired = []
    handles = []
    for i in range(5000):
        when = base + rng.random() * 0.05
        handles.append((when, i, loop.call_at(when, fired.append, i)))
    cancelled = set()
    for _when, i, h in rng.sample(handles, 2500):
        h.cancel()
        cancelled.add(i)
    assert loop._stats()["timers"] == 2500
    loop.call_at(base + 0.06, loop.stop)
    loop.run_forever()
    expected = [i for when, i, h in sorted(handles) if i not in cancelled]
    assert fired == expected       # every live timer, in deadline order, ties FIFO
    assert loop._stats()["timers"] == 0


def test_timers_with_equal_deadline_run_fifo(loop):
    when = loop.time() + 0.01
    fired = []
    for i in range(100):
        loop.call_at(when, fired.append, i)
    loop.call_at(when + 0.01, loop.stop)
    loop.run_forever()
    assert fired == list(range(100))


def test_high_fd_numbers_grow_the_table(loop):
    a, b = socket.socketpair()
    high = os.dup2(a.fileno(), 1500)
    try:
        got = []
        loop.add_reader(high, lambda: (got.append(os.read(high, 10)), loop.stop()))
        b.send(b"hi")
        loop.run_forever()
        assert got == [b"hi"]
        assert loop.remove_reader(high)
    finally:
        os.close(high)
        a.close()
        b.close()


def test_fd_closed_behind_loops_back_and_number_reused(loop):
    a, b = socket.socketpair()
    fd = a.fileno()
    loop.add_reader(fd, lambda: None)
    a.close()                      # the kernel drops the registration; the loop doesn't know
    b.close()
    c, d = socket.socketpair()
    if c.fileno() != fd:
        c, d = d, c
    assert c.fileno() == fd
    got = []
    loop.add_reader(fd, lambda: (got.append(c.recv(10)), loop.stop()))
    d.send(b"again")
    loop.run_forever()
    assert got == [b"again"]
    assert loop.remove_reader(fd)
    c.close()
    d.close()


def test_many_ready_fds_in_one_wait(loop):
    pairs = [socket.socketpair() for _ in range(300)]
    got = []
    try:
        for a, b in pairs:
            loop.add_reader(a, lambda a=a: (got.append(a.recv(1)), loop.remove_reader(a)))
            b.send(b"x")
        cap0 = loop._stats()["poll_capacity"]
        while len(got) < len(pairs):
            loop.call_soon(loop.stop)
            loop.run_forever()
        assert len(got) == 300
        assert loop._stats()["poll_capacity"] > cap0   # the event array grew when a wait filled it
    finally:
        for a, b in pairs:
            a.close()
            b.close()


# --- public API --------------------------------------------------------------------------------

def test_handles_are_not_constructible():
    with pytest.raises(TypeError):
        engine.Handle()
    with pytest.raises(TypeError):
        engine.TimerHandle()


def test_engine_run_and_loop_type():
    async def main():
        return type(asyncio.get_running_loop()), asyncio.get_running_loop().get_debug()

    cls, debug = engine.run(main(), debug=True)
    assert cls is engine.Loop and debug is True
    assert issubclass(engine.Loop, asyncio.AbstractEventLoop)


def test_loop_is_subclassable():
    class MyLoop(engine.Loop):
        def extra(self):
            return "extra"

    async def main():
        return asyncio.get_running_loop().extra()

    with asyncio.Runner(loop_factory=MyLoop) as r:
        assert r.run(main()) == "extra"


def test_policy_and_install():
    old = asyncio.get_event_loop_policy()
    try:
        if sys.version_info >= (3, 14):           # asyncio deprecates policies from 3.14
            with pytest.warns(DeprecationWarning):
                engine.install()
        else:                                     # before, installing must not warn
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)
                engine.install()
        loop = asyncio.new_event_loop()
        assert isinstance(loop, engine.Loop)
        loop.close()
        assert asyncio.run(asyncio.sleep(0, result=7)) == 7
    finally:
        asyncio.set_event_loop_policy(old)


def test_backend_reported(loop):
    assert engine.BACKEND in ("epoll", "kqueue", "io_uring")
    assert loop.backend == engine.BACKEND


@pytest.mark.parametrize("env_value, expected", [("1", "True"), ("", "False")])
def test_pythonasynciodebug_sets_debug_mode(env_value, expected):
    env = dict(os.environ, PYTHONASYNCIODEBUG=env_value)
    env.pop("PYTHONDEVMODE", None)
    code = "import engine; l = engine.new_event_loop(); print(l.get_debug()); l.close()"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_sock_sendfile_uses_mmap_when_sendfile_fails(sendfile_roundtrip, tmp_path, monkeypatch):
    content = bytes(range(251)) * 4000
    path = tmp_path / "blob"
    path.write_bytes(content)
    calls = []

    def no_sendfile(*args):
        calls.append(args)
        raise OSError(22, "Invalid argument")       # as for a file sendfile(2) can't serve

    monkeypatch.setattr(os, "sendfile", no_sendfile)

    with open(path, "rb") as f:
        sent, data = sendfile_roundtrip(f, offset=7, count=300000)
        pos = f.tell()
    assert calls, "sendfile(2) was not tried first"
    assert sent == 300000 and data == content[7:300007] and pos == 300007

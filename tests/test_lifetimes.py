"""Reference ownership of the loop's C structures (ready ring, timer heap, fd table): what the
loop holds it releases — on run, cancel, remove and close — and nothing is freed while held."""
import gc
import socket
import weakref

import engine


class Payload:
    """A callback argument we can watch die."""


def _released(ref):
    gc.collect()
    return ref() is None


def test_ready_handle_releases_args_after_running(loop):
    p = Payload()
    ref = weakref.ref(p)
    loop.call_soon(lambda x: None, p)
    del p
    assert not _released(ref)          # the ready queue owns it
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert _released(ref)


def test_cancelled_timer_releases_args_at_once(loop):
    p = Payload()
    ref = weakref.ref(p)
    h = loop.call_later(100, lambda x: None, p)
    del p
    assert not _released(ref)          # the heap owns it
    h.cancel()
    assert _released(ref)
    assert loop._stats()["timers"] == 0


def test_close_releases_pending_handles_timers_and_fd_watchers(loop):
    refs = []
    a, b = socket.socketpair()
    for _ in range(50):
        p = Payload()
        refs.append(weakref.ref(p))
        loop.call_soon(lambda x: None, p)
        q = Payload()
        refs.append(weakref.ref(q))
        loop.call_later(100, lambda x: None, q)
    r = Payload()
    refs.append(weakref.ref(r))
    loop.add_reader(a, lambda x: None, r)
    w = Payload()
    refs.append(weakref.ref(w))
    io = engine.IO(loop, b, engine.READ, lambda wt, ev: None, data=w)
    io.start()
    del p, q, r, w
    gc.collect()                       # once for all 102 (a collection per ref is slow)
    assert not any(x() is None for x in refs)
    loop.close()
    io.data = None
    gc.collect()
    assert all(x() is None for x in refs)
    a.close()
    b.close()


def test_remove_reader_releases_handle(loop):
    a, b = socket.socketpair()
    p = Payload()
    ref = weakref.ref(p)
    loop.add_reader(a, lambda x: None, p)
    del p
    assert not _released(ref)
    assert loop.remove_reader(a)
    assert _released(ref)
    a.close()
    b.close()


def test_handle_survives_while_only_the_loop_holds_it(loop):
    # the caller drops every reference; the loop's ring/heap keep the handles alive and valid
    got = []
    for i in range(1000):
        loop.call_soon(got.append, i)
        loop.call_later(0.001 * (i % 5), got.append, -i)
    gc.collect()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert sorted(got) == sorted(list(range(1000)) + [-i for i in range(1000)])


def test_many_loops_created_and_closed_release_everything():
    refs = []
    for _ in range(200):
        lp = engine.new_event_loop()
        refs.append(weakref.ref(lp))
        lp.call_soon(lambda: None)
        lp.call_later(10, lambda: None)
        lp.close()
    del lp
    gc.collect()
    assert all(r() is None for r in refs)

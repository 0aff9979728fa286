"""The timer heap's lazy cancellation: a cancelled timer is counted at once and dropped later
(at the top of the heap, or all together when cancelled ones are over half of it). Behaviour
tests run on engine and on asyncio's own loop (which cancels the same way); the counters are
engine's (loop._stats())."""
import asyncio
import contextvars
import gc
import random
import weakref

from loop_case import on_both_loops

COMPACT_MIN = 100      # pyx/loop/consts.pxi HEAP_COMPACT_MIN


def _noop(*args):
    pass


def test_interleaved_schedule_and_cancel_fire_in_deadline_then_fifo_order(loop):
    """Thousands of timers, most cancelled in random order between new ones (several
    compactions): the live ones fire once each, by deadline, equal deadlines first come first
    (engine's promise: asyncio's heapq does not order equal deadlines)."""
    rng = random.Random(18)
    base = loop.time() + 0.02
    fired = []
    live = {}
    order = []                         # (when, seq, i) of every timer scheduled
    for i in range(4000):
        when = base + rng.randrange(200) * 1e-4      # many equal deadlines
        live[i] = loop.call_at(when, fired.append, i)
        order.append((when, i, i))
        if i % 4 != 3:                 # cancel three timers in four, a random live one
            j = rng.choice(list(live))
            live.pop(j).cancel()
    loop.call_at(base + 0.03, loop.stop)
    loop.run_forever()
    assert fired == [i for _when, _seq, i in sorted(order) if i in live]


def test_live_timer_count_excludes_cancelled_ones(loop):
    handles = [loop.call_later(60 + i * 1e-3, _noop) for i in range(3 * COMPACT_MIN)]
    for n, h in enumerate(handles[:COMPACT_MIN], 1):
        h.cancel()
        assert loop._stats()["timers"] == 3 * COMPACT_MIN - n
    for h in handles[COMPACT_MIN:]:
        h.cancel()
    assert loop._stats()["timers"] == 0
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert loop._stats()["timers"] == 0


def test_scheduled_flag_until_the_heap_drops_the_timer(loop):
    h = loop.call_later(60, _noop)
    keep = loop.call_later(120, _noop)
    assert h._scheduled
    h.cancel()
    assert h.cancelled() and h._scheduled     # still in the heap (asyncio: the same)
    loop.call_soon(loop.stop)
    loop.run_forever()                        # the cancelled top of the heap is dropped
    assert not h._scheduled and keep._scheduled
    keep.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert not keep._scheduled
    done = loop.call_later(0, _noop)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert not done._scheduled and not done.cancelled()


def test_compaction_releases_cancelled_handles(loop):
    handles = [loop.call_later(60, _noop) for _ in range(2 * COMPACT_MIN + 1)]
    refs = [weakref.ref(h) for h in handles]
    for h in handles:
        h.cancel()
    del handles, h
    gc.collect()
    assert all(r() is None for r in refs)     # compacted before the loop ever ran


def test_cancel_after_close_is_harmless(loop):
    hs = [loop.call_later(60, _noop) for _ in range(3 * COMPACT_MIN)]
    loop.close()
    for h in hs:
        h.cancel()
        assert h.cancelled()


class _Reschedules:
    """Its finalizer schedules a timer: run while the heap drops cancelled handles."""

    def __init__(self, loop, fired):
        self.loop, self.fired = loop, fired

    def __del__(self):
        self.loop.call_later(0, self.fired.append, "from a finalizer")


def test_finalizer_scheduling_a_timer_while_cancelled_ones_are_dropped(loop):
    """The contexts of cancelled timers are released when the heap drops them (at the top, or in
    a compaction); a finalizer scheduling a new timer then gets a consistent heap."""
    fired = []
    var = contextvars.ContextVar("v")
    for lazy in (True, False):
        ctx = contextvars.copy_context()
        ctx.run(var.set, _Reschedules(loop, fired))
        contextvars.Context().run(var.set, None)   # (the var caches its last value)
        n = 1 if lazy else 3 * COMPACT_MIN
        hs = [loop.call_later(1e-5 * (i + 1), _noop, context=ctx) for i in range(n)]
        later = loop.call_later(1.0, _noop)
        del ctx
        for h in hs:
            h.cancel()
        del hs, h
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert fired == ["from a finalizer"]
        fired.clear()
        later.cancel()


@on_both_loops
def test_cancel_from_a_timer_callback_of_the_same_iteration(loop):
    """Timers due in the same iteration: one cancelling the next ones (some compacted away)."""
    when = loop.time()
    fired = []
    hs = []

    def first():
        fired.append("first")
        for h in hs[1:]:
            h.cancel()

    hs.append(loop.call_at(when, first))
    hs.extend(loop.call_at(when, fired.append, i) for i in range(3 * COMPACT_MIN))
    hs.append(loop.call_at(when + 0.001, fired.append, "last"))
    hs.pop().cancel()
    loop.call_at(when, fired.append, "kept")
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired == ["first", "kept"]


@on_both_loops
def test_timer_cancelled_in_its_own_callback_and_after_it_ran(loop):
    fired = []
    holder = []

    def cb():
        fired.append(1)
        holder[0].cancel()

    holder.append(loop.call_later(0, cb))
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    holder[0].cancel()
    assert fired == [1] and holder[0].cancelled()
    loop.run_until_complete(asyncio.sleep(0))


# --- call_soon / call_later / call_at arguments (METH_FASTCALL methods on engine) ----------------

@on_both_loops
def test_scheduling_arguments_positional_keyword_and_context(loop):
    fired = []
    var = contextvars.ContextVar("var", default="outer")
    ctx = contextvars.copy_context()
    ctx.run(var.set, "ctx")

    def rec(*args):
        fired.append((*args, var.get()))

    when = loop.time()
    handles = [
        loop.call_soon(rec, "soon"),
        loop.call_soon(callback=rec),
        loop.call_later(0, rec, "later", 2),
        loop.call_later(delay=0, callback=rec),
        loop.call_later(0, callback=rec, context=ctx),
        loop.call_at(when, rec, 1, context=ctx),
        loop.call_at(when=when, callback=rec),
    ]
    assert handles[5].when() == when and handles[2].when() >= when
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    assert fired[:2] == [("soon", "outer"), ("outer",)]          # the ready ones first
    assert sorted(fired[2:], key=repr) == sorted([("later", 2, "outer"), ("outer",), ("ctx",),
                                                  (1, "ctx"), ("outer",)], key=repr)


@on_both_loops
def test_scheduling_argument_errors(loop):
    cb = _noop
    for call, exc, text in [
        (lambda: loop.call_later(None, cb), TypeError, "delay must not be None"),
        (lambda: loop.call_at(None, cb), TypeError, "when cannot be None"),
        (lambda: loop.call_later(0, cb, delay=1), TypeError, "multiple values for argument"),
        (lambda: loop.call_later(0), TypeError, "missing 1 required positional argument"),
        (lambda: loop.call_at(when=1), TypeError, "missing 1 required positional argument"),
        (lambda: loop.call_later(0, cb, foo=1), TypeError, "unexpected keyword argument 'foo'"),
        (lambda: loop.call_soon(), TypeError, "missing 1 required positional argument"),
        (lambda: loop.call_soon(cb, callback=cb), TypeError, "multiple values for argument"),
    ]:
        try:
            call()
        except exc as e:
            assert text in str(e), (text, e)
        else:
            raise AssertionError(f"no {exc.__name__}: {text}")
    loop.close()
    for call in (lambda: loop.call_soon(cb), lambda: loop.call_later(0, cb),
                 lambda: loop.call_at(0, cb)):
        try:
            call()
        except RuntimeError as e:
            assert "closed" in str(e)
        else:
            raise AssertionError("scheduled on a closed loop")


# engine's heap keeps pending timers (and the context copies made for them) out of the cyclic
# garbage collector's sight; once out of the heap, cycles through them are garbage as usual


class _Owner:
    """The usual pattern: an object keeps its own timer, whose callback is its bound method."""

    def __init__(self, loop, delay, cancel=False):
        self.timer = loop.call_later(delay, self.on_timer)
        self.fired = False
        if cancel:
            self.timer.cancel()

    def on_timer(self):
        self.fired = True


def _collected(ref):
    for _ in range(3):
        gc.collect()
    return ref() is None


@on_both_loops
def test_cycle_through_a_fired_timer_is_collected(loop):
    owners = [_Owner(loop, 0.001 * (i % 5)) for i in range(50)]
    refs = [weakref.ref(o) for o in owners]
    loop.run_until_complete(asyncio.sleep(0.02))
    assert all(o.fired for o in owners)
    del owners
    assert all(_collected(r) for r in refs)


@on_both_loops
def test_cycle_through_a_cancelled_timer_is_collected_after_it_leaves_the_heap(loop):
    keep = loop.call_later(60, _noop)
    owners = [_Owner(loop, 30 + i, cancel=True) for i in range(3 * COMPACT_MIN)]
    refs = [weakref.ref(o) for o in owners]
    del owners
    loop.call_soon(loop.stop)
    loop.run_forever()           # compacted: over half of the heap was cancelled
    assert all(_collected(r) for r in refs)
    keep.cancel()


@on_both_loops
def test_cycle_through_a_pending_timer_lives_until_the_loop_is_closed(loop):
    owner = _Owner(loop, 60)
    ref = weakref.ref(owner)
    var = contextvars.ContextVar("var")

    def in_context():
        var.set(owner)             # the timer's context copy refers to the owner too
        loop.call_later(60, _noop)

    contextvars.copy_context().run(in_context)
    del owner
    assert not _collected(ref)               # the loop's heap still holds it: not garbage
    assert ref().timer.when() > loop.time()
    loop.close()
    assert _collected(ref)                   # dropped by the closed loop: a cycle, collected


def test_pending_timers_are_not_scanned_by_the_garbage_collector():
    import engine
    loop = engine.new_event_loop()
    try:
        h = loop.call_later(60, _noop)
        assert not gc.is_tracked(h) and not gc.is_tracked(h.get_context())
        h.cancel()
        assert not gc.is_tracked(h)              # cancelled, still in the heap
        loop.call_soon(loop.stop)
        loop.run_forever()                       # the cancelled head is dropped
        assert gc.is_tracked(h) and gc.is_tracked(h.get_context())
        fired = loop.call_later(0, _noop)
        ctx = contextvars.copy_context()
        own = loop.call_later(60, _noop, context=ctx)
        assert gc.is_tracked(ctx)                # a context of the caller's is left alone
        loop.run_until_complete(asyncio.sleep(0.01))
        assert gc.is_tracked(fired) and gc.is_tracked(fired.get_context())
        own.cancel()
    finally:
        loop.close()

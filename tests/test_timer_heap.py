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

"""The loop suite: event-loop micro-benchmarks, engine vs uvloop vs rloop vs asyncio, in one
pyperf run.

Benchmark names are ``<scenario>[<impl>]``, e.g. ``call_soon[engine]``, and every
benchmark carries the harness's ``bench_*`` metadata (kind, unit, scale, ...; see
engine/bench/report.py), so ``engine bench`` turns the pyperf file into a results
document without knowing these scenarios:

* throughput scenarios: ``bench_time_func`` with ``inner_loops`` = operations per
  outer loop, so pyperf's value is *seconds per operation* (throughput = 1 / value);
* ``wakeup`` (latency): loops = 1, every pyperf value is one wake-up latency sample;
* idle scenarios (cost): the value is *CPU-seconds per wall-second* (lower is better).

It ships with engine (the built-in suite of engine.bench.suites), so it runs wherever engine
and its perf extra are installed. Usually run through ``engine bench loop`` (progress bar,
table, results file); directly as a module with ``-P``, so that a source tree in the cwd never
shadows the installed, compiled package:

    python -P -m engine.bench.loop_suite --fast -o /tmp/loop.json --results results/

The op helpers (call_soon_chain, sleep0_coro, gather_coro, timer_delays, schedule_timers,
cancel_timers, sock_pingpong, streams_pingpong) are shared with the pytest-benchmark regression
suite of a checkout (perf/test_regression.py) and with the suite's callgrind mode
(engine.bench.loop_callgrind: instructions per operation).

All of pyperf's options work (``--fast``, ``--rigorous``, ``-o``, ``--affinity``,
``-v``, ...). Extra options: ``--quick``, ``--impls``/``--loops-impl``, ``--scenarios``,
``--idle-seconds``, ``--results``, ``--repo``, ``--progress``. See perf/README.md.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from engine.bench import results as _results
from engine.bench.suites import checkout

SUITE = "loop"
SUBJECT = "engine"
ALL_IMPLS = ("engine", "uvloop", "rloop", "asyncio")

# Operations per outer pyperf loop (pyperf's ``inner_loops``).
CALL_SOON_N = 10_000
SLEEP0_N = 10_000
GATHER_TASKS = 100
TIMERS_N = 200_000
TIMERS_N_QUICK = 20_000
TIMERS_SPREAD = 0.010  # timer delays spread over [0, 10 ms)
FAR_TIMER_DELAY = 3600.0
WAKEUP_IDLE = 0.001    # the loop sits blocked in its poller this long before each wake-up
IDLE_CPU_THRESHOLD_US = 10_000.0   # an idle loop should burn well under 1% of a CPU

# --quick: fixed loops per value (no calibration process), fewer processes and values
QUICK_LOOPS = {"call_soon": 2, "sleep0": 2, "gather100": 10, "timers": 1, "timer_cancel": 1,
               "sock_pingpong": 1, "streams_pingpong": 1}
PINGPONG_N = 5_000
PING = b"ping"                     # the ping-pong scenarios' message
CANCEL_N = 100_000
QUICK_IDLE_SECONDS = 0.25


def _scenarios(timers_n: int) -> dict[str, dict[str, Any]]:
    """scenario -> harness metadata (bench_kind/label/unit/scale/geomean, description)."""
    return {
        "call_soon": dict(kind="throughput", label="call_soon chain", unit="calls/s", geomean=1,
                          description="callback rescheduling itself with loop.call_soon; "
                                      "value = s per call"),
        "sleep0": dict(kind="throughput", label="await sleep(0)", unit="sleeps/s", geomean=1,
                       description="await asyncio.sleep(0) in a loop; value = s per sleep"),
        "gather100": dict(kind="throughput", label=f"gather({GATHER_TASKS} tasks)",
                          unit="gathers/s", geomean=1,
                          description=f"asyncio.gather of {GATHER_TASKS} tasks each awaiting "
                                      "sleep(0) once; value = s per gather"),
        "timers": dict(kind="throughput", label=f"{timers_n // 1000}k call_later",
                       unit="timers/s", geomean=1,
                       description=f"{timers_n} call_later timers, delays spread over "
                                   f"[0, {TIMERS_SPREAD * 1e3:g} ms), schedule + run until all "
                                   "fired; value = s per timer"),
        "timer_cancel": dict(kind="throughput", label="call_later + cancel", unit="timers/s",
                             geomean=0,
                             description=f"{CANCEL_N} call_later timers far in the future, all "
                                         "cancelled, then one loop iteration (the cost of "
                                         "cancellation); value = s per timer; not in the geomean"),
        "sock_pingpong": dict(kind="throughput", label="sock_* ping-pong", unit="round trips/s",
                              geomean=0,
                              description=f"{PINGPONG_N} round trips of 4 bytes over a socketpair "
                                          "with loop.sock_sendall/sock_recv, both ends in one "
                                          "loop (the loop's socket path, no network); value = s "
                                          "per round trip; not in the geomean"),
        "streams_pingpong": dict(kind="throughput", label="streams ping-pong",
                                 unit="round trips/s", geomean=0,
                                 description=f"{PINGPONG_N} round trips of 4 bytes over a "
                                             "socketpair through asyncio streams "
                                             "(open_connection(sock=...), write, readexactly), "
                                             "both ends in one loop; value = s per round trip; "
                                             "not in the geomean"),
        "wakeup": dict(kind="latency", label="threadsafe wake-up", unit="µs", scale=1e6,
                       description="latency from call_soon_threadsafe() in another thread to "
                                   f"the callback, the loop blocked in its poller for "
                                   f"{WAKEUP_IDLE * 1e3:g} ms before; value = one sample, s"),
        "idle": dict(kind="cost", label="idle loop CPU", unit="CPU µs/s", scale=1e6,
                     threshold=IDLE_CPU_THRESHOLD_US,
                     description="idle run_forever (no handles, stopped from a thread via "
                                 "call_soon_threadsafe); value = process CPU-s per wall-s"),
        "idle_far_timer": dict(kind="cost", label="idle + far timer CPU", unit="CPU µs/s",
                               scale=1e6, threshold=IDLE_CPU_THRESHOLD_US,
                               description=f"as idle, with one call_later({FAR_TIMER_DELAY:g}) "
                                           "timer pending; value = process CPU-s per wall-s"),
    }


SCENARIOS = _scenarios(TIMERS_N)
IDLE_SCENARIOS = ("idle", "idle_far_timer")


# --------------------------------------------------------------------------- ops
# The work of the throughput scenarios, untimed (perf/test_regression.py times them too).

def call_soon_chain(loop: Any, n: int) -> Any:
    """A callback rescheduling itself with loop.call_soon n times; the future is done after
    the n-th call."""
    fut = loop.create_future()
    remaining = n

    def cb() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining:
            loop.call_soon(cb)
        else:
            fut.set_result(n)

    loop.call_soon(cb)
    return fut


async def sleep0_coro(n: int) -> None:
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


async def _gather_child() -> None:
    await asyncio.sleep(0)


async def gather_coro(n: int, tasks: int = GATHER_TASKS) -> None:
    """n rounds of asyncio.gather of ``tasks`` tasks, each awaiting sleep(0) once."""
    gather = asyncio.gather
    rng = range(tasks)
    for _ in range(n):
        await gather(*[_gather_child() for _ in rng])


def timer_delays(n: int, spread: float = TIMERS_SPREAD) -> list[float]:
    """n deterministic, scrambled delays in [0, spread): 10007 is prime, so i*7919 % 10007 is
    a permutation of 0..10006 (out-of-order inserts in the timer heap)."""
    return [((i * 7919) % 10007) * (spread / 10007) for i in range(n)]


def schedule_timers(loop: Any, delays: list[float]) -> Any:
    """One loop.call_later per delay; the future is done when all of them have fired."""
    fut = loop.create_future()
    n = len(delays)
    fired = 0

    def cb() -> None:
        nonlocal fired
        fired += 1
        if fired == n:
            fut.set_result(fired)

    call_later = loop.call_later
    for d in delays:
        call_later(d, cb)
    return fut


def cancel_timers(loop: Any, n: int) -> None:
    """n call_later timers far in the future, each cancelled, then one loop iteration (the
    stopped loop's run_forever): the cost of scheduling and cancelling a timer."""
    call_later = loop.call_later
    handles = [call_later(60.0 + i * 1e-6, _noop) for i in range(n)]
    for h in handles:
        h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()


def _no_clock() -> float:
    return 0.0


async def sock_pingpong(loop: Any, n: int, clock: Callable[[], float] = _no_clock) -> float:
    """n round trips of PING over a socketpair with loop.sock_sendall/sock_recv, an echoing
    task at the other end, both in ``loop``; returns clock() after the n-th minus before the
    first."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    try:
        async def echo() -> None:
            for _ in range(n):
                await loop.sock_sendall(b, await loop.sock_recv(b, 64))

        server = loop.create_task(echo())
        t0 = clock()
        for _ in range(n):
            await loop.sock_sendall(a, PING)
            if await loop.sock_recv(a, 64) != PING:
                raise RuntimeError("ping-pong lost data")
        dt = clock() - t0
        await server
        return dt
    finally:
        a.close()
        b.close()


async def streams_pingpong(loop: Any, n: int,
                           clock: Callable[[], float] = _no_clock) -> float:
    """As sock_pingpong, through asyncio streams (open_connection(sock=...) at both ends of a
    socketpair: the loop's transports, StreamReader.readexactly, StreamWriter.write)."""
    a, b = socket.socketpair()
    try:
        ra, wa = await asyncio.open_connection(sock=a)
        rb, wb = await asyncio.open_connection(sock=b)
    except BaseException:
        a.close()
        b.close()
        raise
    size = len(PING)
    try:
        async def echo() -> None:
            for _ in range(n):
                wb.write(await rb.readexactly(size))

        server = loop.create_task(echo())
        t0 = clock()
        for _ in range(n):
            wa.write(PING)
            if await ra.readexactly(size) != PING:
                raise RuntimeError("ping-pong lost data")
        dt = clock() - t0
        await server
        return dt
    finally:
        wa.close()
        wb.close()
        await wa.wait_closed()
        await wb.wait_closed()


# --------------------------------------------------------------------------- loop factories

def _build_id(path: str) -> str:
    """Short sha256 of a compiled module: tells apart rebuilds with the same version."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return "unknown"


def loop_factory(impl: str) -> tuple[Callable[[], Any], str, str, str]:
    """Return (factory, version, module file, build id) or raise ImportError."""
    if impl == "engine":
        import engine
        import engine._loop
        return (engine.new_event_loop, getattr(engine, "__version__", "?"), engine.__file__,
                _build_id(engine._loop.__file__))
    if impl == "uvloop":
        import uvloop
        import uvloop.loop
        return (uvloop.new_event_loop, getattr(uvloop, "__version__", "?"), uvloop.__file__,
                _build_id(uvloop.loop.__file__))
    if impl == "rloop":
        import rloop  # granian's author's loop, in Rust (PyPI: rloop)
        import rloop._rloop
        return (rloop.new_event_loop, getattr(rloop, "__version__", "?"), rloop.__file__,
                _build_id(rloop._rloop.__file__))
    if impl == "asyncio":
        # CPython's default loop, independent of any installed policy.
        if sys.platform == "win32":
            factory = asyncio.ProactorEventLoop
        else:
            factory = asyncio.SelectorEventLoop
        return factory, sys.version.split()[0], asyncio.__file__, "stdlib"
    raise ValueError(f"unknown loop implementation {impl!r}")


# --------------------------------------------------------------------------- scenarios
# Each function takes (loops, factory[, ...]) and returns elapsed seconds for
# loops * inner_loops operations. Loop creation/closing is never timed.

def _timed(factory, start):
    """Seconds until the awaitable ``start(loop)`` completes on a fresh loop (creating and
    closing the loop is not timed; ``start`` itself is)."""
    loop = factory()
    try:
        t0 = time.perf_counter()
        loop.run_until_complete(start(loop))
        dt = time.perf_counter() - t0
    finally:
        loop.close()
    return dt


def bench_call_soon(loops, factory):
    return _timed(factory, lambda loop: call_soon_chain(loop, loops * CALL_SOON_N))


def bench_sleep0(loops, factory):
    return _timed(factory, lambda loop: sleep0_coro(loops * SLEEP0_N))


def bench_gather100(loops, factory):
    return _timed(factory, lambda loop: gather_coro(loops))


def bench_timers(loops, factory, n):
    delays = timer_delays(n)
    return sum(_timed(factory, lambda loop: schedule_timers(loop, delays))
               for _ in range(loops))


def bench_timer_cancel(loops, factory, n):
    total = 0.0
    for _ in range(loops):
        loop = factory()
        try:
            t0 = time.perf_counter()
            cancel_timers(loop, n)
            total += time.perf_counter() - t0
        finally:
            loop.close()
    return total


def bench_sock_pingpong(loops, factory, n):
    return _bench_pingpong(loops, factory, sock_pingpong, n)


def bench_streams_pingpong(loops, factory, n):
    return _bench_pingpong(loops, factory, streams_pingpong, n)


def _bench_pingpong(loops, factory, pingpong, n):
    """Sum over loops of the seconds n round trips take (the socketpair's set-up and the
    echoing task's end are not timed)."""
    total = 0.0
    for _ in range(loops):
        loop = factory()
        try:
            total += loop.run_until_complete(pingpong(loop, n, time.perf_counter))
        finally:
            loop.close()
    return total


def bench_wakeup(loops, factory):
    """Sum of ``loops`` cross-thread wake-up latencies (run with loops=1: one sample)."""
    loop = factory()
    total = 0.0
    try:
        for _ in range(loops):
            fut = loop.create_future()

            def cb(t0, fut=fut):
                fut.set_result(time.perf_counter() - t0)

            def send():
                time.sleep(WAKEUP_IDLE)            # the loop is blocked in its poller by now
                loop.call_soon_threadsafe(cb, time.perf_counter())

            th = threading.Thread(target=send)
            th.start()
            total += loop.run_until_complete(fut)
            th.join()
    finally:
        loop.close()
    return total


def _noop() -> None:
    pass


def bench_idle(loops, factory, seconds, far_timer):
    """Sum over loops of CPU-s/wall-s while the loop sits idle for ``seconds``."""
    total = 0.0
    for _ in range(loops):
        loop = factory()
        try:
            if far_timer:
                loop.call_later(FAR_TIMER_DELAY, _noop)
            # one iteration first, so lazy set-up is not counted as idle cost
            loop.run_until_complete(asyncio.sleep(0))
            stopper = threading.Timer(seconds, loop.call_soon_threadsafe, args=(loop.stop,))
            stopper.start()
            c0 = time.process_time()
            t0 = time.perf_counter()
            loop.run_forever()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            stopper.join()
            if wall < 0.5 * seconds:
                raise RuntimeError(f"idle loop returned early after {wall:.3f}s")
            total += cpu / wall
        finally:
            loop.close()
    # pyperf rejects an exact zero; a 1e-12 floor is far below clock resolution
    return max(total, 1e-12)


# --------------------------------------------------------------------------- runner

def _csv(text: str, allowed: tuple[str, ...], what: str) -> list[str]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def _add_worker_args(cmd, args):
    cmd.extend(("--loops-impl", args.loops_impl, "--scenarios", args.scenarios,
                "--idle-seconds", repr(args.idle_seconds), "--repo", args.repo or "",
                "--bench-mode", args.bench_mode))
    if args.quick:
        cmd.append("--quick")


class _Progress:
    """JSON lines for ``engine bench``'s progress bar (parent process only).

    ``{"event": "plan", "benchmarks": [[name, processes], ...]}`` once, then
    ``{"event": "start"|"done", "name": name}`` around each benchmark. Between them the
    bar interpolates with the dots pyperf prints per finished worker process.
    """

    def __init__(self, path):
        self._f = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def emit(self, **event):
        if self._f:
            self._f.write(json.dumps(event) + "\n")

    def close(self):
        if self._f:
            self._f.close()


def _mode(args, impls, scenarios):
    """quick / full (the standard settings: comparable across runs) / custom."""
    if args.quick:
        return "quick"
    full = (set(scenarios) == set(SCENARIOS) and set(impls) == set(ALL_IMPLS)
            and args.processes >= 20 and args.values >= 3 and not args.loops
            and args.min_time >= 0.1 and args.idle_seconds == 1.0
            and not args.debug_single_value)
    return "full" if full else "custom"


def _processes(sc, args):
    """Worker processes of a scenario (the parent's view)."""
    p = args.processes
    if args.quick:
        return 1 if sc in (*IDLE_SCENARIOS, "wakeup") else p
    if sc in IDLE_SCENARIOS:
        return max(3, p // 5)
    if sc in ("timers", "wakeup"):
        return max(3, p // 2)
    return p


def main():
    import pyperf

    quick = "--quick" in sys.argv[1:]
    # workers run the way this process runs: as this module (-P -m), or as a file
    program = ("-P", "-m", __spec__.name) if __spec__ is not None else None
    runner = pyperf.Runner(add_cmdline_args=_add_worker_args, program_args=program,
                           processes=2 if quick else None,
                           warmups=1 if quick else None)
    p = runner.argparser
    p.add_argument("--quick", action="store_true",
                   help="rough numbers in well under a minute: 2 processes, fixed loops, "
                        f"{TIMERS_N_QUICK // 1000}k timers, {QUICK_IDLE_SECONDS} s idle, "
                        "1 process for the idle and wake-up scenarios")
    p.add_argument("--impls", "--loops-impl", dest="loops_impl", default=",".join(ALL_IMPLS),
                   help="comma-separated loop implementations (default: %(default)s)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated scenarios (default: %(default)s)")
    p.add_argument("--idle-seconds", type=float, default=None,
                   help="wall time of one idle measurement (default: 1.0, "
                        f"{QUICK_IDLE_SECONDS} with --quick)")
    p.add_argument("--results", metavar="PATH", default=None,
                   help="after the run, write the results JSON to PATH ('{date}' is replaced "
                        "by the UTC date); a directory: the standard name "
                        "<suite>-<UTC time>-<commit>[-<mode>].json in it")
    p.add_argument("--repo", default=None,
                   help="git checkout of engine whose commit is recorded (default: the one "
                        "around the cwd, if any; '' = none)")
    p.add_argument("--no-table", action="store_true", help="don't print the comparison table")
    p.add_argument("--progress", metavar="PATH", default=None,
                   help="append progress events (JSON lines) to PATH (used by engine bench)")
    p.add_argument("--bench-mode", default="", help=argparse.SUPPRESS)  # parent -> workers
    args = runner.parse_args()
    if args.repo is None:
        args.repo = str(checkout() or "")
    if args.idle_seconds is None:
        args.idle_seconds = QUICK_IDLE_SECONDS if args.quick else 1.0

    impls = _csv(args.loops_impl, ALL_IMPLS, "loop implementation")
    scenarios = _csv(args.scenarios, tuple(SCENARIOS), "scenario")
    is_worker = args.worker
    timers_n = TIMERS_N_QUICK if args.quick else TIMERS_N
    scenario_info = _scenarios(timers_n)

    factories = {}
    for impl in impls:
        try:
            factories[impl] = loop_factory(impl)
        except ImportError as exc:
            # workers get the parent's resolved list: they must not diverge from it
            if impl == "engine" or is_worker:
                raise SystemExit(f"cannot import {impl}: {exc}") from exc
            print(f"SKIP {impl}: not importable ({exc}); "
                  "install the peers with: pip install 'engine[perf]'", file=sys.stderr)
    impls = [i for i in impls if i in factories]
    if not impls:
        raise SystemExit("no loop implementation available")
    args.loops_impl = ",".join(impls)   # forwarded to workers by _add_worker_args
    if not is_worker:
        args.bench_mode = _mode(args, impls, scenarios)

    runner.metadata["bench_suite"] = SUITE
    runner.metadata["bench_mode"] = args.bench_mode or "custom"
    # git state at run time (the report may be made later, on another checkout)
    for key, git_args in (("bench_git_commit", ("rev-parse", "HEAD")),
                          ("bench_git_describe", ("describe", "--always", "--dirty"))):
        value = _results.git(args.repo, *git_args) if args.repo else None
        if value:
            runner.metadata[key] = value

    progress = _Progress(None if is_worker else args.progress)
    progress.emit(event="plan", mode=args.bench_mode,
                  benchmarks=[[f"{sc}[{impl}]", _processes(sc, args)]
                              for sc in scenarios for impl in impls])
    benches = []
    for sc in scenarios:           # scenario outer, impl inner: drift hits all impls alike
        info = scenario_info[sc]
        for impl in impls:
            factory, version, modfile, build = factories[impl]
            md = {
                "description": info["description"],
                "bench_scenario": sc,
                "bench_impl": impl,
                "bench_kind": info["kind"],
                "bench_label": info["label"],
                "bench_unit": info["unit"],
                "bench_scale": float(info.get("scale", 1.0)),
                "bench_geomean": int(info.get("geomean", 0)),
                "bench_impl_version": version,
                "bench_impl_file": modfile,
                "bench_impl_build": build,
            }
            if "threshold" in info:
                md["bench_threshold"] = float(info["threshold"])
            name = f"{sc}[{impl}]"
            progress.emit(event="start", name=name)
            procs = {"processes": _processes(sc, args)}
            if sc in IDLE_SCENARIOS:
                bench = _run_idle(runner, name, factory, sc == "idle_far_timer", md, procs)
            elif sc == "wakeup":
                # one value = one sample; more values per process instead of calibration
                n = (60, 3) if args.quick else (200, 10)
                with _parent_args(runner, loops=1, values=n[0], warmups=n[1], **procs):
                    bench = runner.bench_time_func(name, bench_wakeup, factory, metadata=md)
            else:
                func, inner, extra = {
                    "call_soon": (bench_call_soon, CALL_SOON_N, ()),
                    "sleep0": (bench_sleep0, SLEEP0_N, ()),
                    "gather100": (bench_gather100, 1, ()),
                    "timers": (bench_timers, timers_n, (timers_n,)),
                    "timer_cancel": (bench_timer_cancel, CANCEL_N, (CANCEL_N,)),
                    "sock_pingpong": (bench_sock_pingpong, PINGPONG_N, (PINGPONG_N,)),
                    "streams_pingpong": (bench_streams_pingpong, PINGPONG_N, (PINGPONG_N,)),
                }[sc]
                overrides = dict(procs)
                if args.quick and not args.loops:
                    overrides["loops"] = QUICK_LOOPS[sc]
                # (full run: one timers value is a whole 200k batch, 0.3-2 s >> min_time,
                # so half the worker processes keeps the suite's duration reasonable)
                with _parent_args(runner, **overrides):
                    bench = runner.bench_time_func(name, func, factory, *extra,
                                                   inner_loops=inner, metadata=md)
            progress.emit(event="done", name=name)
            if bench is not None:
                benches.append(bench)
    progress.close()

    if is_worker or not benches or (args.no_table and not args.results):
        return
    from engine.bench import report as _report

    doc = _report.build_result(pyperf.BenchmarkSuite(benches), suite=SUITE, subject=SUBJECT,
                               peers=[i for i in impls if i != SUBJECT], mode=args.bench_mode,
                               command="python " + " ".join(sys.argv), repo=args.repo or None)
    if not args.no_table:
        print()
        print(_results.format_table(doc))
    if args.results:
        print(f"\nresults written to {_results.write_to(doc, args.results)}")


@contextlib.contextmanager
def _parent_args(runner, **overrides):
    """Temporarily override pyperf options in the parent (manager) process only.

    The Manager passes --loops/--warmups/--values on each worker's command line and
    reads --processes itself, so workers need no override.
    """
    args = runner.args
    if args.worker or not overrides:
        yield
        return
    saved = {k: getattr(args, k) for k in overrides}
    for k, v in overrides.items():
        setattr(args, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(args, k, v)


def _run_idle(runner, name, factory, far_timer, md, procs):
    """Idle scenarios: loops=1, no warmup, fewer processes; one value = idle_seconds wall.

    pyperf's loop calibration doubles loops until a value takes >= min_time, which is
    meaningless for a ~0 CPU ratio (and each loop costs idle_seconds of wall time).
    """
    args = runner.args
    md = dict(md, bench_idle_seconds=args.idle_seconds)
    extra = {"values": 2} if args.quick else {}
    with _parent_args(runner, loops=1, warmups=0, **procs, **extra):
        return runner.bench_time_func(name, bench_idle, factory, args.idle_seconds, far_timer,
                                      metadata=md)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Event-loop micro-benchmarks: engine vs uvloop vs asyncio, in one pyperf run.

Benchmark names are ``<scenario>[<impl>]``, e.g. ``call_soon[engine]``.
Each benchmark is a pyperf ``bench_time_func`` with ``inner_loops`` set to the
number of operations per outer loop, so pyperf's value is *seconds per
operation* (throughput = 1 / value), except the idle scenarios, whose value is
*CPU-seconds per wall-second* (lower is better).

Run it as a script (not ``python -m``), so ``import engine`` resolves to the
installed package and not to the source tree:

    python perf/bench_loop.py --fast -o /tmp/loop.json --results results/loop-$(date +%F).json

All of pyperf's options work (``--fast``, ``--rigorous``, ``-o``, ``--affinity``,
``-v``, ...). Extra options: ``--loops-impl``, ``--scenarios``, ``--idle-seconds``,
``--results``, ``--repo``. See perf/README.md.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time

import pyperf

ALL_IMPLS = ("engine", "uvloop", "asyncio")

# Operations per outer pyperf loop (pyperf's ``inner_loops``).
CALL_SOON_N = 10_000
SLEEP0_N = 10_000
GATHER_TASKS = 100
TIMERS_N = 200_000
TIMERS_SPREAD = 0.010  # timer delays spread over [0, 10 ms)
FAR_TIMER_DELAY = 3600.0

# scenario -> description (stored as pyperf metadata)
SCENARIOS = {
    "call_soon": "callback rescheduling itself with loop.call_soon; value = s per call",
    "sleep0": "await asyncio.sleep(0) in a loop; value = s per sleep",
    "gather100": f"asyncio.gather of {GATHER_TASKS} tasks each awaiting sleep(0) once; "
                 "value = s per gather",
    "timers": f"{TIMERS_N} call_later timers, delays spread over [0, {TIMERS_SPREAD * 1e3:g} ms), "
              "schedule + run until all fired; value = s per timer",
    "idle": "idle run_forever (no handles, stopped from a thread via call_soon_threadsafe); "
            "value = process CPU-s per wall-s (lower is better)",
    "idle_far_timer": f"as idle, with one call_later({FAR_TIMER_DELAY:g}) timer pending; "
                      "value = process CPU-s per wall-s (lower is better)",
}
IDLE_SCENARIOS = ("idle", "idle_far_timer")

# Deterministic, scrambled delays in [0, TIMERS_SPREAD): 10007 is prime, so
# i*7919 % 10007 is a permutation of 0..10006 (out-of-order inserts in the heap).
_TIMER_DELAYS = [((i * 7919) % 10007) * (TIMERS_SPREAD / 10007) for i in range(TIMERS_N)]


# --------------------------------------------------------------------------- loop factories

def _build_id(path):
    """Short sha256 of a compiled module: tells apart rebuilds with the same version."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return "unknown"


def _loop_factory(impl):
    """Return (factory, version, module file, build id) or raise ImportError."""
    if impl == "engine":
        import engine
        import engine._loop
        return (engine.new_event_loop, getattr(engine, "__version__", "?"), engine.__file__,
                _build_id(engine._loop.__file__))
    if impl == "uvloop":
        import uvloop
        import uvloop.loop
        return (uvloop.new_event_loop, uvloop.__version__, uvloop.__file__,
                _build_id(uvloop.loop.__file__))
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

def bench_call_soon(loops, factory):
    n = loops * CALL_SOON_N
    loop = factory()
    try:
        fut = loop.create_future()
        remaining = n

        def cb():
            nonlocal remaining
            remaining -= 1
            if remaining:
                loop.call_soon(cb)
            else:
                fut.set_result(None)

        loop.call_soon(cb)
        t0 = time.perf_counter()
        loop.run_until_complete(fut)
        dt = time.perf_counter() - t0
        assert remaining == 0
    finally:
        loop.close()
    return dt


async def _sleep0_main(n):
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


def bench_sleep0(loops, factory):
    loop = factory()
    try:
        coro = _sleep0_main(loops * SLEEP0_N)
        t0 = time.perf_counter()
        loop.run_until_complete(coro)
        dt = time.perf_counter() - t0
    finally:
        loop.close()
    return dt


async def _gather_child():
    await asyncio.sleep(0)


async def _gather_main(loops):
    gather = asyncio.gather
    rng = range(GATHER_TASKS)
    for _ in range(loops):
        await gather(*[_gather_child() for _ in rng])


def bench_gather100(loops, factory):
    loop = factory()
    try:
        coro = _gather_main(loops)
        t0 = time.perf_counter()
        loop.run_until_complete(coro)
        dt = time.perf_counter() - t0
    finally:
        loop.close()
    return dt


def bench_timers(loops, factory):
    total = 0.0
    delays = _TIMER_DELAYS
    for _ in range(loops):
        loop = factory()
        try:
            fut = loop.create_future()
            fired = 0

            def cb():
                nonlocal fired
                fired += 1
                if fired == TIMERS_N:
                    fut.set_result(None)

            call_later = loop.call_later
            t0 = time.perf_counter()
            for d in delays:
                call_later(d, cb)
            loop.run_until_complete(fut)
            total += time.perf_counter() - t0
            assert fired == TIMERS_N, fired
        finally:
            loop.close()
    return total


def _noop():
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

def _git(repo, *git_args):
    try:
        out = subprocess.run(["git", "-C", repo, *git_args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _csv(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def _add_worker_args(cmd, args):
    cmd.extend(("--loops-impl", args.loops_impl, "--scenarios", args.scenarios,
                "--idle-seconds", repr(args.idle_seconds), "--repo", args.repo))


def main():
    runner = pyperf.Runner(add_cmdline_args=_add_worker_args)
    p = runner.argparser
    p.add_argument("--loops-impl", default=",".join(ALL_IMPLS),
                   help="comma-separated loop implementations (default: %(default)s)")
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated scenarios (default: %(default)s)")
    p.add_argument("--idle-seconds", type=float, default=1.0,
                   help="wall time of one idle measurement (default: %(default)s)")
    p.add_argument("--results", metavar="PATH", default=None,
                   help="after the run, write the comparison results JSON to PATH")
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   help="git repository whose commit is recorded (default: %(default)s)")
    p.add_argument("--no-table", action="store_true", help="don't print the comparison table")
    args = runner.parse_args()

    impls = _csv(args.loops_impl, ALL_IMPLS, "loop implementation")
    scenarios = _csv(args.scenarios, tuple(SCENARIOS), "scenario")
    is_worker = args.worker

    factories = {}
    for impl in impls:
        try:
            factories[impl] = _loop_factory(impl)
        except ImportError as exc:
            # workers get the parent's resolved list: they must not diverge from it
            if impl == "engine" or is_worker:
                raise SystemExit(f"cannot import {impl}: {exc}")
            print(f"SKIP {impl}: not importable ({exc}); "
                  "install the peers with: pip install '.[perf]'", file=sys.stderr)
    impls = [i for i in impls if i in factories]
    if not impls:
        raise SystemExit("no loop implementation available")
    args.loops_impl = ",".join(impls)   # forwarded to workers by _add_worker_args

    runner.metadata["loop_impls"] = ",".join(impls)
    # git state at run time (compare_loop.py may run later, on another checkout)
    for key, git_args in (("loop_git_commit", ("rev-parse", "HEAD")),
                          ("loop_git_describe", ("describe", "--always", "--dirty"))):
        value = _git(args.repo, *git_args)
        if value:
            runner.metadata[key] = value

    benches = []
    for sc in scenarios:           # scenario outer, impl inner: drift hits all impls alike
        for impl in impls:
            factory, version, modfile, build = factories[impl]
            md = {
                "loop_impl_build": build,
                "description": SCENARIOS[sc],
                "loop_scenario": sc,
                "loop_impl": impl,
                "loop_impl_version": version,
                "loop_impl_file": modfile,
            }
            name = f"{sc}[{impl}]"
            if sc in IDLE_SCENARIOS:
                md["loop_metric"] = "cpu_seconds_per_wall_second"
                bench = _run_idle(runner, name, factory, sc == "idle_far_timer", md)
            else:
                md["loop_metric"] = "seconds_per_op"
                func, inner = {
                    "call_soon": (bench_call_soon, CALL_SOON_N),
                    "sleep0": (bench_sleep0, SLEEP0_N),
                    "gather100": (bench_gather100, 1),
                    "timers": (bench_timers, TIMERS_N),
                }[sc]
                md["loop_ops_per_value"] = inner
                # one timers value is a whole 200k batch (0.3-2 s, >> min_time):
                # half the worker processes keeps the suite's duration reasonable
                overrides = {"processes": max(3, args.processes // 2)} if sc == "timers" else {}
                with _parent_args(runner, **overrides):
                    bench = runner.bench_time_func(name, func, factory, inner_loops=inner,
                                                   metadata=md)
            if bench is not None:
                benches.append(bench)

    if is_worker or not benches:
        return
    import compare_loop  # perf/ is sys.path[0] when run as a script

    suite = pyperf.BenchmarkSuite(benches)
    report = compare_loop.build_report(suite, repo=args.repo)
    if not args.no_table:
        print()
        compare_loop.print_table(report)
    if args.results:
        out = compare_loop.write_results(report, args.results)
        print(f"\nresults written to {out}")


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


def _run_idle(runner, name, factory, far_timer, md):
    """Idle scenarios: loops=1, no warmup, fewer processes; one value = idle_seconds wall.

    pyperf's loop calibration doubles loops until a value takes >= min_time, which is
    meaningless for a ~0 CPU ratio (and each loop costs idle_seconds of wall time).
    """
    args = runner.args
    md = dict(md, loop_idle_seconds=args.idle_seconds)
    with _parent_args(runner, loops=1, warmups=0, processes=max(3, args.processes // 5)):
        return runner.bench_time_func(name, bench_idle, factory, args.idle_seconds, far_timer,
                                      metadata=md)


if __name__ == "__main__":
    main()

"""The loop suite's callgrind mode: instructions per operation of each event loop, by valgrind.

    engine bench loop-callgrind [--quick] [--scenarios ...] [--impls engine,rloop,...]
    python -P -m engine.bench.loop_callgrind [--ops N] [--annotate DIR] [--results DIR]

The throughput scenarios of the loop suite (engine.bench.loop_suite: the same op helpers) run in
a fresh Python process per loop implementation under valgrind's callgrind, twice: a warm-up of
``WARMUP`` operations then N more, and the warm-up alone; (Ir(N) - Ir(0)) / N is the
instructions one operation costs in that process (interpreter, asyncio's Task and Future, the
loop), startup, imports and warm-up cancelled out (engine.bench.callgrind). Deterministic: the
same binaries and input give the same counts on a busy machine, where timed runs cannot compare
two implementations of a path; counts say nothing about cache misses or time spent in the
kernel (a timed run on a quiet machine still decides speed).

The results document (suite ``loop-callgrind``, kind ``cost``, unit ``Ir/op``, engine/peer
ratios < 1 = engine executes fewer instructions) goes next to the timed loop suite's, so
``engine dashboard`` and results/README.md show both. ``--annotate DIR`` keeps the callgrind
files and prints, per run, the functions with the most self instructions per op (engine's have
names only in a build installed with ``pip install -C install.strip=false .``).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from engine.bench import callgrind as cg
from engine.bench import loop_suite as L
from engine.bench import results as R
from engine.bench.suites import checkout

SUITE = "loop-callgrind"
WARMUP = 200     # operations run before counting (every run): caches, freelists, specialisation


def _until_complete(make: Callable[[Any, int], Any]) -> Callable[[Any, int], None]:
    return lambda loop, n: loop.run_until_complete(make(loop, n))


def _timers(loop: Any, n: int) -> None:
    loop.run_until_complete(L.schedule_timers(loop, L.timer_delays(n)))


# scenario -> (operations counted by default, run(loop, n): n operations on a running-able loop)
# One op is what the timed suite's value is per (L.SCENARIOS[...]["description"]).
SCENARIOS: dict[str, tuple[int, Callable[[Any, int], None]]] = {
    "call_soon": (20_000, _until_complete(L.call_soon_chain)),
    "sleep0": (10_000, _until_complete(lambda loop, n: L.sleep0_coro(n))),
    "gather100": (200, _until_complete(lambda loop, n: L.gather_coro(n))),
    "timers": (L.TIMERS_N_QUICK, _timers),      # the heap's depth counts: the timed sizes
    "timer_cancel": (L.CANCEL_N, L.cancel_timers),
    "sock_pingpong": (2_000, _until_complete(L.sock_pingpong)),
    "streams_pingpong": (2_000, _until_complete(L.streams_pingpong)),
}
QUICK_DIVISOR = 10          # --quick: a tenth of the operations (counts per op barely move)
IMPLS = L.ALL_IMPLS


def child(impl: str, scenario: str, n: int) -> None:
    """The counted process: WARMUP operations, then n more, on a fresh loop of ``impl``."""
    factory = L.loop_factory(impl)[0]
    run = SCENARIOS[scenario][1]
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        run(loop, WARMUP)
        if n:
            run(loop, n)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


def _argv(impl: str, scenario: str, n: int) -> list[str]:
    return [sys.executable, "-P", "-m", "engine.bench.loop_callgrind", "--child", impl, scenario,
            str(n)]


def measure(impl: str, scenario: str, n: int, *, keep: str | None = None,
            timeout: float | None = None) -> dict[str, float]:
    """Ir per op of ``scenario`` on ``impl`` (and the two runs' totals): (Ir(n) - Ir(0)) / n.
    With ``keep`` (a path prefix), the callgrind files stay as KEEP-0.cg and KEEP-N.cg."""
    with tempfile.TemporaryDirectory(prefix="loop-cg-") as tmp:
        runs = []
        for ops in (0, n):
            out = f"{keep}-{ops}.cg" if keep else os.path.join(tmp, f"cg-{ops}.out")
            runs.append(cg.count(_argv(impl, scenario, ops), out, cwd=tmp, timeout=timeout)["Ir"])
    return {"ir_per_op": (runs[1] - runs[0]) / n, "ir_base": runs[0], "ir_full": runs[1]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 4 and argv[0] == "--child":
        child(argv[1], argv[2], int(argv[3]))
        return 0
    p = argparse.ArgumentParser(prog="python -P -m engine.bench.loop_callgrind",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated scenarios (default: %(default)s)")
    p.add_argument("--impls", "--loops-impl", dest="impls", default=",".join(IMPLS),
                   help="comma-separated loop implementations (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help=f"1/{QUICK_DIVISOR} of the operations of each scenario")
    p.add_argument("--ops", type=int, default=None,
                   help="operations counted per scenario (default: each scenario's own)")
    p.add_argument("--results", metavar="DIR",
                   help="directory to write loop-callgrind-<UTC>-<commit>[-<mode>].json into")
    p.add_argument("--annotate", metavar="DIR",
                   help="keep the callgrind files in DIR and print the top functions per op")
    p.add_argument("--top", type=int, default=25, help="functions printed by --annotate")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per callgrind run")
    p.add_argument("--repo", default=None, help="git checkout whose commit is recorded")
    args = p.parse_args(argv)
    scenarios = L._csv(args.scenarios, tuple(SCENARIOS), "scenario")
    impls = L._csv(args.impls, IMPLS, "loop implementation")
    if args.ops is not None and args.ops < 1:
        p.error("--ops must be >= 1")
    if not cg.available():
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    available = []
    for impl in impls:
        try:
            L.loop_factory(impl)
        except ImportError as exc:
            if impl == "engine":
                raise SystemExit(f"cannot import engine: {exc}") from exc
            print(f"SKIP {impl}: not importable ({exc})", file=sys.stderr)
            continue
        available.append(impl)
    if args.annotate:
        os.makedirs(args.annotate, exist_ok=True)
    repo = args.repo if args.repo is not None else str(checkout() or "")
    started = R.utc_now()
    t0 = time.monotonic()

    out: dict[str, Any] = {}
    for sc in scenarios:
        n = args.ops or max(SCENARIOS[sc][0] // (QUICK_DIVISOR if args.quick else 1), 1)
        samples: dict[str, list[float]] = {}
        extra: dict[str, dict[str, Any]] = {}
        for impl in available:
            keep = os.path.join(args.annotate, f"{sc}-{impl}") if args.annotate else None
            try:
                m = measure(impl, sc, n, keep=keep, timeout=args.timeout)
            except cg.CallgrindError as exc:
                # a peer that cannot run a scenario leaves its cell empty; engine must run all
                if impl == "engine":
                    raise SystemExit(f"{sc}[engine] failed: {exc}") from exc
                print(f"{sc}[{impl}]: failed: {str(exc).strip().splitlines()[-1]}", flush=True)
                continue
            samples[impl] = [m["ir_per_op"]]
            extra[impl] = {"ops": n, "warmup_ops": WARMUP, "ir_base": m["ir_base"],
                           "ir_full": m["ir_full"]}
            print(f"{sc}[{impl}]: {m['ir_per_op']:.0f} Ir/op ({n} ops)", flush=True)
            if keep:
                print(cg.annotate(f"{keep}-0.cg", f"{keep}-{n}.cg", n, args.top), flush=True)
        info = L._scenarios(n)[sc]          # (the timers label names the batch: n timers)
        out[sc] = {"label": info["label"], "kind": "cost", "unit": "Ir/op", "in_geomean": False,
                   "description": "instructions per operation under callgrind, "
                                  f"(Ir(warm-up + {n}) - Ir(warm-up)) / {n}; the operation: "
                                  + info["description"],
                   "samples": samples, "extra": extra}
    if args.quick:
        mode = "quick"
    elif (args.ops is None and set(scenarios) == set(SCENARIOS)
          and set(available) == set(IMPLS)):
        mode = "full"
    else:
        mode = "custom"
    doc = R.samples_doc(
        suite=SUITE, subject=L.SUBJECT, peers=[i for i in available if i != L.SUBJECT],
        description="instructions per operation (valgrind callgrind) of the loop suite's "
                    "throughput scenarios; deterministic, lower is better",
        command="python -P -m engine.bench.loop_callgrind " + shlex.join(argv), mode=mode,
        started=started, pinning={}, scenarios=out, repo=repo or None,
        extra_meta={"duration_s": round(time.monotonic() - t0, 1),
                    "tools": {"valgrind": _valgrind_version()}, "warmup_ops": WARMUP,
                    "impls": {impl: _impl_meta(impl) for impl in available}})
    print()
    print(R.format_table(doc))
    if args.results:
        print(f"\nresults written to {R.write_result(doc, args.results)}")
    return 0


def _impl_meta(impl: str) -> dict[str, Any]:
    _, version, modfile, build = L.loop_factory(impl)
    return {"version": version, "file": modfile, "builds": [build]}


def _valgrind_version() -> str | None:
    import subprocess
    try:
        return subprocess.run(["valgrind", "--version"], capture_output=True, text=True,
                              timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())

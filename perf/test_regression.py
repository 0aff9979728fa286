"""pytest-benchmark regression suite: loop micro-ops on engine, uvloop and asyncio, side by side.

    pytest perf/                                   # measure, gate on ratios vs perf/baseline.json
    pytest perf/ --benchmark-json=out.json         # + save pytest-benchmark's JSON (with ratios)
    pytest perf/ --smoke                           # seconds: machinery check, ratios reported only
    pytest perf/ --update-baseline                 # re-baseline (a quiet machine, pinned CPU)

For each op the three implementations run one after the other (op outer, implementation
inner), so machine drift hits them alike; a fresh loop per round, created and closed outside
the timed region. The gate (test_ratio_vs_baseline) runs after all the measurements. See
perf/conftest.py and perf/README.md.
"""
from __future__ import annotations

import math
import time

import pytest

from engine.bench import loop_suite as L  # the shipped loop suite's ops (perf extra)

SUBJECT = "engine"          # as in perf/conftest.py
PEERS = ("uvloop", "asyncio")
IMPLS = (SUBJECT, *PEERS)


def _factory(impl):
    try:
        return L.loop_factory(impl)[0]
    except ImportError:
        if impl != "uvloop":
            raise
        pytest.skip("uvloop is not installed: pip install '.[perf]' (peers are not assumed; "
                    "its ratios are not gated in this run)")


# --------------------------------------------------------------------------- ops
# op(loop, n) performs n operations (the loop suite's work, timed here by pytest-benchmark);
# sizes: (normal, smoke)

def op_call_soon(loop, n):
    loop.run_until_complete(L.call_soon_chain(loop, n))


def op_sleep0(loop, n):
    loop.run_until_complete(L.sleep0_coro(n))


def op_gather100(loop, n):
    loop.run_until_complete(L.gather_coro(n, tasks=100))


def op_timers(loop, n):
    # scrambled delays over [0, 5 ms): out-of-order heap inserts
    loop.run_until_complete(L.schedule_timers(loop, L.timer_delays(n, spread=0.005)))


OPS = {
    "call_soon": (op_call_soon, (20_000, 2_000)),
    "sleep0": (op_sleep0, (10_000, 1_000)),
    "gather100": (op_gather100, (20, 2)),
    "timers": (op_timers, (20_000, 2_000)),
}
CASES = [(op, impl) for op in OPS for impl in IMPLS]


@pytest.mark.parametrize(("op", "impl"), CASES, ids=[f"{o}-{i}" for o, i in CASES])
def test_loop_op(benchmark, regression, op, impl):
    factory = _factory(impl)
    func, sizes = OPS[op]
    n = sizes[1] if regression.smoke else sizes[0]

    open_loops = []

    def setup():
        # (pedantic's teardown= needs pytest-benchmark 5.2: close the previous round's loop
        # here, outside the timed region, and the last one below)
        while open_loops:
            open_loops.pop().close()
        loop = factory()
        open_loops.append(loop)
        return (loop, n), {}

    benchmark.group = f"loop {op} ({n} ops per round)"
    benchmark.name = f"{op}[{impl}]"
    benchmark.extra_info.update(op=op, impl=impl, ops_per_round=n)
    try:
        benchmark.pedantic(func, setup=setup, rounds=regression.rounds, warmup_rounds=1)
    finally:
        while open_loops:
            open_loops.pop().close()
    if benchmark.stats is None:          # --benchmark-disable: ran once, nothing measured
        pytest.skip("benchmarks disabled: no ratio recorded")
    regression.record(op, impl, benchmark.stats.stats, n)


GATES = [(op, peer) for op in OPS for peer in PEERS]
RECHECKS = 2


def interleaved_ratio(op, peer, n, rounds):
    """peer / engine speed ratio measured with the two interleaved round by round (ABBA...),
    a fresh loop per round, min per side: drift and bursts of other load hit both alike."""
    func = OPS[op][0]
    factories = {SUBJECT: _factory(SUBJECT), peer: _factory(peer)}
    best = {SUBJECT: math.inf, peer: math.inf}
    for i in range(rounds + 1):               # round 0 warms up
        for impl in ((SUBJECT, peer) if i % 2 else (peer, SUBJECT)):
            loop = factories[impl]()
            try:
                t0 = time.perf_counter()
                func(loop, n)
                dt = time.perf_counter() - t0
            finally:
                loop.close()
            if i:
                best[impl] = min(best[impl], dt)
    return best[peer] / best[SUBJECT]


@pytest.mark.parametrize(("op", "peer"), GATES, ids=[f"{o}-vs-{p}" for o, p in GATES])
def test_ratio_vs_baseline(regression, op, peer):
    v = regression.check(op, peer)
    st = v["status"]
    if st == "missing":
        pytest.skip(f"no {op} measurement of both {SUBJECT} and {peer} in this run "
                    "(deselected, skipped or benchmarks disabled)")
    assert st != "broken", f"{op}: ratio vs {peer} is not a positive number: {v['ratio']}"
    if regression.update or regression.smoke:
        return                                   # reported in the terminal summary
    if st == "no-baseline":
        pytest.skip(f"{op} vs {peer}: no baseline ratio in {regression.baseline_path} "
                    "(pytest perf/ --update-baseline)")
    if st == "regression":
        # a burst of other load during one implementation's rounds can fake a regression:
        # confirm with interleaved rounds before failing
        n = OPS[op][1][0]
        v["recheck"] = []
        for _ in range(RECHECKS):
            r = interleaved_ratio(op, peer, n, max(regression.rounds, 5))
            v["recheck"].append(r)
            if r >= v["floor"]:
                v["status"] = "ok-after-recheck"
                return
        pytest.fail(
            f"REGRESSION {op}: {SUBJECT} vs {peer} speed ratio {v['ratio']:.3f}x is "
            f"{-v['change']:.0%} below the baseline {v['baseline']:.3f}x (allowed: "
            f"{regression.tolerance:.0%}, floor {v['floor']:.3f}x); interleaved rechecks: "
            + ", ".join(f"{r:.3f}x" for r in v["recheck"]) + ". Both implementations were "
            f"measured in the same run, so this is {SUBJECT} getting slower relative to "
            f"{peer}, not machine drift. If intended, re-baseline: "
            "pytest perf/ --update-baseline",
            pytrace=False)

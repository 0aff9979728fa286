#!/usr/bin/env python3
"""Side-by-side table + results JSON from pyperf JSON file(s) written by a suite script.

    python perf/compare_loop.py /tmp/loop.json [more.json ...] [--results PATH|DIR]

The same as ``python -m engine.bench.report`` (which works outside a checkout too), with this
checkout as the default --repo: the commit recorded when the pyperf file has none. Works for
any suite whose benchmarks carry the harness's ``bench_*`` metadata (the loop suite,
engine/bench/loop_suite.py, does), and writes the same results schema as ``engine bench``
(results/SCHEMA.md).

Throughput scenarios: pyperf values are seconds per operation; throughput is
ops / mean(time) (= total work / total time, the right mean for rates), its relative stdev
is that of the times; ratio = engine / peer throughput (> 1: engine faster). The geometric
mean covers the scenarios tagged ``bench_geomean`` (call_soon, sleep0, gather100, timers).
Latency scenarios: every pyperf value is one sample; percentiles and a histogram with numpy.
Cost scenarios (idle CPU): lower is better, excluded from the geometric mean.
"""
from __future__ import annotations

import os

if __name__ == "__main__":
    try:
        from engine.bench import report
    except ImportError as exc:
        raise SystemExit(f"cannot import engine's harness ({exc}): install this checkout "
                         "with pip install '.[perf]'") from exc
    report.main(default_repo=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#!/usr/bin/env python3
"""Side-by-side table + results JSON from pyperf JSON file(s) written by a suite script.

    python perf/compare_loop.py /tmp/loop.json [more.json ...] [--results PATH|DIR]

Works for any suite whose benchmarks carry the harness's ``bench_*`` metadata (bench_loop.py
does), and writes the same results schema as ``engine bench`` (results/SCHEMA.md): the report
is built by engine.bench.report, so the installed engine must be this checkout's.

Throughput scenarios: pyperf values are seconds per operation; throughput is
ops / mean(time) (= total work / total time, the right mean for rates), its relative stdev
is that of the times; ratio = engine / peer throughput (> 1: engine faster). The geometric
mean covers the scenarios tagged ``bench_geomean`` (call_soon, sleep0, gather100, timers).
Latency scenarios: every pyperf value is one sample; percentiles and a histogram with numpy.
Cost scenarios (idle CPU): lower is better, excluded from the geometric mean.
"""
from __future__ import annotations

import argparse
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("json", nargs="+", help="pyperf JSON file(s) written by bench_loop.py -o")
    p.add_argument("--results", metavar="PATH",
                   help="write the results JSON here ('{date}' is replaced by the run's UTC "
                        "date); a directory (existing, or ending in /): the standard file name")
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   help="git repository whose commit is recorded when the pyperf file has "
                        "none (default: %(default)s)")
    p.add_argument("--mode", choices=("full", "quick", "custom"),
                   help="override the mode recorded in the pyperf file")
    args = p.parse_args(argv)
    try:
        from engine.bench import report, results
    except ImportError as exc:
        raise SystemExit(f"cannot import engine's harness ({exc}): install this checkout "
                         "with pip install '.[perf]'") from exc

    doc = report.build_result(report.load_pyperf(args.json), mode=args.mode, repo=args.repo,
                              command="python " + " ".join(sys.argv))
    print(results.format_table(doc))
    if args.results:
        out = args.results.replace("{date}", doc["meta"]["date"][:10])
        if out.endswith(("/", os.sep)) or os.path.isdir(out):
            path = results.write_result(doc, out)
        else:
            if os.path.dirname(out):
                os.makedirs(os.path.dirname(out), exist_ok=True)
            results.write_json(doc, out)
            path = out
        print(f"\nresults written to {path}")


if __name__ == "__main__":
    main()

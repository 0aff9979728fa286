"""pyperf benchmark suite -> results document (needs pyperf + numpy: the ``perf`` extra).

Any suite plugs in by tagging each pyperf benchmark with metadata (see perf/README.md, "Writing a
suite"); nothing here knows the loop suite's scenarios:

    bench_scenario  scenario name                 bench_impl    implementation (engine, uvloop..)
    bench_kind      throughput | cost | latency   bench_label   human label
    bench_unit      unit of the reported value    bench_scale   see below (default 1)
    bench_geomean   1 if the scenario counts in the geometric mean (throughput only)
    bench_threshold optional max acceptable value (cost), in bench_unit
    bench_suite, bench_mode, bench_impl_version, bench_impl_file, bench_impl_build,
    bench_git_commit, bench_git_describe   (provenance)

pyperf values and the reported value:
    throughput  value = seconds per operation (inner_loops = ops per loop);  reported
                ops/s = bench_scale / mean(values)   (total work / total time)
    cost        reported = mean(values) * bench_scale, lower is better
    latency     every pyperf value is one latency sample in seconds (loops=1, inner_loops=1);
                reported = percentiles of values * bench_scale (µs with 1e6), p50 headline;
                histogram on log-spaced bins
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyperf  # no type information: an override in pyproject.toml

from . import results as R

HIST_BINS = 40


def stats(values: Sequence[float]) -> dict[str, Any]:
    v = np.asarray(values, dtype=float)
    mean = float(np.mean(v))
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {
        "n": int(v.size),
        "mean": mean,
        "stdev": sd,
        "median": float(np.median(v)),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
        "rel_stdev": sd / mean if mean else 0.0,
    }


def latency_summary(samples: Sequence[float], scale: float = 1.0,
                    bins: int = HIST_BINS) -> dict[str, Any]:
    """Percentiles (numpy, linear interpolation) and a log-binned histogram of samples * scale."""
    v = np.asarray(samples, dtype=float) * scale
    pct = np.percentile(v, R.PERCENTILE_VALUES)
    lo, hi = float(np.min(v)), float(np.max(v))
    if lo > 0 and hi > lo:
        edges = np.geomspace(lo, hi, bins + 1)
    elif hi > lo:
        edges = np.linspace(lo, hi, bins + 1)
    else:
        edges = np.array([lo * 0.99 if lo else -0.5, hi * 1.01 if hi else 0.5])
    counts, edges = np.histogram(v, bins=edges)
    return {
        "value": float(pct[0]),
        "percentiles": {k: float(x) for k, x in zip(R.PERCENTILES, pct, strict=True)},
        "mean": float(np.mean(v)),
        "min": lo,
        "max": hi,
        "stdev": float(np.std(v, ddof=1)) if v.size > 1 else 0.0,
        "rel_stdev": None,
        "n_values": int(v.size),
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts],
                      "scale": "log" if lo > 0 and hi > lo else "linear"},
    }


def geomean(xs: Iterable[float | None]) -> float | None:
    a = np.asarray([x for x in xs if x and x > 0], dtype=float)
    return float(np.exp(np.mean(np.log(a)))) if a.size else None


def _key(bench: Any) -> tuple[str | None, str | None]:
    md = bench.get_metadata()
    sc, impl = md.get("bench_scenario"), md.get("bench_impl")
    if sc and impl:
        return sc, impl
    name = bench.get_name()          # fallback: "scenario[impl]"
    if name.endswith("]") and "[" in name:
        sc, impl = name[:-1].split("[", 1)
        return sc, impl
    return None, None


def _impl_entry(kind: str, bench: Any, scale: float) -> dict[str, Any]:
    values = bench.get_values()
    md = bench.get_metadata()
    if kind == "latency":
        d = latency_summary(values, scale)
    else:
        s = stats(values)
        if kind == "throughput":
            d = {"value": scale / s["mean"], "value_median": scale / s["median"],
                 "rel_stdev": s["rel_stdev"], "n_values": s["n"],
                 "seconds_per_op": s["mean"] / scale}
        else:  # cost
            d = {"value": s["mean"] * scale, "stdev": s["stdev"] * scale,
                 "max": s["max"] * scale, "min": s["min"] * scale,
                 "rel_stdev": s["rel_stdev"], "n_values": s["n"]}
        d["raw_stats"] = s
    d["processes"] = len([r for r in bench.get_runs() if r.values])
    d["loops"] = md.get("loops")
    d["inner_loops"] = md.get("inner_loops")
    return d


def _scenario(name: str, impls_benches: dict[str, Any], subject: str,
              peers: list[str]) -> dict[str, Any]:
    first = next(iter(impls_benches.values()))
    md = first.get_metadata()
    kind = md.get("bench_kind", "throughput")
    if kind not in R.KINDS:
        raise ValueError(f"benchmark {first.get_name()}: unknown bench_kind {kind!r}")
    scale = float(md.get("bench_scale", 1.0))
    impls = {impl: _impl_entry(kind, b, scale) for impl, b in impls_benches.items()}
    hib = R.KINDS[kind]
    ratios: dict[str, Any] = {}
    e = impls.get(subject)
    for peer in peers:
        p = impls.get(peer)
        if not (e and p) or p["value"] <= 0 or e["value"] <= 0:
            continue
        value = e["value"] / p["value"]
        r: dict[str, Any] = {"value": value, "advantage": value if hib else 1.0 / value}
        if e.get("rel_stdev") is not None and p.get("rel_stdev") is not None:
            r["rel_stdev"] = float(math.hypot(e["rel_stdev"], p["rel_stdev"]))
        else:
            r["rel_stdev"] = None
        if kind == "latency":
            r["percentiles"] = {k: e["percentiles"][k] / p["percentiles"][k]
                                for k in R.PERCENTILES if p["percentiles"][k] > 0}
        ratios[peer] = r
    thr = md.get("bench_threshold")
    return {
        "label": md.get("bench_label", name),
        "description": md.get("description"),
        "kind": kind,
        "unit": md.get("bench_unit", "ops/s" if kind == "throughput" else "s"),
        "higher_is_better": hib,
        "in_geomean": bool(int(md.get("bench_geomean", 0))) and kind == "throughput",
        "threshold": float(thr) if thr is not None else None,
        "impls": impls,
        "ratios": ratios,
    }


def _machine(bench_suite: Any, repo: R.StrPath | None,
             pinning: dict[str, str] | None) -> dict[str, Any]:
    benches = list(bench_suite)
    bench_md: dict[str, Any] = {}
    starts, ends = [], []
    for bench in benches:
        md = bench.get_metadata()
        for key in ("cpu_model_name", "platform", "python_version", "python_implementation",
                    "python_executable", "hostname", "cpu_count", "cpu_affinity", "cpu_config",
                    "boot_time", "python_compiler", "cpu_freq", "aslr"):
            if key in md and key not in bench_md:
                bench_md[key] = md[key]
        d = bench.get_dates()
        if d:
            starts.append(d[0].astimezone(_dt.UTC))
            ends.append(d[1].astimezone(_dt.UTC))
    impls: dict[str, Any] = {}
    for bench in benches:
        md = bench.get_metadata()
        _, impl = _key(bench)
        if not impl:
            continue
        builds = {r.get_metadata().get("bench_impl_build") for r in bench.get_runs()} - {None}
        info = impls.setdefault(impl, {"version": md.get("bench_impl_version"),
                                       "file": md.get("bench_impl_file"), "builds": []})
        for b in sorted(builds):
            if b not in info["builds"]:
                info["builds"].append(b)
    run_commits = sorted({r.get_metadata().get("bench_git_commit")
                          for b in benches for r in b.get_runs()} - {None})
    run_describes = sorted({r.get_metadata().get("bench_git_describe")
                            for b in benches for r in b.get_runs()} - {None})
    if run_commits:
        commit = run_commits[-1]
        git = {"source": "recorded by the benchmark workers",
               "repo": os.path.abspath(repo) if repo is not None else None,
               "commit": commit, "short": commit[:7],
               "describe": run_describes[-1] if run_describes else None,
               "branch": R.git(repo, "rev-parse", "--abbrev-ref", "HEAD"),
               "dirty": any(d.endswith("-dirty") for d in run_describes)}
        if len(run_commits) > 1:
            git["all_commits"] = run_commits      # the checkout changed during the run
    else:
        git = dict(R.git_info(repo), source="read when the report was made")
    local = R.machine_meta()
    meta = {
        "date": min(starts).isoformat(timespec="seconds") if starts else R.utc_now(),
        "date_end": max(ends).isoformat(timespec="seconds") if ends else None,
        "report_date": R.utc_now(),
        "cpu_model": bench_md.get("cpu_model_name") or local["cpu_model"],
        "cpu_count": bench_md.get("cpu_count", local["cpu_count"]),
        "cpu_affinity": (str(bench_md["cpu_affinity"]) if "cpu_affinity" in bench_md
                         else None),
        "cpu_config": bench_md.get("cpu_config"),
        "cpu_freq": bench_md.get("cpu_freq"),
        "pinning": pinning if pinning is not None else (
            {"bench": str(bench_md["cpu_affinity"])} if "cpu_affinity" in bench_md else {}),
        "kernel": local["kernel"],
        "kernel_version": local["kernel_version"],
        "platform": bench_md.get("platform", local["platform"]),
        "hostname": bench_md.get("hostname", local["hostname"]),
        "python_version": str(bench_md.get("python_version", local["python_version"])),
        "python_implementation": bench_md.get("python_implementation",
                                              local["python_implementation"]),
        "python_executable": bench_md.get("python_executable", sys.executable),
        "loadavg_at_report": local["loadavg"],
        "git": git,
        "impls": impls,
        "tools": {"pyperf": pyperf.__version__, "numpy": np.__version__},
    }
    # pyperf writes "3.11.7 (64-bit) revision ..." : keep the version number first
    meta["python_version"] = meta["python_version"].split()[0]
    return meta


def build_result(bench_suite: Any, *, suite: str | None = None, subject: str = "engine",
                 peers: list[str] | None = None, mode: str | None = None,
                 command: str | None = None, pinning: dict[str, str] | None = None,
                 repo: R.StrPath | None = ".", description: str | None = None,
                 duration_s: float | None = None) -> dict[str, Any]:
    """Results document (results/SCHEMA.md) from a pyperf BenchmarkSuite."""
    groups: dict[str, dict[str, Any]] = {}
    seen_impls: list[str] = []
    suite_md: dict[str, Any] = {}
    for bench in bench_suite:
        sc, impl = _key(bench)
        if sc is None or impl is None:
            continue
        groups.setdefault(sc, {})[impl] = bench
        if impl not in seen_impls:
            seen_impls.append(impl)
        md = bench.get_metadata()
        for k in ("bench_suite", "bench_mode"):
            if k in md:
                suite_md.setdefault(k, md[k])
    if not groups:
        raise ValueError("no benchmark tagged with bench_scenario/bench_impl metadata")
    if peers is None:
        peers = [i for i in seen_impls if i != subject]
    scenarios = {name: _scenario(name, ib, subject, peers) for name, ib in groups.items()}
    geo = {}
    for peer in peers:
        used = [n for n, sc in scenarios.items() if sc["in_geomean"] and peer in sc["ratios"]]
        geo[peer] = {"value": geomean([scenarios[n]["ratios"][peer]["advantage"] for n in used]),
                     "scenarios": used}
    meta = _machine(bench_suite, repo, pinning)
    if duration_s is not None:
        meta["duration_s"] = round(duration_s, 1)
    doc = {
        "schema": R.SCHEMA,
        "schema_version": R.SCHEMA_VERSION,
        "suite": suite or suite_md.get("bench_suite") or "unknown",
        "suite_description": description,
        "mode": mode or suite_md.get("bench_mode") or "custom",
        "subject": subject,
        "peers": peers,
        "command": command,
        "meta": meta,
        "scenarios": scenarios,
        "geomean": geo,
    }
    return R.check(doc)


def load_pyperf(paths: Iterable[R.StrPath]) -> Any:
    suite = None
    for path in paths:
        s = pyperf.BenchmarkSuite.load(str(path))
        if suite is None:
            suite = s
        else:
            for bench in s.get_benchmarks():
                suite.add_benchmark(bench)
    return suite


def main(argv: list[str] | None = None, default_repo: R.StrPath | None = None) -> None:
    """``python -m engine.bench.report FILE...``: the table and results JSON of pyperf file(s)
    (a suite script's -o output, or ``engine bench``'s raw/*.pyperf.json.gz)."""
    p = argparse.ArgumentParser(
        prog="python -m engine.bench.report",
        description="Side-by-side table + results JSON (results/SCHEMA.md) from pyperf JSON "
                    "file(s) whose benchmarks carry the harness's bench_* metadata.")
    p.add_argument("json", nargs="+", help="pyperf JSON file(s) (.json or .json.gz)")
    p.add_argument("--results", metavar="PATH",
                   help="write the results JSON here ('{date}' is replaced by the run's UTC "
                        "date); a directory (existing, or ending in /): the standard file name")
    p.add_argument("--repo", default=default_repo,
                   help="git checkout whose commit is recorded when the pyperf file has none "
                        "(default: %(default)s)")
    p.add_argument("--mode", choices=R.MODES, help="override the mode recorded in the pyperf file")
    args = p.parse_args(argv)
    doc = build_result(load_pyperf(args.json), mode=args.mode, repo=args.repo,
                       command="python " + " ".join(sys.argv))
    print(R.format_table(doc))
    if args.results:
        print(f"\nresults written to {R.write_to(doc, args.results)}")


if __name__ == "__main__":
    main()

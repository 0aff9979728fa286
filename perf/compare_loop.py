#!/usr/bin/env python3
"""Side-by-side table + results JSON from a bench_loop.py pyperf JSON file.

    python perf/compare_loop.py /tmp/loop.json [more.json ...] [--results results/loop-DATE.json]

Throughput scenarios: pyperf values are seconds per operation; the aggregate
throughput is ops / mean(time) (= total work / total time, the right mean for
rates), its relative stdev is that of the times. Ratios are engine throughput
over peer throughput (> 1 means engine is faster); the geometric mean covers
the throughput scenarios only (call_soon, sleep0, gather100, timers).

Idle scenarios: values are process CPU-seconds per wall-second (lower is
better). They are shown with their raw engine/peer ratio marked "lower is
better", checked against an absolute threshold, and excluded from the geomean.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pyperf

IMPLS = ("engine", "uvloop", "asyncio")
PEERS = ("uvloop", "asyncio")

# scenario -> (label, unit, ops per pyperf value unit, kind)
THROUGHPUT = {
    "call_soon": ("call_soon chain", "calls/s", 1),
    "sleep0": ("await sleep(0)", "sleeps/s", 1),
    "gather100": ("gather(100 tasks)", "gathers/s", 1),
    "timers": ("200k call_later", "timers/s", 1),
}
# rows derived from another scenario, shown but not in the geomean
DERIVED = {
    "gather100_tasks": ("  └ tasks", "tasks/s", "gather100", 100),
}
IDLE = {
    "idle": ("idle loop CPU", "CPU µs/s"),
    "idle_far_timer": ("idle + far timer CPU", "CPU µs/s"),
}
GEOMEAN_SCENARIOS = tuple(THROUGHPUT)
# an idle loop should burn well under 1% of a CPU
IDLE_OK_THRESHOLD = 0.01


# --------------------------------------------------------------------------- loading

def load_suite(paths):
    suite = None
    for path in paths:
        s = pyperf.BenchmarkSuite.load(path)
        if suite is None:
            suite = s
        else:
            for bench in s.get_benchmarks():
                suite.add_benchmark(bench)
    return suite


def _split_name(name):
    # "call_soon[engine]" -> ("call_soon", "engine")
    if not name.endswith("]") or "[" not in name:
        return None, None
    sc, impl = name[:-1].split("[", 1)
    return sc, impl


def _stats(values):
    v = np.asarray(values, dtype=float)
    mean = float(np.mean(v))
    sd = float(np.std(v, ddof=1)) if v.size > 1 else 0.0
    return {
        "n_values": int(v.size),
        "mean": mean,
        "stdev": sd,
        "median": float(np.median(v)),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
        "rel_stdev": sd / mean if mean else 0.0,
    }


def _geomean(xs):
    xs = np.asarray([x for x in xs if x and x > 0], dtype=float)
    return float(np.exp(np.mean(np.log(xs)))) if xs.size else None


# --------------------------------------------------------------------------- metadata

def _git(repo, *args):
    try:
        out = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _cpu_model_local():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_metadata(suite, repo):
    bench_md = {}
    dates = []
    for bench in suite.get_benchmarks():
        md = bench.get_metadata()
        for key in ("cpu_model_name", "platform", "python_version", "python_implementation",
                    "python_executable", "hostname", "cpu_count", "cpu_affinity", "cpu_config",
                    "boot_time", "python_compiler"):
            if key in md and key not in bench_md:
                bench_md[key] = md[key]
        d = bench.get_dates()
        if d:
            dates.extend(d)
    impl_versions = {}
    for bench in suite.get_benchmarks():
        md = bench.get_metadata()
        impl = md.get("loop_impl")
        if not impl:
            continue
        builds = {r.get_metadata().get("loop_impl_build") for r in bench.get_runs()}
        builds.discard(None)
        info = impl_versions.setdefault(impl, {"version": md.get("loop_impl_version"),
                                               "file": md.get("loop_impl_file"),
                                               "builds": []})
        for b in sorted(builds):
            if b not in info["builds"]:
                info["builds"].append(b)
    run_commits = sorted({r.get_metadata().get("loop_git_commit")
                          for b in suite.get_benchmarks() for r in b.get_runs()} - {None})
    run_describes = sorted({r.get_metadata().get("loop_git_describe")
                            for b in suite.get_benchmarks() for r in b.get_runs()} - {None})
    uname = platform.uname()
    if run_commits:
        git = {
            "source": "recorded at run time",
            "repo": os.path.abspath(repo),
            "commit": run_commits[0] if len(run_commits) == 1 else run_commits,
            "describe": run_describes[0] if len(run_describes) == 1 else run_describes,
            "dirty": any(d.endswith("-dirty") for d in run_describes),
        }
    else:
        status = _git(repo, "status", "--porcelain", "--untracked-files=no")
        git = {
            "source": "read when the report was made",
            "repo": os.path.abspath(repo),
            "commit": _git(repo, "rev-parse", "HEAD"),
            "describe": _git(repo, "describe", "--always", "--dirty"),
            "dirty": bool(status) if status is not None else None,
        }
    return {
        "date": min(dates).isoformat() if dates else None,
        "date_end": max(dates).isoformat() if dates else None,
        "report_date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": bench_md.get("cpu_model_name") or _cpu_model_local(),
        "cpu_count": bench_md.get("cpu_count", os.cpu_count()),
        "cpu_affinity": bench_md.get("cpu_affinity"),
        "cpu_config": bench_md.get("cpu_config"),
        "kernel": f"{uname.system} {uname.release}",
        "kernel_version": uname.version,
        "platform": bench_md.get("platform", platform.platform()),
        "hostname": bench_md.get("hostname", uname.node),
        "python_version": bench_md.get("python_version", platform.python_version()),
        "python_implementation": bench_md.get("python_implementation",
                                              platform.python_implementation()),
        "python_executable": bench_md.get("python_executable"),
        "loadavg_at_report": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "git": git,
        "impls": impl_versions,
        "pyperf_version": pyperf.__version__,
        "numpy_version": np.__version__,
    }


# --------------------------------------------------------------------------- report

def build_report(suite, repo="."):
    by_key = {}
    for bench in suite.get_benchmarks():
        sc, impl = _split_name(bench.get_name())
        if sc is None:
            continue
        by_key[(sc, impl)] = bench

    scenarios = {}
    for sc, (label, unit, ops) in THROUGHPUT.items():
        row = _throughput_row(by_key, sc, label, unit, ops)
        if row:
            scenarios[sc] = row
    for key, (label, unit, src, ops) in DERIVED.items():
        row = _throughput_row(by_key, src, label, unit, ops)
        if row:
            row["derived_from"] = src
            scenarios[key] = row
    for sc, (label, unit) in IDLE.items():
        row = _idle_row(by_key, sc, label, unit)
        if row:
            scenarios[sc] = row

    geomean = {}
    for peer in PEERS:
        used = [sc for sc in GEOMEAN_SCENARIOS
                if sc in scenarios and scenarios[sc]["ratios"].get(f"engine/{peer}")]
        ratios = [scenarios[sc]["ratios"][f"engine/{peer}"] for sc in used]
        geomean[f"engine/{peer}"] = {"value": _geomean(ratios), "scenarios": used}

    return {
        "schema": "engine-loop-bench/1",
        "meta": machine_metadata(suite, repo),
        "notes": {
            "throughput": "ops/s = ops / mean(seconds per value); ratio = engine / peer "
                          "throughput, > 1 means engine is faster",
            "idle": "process CPU-seconds per wall-second while the loop sits idle; lower "
                    "is better; ratio = engine / peer CPU use (< 1 means engine uses less); "
                    "excluded from the geometric mean",
            "idle_ok_threshold_cpu_per_wall": IDLE_OK_THRESHOLD,
        },
        "scenarios": scenarios,
        "geomean": geomean,
    }


def _throughput_row(by_key, sc, label, unit, ops):
    impls = {}
    for impl in IMPLS:
        bench = by_key.get((sc, impl))
        if bench is None:
            continue
        t = _stats(bench.get_values())          # seconds per value unit
        thr = ops / t["mean"]
        impls[impl] = {
            "throughput": thr,
            "throughput_stdev": thr * t["rel_stdev"],
            "throughput_median": ops / t["median"],
            "rel_stdev": t["rel_stdev"],
            "seconds_per_op": t["mean"] / ops,
            "time_stats": t,
            "loops": bench.get_metadata().get("loops"),
            "inner_loops": bench.get_metadata().get("inner_loops"),
        }
    if not impls:
        return None
    ratios, ratio_rel = {}, {}
    e = impls.get("engine")
    for peer in PEERS:
        p = impls.get(peer)
        if e and p:
            ratios[f"engine/{peer}"] = e["throughput"] / p["throughput"]
            ratio_rel[f"engine/{peer}"] = float(np.hypot(e["rel_stdev"], p["rel_stdev"]))
    return {"label": label, "kind": "throughput", "unit": unit, "higher_is_better": True,
            "impls": impls, "ratios": ratios, "ratios_rel_stdev": ratio_rel}


def _idle_row(by_key, sc, label, unit):
    impls = {}
    for impl in IMPLS:
        bench = by_key.get((sc, impl))
        if bench is None:
            continue
        s = _stats(bench.get_values())          # CPU-s per wall-s
        impls[impl] = {
            "cpu_per_wall": s["mean"],
            "cpu_per_wall_stdev": s["stdev"],
            "cpu_per_wall_max": s["max"],
            "stats": s,
            "idle_seconds": bench.get_metadata().get("loop_idle_seconds"),
            "ok": s["max"] < IDLE_OK_THRESHOLD,
        }
    if not impls:
        return None
    ratios = {}
    e = impls.get("engine")
    for peer in PEERS:
        p = impls.get(peer)
        if e and p and p["cpu_per_wall"] > 0:
            ratios[f"engine/{peer}"] = e["cpu_per_wall"] / p["cpu_per_wall"]
    return {"label": label, "kind": "idle_cpu", "unit": unit, "higher_is_better": False,
            "impls": impls, "ratios": ratios}


# --------------------------------------------------------------------------- output

def _si(x):
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def _cell(row, impl):
    d = row["impls"].get(impl)
    if d is None:
        return "n/a"
    if row["kind"] == "throughput":
        return f"{_si(d['throughput'])} ±{d['rel_stdev'] * 100:.0f}%"
    flag = "" if d["ok"] else " !"
    return f"{_us(d['cpu_per_wall'])} ±{_us(d['cpu_per_wall_stdev'])}{flag}"


def _us(x):
    us = x * 1e6
    return f"{us:.0f}" if abs(us) >= 100 else f"{us:.2g}"


def _ratio_cell(row, peer):
    r = row["ratios"].get(f"engine/{peer}")
    if r is None:
        return "n/a"
    return f"{r:.2f}x" + (" (↓)" if not row["higher_is_better"] else "")


def format_table(report):
    head = ("scenario", "unit", "engine", "uvloop", "asyncio", "engine/uvloop", "engine/asyncio")
    rows = []
    sc = report["scenarios"]
    for key in (*THROUGHPUT, *DERIVED):
        if key in sc:
            r = sc[key]
            rows.append((r["label"], r["unit"], *(_cell(r, i) for i in IMPLS),
                         *(_ratio_cell(r, p) for p in PEERS)))
    gm = report["geomean"]
    rows.append(None)
    rows.append(("geomean (throughput)", "", "", "", "",
                 *(f"{gm[f'engine/{p}']['value']:.2f}x" if gm[f"engine/{p}"]["value"] else "n/a"
                   for p in PEERS)))
    idle_rows = [k for k in IDLE if k in sc]
    if idle_rows:
        rows.append(None)
        for key in idle_rows:
            r = sc[key]
            rows.append((r["label"], r["unit"], *(_cell(r, i) for i in IMPLS),
                         *(_ratio_cell(r, p) for p in PEERS)))
    widths = [max(len(head[c]), *(len(r[c]) for r in rows if r)) for c in range(len(head))]

    def fmt(r):
        return "  ".join(
            (r[c].ljust(widths[c]) if c < 2 else r[c].rjust(widths[c])) for c in range(len(head))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    lines = [fmt(head), sep]
    for r in rows:
        lines.append(sep if r is None else fmt(r))
    lines.append("")
    lines.append("throughput: ops / mean time, ±rel. stdev; ratio > 1 = engine faster. "
                 "geomean excludes tasks/s (same as gathers/s) and idle.")
    if idle_rows:
        lines.append("idle: process CPU µs per wall second (lower is better, ↓); ratio < 1 = "
                     f"engine uses less CPU; '!' = above {IDLE_OK_THRESHOLD * 1e6:.0f} µs/s "
                     "(1% CPU). Not in the geomean.")
    m = report["meta"]
    for impl, info in m["impls"].items():
        if len(info.get("builds", ())) > 1:
            lines.append(f"WARNING: {impl} was rebuilt during the run (builds "
                         f"{', '.join(info['builds'])}): its figures mix builds.")
    lines.append(f"{m['cpu_model']} | {m['kernel']} | Python {m['python_version']} | "
                 f"affinity {m['cpu_affinity'] or 'none'} | "
                 f"git {m['git']['describe'] or m['git']['commit']} | {m['date']}")
    if isinstance(m["git"]["commit"], list):
        lines.append("WARNING: the git commit changed during the run: "
                     + ", ".join(m["git"]["commit"]))
    return "\n".join(lines)


def print_table(report, file=None):
    print(format_table(report), file=file or sys.stdout)


def write_results(report, path):
    path = path.replace("{date}", _dt.date.today().isoformat())
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=2, sort_keys=False, default=str)
        f.write("\n")
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("json", nargs="+", help="pyperf JSON file(s) written by bench_loop.py -o")
    p.add_argument("--results", metavar="PATH",
                   help="write the results JSON here ('{date}' is replaced by today's date)")
    p.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   help="git repository whose commit is recorded (default: %(default)s)")
    args = p.parse_args(argv)
    report = build_report(load_suite(args.json), repo=args.repo)
    print_table(report)
    if args.results:
        out = write_results(report, args.results)
        print(f"\nresults written to {out}")


if __name__ == "__main__":
    main()

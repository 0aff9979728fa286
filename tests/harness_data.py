"""Synthetic results documents (results/SCHEMA.md) for the harness tests: every kind of
scenario, several runs across commits, full and quick modes."""
from __future__ import annotations

import copy
import datetime as dt
import math

from engine.bench import results as R


def _ratio(e: float, p: float, hib: bool, rel=0.03) -> dict:
    v = e / p
    return {"value": v, "advantage": v if hib else 1 / v, "rel_stdev": rel}


def make_doc(i: int = 0, *, mode: str = "full", suite: str = "loop", drift: float = 1.0,
             date: dt.datetime | None = None, commit: str | None = None) -> dict:
    """One plausible run; ``drift`` scales engine's speed (history charts move)."""
    date = date or dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC) + dt.timedelta(days=i)
    commit = commit or f"{i:x}".rjust(7, "a") + "0" * 33
    peers = ["uvloop", "asyncio"]
    thr = {"engine": 2.0e6 * drift, "uvloop": 9.0e5, "asyncio": 3.5e5}
    lat = {"engine": 60.0 / drift, "uvloop": 75.0, "asyncio": 90.0}
    cost = {"engine": 900.0, "uvloop": 1500.0, "asyncio": 1300.0}

    def throughput(label, unit, scale):
        impls = {k: {"value": v * scale, "rel_stdev": 0.02, "n_values": 60} for k, v in thr.items()}
        return {"label": label, "description": f"synthetic {label}", "kind": "throughput",
                "unit": unit, "higher_is_better": True, "in_geomean": True, "threshold": None,
                "impls": impls,
                "ratios": {p: _ratio(impls["engine"]["value"], impls[p]["value"], True)
                           for p in peers}}

    def latency():
        impls = {}
        for k, p50 in lat.items():
            pct = {"p50": p50, "p90": p50 * 1.3, "p99": p50 * 2.0, "p99.9": p50 * 3.0}
            edges = [p50 * 0.5 * 1.1 ** j for j in range(21)]
            counts = [int(100 * math.exp(-((j - 7) / 3) ** 2)) for j in range(20)]
            impls[k] = {"value": p50, "percentiles": pct, "mean": p50 * 1.1, "min": edges[0],
                        "max": edges[-1], "stdev": p50 * 0.3, "rel_stdev": None,
                        "n_values": sum(counts),
                        "histogram": {"edges": edges, "counts": counts, "scale": "log"}}
        ratios = {}
        for p in peers:
            r = _ratio(lat["engine"], lat[p], False, rel=None)
            r["percentiles"] = {q: impls["engine"]["percentiles"][q] / impls[p]["percentiles"][q]
                                for q in R.PERCENTILES}
            ratios[p] = r
        return {"label": "threadsafe wake-up", "description": "synthetic latency",
                "kind": "latency", "unit": "µs", "higher_is_better": False, "in_geomean": False,
                "threshold": None, "impls": impls, "ratios": ratios}

    def idle():
        impls = {k: {"value": v, "stdev": v * 0.1, "max": v * 1.2, "min": v * 0.8,
                     "rel_stdev": 0.1, "n_values": 9} for k, v in cost.items()}
        return {"label": "idle loop CPU", "description": "synthetic cost", "kind": "cost",
                "unit": "CPU µs/s", "higher_is_better": False, "in_geomean": False,
                "threshold": 10000.0, "impls": impls,
                "ratios": {p: _ratio(cost["engine"], cost[p], False, rel=0.14) for p in peers}}

    scenarios = {
        "call_soon": throughput("call_soon chain", "calls/s", 1.0),
        "sleep0": throughput("await sleep(0)", "sleeps/s", 0.4),
        "wakeup": latency(),
        "idle": idle(),
    }
    geo = {}
    for p in peers:
        used = [n for n, s in scenarios.items() if s["in_geomean"]]
        vals = [scenarios[n]["ratios"][p]["advantage"] for n in used]
        geo[p] = {"value": math.exp(sum(map(math.log, vals)) / len(vals)), "scenarios": used}
    doc = {
        "schema": R.SCHEMA, "schema_version": R.SCHEMA_VERSION, "suite": suite,
        "suite_description": "synthetic suite for tests", "mode": mode, "subject": "engine",
        "peers": peers, "command": "engine bench (synthetic)",
        "meta": {
            "date": date.isoformat(timespec="seconds"),
            "date_end": (date + dt.timedelta(minutes=12)).isoformat(timespec="seconds"),
            "cpu_model": "Synthetic CPU", "cpu_count": 2, "cpu_affinity": "1",
            "pinning": {"bench": "1"}, "kernel": "Linux 6.1.0", "platform": "Linux-6.1.0",
            "hostname": "ci", "python_version": "3.11.7", "python_implementation": "CPython",
            "git": {"commit": commit, "short": commit[:7], "describe": commit[:7],
                    "branch": "main", "dirty": False},
            "impls": {"engine": {"version": "0.1.0", "builds": ["x"]},
                      "uvloop": {"version": "0.21.0", "builds": ["y"]},
                      "asyncio": {"version": "3.11.7", "builds": ["stdlib"]}},
        },
        "scenarios": scenarios,
        "geomean": geo,
    }
    return R.check(doc)


def make_results_dir(path, n_full: int = 4) -> list:
    """n_full full runs (engine getting faster), one newer quick run, plus files the loader
    must skip (an invalid results document) or ignore (unrelated JSON)."""
    path.mkdir(parents=True, exist_ok=True)
    written = [R.write_result(make_doc(i, drift=1.0 + 0.1 * i), path) for i in range(n_full)]
    written.append(R.write_result(make_doc(n_full, mode="quick", drift=0.5), path))
    bad = copy.deepcopy(make_doc(99))
    bad["scenarios"]["call_soon"]["kind"] = "speed"
    R.write_json(bad, path / "loop-broken.json")
    (path / "unrelated.json").write_text('{"hello": "world"}\n')
    (path / "README.md").write_text(f"# results\n\nbefore\n\n{R.README_START}\nold table\n"
                                    f"{R.README_END}\n\nafter\n")
    return written

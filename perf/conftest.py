"""Regression gate for `pytest perf/`: pytest-benchmark times loop micro-ops on engine, uvloop
and asyncio in the same run; the gate compares the *ratios* (peer time / engine time, > 1 means
engine is faster) with perf/baseline.json. Raw times drift between machines and days; ratios
measured side by side in one run are far steadier, so they are what fails the run.

Options (pytest perf/ --help, group "engine regression gate"):
    --baseline PATH         baseline ratios (default: perf/baseline.json)
    --ratio-tolerance X     fail if a ratio falls more than X (fraction) below its baseline
                            (default: the baseline file's tolerance, else 0.25)
    --update-baseline       write the measured ratios to the baseline instead of gating
    --smoke                 3 rounds of small workloads: checks the machinery and computes the
                            ratios, reports them against the baseline but never fails on them
    --regression-rounds N   rounds per benchmark (default 15; --smoke: 3)

A ratio below the floor is measured again with engine and the peer interleaved round by round
(up to twice); the test fails only if the recheck confirms it, so a burst of other load during
one implementation's rounds does not fail the run.

pytest-benchmark's own options work as usual (--benchmark-json=out.json saves the JSON, with
the ratios and verdicts under "engine_regression"; --benchmark-autosave, ...). Its
--benchmark-compare-fail compares raw times with another run: use it only on one machine.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
from pathlib import Path

import pytest

from engine.bench.results import cpu_model, git

HERE = Path(__file__).resolve().parent
DEFAULT_BASELINE = HERE / "baseline.json"
DEFAULT_TOLERANCE = 0.25
DEFAULT_ROUNDS = 15
SMOKE_ROUNDS = 3
SUBJECT = "engine"
PEERS = ("uvloop", "asyncio")
BASELINE_SCHEMA = "engine-regression-baseline"

_KEY = pytest.StashKey()


def pytest_addoption(parser):
    g = parser.getgroup("engine regression gate", "engine's ratio-based regression gate (perf/)")
    g.addoption("--baseline", default=str(DEFAULT_BASELINE), metavar="PATH",
                help="baseline ratios JSON (default: perf/baseline.json)")
    g.addoption("--ratio-tolerance", type=float, default=None, metavar="X",
                help="fail if a ratio falls more than X (a fraction) below its baseline "
                     f"(default: the baseline's tolerance, else {DEFAULT_TOLERANCE})")
    g.addoption("--update-baseline", action="store_true",
                help="write the measured ratios to the baseline file instead of gating")
    g.addoption("--smoke", action="store_true",
                help="few rounds, small workloads: check the machinery and compute the ratios, "
                     "never fail on their values")
    g.addoption("--regression-rounds", type=int, default=None, metavar="N",
                help=f"rounds per benchmark (default {DEFAULT_ROUNDS}, --smoke {SMOKE_ROUNDS})")


class Regression:
    """Collects per-(op, impl) times and turns them into ratios and verdicts."""

    def __init__(self, config):
        self.smoke = config.getoption("--smoke")
        self.update = config.getoption("--update-baseline")
        if self.smoke and self.update:
            raise pytest.UsageError("--update-baseline needs a real run, not --smoke")
        self.baseline_path = Path(config.getoption("--baseline"))
        self.baseline = self._load_baseline()
        tol = config.getoption("--ratio-tolerance")
        if tol is None:
            tol = self.baseline.get("tolerance", DEFAULT_TOLERANCE) if self.baseline else \
                DEFAULT_TOLERANCE
        if not 0 <= tol < 1:
            raise pytest.UsageError("--ratio-tolerance must be in [0, 1)")
        self.tolerance = float(tol)
        rounds = config.getoption("--regression-rounds")
        self.rounds = rounds or (SMOKE_ROUNDS if self.smoke else DEFAULT_ROUNDS)
        self.times: dict[tuple[str, str], dict] = {}
        self.verdicts: dict[tuple[str, str], dict] = {}

    def _load_baseline(self) -> dict:
        if not self.baseline_path.exists():
            return {}
        with open(self.baseline_path, encoding="utf-8") as f:
            data = json.load(f)
        if data.get("schema") != BASELINE_SCHEMA:
            raise pytest.UsageError(f"{self.baseline_path}: not a {BASELINE_SCHEMA} file")
        return data

    # -- measurements
    def record(self, op: str, impl: str, stats, ops_per_round: int) -> None:
        self.times[(op, impl)] = {
            "min": stats.min / ops_per_round,
            "median": stats.median / ops_per_round,
            "mean": stats.mean / ops_per_round,
            "rounds": stats.rounds,
            "ops_per_round": ops_per_round,
        }

    def ratio(self, op: str, peer: str) -> float | None:
        """peer time / engine time on the min of the rounds (> 1: engine faster)."""
        e, p = self.times.get((op, SUBJECT)), self.times.get((op, peer))
        if not e or not p or e["min"] <= 0:
            return None
        return p["min"] / e["min"]

    def ratios(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for op, impl in self.times:
            if impl == SUBJECT:
                continue
            r = self.ratio(op, impl)
            if r is not None:
                out.setdefault(op, {})[impl] = r
        return out

    # -- gate
    def check(self, op: str, peer: str) -> dict:
        r = self.ratio(op, peer)
        base = ((self.baseline.get("ratios") or {}).get(op) or {}).get(peer)
        v = {"op": op, "peer": peer, "ratio": r, "baseline": base, "tolerance": self.tolerance}
        if r is None:
            v["status"] = "missing"
        elif not math.isfinite(r) or r <= 0:
            v["status"] = "broken"
        elif base is None:
            v["status"] = "no-baseline"
        else:
            floor = base * (1 - self.tolerance)
            v["floor"] = floor
            v["change"] = r / base - 1
            if r < floor:
                v["status"] = "regression"
            elif r > base * (1 + self.tolerance):
                v["status"] = "improved"
            else:
                v["status"] = "ok"
        self.verdicts[(op, peer)] = v
        return v

    def summary(self) -> dict:
        return {
            "subject": SUBJECT,
            "statistic": "min of rounds, seconds per operation; ratio = peer / engine",
            "smoke": self.smoke,
            "rounds": self.rounds,
            "tolerance": self.tolerance,
            "baseline_file": str(self.baseline_path),
            "baseline_meta": self.baseline.get("meta"),
            "times": {f"{op}[{impl}]": t for (op, impl), t in self.times.items()},
            "ratios": self.ratios(),
            "verdicts": [self.verdicts[k] for k in sorted(self.verdicts)],
        }

    def write_baseline(self) -> Path | None:
        ratios = self.ratios()
        if not ratios:
            return None
        merged = dict(self.baseline.get("ratios") or {})
        for op, peers in ratios.items():
            merged[op] = dict(merged.get(op, {}), **{p: round(v, 4) for p, v in peers.items()})
        doc = {
            "schema": BASELINE_SCHEMA,
            "schema_version": 1,
            "about": "engine/peer speed ratios (peer time / engine time, min of rounds) "
                     "measured in one `pytest perf/` run; `pytest perf/` fails when a ratio "
                     "falls more than `tolerance` below these. Regenerate with "
                     "`pytest perf/ --update-baseline` (see perf/README.md).",
            "tolerance": self.baseline.get("tolerance", DEFAULT_TOLERANCE),
            "statistic": "min",
            "ratios": merged,
            "meta": _meta(self.rounds),
        }
        self.baseline_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.baseline_path, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        return self.baseline_path


def _meta(rounds: int) -> dict:
    aff = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "commit": git(HERE, "rev-parse", "HEAD"),
        "describe": git(HERE, "describe", "--always", "--dirty"),
        "cpu_model": cpu_model(),
        "cpu_affinity": ",".join(map(str, aff)) if aff else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
        "rounds": rounds,
    }


def pytest_configure(config):
    config.stash[_KEY] = Regression(config)


@pytest.fixture(scope="session")
def regression(pytestconfig) -> Regression:
    return pytestconfig.stash[_KEY]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    reg = config.stash.get(_KEY, None)
    if reg is not None:
        output_json["engine_regression"] = reg.summary()


def pytest_sessionfinish(session, exitstatus):
    reg = session.config.stash.get(_KEY, None)
    if reg is not None and reg.update and exitstatus == 0:
        path = reg.write_baseline()
        reg.written = path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reg = config.stash.get(_KEY, None)
    if reg is None or not reg.times:
        return
    tr = terminalreporter
    tr.section("engine regression gate (ratios = peer time / engine time, > 1: engine faster)")
    mode = "smoke: reported, never fails" if reg.smoke else (
        "updating the baseline" if reg.update else f"fails below baseline x {1 - reg.tolerance:g}")
    tr.write_line(f"rounds {reg.rounds}, statistic min, tolerance {reg.tolerance:.0%} ({mode})")
    tr.write_line(f"{'op':12s} {'peer':8s} {'ratio':>8s} {'baseline':>9s} {'change':>8s}  status")
    for (op, peer), v in sorted(reg.verdicts.items()):
        r = f"{v['ratio']:.2f}x" if v["ratio"] else "n/a"
        b = f"{v['baseline']:.2f}x" if v["baseline"] else "n/a"
        c = f"{v['change']:+.0%}" if "change" in v else ""
        extra = ""
        if v.get("recheck"):
            extra = " (interleaved recheck: " + ", ".join(f"{x:.2f}x" for x in v["recheck"]) + ")"
        tr.write_line(f"{op:12s} {peer:8s} {r:>8s} {b:>9s} {c:>8s}  {v['status']}{extra}")
    if reg.update:
        written = getattr(reg, "written", None)
        tr.write_line(f"baseline written to {written}" if written else
                      "baseline NOT written (the run failed or measured nothing)")

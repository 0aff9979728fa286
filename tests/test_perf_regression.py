"""The `pytest perf/` regression gate end to end (in a subprocess): --update-baseline writes
measured ratios, a baseline the run cannot reach fails it, a low one passes, --smoke never
fails on numbers, and --benchmark-json carries the ratios."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "perf" / "test_regression.py"


def run_perf(tmp_path, *args):
    # cwd outside the source tree: the installed engine is the one measured
    # and a plain pytest run: no xdist worker state inherited from the outer run (-n)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS")) and k != "PYTEST_CURRENT_TEST"}
    return subprocess.run([sys.executable, "-m", "pytest", str(SUITE), "-p", "no:randomly",
                           "-p", "no:xdist", "-k", "call_soon and not uvloop",
                           "--regression-rounds", "3", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_gate(tmp_path):
    base = tmp_path / "baseline.json"
    r = run_perf(tmp_path, "--baseline", str(base), "--update-baseline")
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(base.read_text())
    assert data["schema"] == "engine-regression-baseline"
    measured = data["ratios"]["call_soon"]["asyncio"]
    assert measured > 0 and set(data["ratios"]) == {"call_soon"}
    assert data["meta"]["python_version"] and data["meta"]["commit"]

    data["ratios"]["call_soon"]["asyncio"] = 1000.0          # unreachable: engine "regressed"
    base.write_text(json.dumps(data))
    out = tmp_path / "bench.json"
    r = run_perf(tmp_path, "--baseline", str(base), f"--benchmark-json={out}")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION call_soon: engine vs asyncio" in r.stdout
    assert "interleaved rechecks" in r.stdout
    saved = json.loads(out.read_text())["engine_regression"]
    assert saved["ratios"]["call_soon"]["asyncio"] > 0
    assert [v["status"] for v in saved["verdicts"]] == ["regression"]
    assert {b["name"] for b in json.loads(out.read_text())["benchmarks"]} == {
        "call_soon[engine]", "call_soon[asyncio]"}

    r = run_perf(tmp_path, "--baseline", str(base), "--smoke")   # smoke: reported, not failed
    assert r.returncode == 0, r.stdout + r.stderr
    assert "regression" in r.stdout and "smoke: reported, never fails" in r.stdout

    data["ratios"]["call_soon"]["asyncio"] = 0.01
    base.write_text(json.dumps(data))
    r = run_perf(tmp_path, "--baseline", str(base))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "improved" in r.stdout


def test_ops_are_the_shipped_loop_suite(tmp_path):
    """perf/test_regression.py times the work of engine.bench.loop_suite (one definition of
    each op): every op completes on engine and on asyncio."""
    import asyncio
    import importlib.util

    from engine.bench import loop_suite

    spec = importlib.util.spec_from_file_location("perf_test_regression", SUITE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.L is loop_suite
    import engine

    for factory in (engine.new_event_loop, asyncio.SelectorEventLoop):
        for op, (func, (_, smoke)) in mod.OPS.items():
            loop = factory()
            try:
                func(loop, smoke)
                assert not loop.is_running(), op
            finally:
                loop.close()
    loop = asyncio.SelectorEventLoop()
    try:
        assert loop.run_until_complete(loop_suite.call_soon_chain(loop, 7)) == 7
        delays = loop_suite.timer_delays(50, spread=0.001)
        assert len(set(delays)) == 50 and max(delays) < 0.001
        assert loop.run_until_complete(loop_suite.schedule_timers(loop, delays)) == 50
    finally:
        loop.close()

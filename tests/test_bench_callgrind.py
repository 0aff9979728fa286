"""The loop suite's callgrind mode (`engine bench loop-callgrind`, engine.bench.loop_callgrind)
and the counting helpers it shares with perf/callgrind_*.py (engine.bench.callgrind).

The real runs under valgrind are small (tens of operations) and skipped only where valgrind is
not installed (CI installs it)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from engine.bench import callgrind as cg
from engine.bench import loop_callgrind as LC
from engine.bench import loop_suite as L
from engine.bench import results as R
from engine.bench.run import check_requirements
from engine.bench.suites import builtin_registry

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None,
                                    reason="valgrind is not installed (apt-get install valgrind)")

CALLGRIND_FILE = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
cmd: python x.py
events: Ir Dr Dw
fn=(1) main
0 10 2 1
summary: 1234 56 7
totals: 1234 56 7
"""


def test_totals_per_op_and_derived(tmp_path):
    path = tmp_path / "cg.out"
    path.write_text(CALLGRIND_FILE)
    ev = cg.totals(str(path))
    assert ev == {"Ir": 1234, "Dr": 56, "Dw": 7}
    assert cg.derived(ev) == {"Ir": 1234}
    sim = {"Ir": 100, "I1mr": 1, "D1mr": 2, "D1mw": 3, "ILmr": 0, "DLmr": 1, "DLmw": 0,
           "Bcm": 4, "Bim": 1}
    assert cg.derived(sim) == {"Ir": 100, "L1m": 6, "LLm": 1, "Bm": 5,
                               "est": 100 + 10 * 6 + 100 * 1}
    assert cg.per_op({"Ir": 1000}, {"Ir": 3000}, 4) == {"Ir": 500.0}


def test_totals_of_a_file_without_them_is_a_clear_error(tmp_path):
    path = tmp_path / "cg.out"
    path.write_text("events: Ir\n")
    with pytest.raises(cg.CallgrindError, match="no totals"):
        cg.totals(str(path))


def test_command_and_environment():
    cmd = cg.command("/tmp/o", ["python", "x.py"], sim=True)
    assert cmd[:3] == ["valgrind", "--tool=callgrind", "--callgrind-out-file=/tmp/o"]
    assert "--cache-sim=yes" in cmd and cmd[-2:] == ["python", "x.py"]
    assert "--cache-sim=yes" not in cg.command("/tmp/o", ["python"])
    env = cg.env({"X": "1"})
    assert env["ENGINE_BUSY_POLL_US"] == "0" and env["PYTHONHASHSEED"] == "0" and env["X"] == "1"


@pytest.mark.parametrize("impl", ["engine", "asyncio"])
@pytest.mark.parametrize("scenario", list(LC.SCENARIOS))
def test_every_scenario_runs_its_ops_on_a_loop(scenario, impl):
    """The counted process's work (no valgrind): the warm-up and n operations of each scenario,
    with the loop suite's own op helpers."""
    LC.child(impl, scenario, 3)


def test_ops_are_the_loop_suites():
    assert set(LC.SCENARIOS) == {sc for sc, info in L.SCENARIOS.items()
                                 if info["kind"] == "throughput"}
    assert LC.SCENARIOS["timer_cancel"][1] is L.cancel_timers


def test_registered_as_a_builtin_suite_needing_valgrind(tmp_path, monkeypatch):
    suite = builtin_registry()["loop-callgrind"]
    assert suite.module == "engine.bench.loop_callgrind" and suite.protocol == "results"
    assert suite.tools == ("valgrind",) and not suite.default and suite.kinds == ("cost",)
    assert suite.quick_args == ("--quick",)
    monkeypatch.setenv("PATH", str(tmp_path))                  # no valgrind on this PATH
    assert any("valgrind" in m for m in check_requirements(suite, ["engine"]))


def test_without_valgrind_the_script_says_so(tmp_path):
    r = subprocess.run([sys.executable, "-P", "-m", "engine.bench.loop_callgrind", "--impls",
                        "engine"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                       env={"PATH": str(tmp_path)})
    assert r.returncode != 0 and "valgrind is not installed" in r.stderr


def test_bad_options_are_refused(tmp_path):
    for args, message in ((["--scenarios", "idle"], "unknown scenario"),
                          (["--impls", "nope"], "unknown loop implementation"),
                          (["--ops", "0"], "--ops must be >= 1")):
        r = subprocess.run([sys.executable, "-P", "-m", "engine.bench.loop_callgrind", *args],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and message in r.stdout + r.stderr, args


@needs_valgrind
def test_engine_bench_loop_callgrind_writes_a_results_document(tmp_path):
    """`engine bench loop-callgrind` end to end (tiny: one scenario, 20 ops, engine alone:
    two runs under valgrind)."""
    work = tmp_path / "anywhere"
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "engine", "bench", "loop-callgrind", "--scenarios",
                        "sleep0", "--impls", "engine", "--results-dir", str(tmp_path / "res"),
                        "--", "--ops", "20"],
                       cwd=work, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-P -m engine.bench.loop_callgrind" in r.stderr
    assert "sleep0[engine]:" in r.stdout and "Ir/op" in r.stdout
    files = list((tmp_path / "res").glob("loop-callgrind-*-custom.json"))
    assert len(files) == 1
    doc = R.load_result(files[0])                         # validates
    assert doc["suite"] == "loop-callgrind" and doc["subject"] == "engine"
    sc = doc["scenarios"]["sleep0"]
    assert sc["kind"] == "cost" and sc["unit"] == "Ir/op" and not sc["higher_is_better"]
    m = sc["impls"]["engine"]
    assert m["ops"] == 20 and m["warmup_ops"] == LC.WARMUP and m["n_values"] == 1
    assert m["ir_full"] > m["ir_base"] > 1_000_000         # Python's start-up alone is millions
    assert m["value"] == (m["ir_full"] - m["ir_base"]) / 20
    assert 100 < m["value"] < 1_000_000                    # a sleep(0) is not free, nor a start-up
    assert doc["meta"]["impls"]["engine"]["builds"] and doc["meta"]["tools"]["valgrind"]
    table = R.format_table(doc)
    assert "await sleep(0)" in table and "±" not in table.split("\n")[3]   # a count: no spread

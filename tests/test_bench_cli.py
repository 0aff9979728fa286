"""The benchmark harness: results schema, tables, README update, the merged suite registry
(built in + a checkout's perf/suites.toml), `engine bench` (short real runs of a tiny subset,
outside and inside a checkout) and compare_loop.py writing the same schema."""
from __future__ import annotations

import copy
import dataclasses
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness_data import make_doc, make_results_dir

from engine.bench import results as R
from engine.bench import run as B
from engine.bench.suites import (
    HarnessError,
    builtin_registry,
    checkout,
    find_repo,
    load_registry,
    registry,
)

REPO = Path(__file__).resolve().parents[1]


def run_engine(*args, cwd, timeout=120):
    # `python -m engine` from a directory that is not the source tree: the installed package runs
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------------------- schema

def test_synthetic_document_is_valid():
    assert R.validate(make_doc()) == []


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(schema="other"), "schema: must be"),
    (lambda d: d.update(schema_version=R.SCHEMA_VERSION + 1), "upgrade engine"),
    (lambda d: d.update(mode="fast"), "mode: must be one of"),
    (lambda d: d["meta"].update(date="2026-01-01 12:00"), "meta.date"),
    (lambda d: d["scenarios"]["call_soon"].update(kind="speed"), "scenarios.call_soon.kind"),
    (lambda d: d["scenarios"]["idle"].update(higher_is_better=True),
     "scenarios.idle.higher_is_better"),
    (lambda d: d["scenarios"]["wakeup"]["impls"]["engine"]["histogram"]["counts"].append(1),
     "histogram"),
    (lambda d: d["scenarios"]["wakeup"]["impls"]["uvloop"]["percentiles"].pop("p99"),
     "percentiles.p99"),
    (lambda d: d["scenarios"]["sleep0"]["ratios"]["uvloop"].update(value=-1.0),
     "ratios.uvloop.value"),
    (lambda d: d["scenarios"]["sleep0"]["impls"]["engine"].update(value=float("nan")),
     "impls.engine.value"),
    (lambda d: d.update(scenarios={}), "scenarios: must be a non-empty object"),
])
def test_validation_catches(mutate, message):
    doc = copy.deepcopy(make_doc())
    mutate(doc)
    errs = R.validate(doc)
    assert any(message in e for e in errs), errs
    with pytest.raises(ValueError, match="invalid results document"):
        R.check(doc)


def test_result_file_names_and_no_overwrite(tmp_path):
    full = make_doc(3)
    quick = make_doc(3, mode="quick")
    assert R.result_stem(full) == "loop-20260104T120000Z-aaaaaa3"
    assert R.result_stem(quick) == "loop-20260104T120000Z-aaaaaa3-quick"
    p1 = R.write_result(full, tmp_path)
    p2 = R.write_result(full, tmp_path)
    assert p1.name == "loop-20260104T120000Z-aaaaaa3.json"
    assert p2.name == "loop-20260104T120000Z-aaaaaa3-2.json"
    assert R.load_result(p1) == json.loads(p1.read_text())


def test_load_results_sorts_skips_and_ignores(tmp_path):
    make_results_dir(tmp_path, n_full=3)
    runs, problems = R.load_results(tmp_path)
    assert [d["mode"] for _, d in runs] == ["full"] * 3 + ["quick"]
    dates = [d["meta"]["date"] for _, d in runs]
    assert dates == sorted(dates)
    assert len(problems) == 1 and problems[0].startswith("loop-broken.json")
    path, doc = R.latest(runs, "loop")
    assert doc["mode"] == "full" and path == runs[2][0]
    assert R.latest(runs, "loop", R.MODES)[1]["mode"] == "quick"
    assert R.latest(runs, "http") is None


def test_tables():
    doc = make_doc()
    text = R.format_table(doc)
    for s in ("call_soon chain", "calls/s", "engine/uvloop", "engine/asyncio", "geomean",
              "threadsafe wake-up p50", "└ p99", "idle loop CPU", "(↓)", "Synthetic CPU",
              "pinning bench=1", "mode full"):
        assert s in text, s
    # ratio cells: 2.0M / 900k engine vs uvloop
    assert "2.22x" in text
    md = R.markdown_table(doc)
    lines = md.splitlines()
    assert lines[0].startswith("| scenario | unit | engine | uvloop | asyncio |")
    assert lines[1].startswith("|:---|:---|---:|")
    assert len({line.count("|") for line in lines}) == 1    # a rectangular table


def test_update_readme(tmp_path):
    make_results_dir(tmp_path, n_full=2)
    runs, _ = R.load_results(tmp_path)
    readme = tmp_path / "README.md"
    assert R.update_readme(readme, runs)
    text = readme.read_text()
    assert "old table" not in text and "before" in text and "after" in text
    newest_full = R.latest(runs, "loop")[0].name
    assert f"[`{newest_full}`]({newest_full})" in text
    assert "mode full" in text and "-quick.json" not in text
    assert not R.update_readme(readme, runs)          # idempotent
    (tmp_path / "NOMARK.md").write_text("# nothing\n")
    with pytest.raises(ValueError, match="markers"):
        R.update_readme(tmp_path / "NOMARK.md", runs)


# --------------------------------------------------------------------------- registry, checks

def test_registry_and_repo_discovery(tmp_path):
    assert find_repo(start=REPO / "perf") == REPO == checkout(REPO / "perf")
    assert checkout(tmp_path) is None
    loop = builtin_registry()["loop"]
    assert loop.builtin and loop.script is None and loop.module == "engine.bench.loop_suite"
    assert loop.command()[1:] == ["-P", "-m", "engine.bench.loop_suite"]
    assert loop.impls == ("engine", "uvloop", "rloop", "asyncio")
    assert set(loop.kinds) == {"throughput", "latency", "cost"}
    # the checkout adds its suites (scripts in perf/), the loop suite stays the built-in one
    mine = load_registry(REPO)
    assert "loop" not in mine and {"net", "http"} <= set(mine)
    for s in mine.values():
        assert not s.builtin and s.script.parent == REPO / "perf" and s.script.is_file()
        assert s.protocol == "results" and not s.default and s.quick_args
    assert mine["http"].impls_option == "--servers" and mine["http"].impl_tools == {
        "nginx": "nginx"}
    merged = registry(REPO)
    assert list(merged) == ["loop", "loop-callgrind", *mine] and merged["loop"] == loop
    assert list(registry(None)) == ["loop", "loop-callgrind"]
    assert not merged["loop-callgrind"].default     # a bare `engine bench` runs the timed one
    with pytest.raises(HarnessError, match="no engine checkout here"):
        find_repo(start=tmp_path)
    with pytest.raises(HarnessError, match="not a checkout"):
        find_repo(tmp_path)


def test_checkout_entry_replaces_builtin(tmp_path):
    repo = tmp_path / "repo"
    (repo / "perf").mkdir(parents=True)
    (repo / "perf" / "mine.py").write_text("")
    (repo / "perf" / "suites.toml").write_text(
        '[loop]\nscript = "mine.py"\nsubject = "engine"\npeers = ["asyncio"]\n'
        'kinds = ["throughput"]\n')
    loop = registry(repo)["loop"]
    assert loop.script == repo / "perf" / "mine.py" and loop.peers == ("asyncio",)
    (repo / "perf" / "suites.toml").write_text(
        '[x]\nscript = "mine.py"\nsubject = "engine"\npeers = []\nkinds = ["speed"]\n')
    with pytest.raises(HarnessError, match="unknown kinds"):
        registry(repo)


def test_requirements_and_cpus(tmp_path):
    loop = builtin_registry()["loop"]
    assert B.check_requirements(loop, list(loop.impls)) == []     # the test extra has the peers
    fake = dataclasses.replace(loop, modules={"engine": "engine", "uvloop": "no_such_module_xyz"},
                               tools=("no-such-tool-xyz",))
    missing = B.check_requirements(fake, ["engine", "uvloop"])
    assert any("no_such_module_xyz" in m for m in missing)
    assert any("no-such-tool-xyz" in m for m in missing)
    # an implementation's own executable is needed only when it runs
    peer_tool = dataclasses.replace(loop, impl_tools={"uvloop": "no-such-server-xyz"})
    assert any("no-such-server-xyz" in m for m in B.check_requirements(peer_tool, ["uvloop"]))
    assert B.check_requirements(peer_tool, ["engine", "asyncio"]) == []

    assert B.assign_cpus(loop, "none") == {}
    assert B.assign_cpus(loop, "3") == {"bench": "3"}
    auto = B.assign_cpus(loop, "auto")
    assert auto["bench"] == str(max(os.sched_getaffinity(0)))
    with pytest.raises(HarnessError, match="one per role"):
        B.assign_cpus(loop, "1,0")
    net = dataclasses.replace(loop, cpu_roles={"server": "--server-cpu",
                                               "client": "--client-cpu"})
    assert B.assign_cpus(net, "1,0") == {"server": "1", "client": "0"}


def test_progress_bar_plain_text():
    out = io.StringIO()
    bar = B.ProgressBar("[loop]", stream=out, tty=False)
    bar.update(0.25, 1, 4, "x running")                # not a TTY: nothing until one finishes
    assert out.getvalue() == ""
    bar.update(0.5, 2, 4, "call_soon[engine] done", finished=True)
    bar.close("all done")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[loop] [##############--------------]  50% 2/4 call_soon[engine]")
    assert lines[-1] == "all done"
    tty = io.StringIO()
    bar = B.ProgressBar("[loop]", stream=tty, tty=True)
    bar.update(1.0, 4, 4, "done", finished=True)
    bar.close()
    assert tty.getvalue().startswith("\r[loop] [" + "#" * B.ProgressBar.WIDTH + "] 100%")
    assert tty.getvalue().endswith("\n")


def test_core_import_has_no_runtime_deps(tmp_path):
    code = ("import sys, engine\n"
            "assert not [k for k in sys.modules if k.startswith('engine.bench')]\n"
            "import engine.__main__ as m\n"
            "assert m.main(['info']) == 0\n"
            "heavy = {'numpy', 'pyperf', 'matplotlib', 'selenium'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- engine bench

def test_bench_errors_are_clear(tmp_path):
    # outside a checkout: a checkout's suite is refused with what it needs
    r = run_engine("bench", "net", "--quick", cwd=tmp_path)
    assert r.returncode == 2
    assert "net: not built in (built in: loop, loop-callgrind)" in r.stderr
    assert "checkout of the engine repository" in r.stderr and "--repo" in r.stderr
    r = run_engine("bench", "--list", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("loop ") and "built in" in r.stdout
    assert "\nnet " not in r.stdout and "outside a checkout" in r.stdout
    r = run_engine("bench", "--list", "--repo", str(REPO), cwd=tmp_path)
    assert r.returncode == 0 and "\nnet " in r.stdout and "script perf/bench_http.py" in r.stdout
    r = run_engine("bench", "--quick", "--repo", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2 and "not a checkout of engine" in r.stderr
    r = run_engine("bench", "nosuchsuite", "--repo", str(REPO), cwd=tmp_path)
    assert r.returncode == 2 and "unknown suite(s) nosuchsuite" in r.stderr
    r = run_engine("bench", "--impls", "engine,trio", "--repo", str(REPO), cwd=tmp_path)
    assert r.returncode == 2 and "unknown implementation" in r.stderr
    r = run_engine("dashboard", "--results", str(tmp_path / "nope"), cwd=tmp_path)
    assert r.returncode == 2 and "does not exist" in r.stderr
    assert not (tmp_path / "results").exists()


def test_bench_missing_peer_is_never_assumed(tmp_path):
    """A registry naming a peer module that is not installed: no run, the install command."""
    repo = tmp_path / "repo"
    (repo / "perf").mkdir(parents=True)
    reg = (REPO / "perf" / "suites.toml").read_text()
    for script in re.findall(r'^script = "([^"]+)"', reg, re.M):    # every suite's script
        shutil.copy(REPO / "perf" / script, repo / "perf")
    reg = reg.replace('uvloop = "uvloop"', 'uvloop = "no_such_uvloop_xyz"', 1)
    (repo / "perf" / "suites.toml").write_text(reg)
    r = run_engine("bench", "net", "--quick", "--repo", str(repo), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "no_such_uvloop_xyz" in r.stderr and "pip install '.[perf]'" in r.stderr
    assert "never assumed" in r.stderr
    assert not (repo / "results").exists()


def test_bench_quick_outside_a_checkout(tmp_path):
    """The loop suite ships with engine: `engine bench --quick` in a directory that is no
    checkout writes ./results (the installed package alone)."""
    work = tmp_path / "anywhere"
    work.mkdir()
    assert checkout(work) is None
    r = run_engine("bench", "--quick", "--scenarios", "call_soon,idle", "--impls",
                   "engine,asyncio", "--", "-p", "1", "--idle-seconds", "0.1", cwd=work,
                   timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "-P -m engine.bench.loop_suite" in r.stderr and "100% 4/4" in r.stderr
    assert "call_soon chain" in r.stdout and "engine/asyncio" in r.stdout
    files = sorted((work / "results").glob("*.json"))
    assert [f.name for f in files] == [files[0].name]
    assert files[0].name.startswith("loop-") and files[0].name.endswith("-nogit-quick.json")
    doc = R.load_result(files[0])                        # validates
    assert doc["suite"] == "loop" and doc["mode"] == "quick" and doc["peers"] == ["asyncio"]
    assert set(doc["scenarios"]) == {"call_soon", "idle"}
    for sc in doc["scenarios"].values():
        assert set(sc["impls"]) == {"engine", "asyncio"} and set(sc["ratios"]) == {"asyncio"}
    # no checkout, so no commit (not that of whatever repository the cwd might be in)
    assert doc["meta"]["git"]["commit"] is None
    import engine
    assert doc["meta"]["impls"]["engine"]["version"] == engine.__version__
    assert (work / "results" / "raw" / (files[0].stem + ".pyperf.json.gz")).exists()
    # a results file elsewhere, from the same place
    r = run_engine("bench", "--quick", "--scenarios", "call_soon", "--impls", "engine",
                   "--results-dir", str(tmp_path / "elsewhere"), "--", "-p", "1", cwd=work,
                   timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list((tmp_path / "elsewhere").glob("loop-*-quick.json"))) == 1
    assert len(list((work / "results").glob("*.json"))) == 1


def test_bench_checkout_suite_writes_results(tmp_path):
    """`engine bench net` inside a checkout: the script's own results document, as quick."""
    out = tmp_path / "results"
    r = run_engine("bench", "net", "--quick", "--scenarios", "sock_pingpong", "--impls",
                   "engine,asyncio", "--repo", str(REPO), "--results-dir", str(out),
                   "--", "--seconds", "0.2", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "perf/bench_net.py --results" in r.stderr
    files = sorted(out.glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("net-")
    assert files[0].name.endswith("-quick.json")
    doc = R.load_result(files[0])
    assert doc["suite"] == "net" and doc["mode"] == "quick" and doc["peers"] == ["asyncio"]
    assert list(doc["scenarios"]) == ["sock_pingpong"]
    assert doc["scenarios"]["sock_pingpong"]["impls"]["engine"]["value"] > 0
    assert doc["meta"]["pinning"] == {"server": str(max(os.sched_getaffinity(0))),
                                      "client": str(min(os.sched_getaffinity(0)))}
    assert doc["command"].startswith("engine bench net --quick")
    assert (out / "raw" / (files[0].stem + ".log")).exists()


def test_bench_quick_subset_writes_valid_results(tmp_path):
    """A real (tiny) run: every kind of scenario, engine and its three peers, in a few
    seconds."""
    out = tmp_path / "results"
    r = run_engine("bench", "loop", "--quick", "--scenarios", "call_soon,wakeup,idle",
                   "--repo", str(REPO), "--results-dir", str(out), "--",
                   "-p", "1", "--idle-seconds", "0.1", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "100% 12/12" in r.stderr                       # the progress bar reached the end
    assert "call_soon chain" in r.stdout and "engine/uvloop" in r.stdout
    files = sorted(out.glob("*.json"))
    assert len(files) == 1 and files[0].name.endswith("-quick.json")
    doc = R.load_result(files[0])                       # validates
    assert doc["suite"] == "loop" and doc["mode"] == "quick"
    assert doc["peers"] == ["uvloop", "rloop", "asyncio"]
    assert set(doc["scenarios"]) == {"call_soon", "wakeup", "idle"}
    assert {sc["kind"] for sc in doc["scenarios"].values()} == {"throughput", "latency", "cost"}
    for sc in doc["scenarios"].values():
        assert set(sc["impls"]) == {"engine", "uvloop", "rloop", "asyncio"}
        assert set(sc["ratios"]) == {"uvloop", "rloop", "asyncio"}
    wake = doc["scenarios"]["wakeup"]["impls"]["engine"]
    assert wake["n_values"] == 60 and sum(wake["histogram"]["counts"]) == 60
    assert wake["percentiles"]["p50"] <= wake["percentiles"]["p99"]
    m = doc["meta"]
    assert m["cpu_model"] and m["kernel"] and m["python_version"] and m["date"]
    assert m["git"]["commit"] and len(m["git"]["short"]) == 7
    assert m["pinning"] == {"bench": str(max(os.sched_getaffinity(0)))}
    assert doc["command"].startswith("engine bench loop --quick")
    assert doc["command"].endswith("-- -p 1 --idle-seconds 0.1")
    assert doc["scenarios"]["call_soon"]["impls"]["engine"]["processes"] == 1
    raw = out / "raw" / (files[0].stem + ".pyperf.json.gz")
    assert raw.exists() and (out / "raw" / (files[0].stem + ".log")).exists()
    with gzip.open(raw, "rt") as f:
        names = {b["metadata"]["name"] for b in json.load(f)["benchmarks"]}
    assert "wakeup[uvloop]" in names

    # compare_loop.py rebuilds the same schema (and the same figures) from the raw file
    again = tmp_path / "again.json"
    r = subprocess.run([sys.executable, str(REPO / "perf" / "compare_loop.py"), str(raw),
                        "--results", str(again)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    doc2 = R.load_result(again)
    assert doc2["mode"] == "quick" and doc2["suite"] == "loop"
    for name, sc in doc["scenarios"].items():
        for impl, d in sc["impls"].items():
            assert doc2["scenarios"][name]["impls"][impl]["value"] == pytest.approx(d["value"])

    # engine dashboard on it (matplotlib is in the test extra)
    r = run_engine("dashboard", "--results", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "index.html").read_text().count("<svg") == 4     # overview + 3 scenarios


def test_bench_backends_script_runs_and_writes_its_document(tmp_path):
    """perf/bench_backends.py, a tiny real run: the C echo client at 64 connections and the sock_*
    ping-pong, engine on each backend; the document holds both, with CPU per operation."""
    import engine._loop as L
    impls = "engine-epoll,engine-io_uring" if L._probe_backend("io_uring") == "io_uring" \
        else "engine-epoll"
    r = subprocess.run([sys.executable, str(REPO / "perf" / "bench_backends.py"), "--scenarios",
                        "echo_1k_c64,sock_pingpong", "--impls", impls, "--rounds", "1",
                        "--seconds", "0.3", "--no-strace", "--results", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    files = list(tmp_path.glob("backends-*.json"))
    assert len(files) == 1
    doc = R.load_result(files[0])
    assert doc["suite"] == "backends" and doc["mode"] == "custom"
    for sc in ("echo_1k_c64", "sock_pingpong"):
        assert set(doc["scenarios"][sc]["impls"]) == set(impls.split(","))
        for impl in impls.split(","):
            assert doc["scenarios"][sc]["impls"][impl]["value"] > 0
            assert doc["meta"]["server_cpu_us_per_op_median"][sc][impl] > 0

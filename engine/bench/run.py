"""`engine bench`: run registered pyperf suites with a progress bar, print the side-by-side
table, write a results file (results/SCHEMA.md) and keep the raw pyperf data next to it.

Standard library only at import time; the report (pyperf + numpy) is imported after the run.
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, TextIO

from . import results as R
from .suites import NEED_CHECKOUT, REGISTRY, HarnessError, Suite, checkout, find_repo, registry

# --------------------------------------------------------------------------- progress bar

def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class ProgressBar:
    """Plain-text progress on a stream: redrawn in place on a terminal, one line per finished
    benchmark otherwise (CI logs)."""

    WIDTH = 28

    def __init__(self, label: str, stream: TextIO | None = None, tty: bool | None = None):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.t0 = time.monotonic()
        self._last_draw = 0.0
        self._last_line = ""

    def _line(self, frac: float, done: int, total: int, name: str) -> str:
        frac = min(max(frac, 0.0), 1.0)
        fill = int(round(frac * self.WIDTH))
        elapsed = time.monotonic() - self.t0
        eta = ""
        if 0.03 < frac < 1.0:
            eta = f", ~{_clock(elapsed / frac * (1 - frac))} left"
        return (f"{self.label} [{'#' * fill}{'-' * (self.WIDTH - fill)}] {frac * 100:3.0f}% "
                f"{done}/{total} {name} ({_clock(elapsed)}{eta})")

    def update(self, frac: float, done: int, total: int, name: str,
               finished: bool = False) -> None:
        line = self._line(frac, done, total, name)
        if self.tty:
            now = time.monotonic()
            if finished or now - self._last_draw >= 0.1:
                self.stream.write("\r" + line + "\x1b[K")
                self.stream.flush()
                self._last_draw = now
        elif finished:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_line = line

    def close(self, message: str = "") -> None:
        if self.tty:
            self.stream.write("\r" + (message or self._last_line) + "\x1b[K\n")
        elif message:
            self.stream.write(message + "\n")
        self.stream.flush()


class _Output(threading.Thread):
    """Reads the suite's stdout: logs it, counts pyperf's per-worker dots, echoes if asked."""

    def __init__(self, pipe: IO[bytes], log: IO[bytes], echo: bool):
        super().__init__(daemon=True)
        self.pipe, self.log, self.echo = pipe, log, echo
        self.dots = 0
        self._dots_only = True

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            self.log.write(chunk)
            self.log.flush()
            if self.echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            for c in chunk:
                if c == 10:                       # "\n"
                    self._dots_only = True
                elif c == 46 and self._dots_only:  # "." alone on a line: one worker done
                    self.dots += 1
                else:
                    self._dots_only = False


class _Plan:
    """Progress of one suite from the script's progress events + pyperf's dots."""

    def __init__(self, path: Path):
        self.path = path
        self._pos = 0
        self.weights: dict[str, int] = {}
        self.order: list[str] = []
        self.done: set[str] = set()
        self.current: str | None = None
        self.dots_at_start = 0
        self.new_done: list[str] = []

    def poll(self, dots: int) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                f.seek(self._pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind("\n")
        if end < 0:
            return
        self._pos += len(data[:end + 1].encode("utf-8"))
        for line in data[:end + 1].splitlines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "plan":
                for name, procs in ev.get("benchmarks", []):
                    self.weights[name] = max(int(procs), 1)
                    self.order.append(name)
            elif ev.get("event") == "start":
                self.current = ev.get("name")
                self.dots_at_start = dots
            elif ev.get("event") == "done":
                self.done.add(ev.get("name"))
                self.new_done.append(ev.get("name"))
                self.current = None

    def fraction(self, dots: int) -> float:
        total = sum(self.weights.values())
        if not total:
            return 0.0
        got: float = sum(self.weights.get(n, 1) for n in self.done)
        if self.current in self.weights:
            w = self.weights[self.current]
            got += min(max(dots - self.dots_at_start, 0), w - 0.5)
        return got / total


# --------------------------------------------------------------------------- checks

def check_requirements(suite: Suite, impls: list[str]) -> list[str]:
    """What is missing to run ``suite`` on ``impls`` (Python modules, executables)."""
    missing = []
    for impl in impls:
        mod = suite.modules.get(impl, impl)
        if mod and importlib.util.find_spec(mod) is None:
            missing.append(f"Python module {mod!r} ({impl})")
    for mod in dict.fromkeys((*suite.requires, "pyperf", "numpy")):   # the report needs both
        if importlib.util.find_spec(mod) is None:
            missing.append(f"Python module {mod!r}")
    tools = [*suite.tools, *(suite.impl_tools[i] for i in impls if i in suite.impl_tools)]
    for tool in dict.fromkeys(tools):
        if shutil.which(tool) is None:
            missing.append(f"executable {tool!r}")
    return missing


def assign_cpus(suite: Suite, spec: str) -> dict[str, str]:
    """CPU role -> CPU for ``--cpus auto|none|A[,B...]``."""
    roles = list(suite.cpu_roles)
    if not roles or spec == "none":
        return {}
    if spec == "auto":
        avail = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not avail:
            return {}
        picked = [avail[-1 - i] if i < len(avail) else avail[0] for i in range(len(roles))]
        if len(roles) > 1 and len(avail) < len(roles):
            print(f"WARNING: {len(roles)} CPU roles ({', '.join(roles)}) but only "
                  f"{len(avail)} CPU(s) available: they share CPUs", file=sys.stderr)
        return {r: str(c) for r, c in zip(roles, picked, strict=True)}
    cpus = [c.strip() for c in spec.split(",") if c.strip()]
    if not all(c.isdigit() for c in cpus) or len(cpus) != len(roles):
        raise HarnessError(f"--cpus {spec!r}: suite {suite.name} needs {len(roles)} CPU "
                           f"number(s), one per role ({', '.join(roles)}), or auto / none")
    return dict(zip(roles, cpus, strict=True))


# --------------------------------------------------------------------------- running

def _select(text: str | None, allowed: tuple[str, ...] | None, what: str) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    if allowed is not None:
        bad = [x for x in items if x not in allowed]
        if bad:
            raise HarnessError(f"unknown {what}: {', '.join(bad)} "
                               f"(choose from {', '.join(allowed)})")
    return items


def _command(suite: Suite, *, repo: Path | None, quick: bool, scenarios: list[str] | None,
             impls: list[str], pinning: dict[str, str], extra: list[str], raw: Path,
             prog: Path) -> list[str]:
    cmd = suite.command()
    if suite.protocol == "pyperf":
        cmd += ["-o", str(raw), "--progress", str(prog), "--no-table"]
        if quick:
            cmd.append("--quick")
        if suite.builtin and repo is not None:
            cmd += ["--repo", str(repo)]       # the checkout whose commit is recorded
    else:                                      # the script writes a results document
        cmd += ["--results", str(raw)]
        if quick:
            cmd += suite.quick_args
    if scenarios:
        cmd += ["--scenarios", ",".join(scenarios)]
    cmd += [suite.impls_option, ",".join(impls)]
    for role, cpu in pinning.items():
        cmd += [suite.cpu_roles[role], cpu]
    return cmd + extra


def run_suite(suite: Suite, *, repo: Path | None, quick: bool, scenarios: list[str] | None,
              impls: list[str], pinning: dict[str, str], extra: list[str], verbose: bool,
              workdir: Path, command: str) -> tuple[dict[str, Any], Path | None, Path]:
    """Run one suite; return (results document, raw pyperf path or None, log path)."""
    pyperf_protocol = suite.protocol == "pyperf"
    raw = workdir / (f"{suite.name}.pyperf.json" if pyperf_protocol else suite.name)
    prog = workdir / f"{suite.name}.progress"
    log_path = workdir / f"{suite.name}.log"
    cmd = _command(suite, repo=repo, quick=quick, scenarios=scenarios, impls=impls,
                   pinning=pinning, extra=extra, raw=raw, prog=prog)
    # a script that reports by itself has no progress events: show its output instead
    verbose = verbose or not pyperf_protocol
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    how = suite.duration.get("quick" if quick else "full")
    print(f"== suite {suite.name}: {suite.title}"
          + (f" (about {how})" if how and not scenarios and not extra else ""), file=sys.stderr)
    print("   " + shlex.join(cmd), file=sys.stderr)
    bar = None if verbose else ProgressBar(f"[{suite.name}]")
    plan = _Plan(prog)
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=repo or os.getcwd(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=env)
        assert proc.stdout is not None
        out = _Output(proc.stdout, log, echo=verbose)
        out.start()
        try:
            while proc.poll() is None:
                time.sleep(0.1)
                if bar is not None:
                    plan.poll(out.dots)
                    _draw(bar, plan, out.dots)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            if bar is not None:
                bar.close("interrupted")
            raise
        out.join()
        proc.stdout.close()
    if bar is not None:
        plan.poll(out.dots)
        _draw(bar, plan, out.dots)
    if proc.returncode != 0:
        if bar is not None:
            bar.close(f"[{suite.name}] FAILED (exit status {proc.returncode})")
        tail = log_path.read_text(errors="replace").splitlines()[-40:]
        raise HarnessError(f"suite {suite.name} failed (exit status {proc.returncode}); "
                           f"last lines of {log_path}:\n" + "\n".join(tail))
    if bar is not None:
        bar.close()
    if not pyperf_protocol:
        return _script_result(suite, raw, quick, command), None, log_path
    try:
        from . import report
    except ImportError as exc:      # checked before the run; keep a clear message anyway
        raise HarnessError(f"cannot build the report ({exc}): {suite.install}") from exc
    doc = report.build_result(
        report.load_pyperf([raw]), suite=suite.name, subject=suite.subject,
        peers=[i for i in impls if i != suite.subject], command=command, pinning=pinning,
        repo=repo, description=suite.description, duration_s=time.monotonic() - t0)
    return doc, raw, log_path


def _script_result(suite: Suite, directory: Path, quick: bool, command: str) -> dict[str, Any]:
    """The results document a ``protocol = "results"`` script wrote into ``directory``."""
    runs, problems = R.load_results(directory)
    if problems or len(runs) != 1:
        raise HarnessError(f"suite {suite.name}: expected one valid results file in "
                           f"{directory}, found {len(runs)}"
                           + "".join(f"\n  {p}" for p in problems))
    doc = runs[0][1]
    doc["command"] = command
    if quick:
        doc["mode"] = "quick"
    return R.check(doc)


def _draw(bar: ProgressBar, plan: _Plan, dots: int) -> None:
    total = len(plan.order)
    while plan.new_done:
        name = plan.new_done.pop(0)
        bar.update(plan.fraction(dots), len(plan.done), total, name + " done", finished=True)
    name = plan.current or ("starting" if not plan.done else "")
    bar.update(plan.fraction(dots), len(plan.done), total, name)


def _keep_raw(raw: Path | None, log: Path, directory: Path, stem: str) -> Path:
    """Keep the raw pyperf data (gzipped, if the suite has any) and the log; return the raw
    file, else the log."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(log, directory / f"{stem}.log")
    if raw is None:
        return directory / f"{stem}.log"
    dest = directory / f"{stem}.pyperf.json.gz"
    with open(raw, "rb") as src, gzip.open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return dest


# --------------------------------------------------------------------------- CLI

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="suites to run (default: the default suites: loop, the one that ships "
                        "with engine, and those of a checkout's perf/suites.toml not marked "
                        "default = false)")
    p.add_argument("--quick", action="store_true",
                   help="rough numbers in well under a minute (the suite's quick mode)")
    p.add_argument("--scenarios", metavar="LIST",
                   help="comma-separated subset of scenarios (one suite only)")
    p.add_argument("--impls", metavar="LIST",
                   help="comma-separated implementations (default: the suite's subject and all "
                        "its peers; the subject is always included)")
    p.add_argument("--cpus", default="auto", metavar="auto|none|A[,B..]",
                   help="pin the suite's CPU roles (loop: bench; network suites: server, "
                        "client) to these CPUs; auto (default): distinct CPUs from the current "
                        "affinity, highest first; none: no pinning")
    p.add_argument("--repo", metavar="DIR",
                   help="engine checkout whose perf/suites.toml adds suites (default: the cwd "
                        "or its nearest parent with perf/suites.toml; none: only the built-in "
                        "loop suite)")
    p.add_argument("--results-dir", metavar="DIR",
                   help="where to write the results file (default: REPO/results in a "
                        "checkout, else ./results); raw pyperf data and the log go to DIR/raw/")
    p.add_argument("--no-save", action="store_true", help="print the table, write nothing")
    p.add_argument("--update-readme", action="store_true",
                   help="then regenerate the latest-results table of RESULTS_DIR/README.md")
    p.add_argument("--list", action="store_true", help="list the registered suites and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show pyperf's output instead of the progress bar")
    p.epilog = ("Arguments after `--` go to the suite script (pyperf options such as "
                "--rigorous, -p N, -n N); a run whose settings differ from the standard full "
                "run is recorded as mode 'custom'.")


def _describe(s: Suite, repo: Path | None) -> str:
    where = s.where() if s.script is None or repo is None else \
        f"script {s.script.relative_to(repo)}"
    return (f"{s.name:8s} {s.title}: {s.description}\n{'':8s} subject {s.subject}, "
            f"peers {', '.join(s.peers)}, kinds {', '.join(s.kinds)}, "
            f"{'built in' if s.builtin else 'checkout'}, {where}"
            + ("" if s.default else " (run when named)"))


def _unknown(unknown: list[str], suites: dict[str, Suite], repo: Path | None) -> HarnessError:
    msg = f"unknown suite(s) {', '.join(unknown)} (registered: {', '.join(suites)})"
    if repo is None:
        msg = (f"suite(s) {', '.join(unknown)}: not built in (built in: {', '.join(suites)}). "
               "The other suites (network, HTTP) run scripts of a checkout of the engine "
               f"repository, registered in its {REGISTRY}: they need that checkout. "
               f"{NEED_CHECKOUT}")
    return HarnessError(msg)


def main(args: argparse.Namespace, extra: list[str], argv: list[str]) -> int:
    repo = find_repo(args.repo) if args.repo is not None else checkout()
    suites = registry(repo)
    if args.list:
        for s in suites.values():
            print(_describe(s, repo))
        if repo is None:
            print(f"(outside a checkout: built-in suites only. {NEED_CHECKOUT})")
        return 0
    names = args.suites or [n for n, s in suites.items() if s.default]
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise _unknown(unknown, suites, repo)
    if args.scenarios and len(names) != 1:
        raise HarnessError("--scenarios needs exactly one suite: engine bench SUITE "
                           "--scenarios ...")
    plans = []
    problems = []
    for name in names:
        suite = suites[name]
        impls = _select(args.impls, suite.impls, f"implementation for suite {name}") \
            or list(suite.impls)
        if suite.subject not in impls:
            impls.insert(0, suite.subject)
        impls = [i for i in suite.impls if i in impls]
        missing = check_requirements(suite, impls)
        if missing:
            problems.append(f"suite {name} needs {', '.join(missing)}; "
                            f"install with: {suite.install}")
        plans.append((suite, impls, assign_cpus(suite, args.cpus)))
    if problems:
        raise HarnessError("missing requirements (peers are never assumed):\n  "
                           + "\n  ".join(problems)
                           + "\n(or leave a peer out with --impls)")
    scenarios = _select(args.scenarios, None, "scenario")
    results_dir = Path(args.results_dir) if args.results_dir else \
        (repo if repo is not None else Path.cwd()) / "results"
    command = shlex.join(["engine", *argv])
    status = 0
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        for suite, impls, pinning in plans:
            doc, raw, log = run_suite(suite, repo=repo, quick=args.quick, scenarios=scenarios,
                                      impls=impls, pinning=pinning, extra=extra,
                                      verbose=args.verbose, workdir=Path(tmp), command=command)
            print()
            print(R.format_table(doc))
            if args.no_save:
                continue
            path = R.write_result(doc, results_dir)
            kept = _keep_raw(raw, log, results_dir / "raw", path.stem)
            if raw is None:
                print(f"\nresults: {path}\nlog: {kept}")
            else:
                again = "python perf/compare_loop.py" if repo is not None else \
                    "python -m engine.bench.report"
                print(f"\nresults: {path}\nraw pyperf data: {kept} (python -m pyperf "
                      f"stats|hist FILE; {again} FILE)")
    if args.update_readme and not args.no_save:
        readme = results_dir / "README.md"
        runs, _ = R.load_results(results_dir)
        if readme.exists():
            R.update_readme(readme, runs)
            print(f"updated the latest-results table of {readme}")
        else:
            print(f"no {readme}: nothing to update", file=sys.stderr)
    return status

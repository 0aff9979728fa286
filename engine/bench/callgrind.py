"""Instruction counts with valgrind's callgrind (standard library only; needs ``valgrind``).

Shared by the loop suite's callgrind mode (engine.bench.loop_callgrind) and the perf/ scripts
that count instructions (perf/callgrind_loops.py, perf/callgrind_ab.py). The method: run the
same Python workload under callgrind twice, with 0 and with N operations (after the same
warm-up); (Ir(N) - Ir(0)) / N is what one operation costs in that process (interpreter, loop,
library), startup, imports and warm-up cancelled out. The counts repeat for the same binaries and
input whatever else the machine does, so two implementations of a path can be compared on a busy
machine where wall-clock runs cannot (they say nothing about cache misses or the kernel's share:
``--cache-sim=yes --branch-sim=yes`` (``sim=True``) adds callgrind's cache and branch model).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

# Busy polling spins by the clock (a count proportional to wall time, not to work); a fixed hash
# seed makes dict and set layouts, hence instruction counts, repeat.
ENV = {"ENGINE_BUSY_POLL_US": "0", "PYTHONHASHSEED": "0"}
SIM_OPTIONS = ("--cache-sim=yes", "--branch-sim=yes")


class CallgrindError(RuntimeError):
    """A run under callgrind failed or left no counts."""


def available() -> bool:
    """True if valgrind is on PATH."""
    return shutil.which("valgrind") is not None


def command(out: str, argv: Sequence[str], sim: bool = False) -> list[str]:
    """``argv`` under callgrind, its counts written to the file ``out``."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            *(SIM_OPTIONS if sim else ()), *argv]


def env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ with ENV (and ``extra``) applied: the environment of a counted run."""
    return {**os.environ, **ENV, **(extra or {})}


def totals(path: str) -> dict[str, int]:
    """Event name -> total of a callgrind output file (``Ir``; with ``sim`` also the cache and
    branch events)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    names = re.search(r"^events: (.*)$", text, re.M)
    found = re.search(r"^(?:summary|totals): (.*)$", text, re.M)
    if names is None or found is None:
        raise CallgrindError(f"no totals in callgrind file {path}")
    return dict(zip(names.group(1).split(), map(int, found.group(1).split()), strict=True))


def failed(stderr: str) -> bool:
    """Did the counted Python process die of an exception?"""
    return "Traceback (most recent call last)" in stderr


def count(argv: Sequence[str], out: str, *, cwd: str | None = None,
          extra_env: Mapping[str, str] | None = None, timeout: float | None = None,
          sim: bool = False) -> dict[str, int]:
    """Run ``argv`` to completion under callgrind; its event totals (the file stays at ``out``).
    Raises CallgrindError if it fails."""
    try:
        done = subprocess.run(command(out, argv, sim), capture_output=True, text=True, cwd=cwd,
                              env=env(extra_env), timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CallgrindError(f"{' '.join(argv)}: no end after {timeout} s") from exc
    if done.returncode != 0 or failed(done.stderr):
        raise CallgrindError(f"{' '.join(argv)} failed (exit status {done.returncode}):\n"
                             f"{done.stderr[-3000:]}")
    return totals(out)


def derived(ev: Mapping[str, int]) -> dict[str, int]:
    """Ir and, from a ``sim`` run, L1 misses, last-level misses, mispredicted branches and
    callgrind's cycle estimate (Ir + 10 L1m + 100 LLm)."""
    out = {"Ir": ev["Ir"]}
    if "D1mr" in ev:
        out["L1m"] = ev["I1mr"] + ev["D1mr"] + ev["D1mw"]
        out["LLm"] = ev["ILmr"] + ev["DLmr"] + ev["DLmw"]
        out["Bm"] = ev.get("Bcm", 0) + ev.get("Bim", 0)
        out["est"] = ev["Ir"] + 10 * out["L1m"] + 100 * out["LLm"]
    return out


def per_op(base: Mapping[str, int], full: Mapping[str, int], n: int) -> dict[str, float]:
    """(full - base) / n for every event of ``full``."""
    return {k: (full[k] - base.get(k, 0)) / n for k in full}


def self_costs(path: str) -> dict[str, int]:
    """Self Ir per function in a callgrind file (``callgrind_annotate``), keyed by
    ``file:function`` (recursion levels merged, the source directory dropped)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    rows: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if m is None or ":" not in m.group(2):
            continue
        where, _, func = m.group(2).split(" [")[0].rpartition(":")
        func = re.sub(r"'[0-9]+$", "", func)
        name = f"{os.path.basename(where)}:{func}"
        rows[name] = rows.get(name, 0) + int(m.group(1).replace(",", ""))
    return rows


def annotate(base: str, full: str, n: int, top: int) -> str:
    """The ``top`` functions by self Ir per op, (self(full run) - self(base run)) / n, one per
    line (engine's own functions have names only in a build installed with
    ``pip install -C install.strip=false .``)."""
    a, b = self_costs(base), self_costs(full)
    diff = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in a.keys() | b.keys()}
    ranked = sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:top]
    return "\n".join(f"{ir:>10.0f}  {name}" for name, ir in ranked)

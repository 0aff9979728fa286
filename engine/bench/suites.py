"""The registry of benchmark suites (standard library only).

Two sources, merged: the suites that ship with engine (``BUILTIN``: the loop suite, a module
of this package that runs anywhere engine and the perf extra are installed), and, inside a
checkout of the repository, the suites of its perf/suites.toml (network and HTTP suites: they
need the checkout's scripts, and tools such as wrk). A checkout's entry of the same name
replaces the built-in one.
"""
from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .results import KINDS, StrPath

REGISTRY = Path("perf") / "suites.toml"
# how a suite's script reports: "pyperf" (a pyperf JSON file, -o PATH, progress events) or
# "results" (the script writes a results document itself, --results DIR)
PROTOCOLS = ("pyperf", "results")


class HarnessError(Exception):
    """A user-facing error of `engine bench` / `engine dashboard` (printed, exit status 2)."""


@dataclass(frozen=True)
class Suite:
    name: str
    title: str
    description: str
    subject: str
    peers: tuple[str, ...]
    kinds: tuple[str, ...]
    script: Path | None = None        # a checkout's suite: perf/<script>
    module: str | None = None         # a built-in suite: run as python -P -m <module>
    protocol: str = "pyperf"
    modules: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    impl_tools: dict[str, str] = field(default_factory=dict)   # impl -> its executable
    install: str = "pip install 'engine[perf]'"
    cpu_roles: dict[str, str] = field(default_factory=dict)
    duration: dict[str, str] = field(default_factory=dict)
    # protocol "results": the script's option naming the implementations, and its options
    # for --quick
    impls_option: str = "--impls"
    quick_args: tuple[str, ...] = ()
    default: bool = True              # run by a bare `engine bench`

    @property
    def impls(self) -> tuple[str, ...]:
        return (self.subject, *self.peers)

    @property
    def builtin(self) -> bool:
        return self.module is not None

    def command(self) -> list[str]:
        """The command line that runs the suite's script (options follow)."""
        if self.module is not None:
            # -P: the cwd is not put on sys.path, so a source tree there cannot shadow the
            # installed (compiled) engine
            return [sys.executable, "-P", "-m", self.module]
        assert self.script is not None
        return [sys.executable, str(self.script)]

    def where(self) -> str:
        return f"module {self.module}" if self.module else f"script {self.script}"


def _suite(name: str, t: Any, where: str, script_dir: Path | None) -> Suite:
    """One registry entry (a TOML table, or a built-in dict of the same keys) -> Suite."""
    if not isinstance(t, dict):
        raise HarnessError(f"{where} must be a table")
    for key in ("subject", "peers", "kinds"):
        if key not in t:
            raise HarnessError(f"{where}: missing {key!r}")
    bad = [k for k in t["kinds"] if k not in KINDS]
    if bad:
        raise HarnessError(f"{where}: unknown kinds {bad} (known: {', '.join(KINDS)})")
    protocol = t.get("protocol", "pyperf")
    if protocol not in PROTOCOLS:
        raise HarnessError(f"{where}: protocol {protocol!r} (known: {', '.join(PROTOCOLS)})")
    script = module = None
    if script_dir is None:
        module = t["module"]
    else:
        if "script" not in t:
            raise HarnessError(f"{where}: missing 'script'")
        script = script_dir / t["script"]
        if not script.is_file():
            raise HarnessError(f"{where}: script {script} does not exist")
    return Suite(
        name=name, script=script, module=module, protocol=protocol,
        title=t.get("title", name), description=" ".join(str(t.get("description", "")).split()),
        subject=t["subject"], peers=tuple(t["peers"]), kinds=tuple(t["kinds"]),
        modules=dict(t.get("modules", {})), requires=tuple(t.get("requires", ())),
        tools=tuple(t.get("tools", ())), install=t.get("install", "pip install 'engine[perf]'"),
        cpu_roles=dict(t.get("cpu_roles", {})), duration=dict(t.get("duration", {})),
        impl_tools=dict(t.get("impl_tools", {})), impls_option=t.get("impls_option", "--impls"),
        quick_args=tuple(str(a) for a in t.get("quick", ())), default=bool(t.get("default", True)))


# The suites that ship with engine (same keys as a perf/suites.toml table, with `module`
# instead of `script`). See perf/README.md, "Writing a suite".
BUILTIN_TABLES: dict[str, dict[str, Any]] = {
    "loop": {
        "module": "engine.bench.loop_suite",
        "title": "Event-loop micro-benchmarks",
        "description": "call_soon chains, await sleep(0), gather of 100 tasks, 200k call_later "
                       "timers (throughput); cross-thread wake-up latency (latency); CPU of an "
                       "idle loop (cost)",
        "subject": "engine",
        "peers": ["uvloop", "rloop", "asyncio"],
        "kinds": ["throughput", "latency", "cost"],
        # module that must import for each implementation ("" = part of Python)
        "modules": {"engine": "engine", "uvloop": "uvloop", "rloop": "rloop", "asyncio": ""},
        "requires": ["pyperf", "numpy"],
        "install": "pip install 'engine[perf]'",
        # CPU role -> script option taking a CPU list (engine bench --cpus)
        "cpu_roles": {"bench": "--affinity"},
        "duration": {"full": "8-15 min", "quick": "20-30 s"},
    },
    "loop-callgrind": {
        "module": "engine.bench.loop_callgrind",
        "protocol": "results",
        "title": "Event-loop instructions per operation (callgrind)",
        "description": "the loop suite's throughput scenarios (call_soon, sleep(0), gather, "
                       "timers, call_later + cancel, sock_* and streams ping-pong) under "
                       "valgrind's callgrind: instructions per operation, deterministic",
        "subject": "engine",
        "peers": ["uvloop", "rloop", "asyncio"],
        "kinds": ["cost"],
        "modules": {"engine": "engine", "uvloop": "uvloop", "rloop": "rloop", "asyncio": ""},
        "tools": ["valgrind"],
        "install": "pip install 'engine[perf]'; apt-get install valgrind",
        "quick": ["--quick"],
        "duration": {"full": "15-25 min", "quick": "3-5 min"},
        "default": False,
    },
}


def builtin_registry() -> dict[str, Suite]:
    return {name: _suite(name, t, f"built-in suite {name}", None)
            for name, t in BUILTIN_TABLES.items()}


def checkout(start: StrPath | None = None) -> Path | None:
    """The engine checkout around ``start`` (default: the cwd), or None."""
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / REGISTRY).is_file():
            return d
    return None


def find_repo(explicit: StrPath | None = None, start: StrPath | None = None) -> Path:
    """The engine checkout: ``explicit``, else the cwd or its nearest parent with the registry."""
    if explicit is not None:
        repo = Path(explicit).resolve()
        if not (repo / REGISTRY).is_file():
            raise HarnessError(f"{repo} is not a checkout of engine (no {REGISTRY} in it)")
        return repo
    found = checkout(start)
    if found is None:
        here = Path(start or os.getcwd()).resolve()
        raise HarnessError(f"no engine checkout here: {REGISTRY} not found in {here} or its "
                           f"parents. {NEED_CHECKOUT}")
    return found


NEED_CHECKOUT = ("Run `engine bench` inside a git checkout of the engine repository (where "
                 "`pip install '.[perf]'` installs engine with the peers), or pass --repo "
                 "CHECKOUT")


def load_registry(repo: StrPath) -> dict[str, Suite]:
    """The suites of a checkout's perf/suites.toml."""
    path = Path(repo) / REGISTRY
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"cannot read the suite registry {path}: {exc}") from exc
    return {name: _suite(name, t, f"{path}: [{name}]", Path(repo) / "perf")
            for name, t in data.items()}


def registry(repo: StrPath | None) -> dict[str, Suite]:
    """Built-in suites, then those of the checkout ``repo`` (None: outside a checkout)."""
    suites = builtin_registry()
    if repo is not None:
        suites.update(load_registry(repo))
    return suites

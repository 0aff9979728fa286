"""The registry of benchmark suites: perf/suites.toml in a checkout (standard library only)."""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .results import KINDS, StrPath

REGISTRY = Path("perf") / "suites.toml"


class HarnessError(Exception):
    """A user-facing error of `engine bench` / `engine dashboard` (printed, exit status 2)."""


@dataclass(frozen=True)
class Suite:
    name: str
    script: Path
    title: str
    description: str
    subject: str
    peers: tuple[str, ...]
    kinds: tuple[str, ...]
    modules: dict[str, str] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    install: str = "pip install '.[perf]'"
    cpu_roles: dict[str, str] = field(default_factory=dict)
    duration: dict[str, str] = field(default_factory=dict)

    @property
    def impls(self) -> tuple[str, ...]:
        return (self.subject, *self.peers)


def find_repo(explicit: StrPath | None = None, start: StrPath | None = None) -> Path:
    """The engine checkout: ``explicit``, else the cwd or its nearest parent with the registry."""
    if explicit is not None:
        repo = Path(explicit).resolve()
        if not (repo / REGISTRY).is_file():
            raise HarnessError(f"{repo} is not a checkout of engine (no {REGISTRY} in it)")
        return repo
    here = Path(start or os.getcwd()).resolve()
    for d in (here, *here.parents):
        if (d / REGISTRY).is_file():
            return d
    raise HarnessError(
        f"no engine checkout here: {REGISTRY} not found in {here} or its parents. "
        "`engine bench` runs the benchmark scripts of a checkout of the engine repository: "
        "cd into one, or pass --repo DIR")


def load_registry(repo: StrPath) -> dict[str, Suite]:
    path = Path(repo) / REGISTRY
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise HarnessError(f"cannot read the suite registry {path}: {exc}") from exc
    suites = {}
    for name, t in data.items():
        where = f"{path}: [{name}]"
        if not isinstance(t, dict):
            raise HarnessError(f"{where} must be a table")
        for key in ("script", "subject", "peers", "kinds"):
            if key not in t:
                raise HarnessError(f"{where}: missing {key!r}")
        bad = [k for k in t["kinds"] if k not in KINDS]
        if bad:
            raise HarnessError(f"{where}: unknown kinds {bad} (known: {', '.join(KINDS)})")
        script = Path(repo) / "perf" / t["script"]
        if not script.is_file():
            raise HarnessError(f"{where}: script {script} does not exist")
        suites[name] = Suite(
            name=name, script=script, title=t.get("title", name),
            description=" ".join(str(t.get("description", "")).split()),
            subject=t["subject"], peers=tuple(t["peers"]), kinds=tuple(t["kinds"]),
            modules=dict(t.get("modules", {})), requires=tuple(t.get("requires", ())),
            tools=tuple(t.get("tools", ())), install=t.get("install", "pip install '.[perf]'"),
            cpu_roles=dict(t.get("cpu_roles", {})), duration=dict(t.get("duration", {})))
    if not suites:
        raise HarnessError(f"{path} defines no suite")
    return suites

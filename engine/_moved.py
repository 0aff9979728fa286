"""Import paths of modules that moved into :mod:`engine.serve` (0.1.0's restructure).

``import engine.config`` (and ``from engine.config import Config``, ...) still works: a finder on
``sys.meta_path`` answers for the old names only, imports the module from its new place, warns
once (DeprecationWarning) and hands back that same module object, so old and new names share
one module. Nothing is imported until an old name is asked for.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install"]

MOVED: dict[str, str] = {
    "engine.cli": "engine.serve.cli",
    "engine.config": "engine.serve.config",
    "engine.default_app": "engine.serve.default_app",
    "engine.echo_protocol": "engine.serve.protocols.echo",
    "engine.http_server": "engine.serve.protocols.http",
    "engine.lifespan": "engine.serve.lifespan",
    "engine.protocols": "engine.serve.protocols",
    "engine.proxy_headers": "engine.serve.proxy_headers",
    "engine.reload": "engine.serve.reload",
}


# duck-typed finder and loader: importlib.abc would cost `import engine` more than the rest of it
class _MovedLoader:
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None                           # a placeholder; exec_module swaps the real one in

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__
        warnings.warn(f"{old} moved to {self.new}; import it from there",
                      DeprecationWarning, stacklevel=2)
        # the import system returns what sys.modules holds once this returns
        sys.modules[old] = importlib.import_module(self.new)


class _MovedFinder:
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedLoader(new))  # type: ignore[arg-type]


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())

"""engine.serve: the ASGI server behind ``engine serve``, built on :mod:`engine.server`.

One module per concern:

* :mod:`engine.serve.cli` -- the ``engine serve`` command line (flags -> :class:`Config`);
* :mod:`engine.serve.config` -- :class:`Config`, every setting, and loading the app;
* :mod:`engine.serve.runner` -- :func:`run_server`: plugin, listeners, workers, hooks;
* :mod:`engine.serve.lifespan` -- the ASGI lifespan scope;
* :mod:`engine.serve.proxy_headers` -- client address and scheme from a trusted proxy;
* :mod:`engine.serve.reload` -- ``--reload`` (development);
* :mod:`engine.serve.default_app` -- the embedded app served without ``MODULE:APP``;
* :mod:`engine.serve.logs` -- logging setup;
* :mod:`engine.serve.asgi_types` -- the ASGI type aliases;
* :mod:`engine.serve.protocols` -- the protocol plugin interface, and the built-in plugins
  ``http`` (:mod:`engine.serve.protocols.http`: HTTP/1.1 + WebSocket on the compiled
  ``engine._asgi``) and ``echo``.

From Python::

    from engine.serve import Config, run_server

    run_server(Config("myproject.asgi:application", port=8080, workers=4))
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Config, ConfigError
    from .runner import run_server

__all__ = ["Config", "ConfigError", "run_server"]

# `engine --help`, `engine info` and `engine bench` build the `serve` subcommand's parser from
# engine.serve.cli: the package loads the rest (the app, the plugins, the server) only when a
# name below is asked for (PEP 562)
_EXPORTS = {"Config": "config", "ConfigError": "config", "run_server": "runner"}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)

"""engine.serve.protocols: the plugin interface of ``engine serve --protocol NAME``.

A protocol plugin turns an app (or nothing) into the asyncio protocol factory that
``engine.server`` serves connections with. It is any object with these three members
(:class:`ProtocolPlugin`, a typing Protocol: no base class needed)::

    class MyPlugin:
        name = "myproto"                 # shown in the startup line and in errors
        needs_app = False                # True: engine serve loads an ASGI app (MODULE:APP or
                                         # the default app), runs its lifespan, and passes it
        def create_protocol_factory(self, app, config, state):
            return lambda: MyProtocol(state)     # called once per accepted connection

    plugin = MyPlugin()

``create_protocol_factory(app, config, state)`` is called once in each worker process, on its
running event loop, after the app's lifespan startup: ``app`` is the ASGI app (None when
``needs_app`` is False), ``config`` the :class:`engine.serve.config.Config`, ``state`` this worker's
:class:`ServerState`. The protocols it makes should honour engine.server's drain contract: a
``shutdown()`` method (no arguments) that closes an idle connection at once and a busy one
after the work in flight; it may be called on a closing connection.

``--protocol NAME`` resolves, in order: the built-ins (``http``:
``engine.serve.protocols.http:plugin``, ``echo``: ``engine.serve.protocols.echo:plugin``), entry
points of group ``engine.protocols`` (any installed package can add one), then
``module:attribute``. What NAME names may be a plugin
object, a plugin class (instantiated without arguments), or a bare protocol factory (e.g. an
``asyncio.Protocol`` subclass), which is served as a plugin with ``needs_app=False``.
A package declares its plugin in ``pyproject.toml``::

    [project.entry-points."engine.protocols"]
    myproto = "mypackage.plugin:plugin"
"""
from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time
from typing import Any, Protocol, runtime_checkable

from ...server import ProtocolFactory
from ..asgi_types import ASGIApp
from ..config import AppLoadError, Config, ConfigError, import_from_string

__all__ = [
    "ProtocolPlugin", "ServerState", "PluginError", "FactoryPlugin", "ProtocolFactory",
    "load_plugin", "available_plugins", "BUILTIN_PLUGINS", "ENTRY_POINT_GROUP",
]

ENTRY_POINT_GROUP = "engine.protocols"
BUILTIN_PLUGINS: dict[str, str] = {
    "http": "engine.serve.protocols.http:plugin",
    "echo": "engine.serve.protocols.echo:plugin",
}


class ServerState:
    """What one worker process shares between its connections (one per worker).

    ``lifespan_state``: the dict the app's lifespan scope got as ``scope["state"]``; a protocol
    gives each request a shallow copy of it (``scope["state"] = state.lifespan_state.copy()``).
    ``connections``: the live protocols (a protocol adds itself in ``connection_made`` and
    discards itself in ``connection_lost``). ``tasks``: tasks a protocol wants kept alive and
    cancelled with the worker. ``total_requests``: a counter protocols bump. ``default_headers``:
    headers every response carries (``server: engine`` and ``--header`` values), as
    ``(bytes, bytes)`` pairs with lower-case names. ``logger`` is ``engine.http``,
    ``access_logger`` ``engine.access`` (disabled unless ``config.access_log``).
    """

    __slots__ = ("config", "lifespan_state", "connections", "tasks", "total_requests",
                 "default_headers", "logger", "access_logger", "started", "metrics_block")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lifespan_state: dict[str, Any] = {}
        self.connections: set[asyncio.BaseProtocol] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.total_requests = 0
        self.default_headers: list[tuple[bytes, bytes]] = config.default_headers()
        self.logger = logging.getLogger("engine.http")
        self.access_logger = logging.getLogger("engine.access")
        self.started = time.time()
        self.metrics_block: Any = None     # --metrics: this worker's counters (a memoryview)

    def __repr__(self) -> str:
        return (f"<ServerState connections={len(self.connections)} tasks={len(self.tasks)} "
                f"total_requests={self.total_requests}>")


@runtime_checkable
class ProtocolPlugin(Protocol):
    """The interface ``engine serve --protocol NAME`` loads (see the module docstring)."""

    name: str
    needs_app: bool

    def create_protocol_factory(self, app: ASGIApp | None, config: Config,
                                state: ServerState) -> ProtocolFactory:
        """Called once per worker, on its running loop: return the factory that makes one
        protocol per accepted connection."""
        ...


class PluginError(ConfigError):
    """A protocol plugin that cannot be found or is not usable."""


class FactoryPlugin:
    """A bare protocol factory served as a plugin (no app; ``factory()`` per connection)."""

    needs_app = False

    def __init__(self, name: str, factory: ProtocolFactory) -> None:
        self.name = name
        self.factory = factory

    def create_protocol_factory(self, app: ASGIApp | None, config: Config,
                                state: ServerState) -> ProtocolFactory:
        return self.factory

    def __repr__(self) -> str:
        return f"<FactoryPlugin {self.name!r} {self.factory!r}>"


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def available_plugins() -> dict[str, str]:
    """Plugin names ``--protocol`` knows without a ``module:attribute``: name -> where from."""
    out = dict(BUILTIN_PLUGINS)
    for name, ep in _entry_points().items():
        out.setdefault(name, ep.value)
    return out


def _coerce(name: str, obj: Any, origin: str) -> ProtocolPlugin:
    if isinstance(obj, type) and not issubclass(obj, asyncio.BaseProtocol) and hasattr(
            obj, "create_protocol_factory"):
        try:
            obj = obj()                                  # a plugin class
        except Exception as exc:
            raise PluginError(f"protocol {name!r} ({origin}): creating the plugin failed: "
                              f"{type(exc).__name__}: {exc}") from exc
    if hasattr(obj, "create_protocol_factory"):
        missing = [attr for attr in ("name", "needs_app") if not hasattr(obj, attr)]
        if missing or not callable(obj.create_protocol_factory):
            raise PluginError(f"protocol {name!r} ({origin}) is not a ProtocolPlugin: missing "
                              f"{', '.join(missing) or 'a callable create_protocol_factory'}")
        if not isinstance(obj.name, str) or not isinstance(obj.needs_app, bool):
            raise PluginError(f"protocol {name!r} ({origin}): name must be a str and "
                              "needs_app a bool")
        return obj  # type: ignore[no-any-return]
    if callable(obj):
        return FactoryPlugin(getattr(obj, "__name__", name), obj)
    raise PluginError(f"protocol {name!r} ({origin}) is neither a ProtocolPlugin nor a "
                      f"protocol factory: {obj!r}")


def load_plugin(name: str) -> ProtocolPlugin:
    """Find the plugin ``--protocol name`` means: a built-in (``http``, ``echo``), an entry
    point of group ``engine.protocols``, or a ``module:attribute`` import string.

    Raises :class:`PluginError` (with the names that are available) when nothing matches or
    what matched is not usable.
    """
    if not name:
        raise PluginError("empty protocol name")
    if name in BUILTIN_PLUGINS:
        spec = BUILTIN_PLUGINS[name]
        try:
            obj = import_from_string(spec, what="protocol")
        except AppLoadError as exc:
            raise PluginError(f"built-in protocol {name!r} is not available: {exc}") from exc
        return _coerce(name, obj, spec)
    eps = _entry_points()
    if name in eps:
        ep = eps[name]
        origin = f"entry point {ep.value!r} of group {ENTRY_POINT_GROUP!r}"
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(f"protocol {name!r}: loading {origin} failed: "
                              f"{type(exc).__name__}: {exc}") from exc
        return _coerce(name, obj, origin)
    if ":" in name:
        try:
            obj = import_from_string(name, what="protocol")
        except AppLoadError as exc:
            raise PluginError(str(exc)) from exc.__cause__
        return _coerce(name, obj, "import string")
    known = ", ".join(sorted(available_plugins()))
    raise PluginError(f"unknown protocol {name!r}: not a built-in or an entry point of group "
                      f"{ENTRY_POINT_GROUP!r} (available: {known}), and not a "
                      "\"module:attribute\" import string")

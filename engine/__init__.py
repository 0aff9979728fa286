"""engine: a Cython-compiled asyncio event loop on epoll/kqueue, with libev-style watchers.

    import asyncio, engine
    engine.run(main())                                         # like asyncio.run()
    with asyncio.Runner(loop_factory=engine.new_event_loop) as r: r.run(main())
"""
from __future__ import annotations

import asyncio as _asyncio
import sys as _sys
import warnings as _warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

try:
    from . import _loop
except ImportError as _exc:  # pragma: no cover - only without a build
    raise ImportError(
        "engine's compiled extension (engine._loop) is missing: install the package with "
        "`pip install .` (it builds the Cython sources), and don't import engine from a source "
        "tree that shadows the installed package (run `pytest`, not `python -m pytest`, there)"
    ) from _exc
from . import _moved
from ._loop import (
    ASYNC,
    BACKEND,
    DEBUG_BUILD,
    ERROR,
    IDLE,
    IO,
    READ,
    SIGNAL,
    TIMEOUT,
    WRITE,
    Async,
    BufferPool,
    Handle,
    Idle,
    PooledBuffer,
    Signal,
    TimedIdle,
    Timer,
    TimerHandle,
    Watcher,
)

__version__ = "0.1.0"

__all__ = [
    "Loop", "new_event_loop", "run", "install", "EventLoopPolicy",
    "Watcher", "IO", "Timer", "Idle", "TimedIdle", "Signal", "Async",
    "Handle", "TimerHandle", "BufferPool", "PooledBuffer",
    "READ", "WRITE", "ERROR", "TIMEOUT", "IDLE", "SIGNAL", "ASYNC", "BACKEND", "DEBUG_BUILD",
]

_T = TypeVar("_T")

_moved.install()        # the old import paths of the modules now in engine.serve (engine._moved)


class Loop(_loop.Loop, _asyncio.AbstractEventLoop):  # type: ignore[misc]
    """engine's event loop. Subclassable; an asyncio.AbstractEventLoop."""


def new_event_loop() -> Loop:
    """Return a new engine event loop."""
    return Loop()  # type: ignore[abstract]  # the ABC's methods are the compiled base's


def run(main: Coroutine[Any, Any, _T], *, debug: bool | None = None) -> _T:
    """Run a coroutine on a new engine loop, like asyncio.run(), and close the loop."""
    if _sys.version_info >= (3, 12):
        return _asyncio.run(main, debug=debug, loop_factory=new_event_loop)  # type: ignore[call-arg,unused-ignore]
    with _asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:
        return runner.run(main)


class EventLoopPolicy(_asyncio.DefaultEventLoopPolicy):
    """An event loop policy whose loops are engine loops (policies are deprecated in 3.14)."""

    def new_event_loop(self) -> Loop:
        return new_event_loop()


def install() -> None:
    """Make asyncio.new_event_loop() (and asyncio.run()) use engine loops, via the policy.

    Prefer engine.run() or asyncio.Runner(loop_factory=engine.new_event_loop): event loop
    policies are on their way out of asyncio. The DeprecationWarning is raised where asyncio
    itself deprecates them (3.14+); on 3.12 and 3.13 set_event_loop_policy() does not warn, so
    neither does this (``-W error`` must not turn a supported call into an error there).
    """
    if _sys.version_info >= (3, 14):
        _warnings.warn(
            "engine.install() sets an event loop policy, a mechanism asyncio deprecates; "
            "use engine.run() or asyncio.Runner(loop_factory=engine.new_event_loop) instead",
            DeprecationWarning,
            stacklevel=2,
        )
    _asyncio.set_event_loop_policy(EventLoopPolicy())




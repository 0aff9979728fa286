"""ASGI lifespan (the ``lifespan`` scope, spec version 2.0) for ``engine serve``.

Each worker runs its own :class:`Lifespan`: ``startup()`` before it listens and
``shutdown()`` after it drained (engine.server's ``startup``/``shutdown`` hooks). The app's
lifespan scope carries ``state``, this worker's ``ServerState.lifespan_state``: what the app
stores there during startup is shallow-copied into every request's ``scope["state"]`` by the
protocol.

Modes (``--lifespan``): ``on`` -- the app must speak lifespan: an exception or
``lifespan.startup.failed`` fails startup; ``auto`` (default) -- an app that raises before it
answers the startup event does not support lifespan: logged, and serving goes on without
lifespan events; ``lifespan.startup.failed`` still fails startup; ``off`` -- no lifespan scope
at all. A failed startup sets ``should_exit`` (``engine serve`` then exits with status 3, as
uvicorn does). An app that returns without answering is taken as having nothing to do.
Messages out of order (``lifespan.shutdown.complete`` during startup, an unknown type, a
second answer) raise ``RuntimeError`` inside the app's ``send()``.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .asgi_types import ASGIApp, Message

if TYPE_CHECKING:
    from .config import Config
    from .protocols import ServerState

__all__ = ["Lifespan", "ASGI_VERSION"]

logger = logging.getLogger("engine.lifespan")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.0"}

_IDLE, _STARTUP, _SERVING, _SHUTDOWN, _DONE = range(5)

# what the app may send: message type -> (the phase it answers, its name, whether it failed)
_ANSWERS = {
    "lifespan.startup.complete": (_STARTUP, "startup", False),
    "lifespan.startup.failed": (_STARTUP, "startup", True),
    "lifespan.shutdown.complete": (_SHUTDOWN, "shutdown", False),
    "lifespan.shutdown.failed": (_SHUTDOWN, "shutdown", True),
}


class Lifespan:
    """Drives an app's lifespan scope: ``await startup()``, serve, ``await shutdown()``."""

    def __init__(self, app: ASGIApp, config: Config, state: ServerState) -> None:
        self.app = app
        self.config = config
        self.state = state
        self.mode = config.lifespan
        self.supported = self.mode != "off"    # False once an app shows it has no lifespan
        self.should_exit = False               # startup (or, in "on" mode, shutdown) failed
        self.startup_failed = False
        self.shutdown_failed = False
        self.error: BaseException | None = None   # what the app raised, if it did
        self.message = ""                      # the failure message the app sent
        self._phase = _IDLE
        self._queue: asyncio.Queue[Message] | None = None
        self._startup_done: asyncio.Event | None = None
        self._shutdown_done: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # --- the server's side --------------------------------------------------------------------

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer. Sets ``should_exit`` on failure."""
        if not self.supported or self._phase != _IDLE:
            return
        logger.info("Waiting for application startup.")
        self._queue = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._phase = _STARTUP
        self._task = asyncio.get_running_loop().create_task(self._main())
        self._queue.put_nowait({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self.startup_failed or (self.error is not None and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            self.should_exit = True
            self._phase = _DONE
            return
        if self.supported:
            logger.info("Application startup complete.")
        self._phase = _SERVING

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer, at most the graceful-shutdown
        timeout (``config.timeout_graceful_shutdown``)."""
        if (not self.supported or self._phase != _SERVING or self._task is None
                or self._task.done()):
            self._phase = _DONE
            return
        assert self._queue is not None and self._shutdown_done is not None
        logger.info("Waiting for application shutdown.")
        self._phase = _SHUTDOWN
        self._queue.put_nowait({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._shutdown_done.wait(),
                                   self.config.timeout_graceful_shutdown)
        except TimeoutError:
            logger.error("Application shutdown did not complete within %ss.",
                         self.config.timeout_graceful_shutdown)
            self.shutdown_failed = True
        self._phase = _DONE
        if self.shutdown_failed or (self.error is not None and self.mode == "on"):
            logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
            return
        logger.info("Application shutdown complete.")

    # --- the app's side -----------------------------------------------------------------------

    async def _main(self) -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": dict(ASGI_VERSION),
                                 "state": self.state.lifespan_state}
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            if self.startup_failed or self.shutdown_failed:
                pass                                     # the app said so already
            elif self.mode == "auto" and self._phase == _STARTUP:
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
                logger.debug("the app raised on the lifespan scope", exc_info=exc)
            else:
                logger.error("Exception in 'lifespan' protocol", exc_info=exc)
        finally:
            if self._startup_done is not None:
                self._startup_done.set()
            if self._shutdown_done is not None:
                self._shutdown_done.set()

    async def _receive(self) -> Message:
        assert self._queue is not None
        return await self._queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        answer = _ANSWERS.get(kind) if isinstance(kind, str) else None
        if answer is None:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} in the lifespan scope")
        phase, name, failed = answer
        done = self._startup_done if phase == _STARTUP else self._shutdown_done
        if self._phase != phase or done is None or done.is_set():
            raise RuntimeError(f"unexpected ASGI message {kind!r}: no {name} in progress")
        if failed:
            if phase == _STARTUP:
                self.startup_failed = True
            else:
                self.shutdown_failed = True
            self._log_failure(name, message)
        done.set()

    def _log_failure(self, phase: str, message: Message) -> None:
        text = message.get("message", "")
        self.message = text if isinstance(text, str) else repr(text)
        if self.message:
            logger.error("Application %s failed: %s", phase, self.message)

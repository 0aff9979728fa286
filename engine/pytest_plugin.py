"""engine's pytest plugin: async tests on engine's loop, and a live ASGI server fixture.

Opt-in: it is active only where a project asks for it (there is no ``pytest11`` entry point, so
installing engine changes no one's test run)::

    pytest -p engine.pytest_plugin                 # one run

    # pyproject.toml                               # a project
    [tool.pytest.ini_options]
    addopts = "-p engine.pytest_plugin"

    # conftest.py (the rootdir's)                  # or
    pytest_plugins = ["engine.pytest_plugin"]

**Async tests on engine's loop.** pytest-asyncio (1.4 and later) runs each async test on the
loops that its ``pytest_asyncio_loop_factories`` hook names; this plugin implements the hook,
so every pytest-asyncio test (and async fixture) runs on an ``engine.Loop``. The ini option
``engine_loops`` (or ``--engine-loops``) lists the loops, by name: ``engine`` (the default) and
``asyncio``. With both (``engine_loops = engine asyncio``) each async test runs twice, with the
ids ``[engine]`` and ``[asyncio]``, the way a library checks that it behaves the same on both.
pytest-asyncio's own marker picks loops for one test, among these names:
``@pytest.mark.asyncio(loop_factories=["asyncio"])``. With a pytest-asyncio older than the hook
(0.23 to 1.3), the plugin falls back to overriding its ``event_loop_policy`` fixture (one loop
per test, parametrized the same way). A conftest.py that implements the hook itself wins (the
hook takes the first answer).

**A live server.** The ``engine_server`` fixture serves an ASGI app with ``engine serve``'s
HTTP/1.1 + WebSocket server on engine's loop, in a background thread, on 127.0.0.1 and a free
port, with its lifespan, for the duration of the test; any client can talk to it (a browser
driver, ``requests``, ``websockets``, another process)::

    def test_home(engine_server):
        server = engine_server(app)            # returns once it accepts connections
        with urllib.request.urlopen(server.url + "/") as resp:
            assert resp.status == 200
        # server.ws_url for websockets; server.port, server.host, server.total_requests

``engine_server(app, **settings)`` takes :class:`engine.serve.config.Config` settings
(``lifespan="off"``, ``root_path=...``, ``timeout_keep_alive=...``, ...). The server is
drained and its lifespan shut down when the test ends. :class:`LiveServer` is the same thing
for use outside the fixture (``with LiveServer(app) as server: ...``).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

import engine

__all__ = ["LiveServer", "LOOP_FACTORIES", "engine_server"]

#: the loops ``engine_loops`` can name
LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "engine": engine.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}

_INI = "engine_loops"
_STARTUP_TIMEOUT = 30.0        # seconds a live server may take to start or to stop


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = ("loops that async tests run on (pytest-asyncio), by name: "
                 f"{', '.join(LOOP_FACTORIES)}; several run each test on each")
    parser.addini(_INI, help_text, type="args", default=["engine"])
    parser.getgroup("engine").addoption("--engine-loops", dest="engine_loops", default=None,
                                        help=help_text + " (comma-separated; overrides the ini)")


def selected_loops(config: pytest.Config) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop factories the configuration names, in its order."""
    option = config.getoption("engine_loops", None)
    names = ([n.strip() for n in option.split(",") if n.strip()] if option
             else list(config.getini(_INI)))
    unknown = [n for n in names if n not in LOOP_FACTORIES]
    if unknown or not names:
        raise pytest.UsageError(f"{_INI}: unknown loop {', '.join(unknown) or '(none)'}; "
                                f"choose among {', '.join(LOOP_FACTORIES)}")
    return {name: LOOP_FACTORIES[name] for name in dict.fromkeys(names)}


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Any]:
    """pytest-asyncio's hook: the loops of ``engine_loops``; all of them when the test's
    ``mark.asyncio(loop_factories=[...])`` chooses by name."""
    marker = item.get_closest_marker("asyncio")
    if marker is not None and marker.kwargs.get("loop_factories"):
        return dict(LOOP_FACTORIES)
    return selected_loops(config)


def pytest_configure(config: pytest.Config) -> None:
    selected_loops(config)                                   # a bad name fails the run now
    if not config.pluginmanager.has_plugin("asyncio"):
        return
    if hasattr(config.hook, "pytest_asyncio_loop_factories"):
        return                                               # pytest-asyncio >= 1.4: the hook
    config.pluginmanager.register(_policy_fallback(config), "engine-loop-policy")


def _policy_fallback(config: pytest.Config) -> object:
    """For pytest-asyncio 0.23 to 1.3: an ``event_loop_policy`` fixture (parametrized by loop)
    in place of pytest-asyncio's own."""
    loops = selected_loops(config)

    class _Policy(asyncio.DefaultEventLoopPolicy):
        def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
            super().__init__()
            self._factory = factory

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return self._factory()

    class Fallback:
        @pytest.fixture(scope="session", params=list(loops), ids=list(loops))
        def event_loop_policy(
                self, request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
            return _Policy(loops[request.param])

    return Fallback()


class LiveServer:
    """An ASGI app served on engine in a background thread (see the module docstring)."""

    def __init__(self, app: Any, **settings: Any) -> None:
        from .serve.config import Config
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", 0)
        settings.setdefault("log_level", None)
        self.app = app
        self.config = Config(app=app, **settings)
        self.host: str = self.config.host
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop: asyncio.Future[None] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"{self.config.scheme()}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return "ws" + self.url[4:]

    @property
    def total_requests(self) -> int:
        return self._server.total_requests if self._server is not None else 0

    def start(self) -> LiveServer:
        """Start serving; returns once connections are accepted (raises what startup raised)."""
        if self._thread is not None:
            raise RuntimeError("LiveServer already started")
        self._thread = threading.Thread(target=self._run, name="engine-live-server",
                                        daemon=True)
        self._thread.start()
        self._started.result(_STARTUP_TIMEOUT)
        return self

    def stop(self) -> None:
        """Drain the connections, run the lifespan shutdown, close the loop and the thread."""
        thread, loop, stop = self._thread, self.loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        def wake() -> None:
            if not stop.done():
                stop.set_result(None)
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake)
        thread.join(_STARTUP_TIMEOUT)
        if thread.is_alive():
            raise RuntimeError("the live server did not stop")

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self.loop = engine.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
        finally:
            loop.close()

    async def _main(self) -> None:
        from .serve.embed import AppServer

        self._stop = asyncio.get_running_loop().create_future()
        self._server = served = AppServer(self.app, self.config)
        await served.start()
        self.port = int(served.addresses()[0][1])
        self._started.set_result(None)
        await self._stop
        await served.stop()


@pytest.fixture
def engine_server() -> Iterator[Callable[..., LiveServer]]:
    """``engine_server(app, **settings)`` serves ``app`` on engine until the test ends (see
    the module docstring); returns the :class:`LiveServer` (``.url``, ``.ws_url``, ``.port``)."""
    started: list[LiveServer] = []

    def serve(app: Any, **settings: Any) -> LiveServer:
        server = LiveServer(app, **settings)
        started.append(server)
        return server.start()

    yield serve
    for server in reversed(started):
        server.stop()

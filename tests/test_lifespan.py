"""engine.serve.lifespan.Lifespan against ASGI apps of every kind, on engine's loop and asyncio's;
lifespan state reaching request scopes through ServerState and the HTTP protocol."""
import asyncio
import logging

from loop_case import on_both_loops

from engine.serve.config import Config
from engine.serve.lifespan import Lifespan
from engine.serve.protocols import ServerState, load_plugin

BOUND = 30.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, BOUND))


def make(app, **config):
    cfg = Config(**config)
    state = ServerState(cfg)
    return Lifespan(app, cfg, state), state


class Recorder:
    """A lifespan app that answers as told and records what it receives."""

    def __init__(self, startup="complete", shutdown="complete", message=""):
        self.startup, self.shutdown, self.message = startup, shutdown, message
        self.received = []
        self.scope = None

    async def __call__(self, scope, receive, send):
        self.scope = scope
        msg = await receive()
        self.received.append(msg["type"])
        if self.startup == "failed":
            await send({"type": "lifespan.startup.failed", "message": self.message})
            return
        scope["state"]["pool"] = ["connection"]
        await send({"type": "lifespan.startup.complete"})
        msg = await receive()
        self.received.append(msg["type"])
        if self.shutdown == "never":
            await asyncio.Event().wait()
        await send({"type": f"lifespan.shutdown.{self.shutdown}", "message": self.message})


@on_both_loops
def test_startup_and_shutdown_complete(loop, caplog):
    app = Recorder()
    lifespan, state = make(app)
    with caplog.at_level(logging.INFO, logger="engine.lifespan"):
        run(loop, lifespan.startup())
        assert not lifespan.should_exit and lifespan.supported
        assert app.scope["type"] == "lifespan"
        assert app.scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
        assert app.scope["state"] is state.lifespan_state
        assert state.lifespan_state == {"pool": ["connection"]}
        run(loop, lifespan.shutdown())
    assert app.received == ["lifespan.startup", "lifespan.shutdown"]
    assert not lifespan.should_exit
    assert "Application startup complete." in caplog.text
    assert "Application shutdown complete." in caplog.text


@on_both_loops
def test_startup_failed_sets_should_exit(loop, caplog):
    app = Recorder(startup="failed", message="database unreachable")
    lifespan, _ = make(app)
    with caplog.at_level(logging.ERROR, logger="engine.lifespan"):
        run(loop, lifespan.startup())
    assert lifespan.should_exit and lifespan.startup_failed
    assert lifespan.message == "database unreachable"
    assert "database unreachable" in caplog.text
    run(loop, lifespan.shutdown())             # nothing to shut down: returns at once
    assert app.received == ["lifespan.startup"]


async def raising_app(scope, receive, send):
    assert scope["type"] == "http", "only http here"


@on_both_loops
def test_auto_mode_app_without_lifespan_goes_on(loop, caplog):
    lifespan, _ = make(raising_app, lifespan="auto")
    with caplog.at_level(logging.INFO, logger="engine.lifespan"):
        run(loop, lifespan.startup())
    assert not lifespan.should_exit and not lifespan.supported
    assert isinstance(lifespan.error, AssertionError)
    assert "appears unsupported" in caplog.text
    run(loop, lifespan.shutdown())
    assert not lifespan.should_exit


@on_both_loops
def test_on_mode_app_raising_fails_startup(loop, caplog):
    lifespan, _ = make(raising_app, lifespan="on")
    with caplog.at_level(logging.ERROR, logger="engine.lifespan"):
        run(loop, lifespan.startup())
    assert lifespan.should_exit
    assert "only http here" in caplog.text                   # the traceback is logged


@on_both_loops
def test_off_mode_never_calls_the_app(loop):
    app = Recorder()
    lifespan, _ = make(app, lifespan="off")
    run(loop, lifespan.startup())
    run(loop, lifespan.shutdown())
    assert app.scope is None and not lifespan.should_exit


@on_both_loops
def test_app_returning_without_answer_is_fine(loop):
    async def app(scope, receive, send):
        return

    lifespan, _ = make(app)
    run(loop, lifespan.startup())
    assert not lifespan.should_exit and lifespan.error is None
    run(loop, lifespan.shutdown())
    assert not lifespan.should_exit


@on_both_loops
def test_shutdown_failed(loop, caplog):
    app = Recorder(shutdown="failed", message="flush failed")
    lifespan, _ = make(app)
    run(loop, lifespan.startup())
    with caplog.at_level(logging.ERROR, logger="engine.lifespan"):
        run(loop, lifespan.shutdown())
    assert lifespan.shutdown_failed and lifespan.should_exit
    assert "flush failed" in caplog.text


@on_both_loops
def test_shutdown_that_never_answers_is_bounded(loop, caplog):
    app = Recorder(shutdown="never")
    lifespan, _ = make(app, timeout_graceful_shutdown=0.05)
    run(loop, lifespan.startup())
    with caplog.at_level(logging.ERROR, logger="engine.lifespan"):
        run(loop, lifespan.shutdown())
    assert lifespan.shutdown_failed and "did not complete" in caplog.text
    lifespan._task.cancel()
    loop.run_until_complete(asyncio.gather(lifespan._task, return_exceptions=True))


@on_both_loops
def test_messages_out_of_order_raise_in_the_app(loop):
    errors = []

    async def app(scope, receive, send):
        await receive()
        for wrong in ({"type": "lifespan.shutdown.complete"}, {"type": "http.response.start"},
                      {"type": "lifespan.startup.complete", "extra": 1}):
            try:
                await send(wrong)
            except RuntimeError as exc:
                errors.append(str(exc))
            if wrong["type"] == "lifespan.startup.complete":
                break
        try:
            await send({"type": "lifespan.startup.complete"})     # a second answer
        except RuntimeError as exc:
            errors.append(str(exc))
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    lifespan, _ = make(app)
    run(loop, lifespan.startup())
    run(loop, lifespan.shutdown())
    assert not lifespan.should_exit
    assert len(errors) == 3
    assert "no shutdown in progress" in errors[0]
    assert "'http.response.start'" in errors[1]
    assert "no startup in progress" in errors[2]


@on_both_loops
def test_exception_during_shutdown_is_logged_and_does_not_hang(loop, caplog):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise ValueError("boom at shutdown")

    lifespan, _ = make(app)
    run(loop, lifespan.startup())
    with caplog.at_level(logging.ERROR, logger="engine.lifespan"):
        run(loop, lifespan.shutdown())
    assert "boom at shutdown" in caplog.text and lifespan.supported
    assert not lifespan.should_exit                # auto mode: logged, not fatal


def test_state_is_shallow_copied_into_each_request(loop):
    """Through the real HTTP plugin: each request gets a copy of the lifespan state dict
    (keys it adds stay its own) whose values are the lifespan's objects."""
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await Recorder()(scope, receive, send)
            return
        state = scope["state"]
        seen.append(state)
        state["request_only"] = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(state["pool"])).encode()})

    config = Config(app=app)
    server_state = ServerState(config)
    lifespan = Lifespan(app, config, server_state)

    async def main():
        await lifespan.startup()
        factory = load_plugin("http").create_protocol_factory(app, config, server_state)
        server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            response = await reader.read()
            writer.close()
            assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"1")
        server.close()
        await server.wait_closed()
        await lifespan.shutdown()

    run(loop, main())
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert seen[0] is not server_state.lifespan_state
    assert "request_only" not in server_state.lifespan_state
    assert seen[0]["pool"] is server_state.lifespan_state["pool"]       # shallow
    assert server_state.total_requests == 2

"""engine.pytest_plugin, run by pytest's own ``pytester`` on small test files: async tests on
engine's loop through pytest-asyncio's loop-factory hook (on, off, both loops, a marker's choice,
a bad name), and the ``engine_server`` live-server fixture."""
from __future__ import annotations

import re

import pytest

pytest.importorskip("pytest_asyncio")

PLUGIN = ("-p", "engine.pytest_plugin")

# each async test opens a real TCP connection on its loop, and reports the loop's class
LOOP_TESTS = '''
import asyncio
import pytest
import pytest_asyncio

async def echo_once():
    async def handle(reader, writer):
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello\\n")
    line = await reader.readline()
    writer.close()
    server.close()
    await server.wait_closed()
    return line

def loop_name():
    cls = type(asyncio.get_running_loop())
    return f"{cls.__module__}.{cls.__qualname__}"

@pytest_asyncio.fixture
async def fixture_loop():
    return loop_name()

@pytest.mark.asyncio
async def test_loop(fixture_loop):
    assert await echo_once() == b"hello\\n"
    print("RAN-ON", loop_name(), "FIXTURE-ON", fixture_loop)
'''


def _ran_on(result) -> list[str]:
    return re.findall(r"RAN-ON (\S+)", result.stdout.str())


def test_async_tests_run_on_engine_with_the_plugin(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS)
    result = pytester.runpytest_inprocess(*PLUGIN, "-s")
    result.assert_outcomes(passed=1)
    assert _ran_on(result) == ["engine.Loop"]
    assert "FIXTURE-ON engine.Loop" in result.stdout.str()


def test_without_the_plugin_asyncio_runs_them(pytester):
    # opt-in: installing engine changes nothing in a project that does not enable the plugin
    pytester.makepyfile(test_loops=LOOP_TESTS)
    result = pytester.runpytest_inprocess("-s")
    result.assert_outcomes(passed=1)
    assert _ran_on(result) != ["engine.Loop"]
    assert len(_ran_on(result)) == 1


def test_enabled_from_the_project_config(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS)
    pytester.makeini("[pytest]\naddopts = -p engine.pytest_plugin\n")
    result = pytester.runpytest_inprocess("-s")
    result.assert_outcomes(passed=1)
    assert _ran_on(result) == ["engine.Loop"]


def test_ini_option_runs_each_test_on_both_loops(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS)
    pytester.makeini("[pytest]\nengine_loops = engine asyncio\n")
    result = pytester.runpytest_inprocess(*PLUGIN, "-s", "-v")
    result.assert_outcomes(passed=2)
    assert sorted(_ran_on(result)) == sorted(["engine.Loop", _asyncio_loop_name(pytester)])
    result.stdout.fnmatch_lines(["test_loops.py::test_loop[[]engine[]] RAN-ON engine.Loop*",
                                 "test_loops.py::test_loop[[]asyncio[]] RAN-ON *"])


def test_command_line_option_overrides_the_ini(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS)
    pytester.makeini("[pytest]\nengine_loops = engine asyncio\n")
    result = pytester.runpytest_inprocess(*PLUGIN, "-s", "--engine-loops", "asyncio")
    result.assert_outcomes(passed=1)
    assert _ran_on(result) == [_asyncio_loop_name(pytester)]


def test_marker_chooses_the_loop_of_one_test(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS.replace(
        "@pytest.mark.asyncio\n", '@pytest.mark.asyncio(loop_factories=["asyncio"])\n'))
    result = pytester.runpytest_inprocess(*PLUGIN, "-s")
    result.assert_outcomes(passed=1)
    assert _ran_on(result) == [_asyncio_loop_name(pytester)]


def test_unknown_loop_name_is_a_usage_error(pytester):
    pytester.makepyfile(test_loops=LOOP_TESTS)
    result = pytester.runpytest_inprocess(*PLUGIN, "--engine-loops", "engine,tokio")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*engine_loops: unknown loop tokio*"])


def _asyncio_loop_name(pytester) -> str:
    """What asyncio.new_event_loop() makes in the subprocess (a selector loop on Linux)."""
    result = pytester.run(
        pytester._getpytestargs()[0], "-c",
        "import asyncio; l = asyncio.new_event_loop(); c = type(l); "
        "print(f'{c.__module__}.{c.__qualname__}'); l.close()")
    return result.outlines[-1].strip()


LIVE_TESTS = '''
import asyncio, json, urllib.request
import pytest
from websockets.sync.client import connect

EVENTS = []

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            EVENTS.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    cls = type(asyncio.get_running_loop())
    name = f"{cls.__module__}.{cls.__qualname__}"
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"] + "|" + name})
        await send({"type": "websocket.close", "code": 1000})
        return
    body = json.dumps({"loop": name, "path": scope["path"]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})

def test_http_and_websocket(engine_server):
    server = engine_server(app)
    assert server.url.startswith("http://127.0.0.1:") and server.port > 0
    with urllib.request.urlopen(server.url + "/hello", timeout=10) as resp:
        assert json.loads(resp.read()) == {"loop": "engine.Loop", "path": "/hello"}
    assert server.total_requests == 1
    with connect(server.ws_url + "/ws", open_timeout=10) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi|engine.Loop"
    assert EVENTS == ["lifespan.startup"]

def test_lifespan_was_shut_down_after_the_previous_test():
    assert EVENTS == ["lifespan.startup", "lifespan.shutdown"]

@pytest.mark.asyncio
async def test_async_client_against_the_live_server(engine_server):
    server = engine_server(app, lifespan="off")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /x HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n")
    data = await reader.read()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b'{"loop": "engine.Loop", "path": "/x"}')
'''


def test_engine_server_fixture(pytester):
    pytester.makepyfile(test_live=LIVE_TESTS)
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.assert_outcomes(passed=3)


def test_engine_server_reports_a_failed_startup(pytester):
    pytester.makepyfile(test_fail='''
async def app(scope, receive, send):
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "no database"})

def test_it(engine_server):
    engine_server(app)
''')
    result = pytester.runpytest_inprocess(*PLUGIN)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*LifespanFailed: no database*"])


def test_policy_fallback_fixture(pytester):
    # what the plugin registers for a pytest-asyncio without the loop-factory hook (0.23 to
    # 1.3): an event_loop_policy fixture parametrized by engine_loops. Checked here on its own
    # (pytest-asyncio off), by a test that asks for the fixture and makes a loop with it.
    pytester.makeini("[pytest]\nengine_loops = engine asyncio\n")
    pytester.makeconftest("""
        from engine.pytest_plugin import _policy_fallback

        def pytest_configure(config):
            config.pluginmanager.register(_policy_fallback(config), "fallback-under-test")
        """)
    pytester.makepyfile("""
        def test_policy(event_loop_policy):
            loop = event_loop_policy.new_event_loop()
            try:
                print("POLICY-LOOP", type(loop).__module__.split(".")[0])
            finally:
                loop.close()
        """)
    result = pytester.runpytest_inprocess(*PLUGIN, "-p", "no:asyncio", "-s", "-v")
    result.assert_outcomes(passed=2)
    assert re.findall(r"POLICY-LOOP (\S+)", result.stdout.str()) == ["engine", "asyncio"]
    result.stdout.fnmatch_lines(["*test_policy[[]engine[]]*", "*test_policy[[]asyncio[]]*"])

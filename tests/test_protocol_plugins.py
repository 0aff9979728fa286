"""Protocol plugins: engine.serve.protocols.load_plugin, the built-ins, a third-party package with an
entry point installed with pip, module:attr plugins, ServerState (lifespan state, connections)."""
import asyncio
import importlib
import json
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
from serve_util import WAIT, Served, lifespan_source

from engine.serve.config import Config
from engine.serve.protocols.echo import EchoPlugin, EchoProtocol
from engine.serve.protocols import (
    BUILTIN_PLUGINS,
    ENTRY_POINT_GROUP,
    FactoryPlugin,
    PluginError,
    ProtocolPlugin,
    ServerState,
    available_plugins,
    load_plugin,
)


def _recv_all(sock):
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


# --------------------------------------------------------------------------- resolution

def test_builtins_resolve_to_typed_plugins():
    http = load_plugin("http")
    echo = load_plugin("echo")
    assert isinstance(http, ProtocolPlugin) and isinstance(echo, ProtocolPlugin)
    assert (http.name, http.needs_app) == ("http", True)
    assert (echo.name, echo.needs_app) == ("echo", False)
    assert isinstance(echo, EchoPlugin)
    assert set(BUILTIN_PLUGINS) <= set(available_plugins())


def test_unknown_name_says_what_exists():
    with pytest.raises(PluginError) as info:
        load_plugin("gopher")
    message = str(info.value)
    assert "unknown protocol 'gopher'" in message and "echo" in message and "http" in message
    assert ENTRY_POINT_GROUP in message


PLUGINS = textwrap.dedent('''
    import asyncio

    class Upper(asyncio.Protocol):
        def connection_made(self, t): self.t = t
        def data_received(self, d): self.t.write(d.upper())

    class ClassPlugin:
        name = "classy"
        needs_app = False
        def create_protocol_factory(self, app, config, state):
            return Upper

    instance = ClassPlugin()
    not_a_plugin = 42

    class Incomplete:
        def create_protocol_factory(self, app, config, state):
            return Upper
    incomplete = Incomplete()

    class Raising:
        name = "raising"
        needs_app = False
        def __init__(self):
            raise RuntimeError("no")
        def create_protocol_factory(self, app, config, state):
            return Upper
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    name = f"plugmod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_module_attr_plugins(plugin_module):
    inst = load_plugin(f"{plugin_module}:instance")
    assert inst.name == "classy"
    cls = load_plugin(f"{plugin_module}:ClassPlugin")          # a class: instantiated
    assert cls.name == "classy" and not isinstance(cls, type)
    bare = load_plugin(f"{plugin_module}:Upper")               # a protocol factory
    assert isinstance(bare, FactoryPlugin) and bare.needs_app is False
    mod = sys.modules[plugin_module]
    assert bare.create_protocol_factory(None, Config(), ServerState(Config())) is mod.Upper


@pytest.mark.parametrize("attr, message", [
    ("not_a_plugin", "neither a ProtocolPlugin nor a protocol factory"),
    ("incomplete", "missing name, needs_app"),
    ("Raising", "creating the plugin failed"),
    ("nothing_here", "attribute 'nothing_here' not found"),
])
def test_bad_plugins_are_clear_errors(plugin_module, attr, message):
    with pytest.raises(PluginError, match=message):
        load_plugin(f"{plugin_module}:{attr}")


def test_server_state():
    config = Config(headers=[("X-Extra", "1")])
    state = ServerState(config)
    assert state.config is config and state.lifespan_state == {}
    assert state.connections == set() and state.tasks == set() and state.total_requests == 0
    assert state.default_headers == [(b"server", b"engine"), (b"x-extra", b"1")]
    assert state.logger.name == "engine.http" and state.access_logger.name == "engine.access"


def test_echo_protocol_unit(loop):
    state = ServerState(Config(protocol="echo"))

    async def main():
        server = await loop.create_server(
            EchoPlugin().create_protocol_factory(None, state.config, state), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"abc")
        assert await reader.readexactly(3) == b"abc"
        (proto,) = state.connections
        assert isinstance(proto, EchoProtocol)
        proto.shutdown()                                     # the drain contract
        proto.shutdown()                                     # harmless when closing
        assert await reader.read() == b""
        writer.close()
        server.close()
        await server.wait_closed()
        assert state.connections == set()

    loop.run_until_complete(asyncio.wait_for(main(), WAIT))


# --------------------------------------------------------------------------- served end to end

def test_echo_protocol_served_and_drained():
    with Served("--protocol", "echo", "--timeout-graceful-shutdown", "600") as srv:
        assert srv.url.startswith("tcp://127.0.0.1:") and "echo protocol" in srv.out[0]
        with srv.connect() as s:
            s.sendall(b"raw bytes")
            assert s.recv(100) == b"raw bytes"
            # an idle connection: the drain's shutdown() closes it, no 600 s wait
            srv.proc.send_signal(signal.SIGTERM)
            assert _recv_all(s) == b""
        assert srv.wait() == 0


def test_module_attr_protocol_served(tmp_path):
    (tmp_path / "upper.py").write_text(PLUGINS)
    with Served("--protocol", "upper:Upper", cwd=tmp_path) as srv:
        with srv.connect() as s:
            s.sendall(b"shout")
            assert s.recv(100) == b"SHOUT"
        assert srv.stop() == 0


STATE_PLUGIN = lifespan_source({"token": "from-lifespan"}) + textwrap.dedent('''
    import asyncio, json

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await lifespan(scope, receive, send)

    class Reporter(asyncio.Protocol):
        def __init__(self, state):
            self.state = state
        def connection_made(self, t):
            self.state.connections.add(self)
            self.state.total_requests += 1
            t.write(json.dumps({
                "lifespan_state": self.state.lifespan_state,
                "connections": len(self.state.connections),
                "total": self.state.total_requests,
                "app_is_callable": callable(self.app),
                "config_protocol": self.state.config.protocol,
            }).encode())
            t.close()
        def connection_lost(self, exc):
            self.state.connections.discard(self)

    class StatePlugin:
        name = "state-reporter"
        needs_app = True
        def create_protocol_factory(self, app, config, state):
            def make():
                p = Reporter(state)
                p.app = app
                return p
            return make

    plugin = StatePlugin()
''')


def test_lifespan_state_reaches_the_protocol_through_server_state(tmp_path):
    (tmp_path / "stateplug.py").write_text(STATE_PLUGIN)
    with Served("stateplug:app", "--protocol", "stateplug:plugin", cwd=tmp_path) as srv:
        assert "state-reporter protocol" in srv.out[0]
        for n in (1, 2):
            with srv.connect() as s:
                report = json.loads(_recv_all(s))
            assert report == {"lifespan_state": {"token": "from-lifespan"}, "connections": 1,
                              "total": n, "app_is_callable": True,
                              "config_protocol": "stateplug:plugin"}
        assert srv.stop() == 0


FAILING_PLUGIN = textwrap.dedent('''
    class Broken:
        name = "broken"
        needs_app = False
        def create_protocol_factory(self, app, config, state):
            raise RuntimeError("cannot start the broken protocol")
    plugin = Broken()
''')


def test_plugin_failing_at_startup_exits_1(tmp_path):
    (tmp_path / "brokenplug.py").write_text(FAILING_PLUGIN)
    for extra in ([], ["--workers", "2"]):
        with Served("--protocol", "brokenplug:plugin", *extra, cwd=tmp_path,
                    wait=False) as srv:
            assert srv.wait() == 1
            assert "cannot start the broken protocol" in srv.text()


# --------------------------------------------------------------------------- a third-party package

THIRD_PARTY = textwrap.dedent('''
    """A protocol plugin shipped by another package: answers each line reversed."""
    import asyncio

    class Reverse(asyncio.Protocol):
        def __init__(self, state):
            self.state = state
            self.buf = b""
        def connection_made(self, transport):
            self.transport = transport
            self.state.connections.add(self)
        def data_received(self, data):
            self.buf += data
            while b"\\n" in self.buf:
                line, self.buf = self.buf.split(b"\\n", 1)
                self.transport.write(line[::-1] + b"\\n")
        def connection_lost(self, exc):
            self.state.connections.discard(self)
        def shutdown(self):
            self.transport.close()

    class ReversePlugin:
        name = "{name}"
        needs_app = False
        def create_protocol_factory(self, app, config, state):
            return lambda: Reverse(state)

    plugin = ReversePlugin()
''')


@pytest.fixture
def installed_plugin(tmp_path):
    """A package declaring an ``engine.protocols`` entry point, pip-installed into this venv
    for the test and uninstalled afterwards."""
    tag = uuid.uuid4().hex[:8]
    ep_name, module, dist = f"reverse{tag}", f"engine_reverse_{tag}", f"engine-reverse-{tag}"
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / f"{module}.py").write_text(THIRD_PARTY.replace("{name}", ep_name))
    (pkg / "pyproject.toml").write_text(textwrap.dedent(f'''
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{dist}"
        version = "1.0"

        [project.entry-points."engine.protocols"]
        {ep_name} = "{module}:plugin"

        [tool.setuptools]
        py-modules = ["{module}"]
    '''))
    pip = [sys.executable, "-m", "pip"]
    proc = subprocess.run([*pip, "install", "--no-build-isolation", "--no-deps", "--no-index",
                           "-q", str(pkg)], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    importlib.invalidate_caches()
    try:
        yield ep_name
    finally:
        subprocess.run([*pip, "uninstall", "-y", "-q", dist], capture_output=True,
                       timeout=300, cwd=tmp_path)
        importlib.invalidate_caches()
        sys.modules.pop(module, None)


def test_third_party_plugin_installed_with_an_entry_point(installed_plugin, tmp_path):
    name = installed_plugin
    assert name in available_plugins()
    plugin = load_plugin(name)
    assert plugin.name == name and isinstance(plugin, ProtocolPlugin)
    with Served("--protocol", name, "--timeout-graceful-shutdown", "600", cwd=tmp_path) as srv:
        assert f"({name} protocol, " in srv.out[0]
        with srv.connect() as s:
            s.sendall(b"hello\nworld\n")
            data = b""
            while data.count(b"\n") < 2:
                data += s.recv(100)
            assert data == b"olleh\ndlrow\n"
            srv.proc.send_signal(signal.SIGTERM)        # its shutdown() closes the connection
            assert _recv_all(s) == b""
        assert srv.wait() == 0

"""`engine serve` end to end (real subprocesses, sockets and signals) and engine.serve.config."""
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time

import pytest
from serve_util import ENGINE, WAIT, Served, lifespan_source
from websockets.sync.client import connect as ws_connect

from engine.serve.config import AppLoadError, Config, ConfigError

# --------------------------------------------------------------------------- apps used below

APP = lifespan_source({"db": "connected"}, "app: lifespan shutdown") + textwrap.dedent('''
    import asyncio, os

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            return await lifespan(scope, receive, send)
        if scope["path"] == "/slow":
            print("app: slow request started", flush=True)
            await asyncio.sleep(0.5)
        body = " ".join([scope["state"]["db"], scope["root_path"], scope["path"],
                         scope["scheme"], str(os.getpid())])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body.encode()})

    def make():
        return app

    async def failing(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
            return

    async def no_lifespan(scope, receive, send):
        assert scope["type"] == "http", "lifespan is not supported here"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})
''')


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "myapp.py").write_text(APP)
    return tmp_path


# --------------------------------------------------------------------------- default app

def test_engine_info_does_not_load_the_serving_stack():
    # `engine info` (like `engine --help` and `engine bench`) builds the serve subcommand's
    # parser; the app, the plugins and run_server load only when serving
    code = ("import sys, engine.__main__ as m\n"
            "assert m.main(['info']) == 0\n"
            "print(sorted(x for x in sys.modules if x.startswith(('engine.serve.runner', "
            "'engine.serve.default_app', 'engine.serve.protocols', 'engine.serve.lifespan'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=WAIT, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    # ... and the serving names are still there when asked for
    code = ("from engine.serve import Config, run_server\n"
            "from engine.serve.cli import run_server as r\n"
            "from engine.serve.runner import run_server as r2\n"
            "assert r is r2 is run_server and Config().port == 8000\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=WAIT, cwd="/")
    assert out.returncode == 0, out.stderr


def test_default_app_page_echo_websocket_and_sigterm_exit_0():
    with Served() as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        assert "engine loop" in srv.out[0] and "1 worker" in srv.out[0]
        status, headers, body = srv.request("GET", "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert b"engine" in body and str(srv.proc.pid).encode() in body
        assert srv.request("POST", "/echo", b"payload")[2] == b"payload"
        info = json.loads(srv.request("GET", "/echo?x=1")[2])
        assert info["query_string"] == "x=1" and info["method"] == "GET"
        assert srv.request("GET", "/etc/passwd")[0] == 404     # no --static: no files at all
        with ws_connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
            ws.send("ping me")
            assert ws.recv(timeout=WAIT) == "ping me"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=WAIT) == b"\x00\x01"
        assert srv.stop() == 0
        assert "Application shutdown complete." in srv.text()


def test_python_dash_m_engine_serve_and_sigint(tmp_path):
    # (not from the repository root, whose engine/ has no compiled extension)
    with Served("--protocol", "echo", module=True, cwd=tmp_path) as srv:
        with srv.connect() as s:
            s.sendall(b"via -m")
            assert s.recv(100) == b"via -m"
        assert srv.stop(signal.SIGINT) == 0


def test_static_files_stay_inside_the_root(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("file a")
    (tmp_path / "secret.txt").write_text("secret")
    with Served("--static", str(tmp_path / "www")) as srv:
        status, headers, body = srv.request("GET", "/a.txt")
        assert (status, body) == (200, b"file a")
        assert headers["content-type"].startswith("text/plain")
        assert srv.request("GET", "/../secret.txt")[0] == 404
        assert srv.request("GET", "/%2e%2e/secret.txt")[0] == 404
        assert srv.request("GET", "/a.txt/../../secret.txt")[0] == 404
        status, headers, body = srv.request("HEAD", "/a.txt")
        assert status == 200 and headers["content-length"] == "6" and body == b""
        assert srv.stop() == 0


# --------------------------------------------------------------------------- user apps, lifespan

def test_user_app_factory_root_path_and_lifespan_state(app_dir):
    with Served("myapp:make", "--factory", "--root-path", "/api", cwd=app_dir) as srv:
        # a proxy mounted the app below /api and stripped the prefix; ASGI's path has it back
        status, _, body = srv.request("GET", "/x")
        assert status == 200
        db, root, path, scheme, _pid = body.decode().split()
        assert (db, root, path, scheme) == ("connected", "/api", "/api/x", "http")
        assert srv.stop() == 0
        assert "app: lifespan shutdown" in srv.text("out")


def test_app_dir_flag(app_dir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("cwd")
    with Served("myapp:app", "--app-dir", str(app_dir), cwd=elsewhere) as srv:
        assert srv.request("GET", "/")[0] == 200
        assert srv.stop() == 0


def test_lifespan_startup_failure_exits_3(app_dir):
    proc = subprocess.run([ENGINE, "serve", "myapp:failing", "--port", "0"], cwd=app_dir,
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 3, proc.stderr
    assert "no database" in proc.stderr and "startup failed" in proc.stderr
    assert "engine serve: http" not in proc.stdout          # never said it was serving


def test_lifespan_startup_failure_in_workers_exits_3_without_crash_loop(app_dir):
    proc = subprocess.run([ENGINE, "serve", "myapp:failing", "--port", "0", "--workers", "2"],
                          cwd=app_dir, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 3, proc.stderr
    assert "restarting slot" not in proc.stderr


def test_lifespan_auto_continues_when_unsupported_and_on_fails(app_dir):
    with Served("myapp:no_lifespan", cwd=app_dir) as srv:
        assert srv.request("GET", "/")[0] == 204
        assert srv.stop() == 0
        assert "lifespan' protocol appears unsupported" in srv.text()
    proc = subprocess.run([ENGINE, "serve", "myapp:no_lifespan", "--port", "0",
                           "--lifespan", "on"], cwd=app_dir, capture_output=True, text=True,
                          timeout=WAIT)
    assert proc.returncode == 3, proc.stderr
    assert "lifespan is not supported here" in proc.stderr      # the traceback is logged


def test_graceful_drain_finishes_the_request_in_flight(app_dir):
    with Served("myapp:app", "--timeout-graceful-shutdown", "120", cwd=app_dir) as srv:
        conn = socket.create_connection((srv.host, srv.port), timeout=WAIT)
        start = len(srv.out)
        conn.sendall(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
        srv.wait_for("app: slow request started", start=start)
        srv.proc.send_signal(signal.SIGTERM)
        data = b""
        while chunk := conn.recv(65536):       # the server closes after the response
            data += chunk
        conn.close()
        assert data.startswith(b"HTTP/1.1 200 ") and b"connected" in data
        assert srv.wait() == 0


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("args, message", [
    (["nosuchmodule:app"], "no module named 'nosuchmodule'"),
    (["myapp:nothing"], "attribute 'nothing' not found"),
    (["myapp"], 'expected "module:attribute"'),
    (["--protocol", "nosuchproto"], "unknown protocol 'nosuchproto'"),
    (["--static", "/nonexistent/dir"], "is not a directory"),
])
def test_startup_errors_are_reported_without_traceback(app_dir, args, message):
    proc = subprocess.run([ENGINE, "serve", *args, "--port", "0"], cwd=app_dir,
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode in (1, 2), proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_address_in_use_exits_1():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run([ENGINE, "serve", "--port", str(port)], capture_output=True,
                              text=True, timeout=WAIT)
    assert proc.returncode == 1
    assert "cannot listen on" in proc.stderr


def test_bad_flag_value_exits_2():
    proc = subprocess.run([ENGINE, "serve", "--workers", "0"], capture_output=True, text=True,
                          timeout=WAIT)
    assert proc.returncode == 2 and "--workers" in proc.stderr


# --------------------------------------------------------------------------- listeners, workers

def test_two_workers_share_the_port_and_drain(app_dir):
    with Served("myapp:app", "--workers", "2", cwd=app_dir) as srv:
        # the banner prints once the first worker listens (after that worker's "ready")
        assert "2 workers, supervisor pid" in srv.wait_for(r"^engine serve: \S+ \(.*").group(0)
        first = int(srv.wait_for(r"worker (\d+) ready").group(1))
        second = srv.wait_for(rf"worker (?!{first}\b)(\d+) ready")
        pids = {first, int(second.group(1))}
        assert len(pids) == 2 and srv.proc.pid not in pids
        status, _, body = srv.request("GET", "/x")
        assert status == 200 and int(body.split()[-1]) in pids
        assert srv.stop() == 0
        assert srv.text("out").count("app: lifespan shutdown") == 2     # one per worker


def test_unix_socket(tmp_path):
    path = str(tmp_path / "engine.sock")
    with Served("--uds", path) as srv:
        assert srv.url == f"unix:{path}"
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(WAIT)
        s.connect(path)
        s.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
                  b"connection: close\r\n\r\nuds")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\nuds")
        assert srv.stop() == 0
    assert not os.path.exists(path)                       # removed on exit


def test_inherited_fd():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    try:
        with Served("--fd", str(sock.fileno()), "--protocol", "echo",
                    pass_fds=(sock.fileno(),)) as srv:
            assert srv.url == f"tcp://127.0.0.1:{port}"
            with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as c:
                c.sendall(b"fd")
                assert c.recv(10) == b"fd"
            assert srv.stop() == 0
    finally:
        sock.close()


def test_ipv6_dual_stack():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 on this host")
    with Served("--host", "::", "--protocol", "echo") as srv:
        assert srv.url.startswith("tcp://[::]:")
        for host in ("127.0.0.1", "::1"):                  # v4 and v6 on one socket
            with socket.create_connection((host, srv.port), timeout=WAIT) as c:
                c.sendall(host.encode())
                assert c.recv(100) == host.encode()
        assert srv.stop() == 0


# ------------------------------------------------------------------ flags reach the protocol

def test_headers_proxy_headers_and_access_log():
    with Served("--header", "x-served-by: test", "--no-server-header", "--access-log") as srv:
        status, headers, body = srv.request(
            "GET", "/echo", headers={"x-forwarded-for": "203.0.113.9",
                                     "x-forwarded-proto": "https"})
        assert headers["x-served-by"] == "test" and "server" not in headers
        info = json.loads(body)
        assert info["client"] == ["203.0.113.9", 0] and info["scheme"] == "https"
        srv.wait_for(r'203\.0\.113\.9:0 - "GET /echo HTTP/1.1" 200', stream="err")
        assert srv.stop() == 0
    with Served("--no-proxy-headers") as srv:
        info = json.loads(srv.request("GET", "/echo",
                                      headers={"x-forwarded-for": "203.0.113.9"})[2])
        assert info["client"][0] == "127.0.0.1"
        assert srv.stop() == 0


def test_limits_reach_the_http_protocol():
    with Served("--max-request-line", "200", "--max-body", "10", "--limit-concurrency", "1",
                "--timeout-keep-alive", "0.2") as srv:
        assert srv.request("GET", "/echo?" + "x" * 300)[0] == 414
        assert srv.request("POST", "/echo", b"y" * 11)[0] == 413
        # one open connection uses up --limit-concurrency 1: the next one gets 503
        with srv.connect() as held:
            held.sendall(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
            assert held.recv(12) == b"HTTP/1.1 200"
            assert srv.request("GET", "/")[0] == 503
            # and --timeout-keep-alive closes the idle one
            while held.recv(65536):
                pass
        # the held connection's slot is freed once the server sees it closed (each request
        # below is a new connection whose own close the server may not have seen yet either)
        deadline = time.monotonic() + WAIT
        while (status := srv.request("GET", "/")[0]) == 503 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert status == 200
        assert srv.stop() == 0


def test_more_limits_and_timeouts_reach_the_http_protocol():
    from websockets.exceptions import ConnectionClosed
    with Served("--max-header-count", "10", "--timeout-request-header", "0.2",
                "--ws-max-size", "10") as srv:
        assert srv.request("GET", "/echo", headers={f"x-{i}": "1" for i in range(12)})[0] == 431
        with srv.connect() as slow:                     # headers that never finish
            slow.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n")
            data = b""
            while chunk := slow.recv(65536):
                data += chunk
            assert data.startswith(b"HTTP/1.1 408")
        with ws_connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
            ws.send("small")
            assert ws.recv(timeout=WAIT) == "small"
            ws.send("x" * 11)
            with pytest.raises(ConnectionClosed) as info:
                ws.recv(timeout=WAIT)
            assert info.value.rcvd.code == 1009          # message too big
        assert srv.stop() == 0


@pytest.mark.parametrize("loop", ["engine", "asyncio"])
def test_tls(tmp_path, loop):
    # engine's loop serves TLS by its compiled SSLProtocol, asyncio's by asyncio's SSLProtocol
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with Served("--ssl-certfile", str(cert_file), "--ssl-keyfile", str(key_file), "--loop", loop,
                "--timeout-graceful-shutdown", "120", "--timeout-keep-alive", "120") as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        tls = client_ctx.wrap_socket(srv.connect(), server_hostname="127.0.0.1")
        tls.sendall(b"GET /echo HTTP/1.1\r\nhost: x\r\n\r\n")
        response = http.client.HTTPResponse(tls)
        response.begin()
        assert response.status == 200
        assert json.loads(response.read())["scheme"] == "https"
        response.close()
        # the keep-alive connection is idle: the drain closes it at once, through the TLS
        # layer (close_notify: recv() returns b""), not after a 120 s timeout
        srv.proc.send_signal(signal.SIGTERM)
        assert tls.recv(100) == b""
        tls.close()
        assert srv.wait() == 0


def test_reload_restarts_on_change(tmp_path):
    mod = tmp_path / "reloadproto.py"
    mod.write_text(textwrap.dedent('''
        import asyncio
        class P(asyncio.Protocol):
            def connection_made(self, t):
                t.write(b"v1")
                t.close()
    '''))
    with Served("--protocol", "reloadproto:P", "--reload", "--reload-dir", str(tmp_path),
                "--reload-interval", "0.05", cwd=tmp_path) as srv:
        srv.wait_for("reloader pid")

        def fetch():
            with srv.connect() as c:
                data = b""
                while chunk := c.recv(100):
                    data += chunk
                return data
        assert fetch() == b"v1"
        start = len(srv.out)
        mod.write_text(mod.read_text().replace('b"v1"', 'b"v2"'))
        st = os.stat(mod)
        os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        srv.wait_for(r"^engine serve: tcp://", start=start)    # a new server started
        assert fetch() == b"v2"
        assert srv.stop() == 0


def test_killed_reloader_takes_its_server_down(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    with Served("--protocol", "echo", "--reload", "--reload-dir", str(tmp_path),
                cwd=tmp_path) as srv:
        with srv.connect() as c:
            c.sendall(b"up")
            assert c.recv(10) == b"up"
        srv.proc.kill()                                   # SIGKILL: no chance to clean up
        srv.proc.wait(WAIT)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:                # the server drains and closes
            try:
                socket.create_connection((srv.host, srv.port), timeout=WAIT).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:
                pass            # the listener closed while this connection was queued: retry
            time.sleep(0.05)
        else:
            raise AssertionError("the server outlived its reloader")


# --------------------------------------------------------------------------- engine.config

def test_config_listeners():
    (tcp,) = Config(host="::", port=0).listeners()
    assert (tcp.kind, tcp.host, tcp.dualstack) == ("tcp", "::", True)
    (tcp,) = Config(host="127.0.0.1", port=8123, backlog=17).listeners()
    assert (tcp.host, tcp.port, tcp.backlog, tcp.dualstack) == ("127.0.0.1", 8123, 17, None)
    (tcp,) = Config(host="").listeners()
    assert tcp.host is None                                   # every interface
    (unix,) = Config(uds="/tmp/x.sock").listeners()
    assert (unix.kind, unix.path) == ("unix", "/tmp/x.sock")
    (fd,) = Config(fd=7).listeners()
    assert (fd.kind, fd.fileno) == ("fd", 7)


@pytest.mark.parametrize("kwargs", [
    {"lifespan": "maybe"}, {"workers": 0}, {"uds": "/x", "fd": 3}, {"port": 70000},
    {"log_level": "loud"}, {"limit_concurrency": 0}, {"timeout_keep_alive": -1},
    {"headers": [("bad name", "v")]}, {"loop": "uvloop"}, {"ssl_keyfile": "k.pem"},
])
def test_config_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        Config(**kwargs)


def test_config_load_app(app_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(app_dir))
    import myapp
    assert Config("myapp:app").load_app() is myapp.app
    assert Config("myapp:make", factory=True).load_app() is myapp.app
    assert Config(myapp.make, factory=True).load_app() is myapp.app
    with pytest.raises(AppLoadError, match="needs --factory"):
        Config("myapp:__name__").load_app()                  # a str: not an app
    with pytest.raises(ConfigError, match="static"):
        Config("myapp:app", static=str(app_dir)).load_app()
    from engine.serve.default_app import DefaultApp
    default = Config(static=str(app_dir)).load_app()
    assert isinstance(default, DefaultApp) and default.static_root == os.path.realpath(app_dir)


def test_config_app_import_error_inside_the_module_is_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "brokenapp.py").write_text("import nosuchdependency\napp = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(AppLoadError, match="importing 'brokenapp' failed") as info:
        Config("brokenapp:app").load_app()
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_config_headers_and_forwarded_ips(monkeypatch):
    assert Config().default_headers() == [(b"server", b"engine")]
    assert Config(server_header=False, headers=[("X-A", "1")]).default_headers() == [
        (b"x-a", b"1")]
    assert Config(headers=[("Server", "mine")]).default_headers() == [(b"server", b"mine")]
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert Config().forwarded_allow_ips == ["127.0.0.1"]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.0/8")
    assert Config().forwarded_allow_ips == ["10.0.0.1", "10.0.0.0/8"]
    assert Config(forwarded_allow_ips="*").forwarded_allow_ips == ["*"]


def test_config_ssl_context(tmp_path):
    assert Config().ssl_context() is None
    trustme = pytest.importorskip("trustme")
    cert = trustme.CA().issue_cert("localhost")
    pem = tmp_path / "both.pem"
    pem.write_bytes(cert.private_key_and_cert_chain_pem.bytes())
    config = Config(ssl_certfile=str(pem))
    ctx = config.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and config.ssl_context() is ctx
    with pytest.raises(ConfigError, match="cannot load"):
        Config(ssl_certfile=str(tmp_path / "missing.pem")).ssl_context()


def test_cli_flags_build_the_config():
    import argparse

    from engine.serve.cli import add_parser, config_from_args
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args([
        "serve", "pkg.mod:app", "--host", "0.0.0.0", "--port", "9", "--workers", "3",
        "--factory", "--root-path", "/r", "--forwarded-allow-ips", "1.2.3.4,*",
        "--timeout-keep-alive", "7", "--timeout-request-header", "8",
        "--timeout-request-body", "9", "--timeout-graceful-shutdown", "11",
        "--limit-concurrency", "12", "--backlog", "13", "--log-level", "debug",
        "--access-log", "--protocol", "echo", "--lifespan", "on", "--ws-max-size", "14",
        "--ws-ping-interval", "0", "--ws-ping-timeout", "15", "--max-request-line", "16",
        "--max-header-count", "17", "--max-header-bytes", "18", "--max-body", "19",
        "--no-date-header", "--header", "a: b", "--loop", "asyncio", "--no-proxy-headers"])
    c = config_from_args(args)
    assert (c.app, c.host, c.port, c.workers, c.factory, c.root_path) == (
        "pkg.mod:app", "0.0.0.0", 9, 3, True, "/r")
    assert c.forwarded_allow_ips == ["1.2.3.4", "*"] and not c.proxy_headers
    assert (c.timeout_keep_alive, c.timeout_request_header, c.timeout_request_body,
            c.timeout_graceful_shutdown) == (7, 8, 9, 11)
    assert (c.limit_concurrency, c.backlog, c.log_level, c.access_log) == (12, 13, "debug", True)
    assert (c.protocol, c.lifespan, c.loop) == ("echo", "on", "asyncio")
    assert (c.ws_max_size, c.ws_ping_interval, c.ws_ping_timeout) == (14, 0, 15)
    assert (c.max_request_line, c.max_header_count, c.max_header_bytes, c.max_body) == (
        16, 17, 18, 19)
    assert not c.date_header and c.headers == [("a", "b")]


def test_engine_info_still_works(tmp_path):
    proc = subprocess.run([ENGINE, "info"], capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0 and "poller backend" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "engine", "serve", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 0 and "--forwarded-allow-ips" in proc.stdout


def test_loop_asyncio_flag():
    with Served("--loop", "asyncio") as srv:
        assert "asyncio loop" in srv.out[0]
        assert b"asyncio" in srv.request("GET", "/")[2]
        assert srv.stop() == 0


def test_sigterm_during_startup_is_a_clean_exit(app_dir):
    # SIGTERM while the worker is still starting: no traceback, status 0
    srv = Served("myapp:app", cwd=app_dir, wait=False)
    with srv:
        srv.wait_for("Waiting for application startup", stream="err")
        assert srv.stop() == 0

"""`engine serve` end to end: a real subprocess, real sockets, SIGTERM."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request

from websockets.sync.client import connect as ws_connect

ENGINE = os.path.join(os.path.dirname(sys.executable), "engine")


def read_lines(stream, until, timeout=30.0):
    """Lines from a subprocess pipe (raw fd reads, so select() sees every byte) until
    until(lines) is true or the timeout passes."""
    fd = stream.fileno()
    buf = b""
    lines = []
    deadline = time.monotonic() + timeout
    while not until(lines) and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *done, buf = buf.split(b"\n")
        lines += [d.decode() for d in done]
    return lines


class Served:
    def __init__(self, *args, cwd=None):
        self.proc = subprocess.Popen([ENGINE, "serve", "--port", "0", *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = None
        for line in read_lines(self.proc.stdout, lambda ls: any("engine serve:" in x for x in ls)):
            m = re.search(r"engine serve: \S+ on .*?(\d+)\)", line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise AssertionError(f"engine serve did not start: {self.proc.stderr.read()}")

    def get(self, path, data=None):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", data=data,
                                        timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


def test_default_app_page_echo_websocket_and_graceful_exit(tmp_path):
    srv = Served()
    try:
        status, body = srv.get("/")
        assert status == 200 and b"engine" in body and b"epoll" in body
        assert srv.get("/echo", data=b"payload") == (200, b"payload")
        status, body = srv.get("/echo?x=1")
        assert json.loads(body)["query"] == "x=1"
        assert srv.get("/etc/passwd")[0] == 404          # no --static: no files at all
        with ws_connect(f"ws://127.0.0.1:{srv.port}/ws") as conn:
            conn.send("ping me")
            assert conn.recv(timeout=10) == "ping me"
    finally:
        assert srv.stop() == 0


def test_static_files_stay_inside_the_root(tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "a.txt").write_text("file a")
    (tmp_path / "secret.txt").write_text("secret")
    srv = Served("--static", str(tmp_path / "www"))
    try:
        assert srv.get("/a.txt") == (200, b"file a")
        assert srv.get("/../secret.txt")[0] == 404
        assert srv.get("/%2e%2e/secret.txt")[0] == 404
    finally:
        assert srv.stop() == 0


APP = textwrap.dedent('''
    import contextlib
    FAIL = False

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            m = await receive()
            if FAIL:
                await send({"type": "lifespan.startup.failed", "message": "no database"})
                return
            scope["state"]["db"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body",
                    "body": (scope["state"]["db"] + " " + scope["root_path"]).encode()})

    def make():
        return app

    async def failing(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no database"})
''')


def test_user_app_with_lifespan_state_factory_and_root_path(tmp_path):
    (tmp_path / "myapp.py").write_text(APP)
    srv = Served("myapp:make", "--factory", "--root-path", "/api", cwd=tmp_path)
    try:
        assert srv.get("/x") == (200, b"connected /api")
    finally:
        assert srv.stop() == 0


def test_lifespan_startup_failure_exits_3(tmp_path):
    (tmp_path / "myapp.py").write_text(APP)
    proc = subprocess.run([ENGINE, "serve", "myapp:failing", "--port", "0"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "startup failed" in proc.stderr


def test_echo_protocol_and_module_attr_protocol(tmp_path):
    srv = Served("--protocol", "echo")
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"raw bytes")
            assert s.recv(100) == b"raw bytes"
    finally:
        assert srv.stop() == 0
    (tmp_path / "upper.py").write_text(textwrap.dedent('''
        import asyncio
        class Upper(asyncio.Protocol):
            def connection_made(self, t): self.t = t
            def data_received(self, d): self.t.write(d.upper())
    '''))
    srv = Served("--protocol", "upper:Upper", cwd=tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(b"shout")
            assert s.recv(100) == b"SHOUT"
    finally:
        assert srv.stop() == 0


def test_two_workers_share_the_port():
    proc = subprocess.Popen([ENGINE, "serve", "--port", "0", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ports, pids = set(), set()
        lines = read_lines(proc.stdout,
                           lambda ls: sum("engine serve:" in x for x in ls) >= 2)
        for line in lines:
            m = re.search(r"on .*?(\d+)\) \(\w+, pid (\d+)\)", line)
            if m:
                ports.add(int(m.group(1)))
                pids.add(int(m.group(2)))
        assert len(pids) == 2 and len(ports) == 1
        port = ports.pop()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/echo", data=b"w",
                                    timeout=10) as r:
            assert r.read() == b"w"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()

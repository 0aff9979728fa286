"""Helpers of the integration tests (tests/integrations/): a small ASGI app that reports which
event loop ran it, a listening socket on 127.0.0.1 port 0, HTTP requests with a deadline, and a
subprocess whose output is collected and waited on with deadlines."""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

WAIT = 30.0                 # upper bound of any single wait; the tests normally take far less
BIN = os.path.dirname(sys.executable)

# An ASGI app (no framework): GET any path answers JSON {"loop": module.qualname of the running
# loop's class, "pid": the serving process, "client": the scope's client host}; /slow?SECONDS
# sleeps first; /block?SECONDS blocks the loop (time.sleep); a websocket echoes the first text
# message with the loop's class appended.
APP_SOURCE = '''
import asyncio, json, os, time

def _loop_name():
    cls = type(asyncio.get_running_loop())
    return f"{cls.__module__}.{cls.__qualname__}"

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"] + "|" + _loop_name()})
        await send({"type": "websocket.close", "code": 1000})
        return
    seconds = float(scope["query_string"] or b"0")
    if scope["path"] == "/slow":
        await asyncio.sleep(seconds)
    elif scope["path"] == "/block":
        time.sleep(seconds)
    body = json.dumps({"loop": _loop_name(), "pid": os.getpid(),
                       "client": (scope.get("client") or ["-"])[0]}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
'''


def write_app(directory) -> str:
    """Write APP_SOURCE as ``loopapp.py`` in ``directory``; returns the app's import string."""
    with open(os.path.join(directory, "loopapp.py"), "w") as f:
        f.write(APP_SOURCE)
    return "loopapp:app"


def listening_socket() -> socket.socket:
    """A TCP socket bound to 127.0.0.1 on a free port (port 0), inheritable, not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A free port on 127.0.0.1, for the tools that can only be told a port number."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, path: str = "/", timeout: float = WAIT,
        headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """GET over a new connection; returns (status, the decoded JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else {}
    finally:
        conn.close()


def wait_until(predicate, what: str, timeout: float = WAIT, interval: float = 0.05):
    """Poll ``predicate()`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(p) for p in f.read().split()}


class Process:
    """A subprocess with stdout+stderr collected by a thread; stopped (by its pid) at the end."""

    def __init__(self, args, *, cwd=None, env=None, pass_fds=()):
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, pass_fds=pass_fds, text=True)
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, needle: str, timeout: float = WAIT) -> str:
        return wait_until(lambda: next((ln for ln in self.lines if needle in ln), None),
                          f"a line with {needle!r} in:\n{self.output()}", timeout)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit:\n{self.output()}") from None

    def stop(self):
        """SIGTERM (a graceful stop, which a server passes on to its workers), then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self._thread.join(WAIT)

"""Run `engine serve` in a subprocess for the end-to-end tests: every wait has a deadline."""
from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ENGINE = os.path.join(os.path.dirname(sys.executable), "engine")
WAIT = 60.0                 # upper bound of any single wait; tests normally take far less
LINE = re.compile(r"^engine serve: (\S+) \((.*)\)$")


def lifespan_source(state: dict[str, str], shutdown_line: str | None = None) -> str:
    """Source of ``async def lifespan(scope, receive, send)`` for an app module that ``engine
    serve`` loads: at startup it puts ``state`` into the lifespan state; at shutdown it prints
    ``shutdown_line`` (if given) to stdout, then completes."""
    printing = f"    print({shutdown_line!r}, flush=True)\n" if shutdown_line else ""
    return ("async def lifespan(scope, receive, send):\n"
            "    await receive()\n"
            f"    scope['state'].update({state!r})\n"
            "    await send({'type': 'lifespan.startup.complete'})\n"
            "    await receive()\n"
            f"{printing}"
            "    await send({'type': 'lifespan.shutdown.complete'})\n")


class Served:
    """``engine serve ARGS`` in a subprocess; stdout and stderr are collected by threads."""

    def __init__(self, *args: str, cwd=None, env=None, module: bool = False,
                 pass_fds=(), wait: bool = True, port0: bool = True):
        args_list = list(args)
        if port0 and not any(a in args_list for a in ("--port", "--uds", "--fd")):
            args_list += ["--port", "0"]
        cmd = ([sys.executable, "-m", "engine", "serve"] if module else [ENGINE, "serve"])
        full_env = dict(os.environ, NO_COLOR="1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(cmd + args_list, cwd=cwd, env=full_env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     pass_fds=pass_fds)
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._pump, args=(s, lst), daemon=True)
                         for s, lst in ((self.proc.stdout, self.out),
                                        (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()
        self.url = self.host = None
        self.port = 0
        if wait:
            try:
                m = self.wait_for(LINE)
            except BaseException:
                self.kill()
                raise
            self.url = m.group(1)
            hp = re.match(r"\w+://\[?([^\]]*?)\]?:(\d+)$", self.url)
            if hp:
                self.host, self.port = hp.group(1), int(hp.group(2))

    def _pump(self, stream, lines):
        for raw in iter(stream.readline, b""):
            with self._cond:
                lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            lines.append(None)                  # EOF marker
            self._cond.notify_all()

    def wait_for(self, pattern, *, stream: str = "out", start: int = 0, timeout: float = WAIT):
        """The first match of ``pattern`` in a line of stdout (or stderr) from line ``start``."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        lines = self.out if stream == "out" else self.err
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(lines):
                    line = lines[i]
                    i += 1
                    if line is None:
                        raise AssertionError(
                            f"engine serve ended (status {self.proc.poll()}) before {rx.pattern!r}"
                            f"\nstdout: {self.text('out')}\nstderr: {self.text('err')}")
                    m = rx.search(line)
                    if m:
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {rx.pattern!r} within {timeout}s\n"
                                         f"stdout: {self.text('out')}\nstderr: {self.text('err')}")
                self._cond.wait(left)

    def text(self, stream: str = "err") -> str:
        with self._cond:
            lines = self.out if stream == "out" else self.err
            return "\n".join(line for line in lines if line is not None)

    def request(self, method: str, path: str, body=None, headers=None, *, conn=None):
        """One HTTP request on a new connection (or ``conn``): (status, headers, body)."""
        c = conn or http.client.HTTPConnection(self.host, self.port, timeout=WAIT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            if conn is None:
                c.close()

    def connect(self) -> socket.socket:
        return socket.create_connection((self.host, self.port), timeout=WAIT)

    def stop(self, sig=signal.SIGTERM, timeout: float = WAIT) -> int:
        """Send ``sig`` and return the exit status (the process is killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"engine serve did not exit within {timeout}s\n"
                                 f"stderr: {self.text('err')}") from None
        for t in self._threads:
            t.join(WAIT)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        for t in self._threads:
            # a process it left behind may still hold the pipes: don't wait long for EOF
            t.join(5)

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
        for t, s in zip(self._threads, (self.proc.stdout, self.proc.stderr), strict=True):
            if not t.is_alive():                # closing under a blocked reader would hang
                s.close()

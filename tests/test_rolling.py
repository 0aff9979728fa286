"""Rolling restarts (SIGHUP) and worker recycling lose no request: a keep-alive load runs
through them and every request gets a 2xx answer, while the workers are replaced."""
from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import threading
import time

from serve_util import ENGINE, WAIT

APP = """\
import os

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


class Load:
    """``n`` threads, each a keep-alive http.client connection sending GETs until stopped.

    Each thread also closes its connection after every ``turnover`` answered requests and opens
    a new one (as a client pool retiring old connections does): otherwise the few keep-alive
    connections could all settle on one replacement worker, and whether the other replacement
    accepts at all would go unseen.
    """

    turnover = 25

    def __init__(self, port: int, n: int = 6) -> None:
        self.port = port
        self.ok = 0
        self.errors: list[str] = []
        self.pids: set[int] = set()
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        sent = 0
        while not self.done.is_set():
            try:
                conn.request("GET", "/")
                resp = conn.getresponse()
                body = resp.read()
                with self.lock:
                    if 200 <= resp.status < 300:
                        self.ok += 1
                        self.pids.add(int(body))
                    else:
                        self.errors.append(f"status {resp.status}")
                sent += 1
                if resp.will_close or sent % self.turnover == 0:
                    conn.close()              # the next request opens a new connection
            except Exception as exc:          # a lost request: the thing under test
                with self.lock:
                    self.errors.append(repr(exc))
                conn.close()
        conn.close()

    def stop(self) -> None:
        self.done.set()
        for t in self.threads:
            t.join(WAIT)


def start(tmp_path, *args: str) -> tuple[subprocess.Popen[str], int]:
    (tmp_path / "pidapp.py").write_text(APP)
    proc = subprocess.Popen([ENGINE, "serve", "--port", "0", "--workers", "2", *args,
                             "pidapp:app"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "err.log", "w"),
                            env=dict(os.environ, NO_COLOR="1"), start_new_session=True)
    assert proc.stdout is not None
    port = 0
    ready = 0
    deadline = time.monotonic() + WAIT
    while (not port or ready < 2) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.match(r"engine serve: http://127\.0\.0\.1:(\d+) ", line)
        port = port or (int(m.group(1)) if m else 0)
        ready += "ready" in line
    assert port and ready == 2, proc
    return proc, port


def stop(proc: subprocess.Popen[str], tmp_path) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=WAIT)
        err = (tmp_path / "err.log").read_text()
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, err
    return err


def test_sighup_under_keep_alive_load_loses_nothing(tmp_path) -> None:
    proc, port = start(tmp_path)
    try:
        load = Load(port)
        time.sleep(0.7)
        with load.lock:
            before = set(load.pids)
        proc.send_signal(signal.SIGHUP)
        # the load runs on until both replacements have answered some of it
        log = tmp_path / "err.log"
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            new = {int(p) for p in re.findall(r"worker (\d+) replaces", log.read_text())}
            with load.lock:
                if len(new) == 2 and new <= load.pids:
                    break
            time.sleep(0.05)
        time.sleep(0.3)
        load.stop()
    finally:
        err = stop(proc, tmp_path)
    assert load.errors == [], load.errors[:5]
    assert load.ok > 100
    assert len(before) == 2
    assert "worker" in err and err.count("replaces") == 2, err
    new = {int(p) for p in re.findall(r"worker (\d+) replaces", err)}
    assert len(new) == 2 and new <= load.pids and not new & before, (new, before, load.pids)
    assert "died" not in err and "restarting" not in err, err


def wait_log(tmp_path, pattern: str, count: int) -> None:
    """Until the server's log has ``count`` matches of ``pattern`` (the load runs meanwhile)."""
    deadline = time.monotonic() + WAIT
    while len(re.findall(pattern, (tmp_path / "err.log").read_text())) < count:
        assert time.monotonic() < deadline, (tmp_path / "err.log").read_text()
        time.sleep(0.05)


def test_recycling_by_request_count_loses_nothing(tmp_path) -> None:
    proc, port = start(tmp_path, "--limit-max-requests", "150", "--max-requests-jitter", "20")
    try:
        load = Load(port)
        wait_log(tmp_path, r"worker \d+ replaces", 3)
        time.sleep(0.3)
        load.stop()
    finally:
        err = stop(proc, tmp_path)
    assert load.errors == [], load.errors[:5]
    assert "asks to be replaced" in err, err
    assert err.count("replaces") >= 2, err
    assert len(load.pids) >= 3, load.pids        # workers were replaced while serving
    assert "died" not in err and "restarting" not in err, err


def test_recycling_by_lifetime(tmp_path) -> None:
    proc, port = start(tmp_path, "--worker-lifetime", "1")
    try:
        load = Load(port, n=2)
        wait_log(tmp_path, r"worker \d+ replaces", 1)
        time.sleep(0.3)
        load.stop()
    finally:
        err = stop(proc, tmp_path)
    assert load.errors == [], load.errors[:5]
    assert "--worker-lifetime" in err and "replaces" in err, err


def test_recycling_flags_are_validated() -> None:
    for args in (["--limit-max-requests", "0"], ["--worker-max-rss", "-1"],
                 ["--worker-lifetime", "0"], ["--max-requests-jitter", "-2"]):
        proc = subprocess.run([ENGINE, "serve", "--port", "0", *args], capture_output=True,
                              text=True, timeout=WAIT)
        assert proc.returncode != 0 and "error" in proc.stderr, (args, proc.stderr)

"""gunicorn (from PyPI) running engine's worker classes, end to end in subprocesses:
``engine.workers.EngineWorker`` (engine's compiled HTTP server and loop) and
``engine.workers.EngineUvicornWorker`` (uvicorn's protocol on engine's loop).

Each gunicorn listens on a socket the test bound to 127.0.0.1 port 0 and passes as
``--bind fd://N``. Worker pids are read from /proc (the arbiter's children)."""
from __future__ import annotations

import os
import signal
import threading

import pytest
from integ_util import BIN, Process, children, get, listening_socket, wait_until, write_app

gunicorn = pytest.importorskip("gunicorn")
from gunicorn.config import KNOWN_SETTINGS  # noqa: E402

ENGINE_LOOP = "engine.Loop"
# gunicorn 25+ opens a control socket at a fixed path by default: parallel tests would share it
_NO_CONTROL = (["--no-control-socket"]
               if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else [])


class Gunicorn(Process):
    def __init__(self, tmp_path, *args: str, worker="engine.workers.EngineWorker", workers=2):
        app = write_app(tmp_path)
        self.sock = listening_socket()
        self.port = self.sock.getsockname()[1]
        fd = self.sock.fileno()
        super().__init__([os.path.join(BIN, "gunicorn"), "-k", worker, "-w", str(workers),
                          "-b", f"fd://{fd}", "--graceful-timeout", "10", *_NO_CONTROL, *args,
                          app], cwd=tmp_path, pass_fds=(fd,))
        self.workers = workers
        self.sock.close()                     # gunicorn has its own copy now

    def stop(self):
        """Stop the arbiter, then any worker of it still alive (by pid: only ours)."""
        try:
            workers = children(self.pid) if self.proc.poll() is None else set()
        except OSError:
            workers = set()
        super().stop()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def serving_workers(self) -> set[int]:
        """Wait until the arbiter has ``workers`` children and each answers; their pids."""
        def ready():
            pids = children(self.pid)
            if len(pids) != self.workers:
                return None
            seen = set()
            for _ in range(40 * self.workers):
                status, body = get(self.port)
                assert status == 200 and body["loop"] == ENGINE_LOOP, body
                seen.add(body["pid"])
                if seen == pids:
                    return pids
            return None
        return wait_until(ready, f"{self.workers} workers serving:\n{self.output()}",
                          interval=0.2)


@pytest.fixture
def run_gunicorn(tmp_path):
    started = []

    def run(*args, **kw):
        g = Gunicorn(tmp_path, *args, **kw)
        started.append(g)
        return g
    yield run
    for g in started:
        g.stop()


def test_requests_and_websocket_on_engine(run_gunicorn):
    from websockets.sync.client import connect

    g = run_gunicorn("--access-logfile", "-")
    pids = g.serving_workers()
    assert len(pids) == 2
    status, body = get(g.port, "/hello")
    assert status == 200 and body["loop"] == ENGINE_LOOP and body["pid"] in pids
    with connect(f"ws://127.0.0.1:{g.port}/ws", open_timeout=10, close_timeout=10) as ws:
        ws.send("ping")
        assert ws.recv(timeout=10) == f"ping|{ENGINE_LOOP}"
    # --access-logfile -: gunicorn's access log handler wrote engine's lines, gunicorn's format
    line = g.wait_line('"GET /hello HTTP/1.1" 200')
    assert line.startswith("127.0.0.1 - - [")


def test_sighup_replaces_workers_and_keeps_serving(run_gunicorn):
    g = run_gunicorn()
    old = g.serving_workers()
    os.kill(g.pid, signal.SIGHUP)
    # requests keep being answered while the arbiter swaps the workers
    new = wait_until(lambda: (lambda p: p if not p & old else None)(g.serving_workers()),
                     f"new workers after SIGHUP:\n{g.output()}", interval=0.1)
    assert len(new) == 2 and not new & old
    status, body = get(g.port)
    assert status == 200 and body["pid"] in new


def test_sigterm_drains_a_request_in_flight(run_gunicorn):
    g = run_gunicorn(workers=1)
    g.serving_workers()
    result = {}

    def slow():
        result["response"] = get(g.port, "/slow?2")
    client = threading.Thread(target=slow)
    client.start()
    g.wait_line("Application startup complete")
    wait_until(lambda: _has_connection(g), "the slow request to be accepted")
    os.kill(g.pid, signal.SIGTERM)
    client.join(30)
    assert result["response"][0] == 200, g.output()
    assert result["response"][1]["loop"] == ENGINE_LOOP
    assert g.wait() == 0, g.output()
    assert "SIGTERM, draining" in g.output()


def _has_connection(g) -> bool:
    """True once a worker holds an established connection (Linux: /proc/net/tcp, state 01)."""
    port = f"{g.port:04X}"
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return any(r[1].endswith(":" + port) and r[3] == "01" for r in rows)


def test_killed_worker_is_replaced(run_gunicorn):
    g = run_gunicorn()
    old = g.serving_workers()
    victim = min(old)
    os.kill(victim, signal.SIGKILL)
    new = wait_until(lambda: (lambda p: p if victim not in p else None)(g.serving_workers()),
                     f"a replacement worker:\n{g.output()}", interval=0.1)
    assert len(new) == 2 and new - old


def test_max_requests_recycles_the_worker(run_gunicorn):
    g = run_gunicorn("--max-requests", "3", workers=1)
    first = g.serving_workers()
    pids = []
    for _ in range(12):
        status, body = get(g.port)
        assert status == 200 and body["loop"] == ENGINE_LOOP
        pids.append(body["pid"])
    # each worker serves its 3 requests (the readiness probe counted for the first), then drains
    # and exits, and the arbiter starts the next one: no request is lost on the way
    assert len(set(pids) | first) >= 4, pids
    assert "(max-requests), restarting" in g.output()


def test_heartbeat_keeps_an_idle_worker_and_timeout_kills_a_blocked_one(run_gunicorn):
    g = run_gunicorn("--timeout", "2", workers=1)
    (pid,) = g.serving_workers()
    # idle for longer than --timeout: the heartbeat keeps it alive
    with pytest.raises(AssertionError):
        wait_until(lambda: children(g.pid) != {pid}, "worker change", timeout=3.5)
    # a request that blocks the loop for longer: the arbiter kills and replaces the worker
    status = None
    try:
        status, _ = get(g.port, "/block?6", timeout=15)
    except (ConnectionError, OSError):
        pass
    assert status != 200
    (new,) = g.serving_workers()
    assert new != pid
    assert f"WORKER TIMEOUT (pid:{pid})" in g.output()


def test_uvicorn_worker_on_engine_loop(run_gunicorn):
    pytest.importorskip("uvicorn")
    g = run_gunicorn(worker="engine.workers.EngineUvicornWorker")
    assert len(g.serving_workers()) == 2       # every answer checked loop == engine.Loop
    assert "uvicorn" in g.output().lower() or "Started server process" in g.output()


def test_reload_option_restarts_the_worker_on_a_code_change(run_gunicorn, tmp_path):
    g = run_gunicorn("--reload", workers=1)
    (pid,) = g.serving_workers()
    app = tmp_path / "loopapp.py"

    def edited_and_replaced():
        # gunicorn's reloader thread notes each module's mtime when it first scans it: an edit
        # made before that scan (the worker answers before its reloader has looked) goes
        # unseen, so the test keeps editing, as a developer saving the file again would
        app.write_text(app.read_text() + "\n# changed\n")
        workers = g.serving_workers()
        return workers if pid not in workers else None

    new = wait_until(edited_and_replaced, "a new worker after the change", interval=0.5)
    assert len(new) == 1
    assert "Worker reloading" in g.output() and "alive is False" in g.output()


def _slow_request_in_thread(g, path):
    result = {}

    def run():
        try:
            result["response"] = get(g.port, path)
        except (ConnectionError, OSError) as exc:
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    wait_until(lambda: _has_connection(g), "the slow request to be accepted")
    return thread, result


def test_graceful_timeout_bounds_the_drain(run_gunicorn):
    g = run_gunicorn("--graceful-timeout", "2", workers=1)
    g.serving_workers()
    thread, result = _slow_request_in_thread(g, "/slow?20")
    os.kill(g.pid, signal.SIGTERM)
    assert g.wait() == 0, g.output()              # long before the request's 20 s
    thread.join(30)
    assert "error" in result, result
    # the worker aborted it a tenth of --graceful-timeout early, then ran the lifespan
    # shutdown before the arbiter's deadline
    out = g.output()
    assert "still open after 1.8s, aborted" in out, out
    assert out.index("aborted") < out.index("Application shutdown complete"), out


def test_sigint_is_a_quick_exit(run_gunicorn):
    g = run_gunicorn(workers=1)
    g.serving_workers()
    thread, result = _slow_request_in_thread(g, "/slow?20")
    os.kill(g.pid, signal.SIGINT)                 # the arbiter sends SIGQUIT to its workers
    assert g.wait() == 0, g.output()
    thread.join(30)
    assert "error" in result, result
    assert "quick shutdown" in g.output()


def test_limit_request_line(run_gunicorn):
    import http.client

    g = run_gunicorn("--limit-request-line", "100", workers=1)
    g.serving_workers()
    assert get(g.port, "/" + "a" * 50)[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
    try:
        conn.request("GET", "/" + "a" * 200)
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status == 414


def test_tls_from_gunicorn_settings(run_gunicorn, tmp_path):
    import http.client
    import json
    import ssl

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    g = run_gunicorn("--certfile", str(tmp_path / "server.pem"), "--keyfile",
                     str(tmp_path / "server.pem"), workers=1)
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def https_get():
        conn = http.client.HTTPSConnection("127.0.0.1", g.port, context=context, timeout=10)
        try:
            conn.request("GET", "/tls")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read()), conn.sock.version()
        finally:
            conn.close()
    status, body, version = wait_until(https_get, f"an HTTPS answer:\n{g.output()}",
                                       interval=0.2)
    assert status == 200 and body["loop"] == ENGINE_LOOP and version.startswith("TLS")


def test_failed_lifespan_startup_stops_gunicorn(tmp_path):
    (tmp_path / "badlife.py").write_text(
        "async def app(scope, receive, send):\n"
        "    await receive()\n"
        "    await send({'type': 'lifespan.startup.failed', 'message': 'no database'})\n")
    sock = listening_socket()
    fd = sock.fileno()
    g = Process([os.path.join(BIN, "gunicorn"), "-k", "engine.workers.EngineWorker", "-w", "1",
                 "-b", f"fd://{fd}", *_NO_CONTROL, "badlife:app"], cwd=tmp_path, pass_fds=(fd,))
    sock.close()
    try:
        # the worker exits with gunicorn's boot-error status: the arbiter stops, no restart loop
        assert g.wait() == 3, g.output()
        assert "no database" in g.output() and "Worker failed to boot" in g.output()
    finally:
        g.stop()


@pytest.mark.parametrize("allowed, client", [("127.0.0.1", "10.1.2.3"),
                                             ("10.9.9.9", "127.0.0.1")])
def test_forwarded_allow_ips(run_gunicorn, allowed, client):
    g = run_gunicorn("--forwarded-allow-ips", allowed, workers=1)
    g.serving_workers()
    status, body = get(g.port, headers={"X-Forwarded-For": "10.1.2.3"})
    assert status == 200 and body["client"] == client


@pytest.mark.parametrize("worker", ["engine.workers.EngineWorker",
                                    "engine.workers.EngineUvicornWorker"])
def test_orphaned_worker_stops(run_gunicorn, worker):
    pytest.importorskip("uvicorn")
    g = run_gunicorn("--timeout", "2", worker=worker, workers=1)
    (pid,) = g.serving_workers()
    os.kill(g.pid, signal.SIGKILL)                # the arbiter dies without a word
    g.wait()
    # the worker sees its parent change with its next heartbeat and exits
    wait_until(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid),
               f"the orphaned worker {pid} to exit")
    assert "parent changed" in g.output()


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"

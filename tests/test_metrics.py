"""engine serve --metrics: Prometheus text format on a listener of its own, scraped while
serving, with counts summed over the workers by whichever worker answers."""
from __future__ import annotations

import http.client
import re
import signal
import socket
import subprocess
import time

import pytest
from serve_util import ENGINE, WAIT, Served
from websockets.sync.client import connect as ws_connect

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*)?\})? (\S+)$')


def parse(text: str) -> dict[str, float]:
    """Strictly parse the text exposition format: every line a comment (# HELP/# TYPE with a
    known type, each TYPE before its samples) or a sample; returns {name{labels}: value}."""
    samples: dict[str, float] = {}
    typed: set[str] = set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            assert name not in typed, f"{name} typed twice"
            typed.add(name)
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE before it"
        key = name + (m.group(2) or "")
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(m.group(5))
    return samples


def scrape(port: int) -> dict[str, float]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        assert r.status == 200
        assert r.getheader("content-type").startswith("text/plain; version=0.0.4")
        return parse(r.read().decode())
    finally:
        c.close()


def metrics_port(srv: Served) -> int:
    m = srv.wait_for(r"^engine serve: metrics at http://127\.0\.0\.1:(\d+)/metrics$")
    return int(m.group(1))


def until(predicate, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {WAIT}s"
        time.sleep(0.05)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_counts_while_serving(workers):
    with Served("--workers", workers, "--metrics", "127.0.0.1:0") as srv:
        port = metrics_port(srv)
        assert port != srv.port
        before = scrape(port)
        assert before['engine_http_responses_total{status_class="2xx"}'] == 0
        assert before["engine_workers"] == int(workers)
        n = 25
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=WAIT)
        for _ in range(n):
            status, _, body = srv.request("GET", "/", conn=conn)
            assert status == 200
        # the open keep-alive connection is counted while it is open
        open_now = scrape(port)["engine_connections_open"]
        assert open_now >= 1
        for _ in range(3):
            assert srv.request("GET", "/no/such/page")[0] == 404
        conn.close()
        with ws_connect(f"ws://127.0.0.1:{srv.port}/ws") as ws:
            ws.send("hello")
            assert ws.recv(timeout=WAIT) == "hello"
            assert until(lambda: scrape(port)["engine_websocket_sessions_open"] == 1,
                         "open WebSocket session")
        s = until(lambda: (lambda s: s if s["engine_websocket_sessions_open"] == 0
                           and s["engine_connections_open"] == 0 else None)(scrape(port)),
                  "connections closed")
        assert s['engine_http_responses_total{status_class="2xx"}'] == n
        assert s['engine_http_responses_total{status_class="4xx"}'] == 3
        assert s['engine_http_responses_total{status_class="5xx"}'] == 0
        assert s["engine_websocket_sessions_total"] == 1
        assert s["engine_http_request_duration_seconds_count"] == n + 3
        assert s['engine_http_request_duration_seconds_bucket{le="+Inf"}'] == n + 3
        buckets = [v for k, v in s.items() if k.startswith("engine_http_request_duration"
                                                            "_seconds_bucket")]
        assert buckets == sorted(buckets)                    # cumulative
        assert s["engine_http_request_duration_seconds_sum"] > 0
        # 1 keep-alive connection + 3 + the WebSocket's; scrapes are not counted
        assert s["engine_connections_total"] == 5
        assert s["engine_response_body_bytes_total"] >= n * len(body)
        assert s["engine_received_bytes_total"] > n * len(b"GET / HTTP/1.1\r\n")
        assert s["engine_worker_restarts_total"] == 0
        assert s["engine_loop_lag_seconds"] >= 0
        assert srv.stop() == 0


def test_counts_survive_a_rolling_restart_and_restarts_are_counted():
    with Served("--workers", "2", "--metrics", "127.0.0.1:0") as srv:
        port = metrics_port(srv)
        for _ in range(10):
            assert srv.request("GET", "/")[0] == 200
        start = len(srv.err)
        srv.proc.send_signal(signal.SIGHUP)

        def replaced() -> bool:
            return sum(1 for line in srv.err[start:]
                       if line and "old worker" in line and "exited" in line) >= 2
        until(replaced, "both workers replaced")
        s = scrape(port)
        assert s['engine_http_responses_total{status_class="2xx"}'] == 10
        assert s["engine_worker_restarts_total"] == 2
        assert srv.stop() == 0


def test_other_paths_methods_and_garbage():
    with Served("--metrics", "127.0.0.1:0") as srv:
        port = metrics_port(srv)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        c.request("GET", "/")
        assert c.getresponse().status == 404
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        c.request("POST", "/metrics", body=b"x")
        r = c.getresponse()
        assert r.status == 405 and r.getheader("allow") == "GET, HEAD"
        c.close()
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            s.sendall(b"\x00\x01garbage\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 400")
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n" + b"x-pad: " + b"a" * 10000)
            assert s.recv(100).startswith(b"HTTP/1.1 431")
        # the app's port does not serve metrics
        assert srv.request("GET", "/metrics")[0] == 404
        assert scrape(port)["engine_workers"] == 1
        assert srv.stop() == 0


@pytest.mark.parametrize("value, message", [
    ("nonsense", "expected HOST:PORT"),
    ("127.0.0.1:99999", "port out of range"),
    ("127.0.0.1:8000", "must not be the app's address"),
])
def test_bad_metrics_address(tmp_path, value, message):
    proc = subprocess.run([ENGINE, "serve", "--port", "8000", "--metrics", value],
                          cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode != 0 and message in proc.stderr


def test_metrics_address_in_use(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([ENGINE, "serve", "--port", "0", "--metrics",
                               f"127.0.0.1:{port}"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert proc.returncode == 1 and "metrics 127.0.0.1:" in proc.stderr

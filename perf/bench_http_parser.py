#!/usr/bin/env python3
"""HTTP/1.1 request parsing throughput: engine._http vs httptools (llhttp) vs h11, one pyperf run.

Scenarios (benchmark names ``<scenario>[<impl>]``, scenario outer so drift hits all alike):

* ``get``: one typical browser GET (12 header fields, ~560 bytes) on a fresh parser, fed in
  one piece: parser creation + request-line + fields + end of message;
* ``pipelined``: a burst of 100 small keep-alive GETs (TechEmpower "plaintext" style) in one
  buffer, parsed by one parser;
* ``post``: a POST with a 4 KiB chunked body in 8 chunks, on a fresh parser.

Implementations:

* ``engine``: ``engine._http.HttpParser`` itself - the C hooks do nothing, so this is the cost
  a Cython consumer (the ASGI protocol) pays: every field turned into bytes objects and
  attributes, framing checked, body chunks created;
* ``engine-events``: ``RequestParser``, which also builds a Python dict per request and an
  event list (what tests and Python users see);
* ``httptools``: llhttp through httptools with Python callbacks that store url, headers and
  body (the usual way to use it; skipped if httptools is not installed);
* ``h11``: h11's server ``Connection`` pulling events. h11 will not read the next pipelined
  request before the previous one is answered, so in ``pipelined`` it also sends a minimal
  response per request (the cost of using h11 for pipelining).

Every iteration checks the parser saw what it should (method and body size), so a broken
parser cannot look fast. Run from the repository root with the installed package:

    python perf/bench_http_parser.py --fast            # ~1 min
    python perf/bench_http_parser.py -o /tmp/http.json # full pyperf run

and it prints requests/s per implementation and the ratios engine / peer.
"""
from __future__ import annotations

import sys
import time

import pyperf

from engine._http import HttpParser, RequestParser

try:
    import httptools
except ImportError:  # pragma: no cover - optional peer
    httptools = None
try:
    import h11
except ImportError:  # pragma: no cover - optional peer
    h11 = None

GET = (b"GET /api/v1/users?id=42&sort=name HTTP/1.1\r\n"
       b"Host: example.com\r\n"
       b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
       b"Chrome/120.0 Safari/537.36\r\n"
       b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
       b"Accept-Language: en-US,en;q=0.9\r\n"
       b"Accept-Encoding: gzip, deflate, br\r\n"
       b"Connection: keep-alive\r\n"
       b"Cookie: session=abc123def456; theme=dark; lang=en\r\n"
       b"Upgrade-Insecure-Requests: 1\r\n"
       b"Sec-Fetch-Dest: document\r\n"
       b"Sec-Fetch-Mode: navigate\r\n"
       b"Sec-Fetch-Site: none\r\n"
       b"Cache-Control: max-age=0\r\n"
       b"\r\n")
SMALL = (b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain,text/html;q=0.9\r\n"
         b"Connection: keep-alive\r\n\r\n")
PIPELINE_N = 100
PIPELINE = SMALL * PIPELINE_N
BODY = bytes(range(256)) * 16
POST = (b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/octet-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (512, BODY[i:i + 512]) for i in range(0, 4096, 512))
        + b"0\r\n\r\n")

# requests per outer pyperf loop
INNER = {"get": 1, "pipelined": PIPELINE_N, "post": 1}
SCENARIOS = {"get": GET, "pipelined": PIPELINE, "post": POST}


# ---- engine ---------------------------------------------------------------------------------

def engine_run(parser, data: bytes, check, events: bool = False):
    """``loops`` parses of ``data``, each on a fresh ``parser()``; with ``events`` also the
    event list (RequestParser.events()). ``check(parser, events)`` vets the last one."""
    def run(loops: int) -> float:
        ev = None
        t0 = time.perf_counter()
        for _ in range(loops):
            p = parser()
            p.feed_data(data)
            if events:
                ev = p.events()
        dt = time.perf_counter() - t0
        assert check(p, ev), (p.state, ev)
        return dt
    return run


def _request_seen(p, ev) -> bool:
    return p.method in (b"GET", b"POST") and p.state == "request-line"


def _pipeline_seen(p, ev) -> bool:
    return p.target == b"/plaintext" and p.buffered_bytes == 0


def _body_seen(expect_body: int):
    return lambda p, ev: sum(len(e[1]) for e in ev if e[0] == "body") == expect_body


def _pipeline_events_seen(p, ev) -> bool:
    return len(ev) == 2 * PIPELINE_N


# ---- httptools ------------------------------------------------------------------------------

class _Proto:
    __slots__ = ("url", "headers", "body", "done")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = 0

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done += 1


def httptools_run(data: bytes, expect_body: int, expect_done: int):
    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            proto = _Proto()
            p = httptools.HttpRequestParser(proto)
            p.feed_data(data)
            p.get_method()
        dt = time.perf_counter() - t0
        assert proto.done == expect_done and sum(map(len, proto.body)) == expect_body
        return dt
    return run


# ---- h11 ------------------------------------------------------------------------------------

def h11_run(data: bytes, expect_body: int, expect_done: int):
    Request, Data, EndOfMessage, NEED_DATA = h11.Request, h11.Data, h11.EndOfMessage, h11.NEED_DATA
    response = h11.Response(status_code=200, headers=[(b"content-length", b"0")])
    end = h11.EndOfMessage()

    def run(loops: int) -> float:
        t0 = time.perf_counter()
        for _ in range(loops):
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(data)
            done = body = 0
            while True:
                ev = conn.next_event()
                if type(ev) is Data:
                    body += len(ev.data)
                elif type(ev) is EndOfMessage:
                    done += 1
                    if done == expect_done:
                        break
                    conn.send(response)
                    conn.send(end)
                    conn.start_next_cycle()
                elif ev is NEED_DATA:
                    break
                elif type(ev) is not Request:
                    raise AssertionError(ev)
        dt = time.perf_counter() - t0
        assert done == expect_done and body == expect_body
        return dt
    return run


def build(impls: list[str]) -> dict[tuple[str, str], object]:
    body = {"get": 0, "pipelined": 0, "post": len(BODY)}
    done = {"get": 1, "pipelined": PIPELINE_N, "post": 1}
    funcs: dict[tuple[str, str], object] = {}
    for sc, data in SCENARIOS.items():
        pipelined = sc == "pipelined"
        if "engine" in impls:
            funcs[sc, "engine"] = engine_run(
                HttpParser, data, _pipeline_seen if pipelined else _request_seen)
        if "engine-events" in impls:
            funcs[sc, "engine-events"] = engine_run(
                RequestParser, data,
                _pipeline_events_seen if pipelined else _body_seen(body[sc]), events=True)
        if "httptools" in impls and httptools is not None:
            funcs[sc, "httptools"] = httptools_run(data, body[sc], done[sc])
        if "h11" in impls and h11 is not None:
            funcs[sc, "h11"] = h11_run(data, body[sc], done[sc])
    return funcs


def _worker_args(cmd: list[str], args) -> None:
    # workers must build the same benchmark list as the parent (pyperf numbers tasks)
    cmd.extend(("--impls", args.impls, "--scenarios", args.scenarios))


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=_worker_args)
    runner.argparser.add_argument("--impls", default="engine,engine-events,httptools,h11")
    runner.argparser.add_argument("--scenarios", default="get,pipelined,post")
    args = runner.parse_args()
    impls = args.impls.split(",")
    scenarios = args.scenarios.split(",")
    funcs = build(impls)
    results: dict[tuple[str, str], float] = {}
    for sc in scenarios:
        for impl in impls:
            if (sc, impl) not in funcs:
                continue
            bench = runner.bench_time_func(f"{sc}[{impl}]", funcs[sc, impl],
                                           inner_loops=INNER[sc])
            if bench is not None and not args.worker:
                results[sc, impl] = 1.0 / bench.mean()      # requests per second
    if args.worker or not results:
        return
    print("\nrequests/s (mean)            " + "".join(f"{i:>15}" for i in impls))
    for sc in scenarios:
        row = [results.get((sc, i)) for i in impls]
        print(f"{sc:28}" + "".join(f"{v:15,.0f}" if v else f"{'-':>15}" for v in row))
    print("\nengine / peer (> 1: engine faster)")
    for sc in scenarios:
        base = results.get((sc, "engine"))
        cells = []
        for peer in impls:
            if peer != "engine" and base and results.get((sc, peer)):
                cells.append(f"{peer} {base / results[sc, peer]:.2f}x")
        print(f"  {sc:12} " + ", ".join(cells))
    sys.stdout.flush()


if __name__ == "__main__":
    main()

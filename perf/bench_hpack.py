#!/usr/bin/env python3
"""HPACK (RFC 7541) throughput: engine._hpack vs the pure-Python `hpack` library, one pyperf run.

Scenarios (benchmark names ``<scenario>[<impl>]``, scenario outer so drift hits all alike):

* ``decode_cold``: a typical browser request's header block (15 fields, Huffman-coded, as a
  browser's first request sends it: mostly literals with incremental indexing) on a fresh
  decoder: decoder creation + Huffman decoding + table insertions;
* ``decode_warm``: the same request as the second one on the connection (every field an index
  into the tables), on a decoder that holds the first one's entries;
* ``encode_cold``: a typical response (7 fields) on a fresh encoder;
* ``encode_warm``: the same response on an encoder that already sent it (all indexes, except
  the never-indexed set-cookie).

Implementations: ``engine`` (engine._hpack) and ``hpack`` (the PyPI library, skipped if it is
not installed). Every iteration checks the result, so a broken codec cannot look fast. Run from
the repository root with the installed package:

    python perf/bench_hpack.py --fast              # rough numbers, ~1 min
    python perf/bench_hpack.py -o /tmp/hpack.json  # full pyperf run

and it prints blocks/s per implementation and the ratios engine / hpack.
"""
from __future__ import annotations

import sys
import time

import pyperf

import engine._hpack as ours

try:
    import hpack as theirs
except ImportError:  # pragma: no cover - optional peer
    theirs = None

REQUEST = [
    (b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"www.example.com"),
    (b":path", b"/api/v1/users?id=42&sort=name"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    b"Chrome/120.0 Safari/537.36"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    (b"accept-language", b"en-US,en;q=0.9"), (b"accept-encoding", b"gzip, deflate, br"),
    (b"cookie", b"session=abc123def456; theme=dark; lang=en"),
    (b"upgrade-insecure-requests", b"1"), (b"sec-fetch-dest", b"document"),
    (b"sec-fetch-mode", b"navigate"), (b"sec-fetch-site", b"none"), (b"sec-fetch-user", b"?1"),
    (b"cache-control", b"max-age=0"),
]
RESPONSE = [
    (b":status", b"200"), (b"content-type", b"application/json"),
    (b"content-length", b"1234"), (b"date", b"Mon, 21 Oct 2013 20:13:21 GMT"),
    (b"server", b"engine"), (b"cache-control", b"private, max-age=60"),
    (b"set-cookie", b"sid=0123456789abcdef; Path=/; HttpOnly; Secure"),
]
LOOPS_INNER = 100     # blocks per outer pyperf loop


def _request_blocks() -> tuple[bytes, bytes]:
    """The request as a client's first and second block (encoded by the reference library
    when installed, so both decoders read a third party's output; by ours otherwise). Each
    field is indexed on the first request, so the second is all indexes."""
    if theirs is not None:
        enc = theirs.Encoder()
        return bytes(enc.encode(REQUEST)), bytes(enc.encode(REQUEST))
    enc = ours.Encoder()
    return enc.encode(REQUEST), enc.encode(REQUEST)


FIRST, SECOND = _request_blocks()


def _norm(fields) -> list[tuple[bytes, bytes]]:
    return [(bytes(n), bytes(v)) for n, v in fields]


def decode_run(impl: str, warm: bool):
    make = (lambda: ours.Decoder()) if impl == "engine" else (lambda: theirs.Decoder())
    decode = ((lambda d, b: d.decode(b)) if impl == "engine"
              else (lambda d, b: d.decode(b, raw=True)))
    assert _norm(decode(make(), FIRST)) == REQUEST

    def run(loops: int) -> float:
        dt = 0.0
        for _ in range(loops):
            if warm:
                d = make()
                decode(d, FIRST)             # the warm-up block is not timed
                t0 = time.perf_counter()
                for _ in range(LOOPS_INNER):
                    out = decode(d, SECOND)
            else:
                t0 = time.perf_counter()
                for _ in range(LOOPS_INNER):
                    out = decode(make(), FIRST)
            dt += time.perf_counter() - t0
        if len(out) != len(REQUEST):
            raise AssertionError("decoder lost fields")
        return dt
    return run


def encode_run(impl: str, warm: bool):
    make = (lambda: ours.Encoder()) if impl == "engine" else (lambda: theirs.Encoder())
    check = ours.Decoder()
    assert check.decode(bytes(make().encode(RESPONSE))) == RESPONSE

    def run(loops: int) -> float:
        dt = 0.0
        for _ in range(loops):
            if warm:
                e = make()
                e.encode(RESPONSE)           # the first block is not timed
                t0 = time.perf_counter()
                for _ in range(LOOPS_INNER):
                    out = e.encode(RESPONSE)
            else:
                t0 = time.perf_counter()
                for _ in range(LOOPS_INNER):
                    out = make().encode(RESPONSE)
            dt += time.perf_counter() - t0
        if len(out) < len(RESPONSE):
            raise AssertionError("encoder lost fields")
        return dt
    return run


SCENARIOS = {
    "decode_cold": lambda impl: decode_run(impl, False),
    "decode_warm": lambda impl: decode_run(impl, True),
    "encode_cold": lambda impl: encode_run(impl, False),
    "encode_warm": lambda impl: encode_run(impl, True),
}


def _worker_args(cmd: list[str], args) -> None:
    # workers must build the same benchmark list as the parent (pyperf numbers tasks)
    cmd.extend(["--impls", args.impls, "--scenarios", args.scenarios])


def main() -> None:
    runner = pyperf.Runner(add_cmdline_args=_worker_args)
    runner.argparser.add_argument("--impls", default="engine,hpack")
    runner.argparser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = runner.parse_args()
    impls = [i for i in args.impls.split(",") if i == "engine" or theirs is not None]
    results: dict[tuple[str, str], float] = {}
    for sc in args.scenarios.split(","):
        for impl in impls:
            bench = runner.bench_time_func(f"{sc}[{impl}]", SCENARIOS[sc](impl),
                                           inner_loops=LOOPS_INNER)
            if bench is not None:
                results[sc, impl] = bench.mean()
    if runner.args.worker or not results:
        return
    print()
    for sc in args.scenarios.split(","):
        line = [f"{sc:12s}"]
        for impl in impls:
            if (sc, impl) in results:
                line.append(f"{impl}: {1 / results[sc, impl]:12,.0f} blocks/s")
        if (sc, "engine") in results and (sc, "hpack") in results:
            line.append(f"engine/hpack: {results[sc, 'hpack'] / results[sc, 'engine']:.1f}x")
        print("  ".join(line))


if __name__ == "__main__":
    sys.exit(main())

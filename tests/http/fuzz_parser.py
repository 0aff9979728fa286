#!/usr/bin/env python3
"""Fuzz harness for engine._http's request parser (and engine._ws's frame parser).

One input is checked by `check(data)`:
  * the only exception allowed out of the parsers is HttpParserError (status 400, 413, 414,
    431, 501 or 505) / WebSocketError (close code 1002, 1007 or 1009);
  * fed whole and fed in pieces (cut points derived from the input), the parser gives the
    same events and the same error: no state leaks across reads;
  * events are consistent: request -> body* -> end per message, a Content-Length body has
    exactly that many bytes, no request after an upgrade/CONNECT or a closing request;
  * memory stays bounded: after every feed, what the parser holds is within its limits.
Hangs show up as the fuzzer's timeout (every feed does bounded work).

With atheris (coverage-guided; libFuzzer options after the script name):
    python tests/http/fuzz_parser.py -max_total_time=3600 -max_len=4096 fuzz-corpus/
Without atheris, the same check driven by a seeded random mutator:
    python tests/http/fuzz_parser.py --random 200000 --seed 1
Both start from the data files' requests (tests/http/data) as seeds.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _dir in (HERE, HERE.parent):              # this folder's modules, and tests/fuzz_util.py
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

import fuzz_util  # noqa: E402

from engine._http import HttpParserError, Limits, RequestParser  # noqa: E402
from engine._ws import MessageParser, WebSocketError, build_close, build_frame  # noqa: E402

HTTP_STATUSES = {400, 413, 414, 431, 501, 505}
WS_CODES = {1002, 1007, 1009}

# Small limits, so that the limit paths are reachable from short inputs.
SMALL = dict(max_request_line=64, max_header_count=8, max_header_bytes=256, max_body=512,
             max_chunk_extension_bytes=32, max_trailer_bytes=64)
LIMIT_SETS = [Limits(**SMALL), Limits()]
MAX_CHUNK_SIZE_DIGITS = 16


def _bound(limits: Limits) -> int:
    """Most a parser may hold between feeds when nothing is paused (an unfinished line)."""
    return max(limits.max_request_line + 1, limits.max_header_bytes,
               MAX_CHUNK_SIZE_DIGITS + limits.max_chunk_extension_bytes + 1,
               limits.max_trailer_bytes)


def _cuts(data: bytes) -> list[int]:
    """Piece sizes derived from the input itself (deterministic for the fuzzer)."""
    rng = random.Random(data[:16])
    return [rng.choice((1, 1, 2, 3, 5, 8, 13, 64)) for _ in range(len(data))]


def _join_bodies(events: list[tuple]) -> list[tuple]:
    out: list[tuple] = []
    for ev in events:
        if ev[0] == "body":
            assert isinstance(ev[1], bytes) and ev[1], ev
            if out and out[-1][0] == "body":
                out[-1] = ("body", out[-1][1] + ev[1])
                continue
        out.append(ev)
    return out


def _feed(p, data: bytes, pieces: list[int] | None, events: list[tuple], check_held) -> None:
    """Feed ``data`` to the parser ``p`` whole (``pieces`` None) or in pieces of those sizes,
    adding its events to ``events`` after each feed; ``check_held()`` after each piece."""
    if pieces is None:
        p.feed_data(data)
        events.extend(p.events())
        return
    i = 0
    for n in pieces:
        if i >= len(data):
            break
        p.feed_data(data[i:i + n])
        i += n
        events.extend(p.events())
        check_held()


def _run_http(data: bytes, limits: Limits, pieces: list[int] | None) -> tuple:
    p = RequestParser(limits)
    bound = _bound(limits)
    events: list[tuple] = []
    error: tuple | None = None

    def check_held():
        if not p.upgrade_pending:
            assert p.buffered_bytes <= bound, (p.buffered_bytes, bound)

    try:
        _feed(p, data, pieces, events, check_held)
        check_held()
        p.feed_eof()
    except HttpParserError as exc:
        assert exc.status_code in HTTP_STATUSES, exc
        error = (exc.status_code, exc.reason)
    events += p.events()
    rest = p.take_remaining() if p.upgrade_pending else None
    if rest is not None:
        assert len(rest) <= len(data)
    return _join_bodies(events), error, rest, p.closed


def _check_http_events(events: list[tuple], error: tuple | None, limits: Limits) -> None:
    expect_request = True
    body = 0
    current: dict | None = None
    stopped = False
    for ev in events:
        assert not stopped, "event after an upgrade or a closing request"
        if ev[0] == "request":
            assert expect_request, events
            current = ev[1]
            assert not (current["chunked"] and current["content_length"] >= 0)
            assert current["http_version"] in (b"1.0", b"1.1")
            assert len(current["headers"]) <= limits.max_header_count
            if limits.max_body >= 0:
                assert current["content_length"] <= limits.max_body
            expect_request = False
            body = 0
        elif ev[0] == "body":
            assert current is not None and not expect_request
            body += len(ev[1])
            if current["content_length"] >= 0:
                assert body <= current["content_length"]
            if limits.max_body >= 0:
                assert body <= limits.max_body
        else:
            assert current is not None and not expect_request
            if not current["chunked"]:
                assert body == max(current["content_length"], 0), (body, current)
            else:
                assert len(ev[1]) <= limits.max_header_count
            if current["upgrade"] is not None or current["method"] == b"CONNECT" \
                    or not current["keep_alive"]:
                stopped = True
            expect_request = True


def _run_ws(data: bytes, is_server: bool, pieces: list[int] | None) -> tuple:
    p = MessageParser(is_server=is_server, max_message_size=256)
    events: list[tuple] = []

    def check_held():
        assert p.buffered_bytes <= 256

    try:
        _feed(p, data, pieces, events, check_held)
    except WebSocketError as exc:
        assert exc.code in WS_CODES, exc
        events += p.events()
        return _join_ws(events), exc.code
    events += p.events()
    return _join_ws(events), None


def _join_ws(events: list[tuple]) -> list[tuple]:
    for ev in events:
        if ev[0] in ("text", "binary"):
            assert len(ev[1]) <= 256
        elif ev[0] in ("ping", "pong"):
            assert len(ev[1]) <= 125
        else:
            assert ev[0] == "close"
            assert events[-1] is ev
    return events


def check(data: bytes) -> str:
    """All the properties on one input; returns a label of the HTTP outcome."""
    limits = LIMIT_SETS[data[0] & 1] if data else LIMIT_SETS[0]
    whole = _run_http(data, limits, None)
    split = _run_http(data, limits, _cuts(data))
    assert whole == split, (data, whole, split)
    events, error, _, _ = whole
    _check_http_events(events, error, limits)
    for is_server in (True, False):
        assert _run_ws(data, is_server, None) == _run_ws(data, is_server, _cuts(data))
    if error is not None:
        return f"error {error[0]}"
    return "accepted" if events else "incomplete"


# ---- seeds and the random mutator -----------------------------------------------------------

def seeds() -> list[bytes]:
    from casefile import all_cases  # noqa: PLC0415
    out = [c.data for c in all_cases()]
    key = b"\x01\x02\x03\x04"
    out += [build_frame(1, "hello", mask=key) + build_frame(9, b"p", mask=key),
            build_frame(2, b"x" * 300, fin=False, mask=key) + build_frame(0, b"y", mask=key),
            build_frame(1, "ok") + build_close(1000, "bye")]
    return out


INTERESTING = [b"\r\n", b"\n", b"\r", b" ", b"\t", b":", b";", b"=", b",", b'"', b"\\", b"0",
               b"9", b"f", b"\x00", b"\x7f", b"\x80", b"\xff", b"chunked", b"close",
               b"upgrade", b"keep-alive", b"100-continue", b"Content-Length: ",
               b"Transfer-Encoding: ", b"Host: ", b"Connection: ", b"Upgrade: ", b"Expect: ",
               b"\r\n\r\n", b"HTTP/1.1", b"HTTP/1.0", b"CONNECT ", b"OPTIONS * ", b"http://",
               b"ffffffffffffffff", b"99999999999999999999", b"\x88\x80", b"\x81\xfe"]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    return fuzz_util.mutate(rng, data, pool, INTERESTING, b"\r\n :;0aA\x00\xff")


def random_run(iterations: int, seed: int = 1) -> dict[str, int]:
    """The check on `iterations` mutated seeds; returns the count of each outcome."""
    return fuzz_util.evolve(check, seeds(), mutate, iterations, seed)


def main(argv: list[str]) -> int:
    return fuzz_util.main(argv, random_run, check, seeds)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

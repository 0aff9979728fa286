#!/usr/bin/env python3
"""Fuzz harness for engine._h2's server connection (frame codec, state machine, limits).

One input is checked by `check(data)`:
  * receive() never raises (protocol errors become RST_STREAM/GOAWAY), whole or in pieces;
  * what the connection sends is always a sequence of whole, well-formed frames: stream ids
    without the reserved bit, fixed-length frames at their length, RST_STREAM only on client
    (odd) streams, GOAWAY at most once with a known error code, and nothing after it but
    what the application queued before;
  * fed whole and fed in pieces (cut points derived from the input) to a connection whose
    application only records, the events agree (DATA joined) and so does the output;
  * memory stays bounded: the carry buffer holds less than one frame, the output queue only
    what the input caused.
Each input also runs with an application that answers every request (HEADERS + a small
body), consumes DATA and resets some streams, so the output paths run too.

With atheris (coverage-guided; libFuzzer options after the script name):
    python tests/h2/fuzz_h2.py -max_total_time=3600 -max_len=4096 fuzz-corpus/
Without atheris, the same check driven by a seeded random mutator:
    python tests/h2/fuzz_h2.py --random 200000 --seed 1
Both start from the seed inputs below (valid client byte streams made with h2_wire).
"""
from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _dir in (HERE, HERE.parent):              # this folder's modules, and tests/fuzz_util.py
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

import fuzz_util  # noqa: E402
from h2_wire import (  # noqa: E402
    GET,
    PREFACE,
    Client,
    data,
    frame,
    goaway,
    ping,
    post,
    priority,
    read_frames,
    rst,
    settings,
    window_update,
)

from engine import _h2  # noqa: E402
from engine._h2 import H2EventConnection, H2Limits  # noqa: E402

SMALL = H2Limits(max_concurrent_streams=3, initial_window_size=300,
                 connection_window_size=65535, max_header_list_size=400,
                 max_header_block_bytes=300, max_continuation_frames=3, max_rapid_resets=3,
                 rapid_reset_window=6, max_control_queue=200, max_settings_frames=4,
                 max_ping_frames=4, max_empty_data_frames=3, max_priority_frames=4,
                 max_window_update_frames=6, enable_connect_protocol=True)
LIMIT_SETS = [SMALL, H2Limits()]
FIXED = {_h2.PRIORITY: 5, _h2.RST_STREAM: 4, _h2.PING: 8, _h2.WINDOW_UPDATE: 4}


def seeds() -> list[bytes]:
    out = []
    cl = Client()
    start = PREFACE + settings((_h2.SETTINGS_INITIAL_WINDOW_SIZE, 1000))
    out.append(start + cl.headers(1, GET) + settings(ack=True) + ping())
    cl = Client()
    out.append(start + cl.headers(1, post(5), end=False) + data(1, b"hello", True, pad=3)
               + cl.headers(3, GET + [(b"x-a", b"b")], prio=0) + window_update(0, 100))
    cl = Client()
    out.append(start + cl.headers(1, post(), end=False) + data(1, b"x" * 200)
               + cl.headers(1, [(b"x-t", b"1")]) + rst(1) + priority(3, 1) + goaway(0))
    cl = Client()
    blk = cl.block(GET + [(b"x-long", b"v" * 50)])
    out.append(start + frame(_h2.HEADERS, 0, 1, blk[:5]) + frame(_h2.CONTINUATION, 0, 1, blk[5:20])
               + frame(_h2.CONTINUATION, _h2.END_HEADERS | _h2.END_STREAM, 1, blk[20:])
               + frame(0x42, 3, 0, b"ext"))
    # a request above max_header_list_size of SMALL (a field repeated by reference), then one
    # referring to the table entries it inserted
    cl = Client()
    big = GET + [(b"x-a", b"a" * 150)] * 2
    out.append(start + cl.headers(1, big) + cl.headers(3, post(), end=False)
               + cl.headers(5, GET + [(b"x-a", b"a" * 150)]) + data(3, b"x", True))
    return out


SEEDS = seeds()


def _cuts(data: bytes) -> list[int]:
    rng = random.Random(data[:16])
    return [rng.choice((1, 2, 3, 7, 9, 10, 64, 1000)) for _ in range(len(data))]


class App:
    """Active: answers each request when it ends, consumes every DATA byte and resets some
    streams. Passive: only records (its events depend on the input alone)."""

    def __init__(self, c: H2EventConnection, active: bool) -> None:
        self.c = c
        self.active = active
        self.events: list[tuple[Any, ...]] = []

    def handle(self, events: list[tuple[Any, ...]]) -> None:
        c = self.c
        for ev in events:
            self.events.append(ev)
            kind = ev[0]
            if kind == "data":
                assert isinstance(ev[2], bytes)
            if not self.active:
                continue
            if kind == "data":
                c.consume(ev[1], len(ev[2]))
            if kind == "request_too_large":
                sid = ev[1]
                c.send_headers(sid, [(b":status", b"431"), (b"content-length", b"0")], True)
                if not ev[2]:
                    c.reset_stream(sid, _h2.NO_ERROR)
                continue
            if kind in ("request", "data") and ev[3] or kind == "trailers":
                sid = ev[1]
                if c.stream_open(sid):
                    c.send_headers(sid, [(b":status", b"200"), (b"x-a", b"b")], False)
                    n = c.send_data(sid, b"response-body", True)
                    assert 0 <= n <= 13
            if kind == "request" and ev[2][0] == (b":method", b"POST") and not ev[3]:
                if ev[1] % 4 == 3:
                    c.reset_stream(ev[1], _h2.CANCEL)


def _check_output(out: bytes, state: dict[str, Any]) -> None:
    for ftype, flags, sid, payload in read_frames(out):
        assert not state.get("goaway"), "frame after GOAWAY"
        if ftype in FIXED:
            assert len(payload) == FIXED[ftype], (ftype, payload)
        if ftype == _h2.RST_STREAM:
            assert sid % 2 == 1
            assert int.from_bytes(payload, "big") <= 0xd
        elif ftype == _h2.GOAWAY:
            assert sid == 0 and len(payload) >= 8
            assert int.from_bytes(payload[4:8], "big") <= 0xd
            state["goaway"] = True
        elif ftype == _h2.SETTINGS:
            assert sid == 0 and len(payload) % 6 == 0
        elif ftype in (_h2.HEADERS, _h2.DATA, _h2.CONTINUATION):
            assert sid % 2 == 1
        elif ftype == _h2.WINDOW_UPDATE:
            assert 0 < int.from_bytes(payload, "big") < 2**31
        else:
            assert ftype == _h2.PING and flags == _h2.ACK and sid == 0


def _run(data: bytes, limits: H2Limits, pieces: list[int] | None,
         active: bool) -> tuple[list, bytes]:
    c = H2EventConnection(limits)
    app = App(c, active)
    state: dict[str, Any] = {}
    out = bytearray()
    c.initiate()
    chunks = [data] if pieces is None else []
    if pieces is not None:
        i = 0
        for n in pieces:
            if i >= len(data):
                break
            chunks.append(data[i:i + n])
            i += n
    for chunk in chunks:
        app.handle(c.receive(chunk))
        # the output is taken only at the end (a peer that does not read), so whole and
        # pieces count queued reply frames alike; it holds only what the input caused
        assert c.output_size() <= 2 * len(data) + 4096 + 64 * len(app.events)
    out += c.data_to_send()
    _check_output(bytes(out), state)
    return app.events, bytes(out)


def _joined(events: list) -> list:
    out: list = []
    for ev in events:
        if ev[0] == "data" and out and out[-1][0] == "data" and out[-1][1] == ev[1]:
            out[-1] = ("data", ev[1], out[-1][2] + ev[2], ev[3])
            continue
        out.append(ev)
    return out


def check(data: bytes) -> str:
    """Run one input; returns an outcome label (for statistics)."""
    outcome = "ok"
    for limits in LIMIT_SETS:
        # what the input alone decides: the same whole and in pieces
        whole_ev, whole_out = _run(data, limits, None, False)
        piece_ev, piece_out = _run(data, limits, _cuts(data), False)
        assert _joined(whole_ev) == _joined(piece_ev), (whole_ev, piece_ev)
        assert whole_out == piece_out
        for ev in whole_ev:
            if ev[0] == "connection_error":
                outcome = f"error-{ev[1]}"
        if limits is SMALL and outcome == "ok" and any(e[0] == "request" for e in whole_ev):
            outcome = "request"
        # with an application answering (the output paths): valid output, no exception
        _run(data, limits, None, True)
        _run(data, limits, _cuts(data), True)
    return outcome


def mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not b:
            b += rng.choice(SEEDS)
        i = rng.randrange(len(b))
        if op == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.randrange(256)
        elif op == 2:
            del b[i:i + rng.randint(1, 16)]
        elif op == 3:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:                       # splice a piece of another seed
            other = rng.choice(SEEDS)
            j = rng.randrange(len(other))
            b[i:i] = other[j:j + rng.randint(1, 64)]
        elif op == 5:                       # duplicate a stretch (repeated frames)
            k = rng.randint(1, 40)
            b[i:i] = b[i:i + k] * rng.randint(1, 8)
        else:                               # a random well-formed frame
            b[i:i] = frame(rng.randrange(12), rng.randrange(256), rng.randrange(8),
                           bytes(rng.randrange(256) for _ in range(rng.randrange(12))))
    return bytes(b[:8192])


def random_run(n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes: dict[str, int] = {}
    for _ in range(n):
        base = rng.choice(SEEDS)
        data = base if rng.random() < 0.05 else mutate(rng, base)
        # most mutations keep the preface, so the frame paths are reached
        if rng.random() < 0.9 and not data.startswith(PREFACE):
            data = PREFACE + data[len(PREFACE):]
        label = check(data)
        outcomes[label] = outcomes.get(label, 0) + 1
    return outcomes


def main(argv: list[str]) -> int:
    # atheris' inputs are what follows the preface, which is always there
    return fuzz_util.main(argv, random_run, lambda data: check(PREFACE + data),
                          lambda: [s[len(PREFACE):] for s in SEEDS])


if __name__ == "__main__":
    sys.exit(main(sys.argv))

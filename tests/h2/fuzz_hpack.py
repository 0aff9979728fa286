#!/usr/bin/env python3
"""Fuzz harness for engine._hpack's Decoder.

One input is checked by `check(data)`. Byte 0 picks the decoder's limits (CONFIGS); the rest is
a sequence of header blocks, each prefixed by its length (2 bytes, big-endian; a length past
the end takes what is left), decoded one after the other by one Decoder so the dynamic table
carries over. Properties:
  * decode() returns a list of (bytes, bytes) tuples or raises HpackError, or
    HeaderListDropped (only where the hard limit is above max_header_list_size, for a list
    between the two), nothing else; after an HpackError the decoder refuses every later block
    (HpackError again), after HeaderListDropped it goes on;
  * the dynamic table stays consistent: its size is the sum of its entries' sizes
    (len(name) + len(value) + 32) and within the current maximum, itself within the
    decoder's max_table_size; a returned list is within max_header_list_size;
  * last_sensitive is parallel to the result;
  * what was decoded re-encodes (engine._hpack.Encoder) and decodes back to the same list;
  * where the PyPI `hpack` library is installed and the limits allow it, whatever we accept it
    accepts too, with the same fields (we may refuse more: we are stricter).
Hangs show up as the fuzzer's timeout (every block does work bounded by its length).

With atheris (coverage-guided; libFuzzer options after the script name):
    python tests/h2/fuzz_hpack.py -max_total_time=3600 -max_len=4096 fuzz-corpus/
Without atheris, the same check driven by a seeded random mutator:
    python tests/h2/fuzz_hpack.py --random 200000 --seed 1
Both start from the RFC 7541 Appendix C blocks and blocks made by our Encoder as seeds.
"""
from __future__ import annotations

import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:          # tests/fuzz_util.py
    sys.path.insert(0, str(HERE.parent))

import fuzz_util  # noqa: E402

from engine._hpack import Decoder, Encoder, HeaderListDropped, HpackError  # noqa: E402

try:
    import hpack as _theirs
except ImportError:                          # optional: the differential check is skipped
    _theirs = None

# (max_table_size, max_header_list_size, max_header_list_hard); small ones make the limit paths
# reachable (0 for the hard limit: the same as max_header_list_size)
CONFIGS = [(4096, 65536, 0), (256, 0, 0), (64, 512, 0), (0, 200, 0), (256, 150, 600)]

RFC_BLOCKS = [  # RFC 7541 Appendix C.3, C.4 (requests) and C.6 (responses, table size 256)
    [bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"),
     bytes.fromhex("828684be58086e6f2d6361636865"),
     bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")],
    [bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
     bytes.fromhex("828684be5886a8eb10649cbf"),
     bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")],
    [bytes.fromhex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff"
                   "6e919d29ad171863c78f0b97c8e9ae82ae43d3"),
     bytes.fromhex("4883640effc1c0bf"),
     bytes.fromhex("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94"
                   "e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c0"
                   "03ed4ee5b1063d5007")],
]


def pack(config: int, blocks: list[bytes]) -> bytes:
    return bytes([config]) + b"".join(len(b).to_bytes(2, "big") + b for b in blocks)


def unpack(data: bytes) -> tuple[int, list[bytes]]:
    config = data[0] % len(CONFIGS) if data else 0
    blocks, i = [], 1
    while i < len(data):
        n = int.from_bytes(data[i:i + 2], "big")
        blocks.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return config, blocks


def _entry_size(name: bytes, value: bytes) -> int:
    return len(name) + len(value) + 32


def _label(exc: Exception) -> str:
    return f"error {type(exc).__name__}: {re.sub(r'[0-9]+', 'N', str(exc))[:48]}"


def check(data: bytes) -> str:
    """All the properties on one input; returns a label of its outcome (the first error)."""
    config, blocks = unpack(data)
    max_table, max_list, max_hard = CONFIGS[config]
    dec = Decoder(max_table_size=max_table, max_header_list_size=max_list,
                  max_header_list_hard=max_hard)
    enc = Encoder(max_table_size=max_table)
    redec = Decoder(max_table_size=max_table, max_header_list_size=0)
    theirs = None
    if _theirs is not None and max_list == 0:
        theirs = _theirs.Decoder(max_header_list_size=1 << 30)
        theirs.max_allowed_table_size = max_table
        theirs.header_table_size = max_table
    label = "empty"
    failed = False
    for block in blocks:
        try:
            result = dec.decode(block)
        except HeaderListDropped as exc:
            assert not failed, "a decoder that failed accepted a later block"
            assert max_list < exc.size <= dec.max_header_list_hard, exc.size
            entries = dec.table_entries()
            assert dec.table_size == sum(_entry_size(n, v) for n, v in entries)
            assert dec.table_size <= dec.table_max_size <= dec.max_table_size
            label = "dropped"
            assert theirs is None, "a list dropped without a list limit"
            continue
        except HpackError as exc:
            if failed:
                assert "failed earlier" in str(exc), exc
                continue
            failed = True
            label = _label(exc)
            continue
        assert not failed, "a decoder that failed accepted a later block"
        assert type(result) is list
        for f in result:
            assert type(f) is tuple and len(f) == 2, f
            assert type(f[0]) is bytes and type(f[1]) is bytes, f
        entries = dec.table_entries()
        assert dec.table_size == sum(_entry_size(n, v) for n, v in entries)
        assert dec.table_size <= dec.table_max_size <= dec.max_table_size
        if max_list:
            assert sum(_entry_size(n, v) for n, v in result) <= max_list
        assert len(dec.last_sensitive) == len(result)
        sensitive = dec.last_sensitive
        again = enc.encode([(n, v, s) for (n, v), s in zip(result, sensitive, strict=True)])
        assert redec.decode(again) == result
        assert all(redec.last_sensitive[i] for i, s in enumerate(sensitive) if s)
        if theirs is not None:
            got = theirs.decode(block, raw=True)
            assert [(bytes(n), bytes(v)) for n, v in got] == result, (block, got, result)
            assert list(theirs.header_table.dynamic_entries) == entries
        label = "accepted"
    return label


# ---- seeds and the random mutator -----------------------------------------------------------

def seeds() -> list[bytes]:
    out = [pack(c, blocks) for blocks in RFC_BLOCKS for c in range(len(CONFIGS))]
    enc = Encoder()
    lists = [
        [(b":status", b"200"), (b"content-type", b"text/html; charset=utf-8"),
         (b"server", b"engine"), (b"set-cookie", b"sid=abc; HttpOnly")],
        [(b":method", b"POST"), (b":scheme", b"https"), (b":path", b"/api/v1/items?x=1"),
         (b":authority", b"example.com"), (b"authorization", b"Bearer t0k3n", True),
         (b"user-agent", b"curl/8.0"), (b"accept", b"*/*")],
        [(b"x-big", b"b" * 300), (b"x-custom", b"\x00\xff\x7f")],
    ]
    out.append(pack(0, [enc.encode(lst) for lst in lists + lists]))
    enc = Encoder()
    enc.set_max_table_size(256)
    first = enc.encode(lists[0], huffman=False)
    enc.set_max_table_size(0)
    enc.set_max_table_size(64)
    out.append(pack(1, [first, enc.encode(lists[1], huffman=False)]))
    # a list between the limits (dropped, its entries inserted), then a block using them
    enc = Encoder(max_table_size=256)
    out.append(pack(4, [enc.encode(lists[2]), enc.encode(lists[2][1:])]))
    # a bomb: one entry referenced many times
    out.append(pack(0, [b"\x40\x01x\x7f\x21" + b"v" * 160 + b"\xbe" * 500]))
    return out


INTERESTING = [b"\x80", b"\xff", b"\x7f", b"\x3f", b"\x20", b"\x40", b"\x00", b"\x10",
               b"\x0f", b"\x1f", b"\xbe", b"\xc0", b"\x3f\xe1\x1f", b"\xff\xff\xff\xff\x0f",
               b"\x81\xff", b"\x80\x80\x80\x80\x80", b"\x82\x84\x86", b"\x00\x00"]


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    return fuzz_util.mutate(rng, data, pool, INTERESTING, b"\x80\xff\x00\x40\x20\x7f")


def random_run(iterations: int, seed: int = 1) -> dict[str, int]:
    """The check on `iterations` mutated seeds; returns the count of each outcome."""
    return fuzz_util.evolve(check, seeds(), mutate, iterations, seed)


def main(argv: list[str]) -> int:
    return fuzz_util.main(argv, random_run, check, seeds)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

#!/usr/bin/env python3
"""Generates pyx/hpack/hpack_tables.h from RFC 7541 data (run from the repository root):

    python3 pyx/hpack/gen_huffman.py            # rewrites pyx/hpack/hpack_tables.h
    python3 pyx/hpack/gen_huffman.py --check    # exits 1 if the committed file is stale

The output is committed (a build needs no generator step and no Python at CMake time beyond
Cython's own; the table is reviewed as a diff when it changes); tests/h2/test_hpack.py checks that
the committed file equals this script's output.

What it writes:
* HPACK_STATIC[61]: the static table, RFC 7541 Appendix A (index i+1 is entry i).
* HPACK_HUFF_CODE[257] / HPACK_HUFF_BITS[257]: the Huffman code of each symbol, RFC 7541
  Appendix B (symbol 256 is EOS), for the encoder.
* HPACK_HUFF_DECODE[256][16]: the decoder's state table over 4-bit nibbles. The states are the
  256 internal nodes of the Huffman tree (state 0 is the root). Entry [s][n] is where reading
  the 4 bits n (most significant first) from node s leads:
    state  the internal node reached (after a symbol, the walk restarts at the root);
    sym    the symbol completed on the way, when flags has HUFF_EMIT (at most one: the shortest
           code is 5 bits);
    flags  HUFF_EMIT; HUFF_ACCEPT if the string may end here: the bits read since the last
           symbol are all ones and at most 7 of them (a proper prefix of EOS, RFC 7541 §5.2);
           HUFF_FAIL if the walk completes EOS, which must not appear in a string (§5.2).
"""
from __future__ import annotations

import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "hpack_tables.h"

# RFC 7541 Appendix A: the static table (index 1..61).
STATIC_TABLE = [
    (":authority", ""), (":method", "GET"), (":method", "POST"), (":path", "/"),
    (":path", "/index.html"), (":scheme", "http"), (":scheme", "https"), (":status", "200"),
    (":status", "204"), (":status", "206"), (":status", "304"), (":status", "400"),
    (":status", "404"), (":status", "500"), ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"), ("accept-language", ""), ("accept-ranges", ""),
    ("accept", ""), ("access-control-allow-origin", ""), ("age", ""), ("allow", ""),
    ("authorization", ""), ("cache-control", ""), ("content-disposition", ""),
    ("content-encoding", ""), ("content-language", ""), ("content-length", ""),
    ("content-location", ""), ("content-range", ""), ("content-type", ""), ("cookie", ""),
    ("date", ""), ("etag", ""), ("expect", ""), ("expires", ""), ("from", ""), ("host", ""),
    ("if-match", ""), ("if-modified-since", ""), ("if-none-match", ""), ("if-range", ""),
    ("if-unmodified-since", ""), ("last-modified", ""), ("link", ""), ("location", ""),
    ("max-forwards", ""), ("proxy-authenticate", ""), ("proxy-authorization", ""),
    ("range", ""), ("referer", ""), ("refresh", ""), ("retry-after", ""), ("server", ""),
    ("set-cookie", ""), ("strict-transport-security", ""), ("transfer-encoding", ""),
    ("user-agent", ""), ("vary", ""), ("via", ""), ("www-authenticate", ""),
]

# RFC 7541 Appendix B: (code as hex aligned to the LSB, code length in bits) for symbols
# 0..255 and EOS (256), in symbol order.
HUFFMAN_CODES = [
    (0x1ff8, 13), (0x7fffd8, 23), (0xfffffe2, 28), (0xfffffe3, 28),
    (0xfffffe4, 28), (0xfffffe5, 28), (0xfffffe6, 28), (0xfffffe7, 28),
    (0xfffffe8, 28), (0xffffea, 24), (0x3ffffffc, 30), (0xfffffe9, 28),
    (0xfffffea, 28), (0x3ffffffd, 30), (0xfffffeb, 28), (0xfffffec, 28),
    (0xfffffed, 28), (0xfffffee, 28), (0xfffffef, 28), (0xffffff0, 28),
    (0xffffff1, 28), (0xffffff2, 28), (0x3ffffffe, 30), (0xffffff3, 28),
    (0xffffff4, 28), (0xffffff5, 28), (0xffffff6, 28), (0xffffff7, 28),
    (0xffffff8, 28), (0xffffff9, 28), (0xffffffa, 28), (0xffffffb, 28),
    (0x14, 6), (0x3f8, 10), (0x3f9, 10), (0xffa, 12),
    (0x1ff9, 13), (0x15, 6), (0xf8, 8), (0x7fa, 11),
    (0x3fa, 10), (0x3fb, 10), (0xf9, 8), (0x7fb, 11),
    (0xfa, 8), (0x16, 6), (0x17, 6), (0x18, 6),
    (0x0, 5), (0x1, 5), (0x2, 5), (0x19, 6),
    (0x1a, 6), (0x1b, 6), (0x1c, 6), (0x1d, 6),
    (0x1e, 6), (0x1f, 6), (0x5c, 7), (0xfb, 8),
    (0x7ffc, 15), (0x20, 6), (0xffb, 12), (0x3fc, 10),
    (0x1ffa, 13), (0x21, 6), (0x5d, 7), (0x5e, 7),
    (0x5f, 7), (0x60, 7), (0x61, 7), (0x62, 7),
    (0x63, 7), (0x64, 7), (0x65, 7), (0x66, 7),
    (0x67, 7), (0x68, 7), (0x69, 7), (0x6a, 7),
    (0x6b, 7), (0x6c, 7), (0x6d, 7), (0x6e, 7),
    (0x6f, 7), (0x70, 7), (0x71, 7), (0x72, 7),
    (0xfc, 8), (0x73, 7), (0xfd, 8), (0x1ffb, 13),
    (0x7fff0, 19), (0x1ffc, 13), (0x3ffc, 14), (0x22, 6),
    (0x7ffd, 15), (0x3, 5), (0x23, 6), (0x4, 5),
    (0x24, 6), (0x5, 5), (0x25, 6), (0x26, 6),
    (0x27, 6), (0x6, 5), (0x74, 7), (0x75, 7),
    (0x28, 6), (0x29, 6), (0x2a, 6), (0x7, 5),
    (0x2b, 6), (0x76, 7), (0x2c, 6), (0x8, 5),
    (0x9, 5), (0x2d, 6), (0x77, 7), (0x78, 7),
    (0x79, 7), (0x7a, 7), (0x7b, 7), (0x7ffe, 15),
    (0x7fc, 11), (0x3ffd, 14), (0x1ffd, 13), (0xffffffc, 28),
    (0xfffe6, 20), (0x3fffd2, 22), (0xfffe7, 20), (0xfffe8, 20),
    (0x3fffd3, 22), (0x3fffd4, 22), (0x3fffd5, 22), (0x7fffd9, 23),
    (0x3fffd6, 22), (0x7fffda, 23), (0x7fffdb, 23), (0x7fffdc, 23),
    (0x7fffdd, 23), (0x7fffde, 23), (0xffffeb, 24), (0x7fffdf, 23),
    (0xffffec, 24), (0xffffed, 24), (0x3fffd7, 22), (0x7fffe0, 23),
    (0xffffee, 24), (0x7fffe1, 23), (0x7fffe2, 23), (0x7fffe3, 23),
    (0x7fffe4, 23), (0x1fffdc, 21), (0x3fffd8, 22), (0x7fffe5, 23),
    (0x3fffd9, 22), (0x7fffe6, 23), (0x7fffe7, 23), (0xffffef, 24),
    (0x3fffda, 22), (0x1fffdd, 21), (0xfffe9, 20), (0x3fffdb, 22),
    (0x3fffdc, 22), (0x7fffe8, 23), (0x7fffe9, 23), (0x1fffde, 21),
    (0x7fffea, 23), (0x3fffdd, 22), (0x3fffde, 22), (0xfffff0, 24),
    (0x1fffdf, 21), (0x3fffdf, 22), (0x7fffeb, 23), (0x7fffec, 23),
    (0x1fffe0, 21), (0x1fffe1, 21), (0x3fffe0, 22), (0x1fffe2, 21),
    (0x7fffed, 23), (0x3fffe1, 22), (0x7fffee, 23), (0x7fffef, 23),
    (0xfffea, 20), (0x3fffe2, 22), (0x3fffe3, 22), (0x3fffe4, 22),
    (0x7ffff0, 23), (0x3fffe5, 22), (0x3fffe6, 22), (0x7ffff1, 23),
    (0x3ffffe0, 26), (0x3ffffe1, 26), (0xfffeb, 20), (0x7fff1, 19),
    (0x3fffe7, 22), (0x7ffff2, 23), (0x3fffe8, 22), (0x1ffffec, 25),
    (0x3ffffe2, 26), (0x3ffffe3, 26), (0x3ffffe4, 26), (0x7ffffde, 27),
    (0x7ffffdf, 27), (0x3ffffe5, 26), (0xfffff1, 24), (0x1ffffed, 25),
    (0x7fff2, 19), (0x1fffe3, 21), (0x3ffffe6, 26), (0x7ffffe0, 27),
    (0x7ffffe1, 27), (0x3ffffe7, 26), (0x7ffffe2, 27), (0xfffff2, 24),
    (0x1fffe4, 21), (0x1fffe5, 21), (0x3ffffe8, 26), (0x3ffffe9, 26),
    (0xffffffd, 28), (0x7ffffe3, 27), (0x7ffffe4, 27), (0x7ffffe5, 27),
    (0xfffec, 20), (0xfffff3, 24), (0xfffed, 20), (0x1fffe6, 21),
    (0x3fffe9, 22), (0x1fffe7, 21), (0x1fffe8, 21), (0x7ffff3, 23),
    (0x3fffea, 22), (0x3fffeb, 22), (0x1ffffee, 25), (0x1ffffef, 25),
    (0xfffff4, 24), (0xfffff5, 24), (0x3ffffea, 26), (0x7ffff4, 23),
    (0x3ffffeb, 26), (0x7ffffe6, 27), (0x3ffffec, 26), (0x3ffffed, 26),
    (0x7ffffe7, 27), (0x7ffffe8, 27), (0x7ffffe9, 27), (0x7ffffea, 27),
    (0x7ffffeb, 27), (0xffffffe, 28), (0x7ffffec, 27), (0x7ffffed, 27),
    (0x7ffffee, 27), (0x7ffffef, 27), (0x7fffff0, 27), (0x3ffffee, 26),
    (0x3fffffff, 30),
]

HUFF_EMIT = 1
HUFF_ACCEPT = 2
HUFF_FAIL = 4
EOS = 256


def _check_code() -> None:
    assert len(HUFFMAN_CODES) == 257 and len(STATIC_TABLE) == 61
    # a complete prefix code: Kraft's sum is exactly 1, and no code is a prefix of another
    assert sum(2 ** (30 - bits) for _, bits in HUFFMAN_CODES) == 2 ** 30
    words = sorted(format(code, f"0{bits}b") for code, bits in HUFFMAN_CODES)
    for a, b in zip(words, words[1:], strict=False):
        assert not b.startswith(a), (a, b)
    assert HUFFMAN_CODES[EOS] == ((1 << 30) - 1, 30)


def build_decode_table() -> list[list[tuple[int, int, int]]]:
    # the tree: internal nodes numbered in creation order (root 0); a child is
    # ("node", n) or ("leaf", symbol)
    children: list[list[tuple[str, int] | None]] = [[None, None]]
    for sym, (code, bits) in enumerate(HUFFMAN_CODES):
        node = 0
        for i in range(bits - 1, -1, -1):
            bit = (code >> i) & 1
            if i == 0:
                assert children[node][bit] is None
                children[node][bit] = ("leaf", sym)
            else:
                child = children[node][bit]
                if child is None:
                    children.append([None, None])
                    child = ("node", len(children) - 1)
                    children[node][bit] = child
                assert child[0] == "node"
                node = child[1]
    assert len(children) == 256, len(children)     # 257 leaves -> 256 internal nodes
    # the accepting nodes: reached from the root by 0..7 one-bits
    accepting = {0}
    node = 0
    for _ in range(7):
        child = children[node][1]
        assert child is not None and child[0] == "node"
        node = child[1]
        accepting.add(node)
    table = []
    for state in range(256):
        row = []
        for nibble in range(16):
            node, sym, flags = state, 0, 0
            for i in (3, 2, 1, 0):
                child = children[node][(nibble >> i) & 1]
                assert child is not None
                if child[0] == "leaf":
                    if child[1] == EOS:
                        flags |= HUFF_FAIL
                        break
                    assert not flags & HUFF_EMIT      # one symbol per nibble at most
                    sym, flags = child[1], flags | HUFF_EMIT
                    node = 0
                else:
                    node = child[1]
            if flags & HUFF_FAIL:
                row.append((0, 0, HUFF_FAIL))
                continue
            if node in accepting:
                flags |= HUFF_ACCEPT
            row.append((node, sym, flags))
        table.append(row)
    return table


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render() -> str:
    _check_code()
    table = build_decode_table()
    out = [
        "/* GENERATED FILE: do not edit. Made by `python3 pyx/hpack/gen_huffman.py` from the",
        " * RFC 7541 tables in that script (Appendix A: static table; Appendix B: Huffman code).",
        " * Included by pyx/hpack/hpack.pyx; the meaning of each table is in the script's",
        " * docstring. */",
        "#ifndef ENGINE_HPACK_TABLES_H",
        "#define ENGINE_HPACK_TABLES_H",
        "#include <stdint.h>",
        "",
        f"#define HPACK_STATIC_COUNT {len(STATIC_TABLE)}",
        f"#define HUFF_EMIT {HUFF_EMIT}",
        f"#define HUFF_ACCEPT {HUFF_ACCEPT}",
        f"#define HUFF_FAIL {HUFF_FAIL}",
        "",
        "typedef struct { const char *name; uint8_t name_len; const char *value;"
        " uint8_t value_len; } hpack_static_entry;",
        "typedef struct { uint8_t state; uint8_t sym; uint8_t flags; } hpack_huff_entry;",
        "",
        "static const hpack_static_entry HPACK_STATIC[HPACK_STATIC_COUNT] = {",
    ]
    for i, (name, value) in enumerate(STATIC_TABLE, 1):
        out.append(f"    /* {i:2d} */ {{{_c_string(name)}, {len(name)}, {_c_string(value)}, "
                   f"{len(value)}}},")
    out += ["};", "", "static const uint32_t HPACK_HUFF_CODE[257] = {"]
    for i in range(0, 257, 8):
        out.append("    " + " ".join(f"0x{c:x}," for c, _ in HUFFMAN_CODES[i:i + 8]))
    out += ["};", "", "static const uint8_t HPACK_HUFF_BITS[257] = {"]
    for i in range(0, 257, 16):
        out.append("    " + " ".join(f"{b}," for _, b in HUFFMAN_CODES[i:i + 16]))
    out += ["};", "", "/* [state][nibble] = {next state, symbol, flags} */",
            "static const hpack_huff_entry HPACK_HUFF_DECODE[256][16] = {"]
    for state, row in enumerate(table):
        cells = ", ".join(f"{{{s},{y},{f}}}" for s, y, f in row)
        out.append(f"    /* {state:3d} */ {{{cells}}},")
    out += ["};", "", "#endif", ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python3 pyx/hpack/gen_huffman.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

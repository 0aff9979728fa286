"""engine._hpack against the PyPI `hpack` library on generated inputs (hypothesis).

Sequences of header blocks go both ways, ours -> theirs and theirs -> ours, with the dynamic
table carried across blocks and table-size changes between them; after every block both sides'
dynamic tables hold the same entries. Huffman coding is compared on random byte strings."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine._hpack import (
    NEVER_INDEXED_NAMES,
    Decoder,
    Encoder,
    HpackError,
    huffman_decode,
    huffman_encode,
    static_table,
)

hpack = pytest.importorskip("hpack")
from hpack.huffman import HuffmanEncoder  # noqa: E402
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH  # noqa: E402
from hpack.huffman_table import decode_huffman  # noqa: E402
from hpack.struct import NeverIndexedHeaderTuple  # noqa: E402

SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

STATIC_PAIRS = set(static_table())
STATIC_NAMES = sorted({n for n, _ in static_table()})
names = st.one_of(
    st.sampled_from(STATIC_NAMES),
    st.sampled_from([b"x-request-id", b"x-a", b"x-b", b"server", b"content-type"]),
    st.binary(min_size=1, max_size=20),
)
values = st.one_of(
    st.sampled_from([b"", b"200", b"GET", b"text/html", b"gzip, deflate", b"engine"]),
    st.binary(max_size=40),
    st.binary(min_size=200, max_size=1500),      # large: above 3/4 of small tables
)
field = st.tuples(names, values, st.booleans())
block = st.lists(field, max_size=12)
# each step: a new table size (or None: unchanged) and a header list
steps = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from([0, 64, 256, 4096, 8192])),
                           block), min_size=1, max_size=8)
HUGE = 1 << 30


def _expected_never_indexed(fields) -> list[bool]:
    return [bool(s) or n in NEVER_INDEXED_NAMES for n, _, s in fields]


@SETTINGS
@given(steps=steps, huffman=st.booleans())
def test_ours_encode_theirs_decode(steps, huffman) -> None:
    enc = Encoder()
    theirs = hpack.Decoder(max_header_list_size=HUGE)
    ours = Decoder(max_header_list_size=0)
    for size, fields in steps:
        if size is not None:
            enc.set_max_table_size(size)
            theirs.max_allowed_table_size = size
            ours.set_max_table_size(size)
        data = enc.encode(fields, huffman=huffman)
        got = theirs.decode(data, raw=True)
        assert [(n, v) for n, v in got] == [(n, v) for n, v, _ in fields]
        assert [isinstance(t, NeverIndexedHeaderTuple) for t in got] == \
            _expected_never_indexed(fields)
        assert ours.decode(data) == [(n, v) for n, v, _ in fields]
        assert ours.last_sensitive == _expected_never_indexed(fields)
        assert list(theirs.header_table.dynamic_entries) == enc.table_entries()
        assert theirs.header_table._current_size == enc.table_size


@SETTINGS
@given(steps=steps, huffman=st.booleans())
def test_theirs_encode_ours_decode(steps, huffman) -> None:
    enc = hpack.Encoder()
    ours = Decoder(max_header_list_size=0)
    theirs = hpack.Decoder(max_header_list_size=HUGE)    # for the never-indexed flags
    for size, fields in steps:
        if size is not None:
            ours.set_max_table_size(size)
            enc.header_table_size = size
            theirs.max_allowed_table_size = size
        data = enc.encode([(n, v, s) for n, v, s in fields], huffman=huffman)
        assert ours.decode(data) == [(n, v) for n, v, _ in fields]
        # (their encoder sends a full static-table match as an index even when sensitive)
        assert ours.last_sensitive == [isinstance(t, NeverIndexedHeaderTuple)
                                       for t in theirs.decode(data, raw=True)]
        assert ours.table_entries() == list(enc.header_table.dynamic_entries)
        assert ours.table_size == enc.header_table._current_size


@SETTINGS
@given(data=st.binary(max_size=300))
def test_huffman_encode_matches(data) -> None:
    theirs = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(data)
    assert huffman_encode(data) == theirs
    assert huffman_decode(theirs) == data


@SETTINGS
@given(data=st.binary(max_size=64))
def test_huffman_decode_random_bytes_agrees(data) -> None:
    """Random (mostly invalid) codes: both accept with the same result, or both refuse."""
    try:
        theirs = decode_huffman(data)
    except hpack.HPACKDecodingError:
        theirs = None
    try:
        ours = huffman_decode(data)
    except HpackError:
        ours = None
    assert ours == theirs

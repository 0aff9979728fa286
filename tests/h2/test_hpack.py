"""engine._hpack (RFC 7541): the Appendix C examples, the encoder's policy, every decoding error.

The examples' bytes, header lists and table contents are RFC 7541 Appendix C data; the static
table and Huffman code are checked against the generator (pyx/hpack/gen_huffman.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engine._hpack import (
    NEVER_INDEXED_NAMES,
    NOT_INDEXED_NAMES,
    Decoder,
    Encoder,
    HeaderListDropped,
    HeaderListTooLarge,
    HpackError,
    decode_integer,
    encode_integer,
    huffman_decode,
    huffman_encode,
    static_table,
)

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "pyx" / "hpack" / "gen_huffman.py"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_huffman", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def fields(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(n.encode(), v.encode()) for n, v in pairs]


# ---------------------------------------------------------------------------------------------
# Generated tables
# ---------------------------------------------------------------------------------------------

def test_generated_header_is_up_to_date() -> None:
    gen = _gen()
    assert (ROOT / "pyx" / "hpack" / "hpack_tables.h").read_text() == gen.render()


def test_static_table_is_appendix_a() -> None:
    gen = _gen()
    assert static_table() == tuple((n.encode(), v.encode()) for n, v in gen.STATIC_TABLE)
    assert static_table()[0] == (b":authority", b"")
    assert static_table()[60] == (b"www-authenticate", b"")


def test_huffman_code_table_matches_generator() -> None:
    gen = _gen()
    for sym in range(256):
        code, bits = gen.HUFFMAN_CODES[sym]
        # one symbol padded with ones to a byte boundary
        pad = -bits % 8
        expected = ((code << pad) | ((1 << pad) - 1)).to_bytes((bits + pad) // 8, "big")
        assert huffman_encode(bytes([sym])) == expected, sym
        assert huffman_decode(expected) == bytes([sym])


# ---------------------------------------------------------------------------------------------
# RFC 7541 Appendix C
# ---------------------------------------------------------------------------------------------

def test_c1_integers() -> None:
    # C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix; C.1.3: 42 at a byte
    assert encode_integer(10, 5) == h("0a")
    assert encode_integer(1337, 5) == h("1f 9a 0a")
    assert encode_integer(42, 8) == h("2a")
    assert decode_integer(h("0a"), 5) == (10, 1)
    assert decode_integer(h("1f 9a 0a ff"), 5) == (1337, 3)
    assert decode_integer(h("2a"), 8) == (42, 1)
    # the same integers as table-size updates (a 5-bit prefix in a real block)
    d = Decoder(max_table_size=4096)
    assert d.decode(h("3f 9a 0a")) == []        # 001 11111, then 1337 - 31
    assert d.table_max_size == 1337
    assert d.decode(h("2a")) == []              # 001 01010: 10
    assert d.table_max_size == 10


@pytest.mark.parametrize("value", [0, 1, 30, 31, 32, 127, 128, 255, 1337, 2**14, 2**21,
                                   2**31 - 1])
@pytest.mark.parametrize("prefix", [1, 4, 5, 6, 7, 8])
def test_integer_round_trip(value: int, prefix: int) -> None:
    data = encode_integer(value, prefix)
    assert decode_integer(data, prefix) == (value, len(data))


C2 = [
    # C.2.1 literal with indexing
    ("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
     fields(("custom-key", "custom-header")), fields(("custom-key", "custom-header")), 55,
     [False]),
    # C.2.2 literal without indexing
    ("040c 2f73 616d 706c 652f 7061 7468", fields((":path", "/sample/path")), [], 0, [False]),
    # C.2.3 literal never indexed
    ("1008 7061 7373 776f 7264 0673 6563 7265 74", fields(("password", "secret")), [], 0,
     [True]),
    # C.2.4 indexed
    ("82", fields((":method", "GET")), [], 0, [False]),
]


@pytest.mark.parametrize("block,expected,table,size,sensitive", C2,
                         ids=["C.2.1", "C.2.2", "C.2.3", "C.2.4"])
def test_c2_field_representations(block, expected, table, size, sensitive) -> None:
    d = Decoder()
    assert d.decode(h(block)) == expected
    assert d.table_entries() == table
    assert d.table_size == size
    assert d.last_sensitive == sensitive
    assert d.last_never_indexed == ([0] if sensitive[0] else None)


REQ1 = fields((":method", "GET"), (":scheme", "http"), (":path", "/"),
              (":authority", "www.example.com"))
REQ2 = fields((":method", "GET"), (":scheme", "http"), (":path", "/"),
              (":authority", "www.example.com"), ("cache-control", "no-cache"))
REQ3 = fields((":method", "GET"), (":scheme", "https"), (":path", "/index.html"),
              (":authority", "www.example.com"), ("custom-key", "custom-value"))
REQ_TABLES = [
    (fields((":authority", "www.example.com")), 57),
    (fields(("cache-control", "no-cache"), (":authority", "www.example.com")), 110),
    (fields(("custom-key", "custom-value"), ("cache-control", "no-cache"),
            (":authority", "www.example.com")), 164),
]
COOKIE = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESP1 = fields((":status", "302"), ("cache-control", "private"),
               ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com"))
RESP2 = fields((":status", "307"), ("cache-control", "private"),
               ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("location", "https://www.example.com"))
RESP3 = fields((":status", "200"), ("cache-control", "private"),
               ("date", "Mon, 21 Oct 2013 20:13:22 GMT"), ("location", "https://www.example.com"),
               ("content-encoding", "gzip"), ("set-cookie", COOKIE))
RESP_TABLES = [
    (fields(("location", "https://www.example.com"), ("date", "Mon, 21 Oct 2013 20:13:21 GMT"),
            ("cache-control", "private"), (":status", "302")), 222),
    (fields((":status", "307"), ("location", "https://www.example.com"),
            ("date", "Mon, 21 Oct 2013 20:13:21 GMT"), ("cache-control", "private")), 222),
    (fields(("set-cookie", COOKIE), ("content-encoding", "gzip"),
            ("date", "Mon, 21 Oct 2013 20:13:22 GMT")), 215),
]

SEQUENCES = {
    "C.3": (4096, [REQ1, REQ2, REQ3], REQ_TABLES, [
        "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
        "8286 84be 5808 6e6f 2d63 6163 6865",
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ]),
    "C.4": (4096, [REQ1, REQ2, REQ3], REQ_TABLES, [
        "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
        "8286 84be 5886 a8eb 1064 9cbf",
        "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
    ]),
    "C.5": (256, [RESP1, RESP2, RESP3], RESP_TABLES, [
        "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133"
        "2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70"
        "6c65 2e63 6f6d",
        "4803 3330 37c1 c0bf",
        "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d"
        "54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049"
        "5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e"
        "3d31",
    ]),
    "C.6": (256, [RESP1, RESP2, RESP3], RESP_TABLES, [
        "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6"
        "2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
        "4883 640e ffc1 c0bf",
        "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab"
        "77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f"
        "9587 3160 65c0 03ed 4ee5 b106 3d50 07",
    ]),
}


@pytest.mark.parametrize("section", sorted(SEQUENCES))
def test_appendix_c_sequences_decode(section: str) -> None:
    table_size, lists, tables, blocks = SEQUENCES[section]
    d = Decoder(max_table_size=table_size)
    for block, expected, (entries, size) in zip(blocks, lists, tables, strict=True):
        assert d.decode(h(block)) == expected
        assert d.table_entries() == entries
        assert d.table_size == size
        assert d.last_sensitive == [False] * len(expected)


@pytest.mark.parametrize("section", sorted(SEQUENCES))
@pytest.mark.parametrize("huffman", [False, True])
def test_appendix_c_sequences_round_trip(section: str, huffman: bool) -> None:
    hpack = pytest.importorskip("hpack")
    table_size, lists, _, _ = SEQUENCES[section]
    enc = Encoder(max_table_size=table_size)
    ours = Decoder(max_table_size=table_size)
    theirs = hpack.Decoder()
    theirs.max_allowed_table_size = table_size
    for expected in lists:
        block = enc.encode(expected, huffman=huffman)
        assert ours.decode(block) == expected
        assert [(bytes(n), bytes(v)) for n, v in theirs.decode(block, raw=True)] == expected
        # both decoders hold what the encoder holds
        assert ours.table_entries() == enc.table_entries()
        assert ours.table_size == enc.table_size
    # the second time around most fields are indexes into the table
    again = enc.encode(lists[-1], huffman=huffman)
    assert ours.decode(again) == lists[-1]
    assert len(again) < len(Encoder(table_size).encode(lists[-1], huffman=huffman))


def test_decoder_accepts_any_buffer() -> None:
    block = h(SEQUENCES["C.3"][3][0])
    for data in (block, bytearray(block), memoryview(block)):
        assert Decoder().decode(data) == REQ1


# ---------------------------------------------------------------------------------------------
# Huffman
# ---------------------------------------------------------------------------------------------

def test_huffman_rfc_strings() -> None:
    assert huffman_encode(b"www.example.com") == h("f1e3 c2e5 f23a 6ba0 ab90 f4ff")
    assert huffman_encode(b"no-cache") == h("a8eb 1064 9cbf")
    assert huffman_decode(h("a8eb 1064 9cbf")) == b"no-cache"
    assert huffman_encode(b"") == b"" and huffman_decode(b"") == b""
    every = bytes(range(256)) * 3
    assert huffman_decode(huffman_encode(every)) == every


def test_huffman_padding_longer_than_7_bits() -> None:
    # "0" is 00000 (5 bits); a whole byte of ones after a full byte of code is 8+ bits of padding
    assert huffman_decode(h("07")) == b"0"           # 00000 111: 3 bits of padding
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(h("07 ff"))                   # 3 + 8 = 11 bits of padding
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(h("ff"))                      # 8 bits of padding alone


def test_huffman_padding_not_eos_prefix() -> None:
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(h("00"))                      # "0" then 000: zeros are not EOS's prefix
    with pytest.raises(HpackError, match="padding"):
        huffman_decode(h("06"))                      # "0" then 110


def test_huffman_eos_inside_string() -> None:
    eos = (2**30 - 1) << 2 | 0b11                    # EOS (30 ones), 2 bits of padding
    with pytest.raises(HpackError, match="EOS"):
        huffman_decode(eos.to_bytes(4, "big"))
    with pytest.raises(HpackError, match="EOS"):     # a symbol, then EOS
        huffman_decode(h("07") + eos.to_bytes(4, "big") + b"\xff")


def test_huffman_string_in_block_errors_are_hpack_errors() -> None:
    with pytest.raises(HpackError, match="padding"):
        Decoder().decode(h("40 81 ff 81 07"))        # name = 8 bits of padding


# ---------------------------------------------------------------------------------------------
# Decoder errors: one test each
# ---------------------------------------------------------------------------------------------

def test_index_zero() -> None:
    with pytest.raises(HpackError, match="index 0"):
        Decoder().decode(h("80"))


def test_index_beyond_static_table() -> None:
    with pytest.raises(HpackError, match="index 62 is beyond"):
        Decoder().decode(h("be"))


def test_index_beyond_dynamic_table() -> None:
    d = Decoder()
    d.decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    assert d.decode(h("be")) == fields(("custom-key", "custom-header"))
    with pytest.raises(HpackError, match="index 63 is beyond"):
        Decoder().decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"
                           "bf"))


def test_literal_name_index_beyond_tables() -> None:
    with pytest.raises(HpackError, match="index 70 is beyond"):
        Decoder().decode(h("0f 37 01 61"))           # literal, name index 15 + 55


def test_truncated_integer() -> None:
    with pytest.raises(HpackError, match="truncated integer"):
        Decoder().decode(h("ff 80"))


def test_integer_too_many_continuation_bytes() -> None:
    with pytest.raises(HpackError, match="continuation bytes"):
        decode_integer(h("1f 80 80 80 80 80 00"), 5)  # zero-padded: 6 continuation bytes
    with pytest.raises(HpackError, match="continuation bytes"):
        Decoder().decode(h("ff 80 80 80 80 80 00"))


def test_integer_too_large() -> None:
    assert decode_integer(encode_integer(2**31 - 1, 7), 7)[0] == 2**31 - 1
    with pytest.raises(HpackError, match="integer larger"):
        decode_integer(h("7f 81 80 80 80 08"), 7)    # 127 + 1 + 2**31
    with pytest.raises(HpackError, match="integer larger"):
        Decoder().decode(h("ff ff ff ff ff 0f"))


def test_truncated_block_before_string() -> None:
    with pytest.raises(HpackError, match="string literal should start"):
        Decoder().decode(h("40"))                    # literal with new name, nothing after
    with pytest.raises(HpackError, match="string literal should start"):
        Decoder().decode(h("41"))                    # indexed name, no value


def test_string_length_past_end() -> None:
    with pytest.raises(HpackError, match="runs past the end"):
        Decoder().decode(h("41 05 61 62"))           # value claims 5 bytes, 2 present
    with pytest.raises(HpackError, match="runs past the end"):
        Decoder().decode(h("00 7f ff ff ff 07"))     # name length near 2**31


def test_table_size_update_above_maximum() -> None:
    assert Decoder(max_table_size=100).decode(h("3f 45")) == []   # 31 + 69 = 100
    with pytest.raises(HpackError, match="exceeds the maximum 100"):
        Decoder(max_table_size=100).decode(h("3f 46"))            # 101


def test_table_size_update_not_at_block_start() -> None:
    with pytest.raises(HpackError, match="after the start"):
        Decoder().decode(h("82 20"))
    # several updates at the start are fine (smallest first, RFC 7541 §4.2)
    d = Decoder()
    assert d.decode(h("20 3f e1 1f 82")) == fields((":method", "GET"))
    assert d.table_max_size == 4096


def test_table_size_update_required_after_lowering() -> None:
    d = Decoder()
    d.decode(h("400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"))
    d.set_max_table_size(40)
    assert d.max_table_size == 40
    with pytest.raises(HpackError, match="must start this block"):
        d.decode(h("82"))
    d = Decoder()
    d.set_max_table_size(40)
    assert d.decode(h("3f 09 82")) == fields((":method", "GET"))   # update to 40, then a field
    assert d.table_max_size == 40
    d.set_max_table_size(8192)                       # raising needs no update
    assert d.decode(h("82")) == fields((":method", "GET"))


def test_decoder_unusable_after_error() -> None:
    d = Decoder()
    with pytest.raises(HpackError):
        d.decode(h("80"))
    with pytest.raises(HpackError, match="failed earlier"):
        d.decode(h("82"))


def test_eviction_and_oversized_entry() -> None:
    d = Decoder(max_table_size=100)
    d.decode(h("40 01 61 01 62"))                    # a: b (34)
    d.decode(h("40 01 63 01 64"))                    # c: d (34)
    d.decode(h("40 01 65 01 66"))                    # e: f (34): evicts a: b
    assert d.table_entries() == fields(("e", "f"), ("c", "d"))
    assert d.table_size == 68
    # an entry larger than the table empties it and is not inserted (RFC 7541 §4.4)
    big = b"x" * 80
    assert d.decode(h("40 01 67 50") + big) == [(b"g", big)]
    assert d.table_entries() == [] and d.table_size == 0


# ---------------------------------------------------------------------------------------------
# max_header_list_size
# ---------------------------------------------------------------------------------------------

def test_header_list_size_limit_exact() -> None:
    block = h("82 84")                               # :method GET (42), :path / (38)
    assert Decoder(max_header_list_size=80).decode(block) == fields((":method", "GET"),
                                                                   (":path", "/"))
    with pytest.raises(HeaderListTooLarge, match="larger than 79"):
        Decoder(max_header_list_size=79).decode(block)
    assert len(Decoder(max_header_list_size=0).decode(block * 2000)) == 4000  # 0: unlimited


def test_hpack_bomb_stops_at_the_limit() -> None:
    """A tiny block that inserts one 4 KB entry and references it 10000 times: decoding stops
    at the first field that passes the limit. The block ends in an invalid index (0x80): had
    decoding gone on past the limit, that would be the error raised."""
    value = b"v" * 4000
    insert = h("40 01 78 7f a1 1e") + value          # x: 4000 bytes (length 127 + 3873)
    limit = 65536
    block = insert + h("be") * 10000 + h("80")
    with pytest.raises(HeaderListTooLarge) as err:
        Decoder(max_table_size=8192, max_header_list_size=limit).decode(block)
    per_field = 1 + 4000 + 32
    assert f"field {limit // per_field + 1}," in str(err.value)
    # the same block with the limit off reaches the invalid index at its end
    with pytest.raises(HpackError, match="index 0"):
        Decoder(max_table_size=8192, max_header_list_size=0).decode(block)


def test_header_list_too_large_is_an_hpack_error() -> None:
    assert issubclass(HeaderListTooLarge, HpackError)
    assert not issubclass(HeaderListDropped, HpackError)


def test_list_between_the_limits_is_decoded_whole_and_dropped() -> None:
    """Between max_header_list_size and max_header_list_hard: every entry the block inserts
    reaches the table (also those after the field that passed the limit), the fields are not
    returned, and the decoder goes on: the next block's references to those entries decode."""
    d = Decoder(max_header_list_size=100, max_header_list_hard=400)
    assert (d.max_header_list_size, d.max_header_list_hard) == (100, 400)
    block = (h("40 01 61 46") + b"a" * 70          # a: a*70 (103 bytes), inserted -> past 100
             + h("40 01 62 03") + b"bbb"           # b: bbb (36), inserted after the limit
             + h("10 01 63 01") + b"c")            # c: c never indexed (34), not inserted
    with pytest.raises(HeaderListDropped, match="173 bytes") as err:
        d.decode(block)
    assert err.value.size == 173
    assert d.table_entries() == [(b"b", b"bbb"), (b"a", b"a" * 70)]
    assert d.last_sensitive == [] and d.last_never_indexed is None
    assert d.decode(h("be 82")) == [(b"b", b"bbb"), (b":method", b"GET")]     # 62: b
    with pytest.raises(HeaderListDropped, match="103 bytes"):
        d.decode(h("bf"))                                                    # 63: a
    assert d.decode(h("be be")) == [(b"b", b"bbb")] * 2
    assert d.decode(h("82")) == [(b":method", b"GET")]


def test_list_past_the_hard_limit_stops_decoding() -> None:
    """The bomb of test_hpack_bomb_stops_at_the_limit with a soft limit below the hard one:
    decoding goes past the soft limit keeping nothing, and stops at the first field past the
    hard limit (the invalid index at the block's end is never reached), leaving the decoder
    unusable."""
    value = b"v" * 4000
    block = h("40 01 78 7f a1 1e") + value + h("be") * 10000 + h("80")
    d = Decoder(max_table_size=8192, max_header_list_size=20000, max_header_list_hard=65536)
    with pytest.raises(HeaderListTooLarge, match="larger than 65536") as err:
        d.decode(block)
    assert f"field {65536 // 4033 + 1}," in str(err.value)
    with pytest.raises(HpackError, match="failed earlier"):
        d.decode(h("82"))
    # 0 (the default): the hard limit is the soft one, the old behaviour
    d = Decoder(max_header_list_size=100)
    assert d.max_header_list_hard == 100
    with pytest.raises(HeaderListTooLarge):
        d.decode(h("40 01 61 46") + b"a" * 70)


def test_hard_limit_is_validated() -> None:
    for soft, hard in ((100, 99), (0, 100), (100, -1)):
        with pytest.raises(ValueError, match="max_header_list_hard"):
            Decoder(max_header_list_size=soft, max_header_list_hard=hard)
    assert Decoder(max_header_list_size=100, max_header_list_hard=100).max_header_list_hard == 100


# ---------------------------------------------------------------------------------------------
# Encoder policy
# ---------------------------------------------------------------------------------------------

def test_encoder_indexes_repeated_response_fields() -> None:
    enc, dec = Encoder(), Decoder()
    resp = fields((":status", "200"), ("content-type", "text/html"), ("server", "engine"))
    first = enc.encode(resp)
    assert dec.decode(first) == resp
    assert enc.table_entries() == fields(("server", "engine"), ("content-type", "text/html"))
    second = enc.encode(resp)
    assert second == h("88 bf be")                   # all three indexed
    assert dec.decode(second) == resp


def test_encoder_sensitive_fields_never_indexed() -> None:
    enc, dec = Encoder(), Decoder()
    block = enc.encode([(b"x-token", b"secret", True), (b"set-cookie", b"sid=1"),
                        (b"authorization", b"Basic x"), (b"x-plain", b"1", False)])
    assert dec.decode(block) == fields(("x-token", "secret"), ("set-cookie", "sid=1"),
                                       ("authorization", "Basic x"), ("x-plain", "1"))
    assert dec.last_sensitive == [True, True, True, False]
    assert dec.last_never_indexed == [0, 1, 2]
    assert enc.table_entries() == fields(("x-plain", "1"))
    assert {b"authorization", b"cookie", b"set-cookie"} <= NEVER_INDEXED_NAMES
    # a second time they are still literals, never indexes
    assert dec.decode(enc.encode([(b"set-cookie", b"sid=1")])) == fields(("set-cookie", "sid=1"))
    assert dec.last_sensitive == [True]


def test_encoder_not_indexed_names() -> None:
    enc = Encoder()
    enc.encode([(b"content-length", b"1234"), (b"etag", b'"abc"'), (b"location", b"/x")])
    assert enc.table_entries() == []
    assert b"content-length" in NOT_INDEXED_NAMES
    d = Decoder()
    assert d.decode(enc.encode([(b"content-length", b"1234")])) == fields(("content-length",
                                                                            "1234"))
    assert d.last_sensitive == [False]


def test_encoder_large_values_not_inserted() -> None:
    enc = Encoder(max_table_size=4096)
    big = b"x" * (3 * 4096 // 4 - 32 - 5 + 1)        # entry just above 3/4 of the table
    ok = big[:-1]                                    # exactly 3/4
    enc.encode([(b"x-big", big)])
    assert enc.table_entries() == []
    enc.encode([(b"x-big", ok)])
    assert enc.table_entries() == [(b"x-big", ok)]


def test_encoder_huffman_only_when_shorter() -> None:
    enc = Encoder()
    # bytes with long codes: Huffman would be longer than the raw string
    raw = bytes(range(0x80, 0x90))
    block = enc.encode([(b"x-bin", raw)], huffman=True)
    assert raw in block
    assert Decoder().decode(block) == [(b"x-bin", raw)]
    block = Encoder().encode([(b"x-text", b"aaaaaaaaaaaaaaaa")], huffman=True)
    assert b"aaaaaaaaaaaaaaaa" not in block
    block = Encoder().encode([(b"x-text", b"aaaaaaaaaaaaaaaa")], huffman=False)
    assert b"aaaaaaaaaaaaaaaa" in block


def test_encoder_table_size_update_emitted_once_at_block_start() -> None:
    enc = Encoder()
    assert enc.encode([(b":status", b"200")]) == h("88")     # 4096: nothing to announce
    enc.set_max_table_size(1024)
    block = enc.encode([(b":status", b"200")])
    assert block == h("3f e1 07 88")                          # update 1024, then the field
    assert enc.table_max_size == 1024
    assert enc.encode([(b":status", b"200")]) == h("88")


def test_encoder_shrink_then_grow_signals_minimum_first() -> None:
    enc, dec = Encoder(), Decoder()
    dec.decode(enc.encode(fields(("x-a", "1"), ("x-b", "2"))))
    enc.set_max_table_size(0)
    enc.set_max_table_size(2048)
    dec.set_max_table_size(0)
    dec.set_max_table_size(2048)
    block = enc.encode(fields(("x-c", "3")))
    assert block.startswith(h("20 3f e1 0f"))                 # 0, then 2048
    assert dec.decode(block) == fields(("x-c", "3"))
    assert enc.table_entries() == dec.table_entries() == fields(("x-c", "3"))


def test_encoder_caps_its_table() -> None:
    enc = Encoder(max_table_size=1 << 20)
    block = enc.encode([(b":status", b"200")])
    assert decode_integer(block, 5) == (65536, 4)             # capped at 64 KiB
    assert enc.table_max_size == 65536


def test_encoder_evicts_in_step_with_decoder() -> None:
    enc, dec = Encoder(max_table_size=128), Decoder(max_table_size=128)
    for i in range(50):
        lst = [(b"x-n", str(i % 7).encode()), (b"x-m", str(i).encode() * 3)]
        assert dec.decode(enc.encode(lst)) == lst
        assert dec.table_entries() == enc.table_entries()
        assert enc.table_size <= 128


def test_encoder_input_types() -> None:
    enc = Encoder()
    assert Decoder().decode(enc.encode([[bytearray(b"x-a"), memoryview(b"1")]])) == \
        fields(("x-a", "1"))
    with pytest.raises(TypeError, match="bytes"):
        enc.encode([("x-a", "1")])
    with pytest.raises(ValueError, match="not 4 items"):
        enc.encode([(b"a", b"b", True, 1)])
    out = bytearray(b"prefix")
    enc.encode_to([(b":status", b"200")], out)
    assert out == b"prefix" + h("88")


def test_encoder_refused_list_leaves_table_intact() -> None:
    enc, dec = Encoder(), Decoder()
    dec.decode(enc.encode(fields(("x-a", "1"))))
    enc.set_max_table_size(2048)
    with pytest.raises(TypeError):
        enc.encode([(b"x-b", b"2"), (b"x-c", 3)])    # x-b would be inserted before the error
    assert enc.table_entries() == fields(("x-a", "1"))
    assert enc.table_max_size == 4096                # the update is still pending
    dec.set_max_table_size(2048)
    assert dec.decode(enc.encode(fields(("x-a", "1"), ("x-b", "2")))) == fields(("x-a", "1"),
                                                                              ("x-b", "2"))
    assert dec.table_entries() == enc.table_entries()
    assert dec.table_max_size == enc.table_max_size == 2048


def test_limits_are_validated() -> None:
    for bad in (-1, 2**31):
        with pytest.raises(ValueError, match="max_table_size"):
            Decoder(max_table_size=bad)
        with pytest.raises(ValueError, match="max_table_size"):
            Encoder(max_table_size=bad)
        with pytest.raises(ValueError, match="max_table_size"):
            Decoder().set_max_table_size(bad)
        with pytest.raises(ValueError, match="max_table_size"):
            Encoder().set_max_table_size(bad)
    with pytest.raises(ValueError, match="max_header_list_size"):
        Decoder(max_header_list_size=-1)
    d = Decoder(max_table_size=1234, max_header_list_size=999)
    assert (d.max_table_size, d.max_header_list_size) == (1234, 999)
    assert d.table_max_size == 1234


def test_zero_table_size() -> None:
    """A table of size 0 holds nothing: incremental indexing inserts nothing, and an index
    into the dynamic table is out of range."""
    d = Decoder(max_table_size=0)
    assert d.decode(h("40 01 61 01 62")) == fields(("a", "b"))
    assert d.table_entries() == [] and d.table_size == 0
    with pytest.raises(HpackError, match="index 62 is beyond"):
        d.decode(h("be"))
    enc = Encoder(max_table_size=0)
    block = enc.encode(fields(("x-a", "1")))
    assert block[:1] == h("20")                       # size update to 0 first
    assert enc.table_entries() == []
    assert Decoder(max_table_size=0).decode(block) == fields(("x-a", "1"))

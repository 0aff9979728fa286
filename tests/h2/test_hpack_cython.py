"""The C path of engine._hpack from Cython, as the HTTP/2 core uses it: a third-party extension
cimports Decoder/Encoder from the installed engine/_hpack.pxd and calls decode_c() on a raw
pointer and encode_into() on a bytearray, with no Python-level method call."""
import textwrap

import pytest
from cython_util import cython_module

from engine._hpack import HeaderListTooLarge, HpackError

EXT_SOURCE = textwrap.dedent('''
    # cython: language_level=3
    from engine._hpack cimport Decoder, Encoder

    def decode_via_c(Decoder d, bytes block):
        cdef const unsigned char *p = <const unsigned char *>block
        return d.decode_c(p, len(block))

    def encode_via_c(Encoder e, list headers, bytearray out):
        return e.encode_into(headers, out)

    def limits(Decoder d):
        return d.max_table_size, d.max_header_list_size, d.last_never_indexed
''')

@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    d = tmp_path_factory.mktemp("hpack_consumer")
    with cython_module(d, "hpack_consumer", EXT_SOURCE) as module:
        yield module


def test_c_path_round_trip(consumer):
    from engine._hpack import Decoder, Encoder
    enc, dec = Encoder(), Decoder(max_table_size=4096, max_header_list_size=1000)
    headers = [(b":status", b"200"), (b"server", b"engine"), (b"set-cookie", b"a=1")]
    out = bytearray(b"\x00" * 9)                      # e.g. a frame header already written
    assert consumer.encode_via_c(enc, headers, out) == 0
    block = bytes(out[9:])
    assert consumer.decode_via_c(dec, block) == headers
    assert consumer.limits(dec) == (4096, 1000, [2])
    # the second time the indexed fields are one byte each
    out = bytearray()
    consumer.encode_via_c(enc, headers, out)
    assert consumer.decode_via_c(dec, bytes(out)) == headers
    assert len(out) < len(block)


def test_c_path_errors_propagate(consumer):
    from engine._hpack import Decoder
    with pytest.raises(HpackError, match="index 0"):
        consumer.decode_via_c(Decoder(), b"\x80")
    with pytest.raises(HeaderListTooLarge):
        consumer.decode_via_c(Decoder(max_header_list_size=50), b"\x82\x84")

"""The C path of engine._hpack from Cython, as the HTTP/2 core uses it: a third-party extension
cimports Decoder/Encoder from the installed engine/_hpack.pxd and calls decode_c() on a raw
pointer and encode_into() on a bytearray, with no Python-level method call."""
import subprocess
import sys
import textwrap

import pytest

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

SETUP = textwrap.dedent('''
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="engine_hpack_consumer", script_args=["build_ext", "--inplace", "-q"],
          ext_modules=cythonize([Extension("hpack_consumer", ["hpack_consumer.pyx"])],
                                quiet=True))
''')


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    d = tmp_path_factory.mktemp("hpack_consumer")
    (d / "hpack_consumer.pyx").write_text(EXT_SOURCE)
    (d / "setup.py").write_text(SETUP)
    proc = subprocess.run([sys.executable, "setup.py"], cwd=d, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(d))
    try:
        import hpack_consumer
        yield hpack_consumer
    finally:
        sys.path.remove(str(d))


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

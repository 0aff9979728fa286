"""engine._h2's C hooks overridden from another compiled module, as the ASGI server does: an
extension cimports H2Connection from the installed engine/_h2.pxd, subclasses it, answers from
inside the hooks and reads the connection's C attributes; an exception raised by a hook
propagates out of receive() after GOAWAY INTERNAL_ERROR."""
import textwrap

import pytest
from cython_util import cython_module
from h2_wire import GET, PREFACE, Client, data, goaway_of, post, read_frames, rst, settings

from engine import _h2

EXT_SOURCE = textwrap.dedent('''
    # cython: language_level=3
    from engine._h2 cimport H2Connection, H2Limits

    cdef class Session(H2Connection):
        cdef public list log
        cdef public bint explode
        cdef public bint reenter_in_hook

        def __cinit__(self, *args, **kwargs):
            self.log = []

        cdef int on_request(self, unsigned int sid, list headers, bint end_stream) except -1:
            if self.explode:
                raise KeyError("boom")
            if self.reenter_in_hook:
                self.receive(b"")
            self.log.append(("request", sid, self.last_stream_id, self.open_streams))
            if end_stream:
                self.send_headers(sid, [(b":status", b"200")], False)
                self.send_data(sid, b"hi", True)
            return 0

        cdef int on_data(self, unsigned int sid, object data, bint end_stream) except -1:
            self.log.append(("data", sid, data, end_stream))
            self.consume(sid, len(data))
            return 0

        cdef int on_trailers(self, unsigned int sid, list headers) except -1:
            self.log.append(("trailers", sid))
            return 0

        cdef int on_stream_reset(self, unsigned int sid, unsigned int code) except -1:
            self.log.append(("reset", sid, code))
            return 0

        cdef int on_window_open(self, unsigned int sid) except -1:
            self.log.append(("window", sid))
            return 0

        cdef int on_goaway(self, unsigned int last, unsigned int code) except -1:
            self.log.append(("goaway", last, code))
            return 0

        cdef int on_connection_error(self, unsigned int code, str reason) except -1:
            self.log.append(("connection_error", code, self.closed))
            return 0
''')

@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2_consumer")
    with cython_module(d, "h2_consumer", EXT_SOURCE) as module:
        yield module


def test_hooks_from_a_cython_subclass(consumer):
    s = consumer.Session(_h2.H2Limits(max_concurrent_streams=10))
    cl = Client()
    s.receive(PREFACE + settings() + cl.headers(1, GET) + cl.headers(3, post(), end=False)
              + data(3, b"abc") + cl.headers(3, [(b"x", b"1")]) + rst(3))
    # stream 1 was answered (and so closed) inside its on_request
    assert s.log == [("request", 1, 1, 1), ("request", 3, 3, 1), ("data", 3, b"abc", False),
                     ("trailers", 3), ("reset", 3, 8)]
    frames = read_frames(s.data_to_send())
    kinds = [(t, sid) for t, _, sid, _ in frames]
    assert (_h2.HEADERS, 1) in kinds and (_h2.DATA, 1) in kinds
    assert s.open_streams == 0


def test_hook_exception_propagates(consumer):
    s = consumer.Session()
    s.explode = True
    with pytest.raises(KeyError):
        s.receive(PREFACE + settings() + Client().headers(1, GET))
    assert s.closed
    # the stream had been accepted (last-stream-id 1) when its hook raised
    assert goaway_of(read_frames(s.data_to_send())) == (1, _h2.INTERNAL_ERROR)
    assert s.receive(settings()) is None           # closed: input ignored


def test_receive_from_a_hook_is_refused(consumer):
    s = consumer.Session()
    s.reenter_in_hook = True
    with pytest.raises(RuntimeError, match="from an H2Connection hook"):
        s.receive(PREFACE + settings() + Client().headers(1, GET))
    assert s.closed

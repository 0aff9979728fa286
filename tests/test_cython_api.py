"""Watchers at C speed from Cython: a third-party extension cimports engine's declarations,
subclasses a watcher and overrides its C-level _fire(), with no Python callback involved."""
import socket
import textwrap

import pytest
from cython_util import cython_module

import engine

EXT_SOURCE = textwrap.dedent('''
    # cython: language_level=3
    from engine._loop cimport IO, Timer, Loop

    cdef class CountingIO(IO):
        cdef public int count
        cdef public int last_revents

        cdef int _fire(self, int revents) except -1:
            self.count += 1
            self.last_revents = revents
            if self.count == 3:
                self.stop()
                self.loop.stop()
            return 0
''')

@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    d = tmp_path_factory.mktemp("cython_consumer")
    with cython_module(d, "consumer", EXT_SOURCE) as module:
        yield module


def test_cython_subclass_overrides_fire(consumer):
    loop = engine.new_event_loop()
    a, b = socket.socketpair()
    try:
        w = consumer.CountingIO(loop, a, engine.READ, None)
        assert isinstance(w, engine.IO)
        w.start()
        b.send(b"x")              # never read: level-triggered, so _fire runs every iteration
        loop.run_forever()
        assert w.count == 3
        assert w.last_revents == engine.READ
        assert not w.active
    finally:
        a.close()
        b.close()
        loop.close()

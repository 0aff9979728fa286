"""Watchers at C speed from Cython: a third-party extension cimports engine's declarations,
subclasses a watcher and overrides its C-level _fire(), with no Python callback involved."""
import socket
import subprocess
import sys
import textwrap

import pytest

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

SETUP = textwrap.dedent('''
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    setup(name="engine_cython_consumer", script_args=["build_ext", "--inplace", "-q"],
          ext_modules=cythonize([Extension("consumer", ["consumer.pyx"])], quiet=True))
''')


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    d = tmp_path_factory.mktemp("cython_consumer")
    (d / "consumer.pyx").write_text(EXT_SOURCE)
    (d / "setup.py").write_text(SETUP)
    proc = subprocess.run([sys.executable, "setup.py"], cwd=d, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sys.path.insert(0, str(d))
    try:
        import consumer
        yield consumer
    finally:
        sys.path.remove(str(d))


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

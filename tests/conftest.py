import asyncio
import gc
import socket
import warnings

import pytest
from loop_case import LOOPS


@pytest.fixture(autouse=True)
def _no_unclosed_loops():
    """Every test closes what it opens: an unclosed loop shows up as a ResourceWarning here."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield
        gc.collect()
    leaked = [w for w in caught if issubclass(w.category, ResourceWarning)
              and "unclosed event loop" in str(w.message)]
    assert not leaked, [str(w.message) for w in leaked]


@pytest.fixture
def loop(request):
    """A fresh event loop, closed after the test, made by (the first there is) the test class's
    ``factory`` (the engine-vs-asyncio mixins of tests/loop_case.py), the loop named by an
    indirect parametrisation (loop_case.on_both_loops), or else engine."""
    factory = (getattr(request.cls, "factory", None)
               or LOOPS[getattr(request, "param", "engine")])
    loop = factory()
    yield loop
    if not loop.is_closed():
        loop.close()


@pytest.fixture
def sock_pair():
    """A connected pair of sockets (socket.socketpair()), both closed after the test."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def sendfile_roundtrip(loop):
    """``roundtrip(file, **kw)``: loop.sock_sendfile(sock, file, **kw) into one end of a
    socketpair, the other end read to EOF; returns (what sock_sendfile returned, the bytes)."""
    def roundtrip(file, **kw):
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)

            async def drain():
                got = bytearray()
                while chunk := await loop.sock_recv(b, 1 << 16):
                    got += chunk
                return bytes(got)

            reader = asyncio.ensure_future(drain())
            try:
                sent = await loop.sock_sendfile(a, file, **kw)
                a.shutdown(socket.SHUT_WR)
                return sent, await reader
            finally:
                reader.cancel()                 # done already, unless sock_sendfile raised
                await asyncio.gather(reader, return_exceptions=True)
                a.close()
                b.close()

        return loop.run_until_complete(main())

    return roundtrip

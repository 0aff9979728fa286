"""Behaviour of the event loop, written once and run on engine's loop AND on asyncio's own loop.

If asyncio's loop fails one of these, the test is wrong, not engine.
"""
import array
import asyncio
import contextvars
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from loop_case import LoopCase

import engine


class LoopBehaviour(LoopCase):
    """The event loop's own API: callbacks, timers, futures, sockets, signals, executors."""

    # --- callbacks --------------------------------------------------------------------------

    def test_call_soon_runs_in_fifo_order_with_args(self, loop):
        seen = []
        for i in range(5):
            loop.call_soon(seen.append, i)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert seen == [0, 1, 2, 3, 4]

    def test_call_soon_arguments_as_asyncio_takes_them(self, loop):
        # positional callback and args, callback and context as keywords (what asyncio's C
        # Future/Task pass); a missing, repeated or unknown argument is a TypeError
        got = []
        var = contextvars.ContextVar("var", default="outside")
        ctx = contextvars.copy_context()
        ctx.run(var.set, "inside")
        loop.call_soon(got.append, "positional")
        loop.call_soon(callback=lambda: got.append("keyword"))
        loop.call_soon(lambda *a: got.append(a), 1, 2, 3, context=ctx)
        loop.call_soon(lambda: got.append(var.get()), context=ctx)
        for bad in ({}, {"foo": 1}):
            with pytest.raises(TypeError):
                loop.call_soon(**bad)
        with pytest.raises(TypeError):
            loop.call_soon(got.append, callback=got.append)
        with pytest.raises(TypeError):
            loop.call_soon(got.append, "x", nope=1)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert got == ["positional", "keyword", (1, 2, 3), "inside"]

    # --- a loop busy with callbacks still serves fds, signals and other threads -----------------
    # (engine skips the zero-timeout poll of a busy iteration when it watches no fd but its
    # own: these would fail if it skipped it when something else was watched)

    def _busy_chain(self, loop, until, limit=100_000):
        """Keep the loop busy: a callback that reschedules itself until ``until()`` is true
        (or ``limit`` iterations, then the test fails); returns the iterations it ran."""
        count = [0]

        def step():
            count[0] += 1
            if until() or count[0] >= limit:
                loop.stop()
            else:
                loop.call_soon(step)

        loop.call_soon(step)
        loop.run_forever()
        assert count[0] < limit, "the loop never got to the event"
        return count[0]

    def test_busy_loop_runs_a_reader_added_while_busy(self, loop):
        a, b = socket.socketpair()
        try:
            got = []
            started = []

            def start():
                loop.add_reader(a, lambda: got.append(a.recv(10)))
                b.send(b"x")
                started.append(len(started))

            loop.call_soon(start)
            self._busy_chain(loop, lambda: bool(got))
            assert got == [b"x"]              # seen while callbacks kept the loop busy
            loop.remove_reader(a)
        finally:
            a.close()
            b.close()

    def test_busy_loop_runs_call_soon_threadsafe_from_another_thread(self, loop):
        got = []
        t = threading.Thread(target=lambda: loop.call_soon_threadsafe(got.append, "t"))
        loop.call_soon(t.start)
        self._busy_chain(loop, lambda: bool(got))
        t.join()
        assert got == ["t"]

    @pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals")
    def test_busy_loop_runs_a_signal_handler(self, loop):
        got = []
        loop.add_signal_handler(signal.SIGUSR1, got.append, "usr1")
        try:
            loop.call_soon(os.kill, os.getpid(), signal.SIGUSR1)
            self._busy_chain(loop, lambda: bool(got))
            assert got == ["usr1"]
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)

    def test_callbacks_scheduled_during_iteration_run_in_next_one(self, loop):
        order = []

        def first():
            order.append("first")
            loop.call_soon(order.append, "scheduled-by-first")

        loop.call_soon(first)
        loop.call_soon(order.append, "second")
        loop.call_soon(loop.stop)
        loop.run_forever()
        # stop() was queued before "scheduled-by-first": the loop stops after the iteration
        assert order == ["first", "second"]
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert order == ["first", "second", "scheduled-by-first"]

    def test_stop_before_run_forever_runs_one_iteration(self, loop):
        seen = []
        loop.call_soon(seen.append, 1)
        loop.stop()
        loop.run_forever()
        assert seen == [1]
        assert not loop.is_running()

    def test_cancelled_handle_does_not_run(self, loop):
        seen = []
        h = loop.call_soon(seen.append, "x")
        assert not h.cancelled()
        h.cancel()
        assert h.cancelled()
        h.cancel()  # idempotent
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert seen == []

    def test_context_is_captured_and_explicit_context_used(self, loop):
        var = contextvars.ContextVar("var", default="default")
        got = []
        var.set("captured")
        loop.call_soon(lambda: got.append(var.get()))
        ctx = contextvars.Context()
        ctx.run(var.set, "explicit")
        h = loop.call_soon(lambda: got.append(var.get()), context=ctx)
        var.set("changed-after")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert got == ["captured", "explicit"]
        if hasattr(h, "get_context"):
            assert h.get_context() is ctx

    def test_callback_changes_to_context_stay_in_its_context(self, loop):
        var = contextvars.ContextVar("var", default=0)
        ctx = contextvars.copy_context()
        loop.call_soon(var.set, 5, context=ctx)
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert ctx[var] == 5
        assert var.get() == 0

    def test_handle_repr_names_the_callback(self, loop):
        def my_callback():
            pass

        h = loop.call_soon(my_callback)
        assert "my_callback" in repr(h)
        t = loop.call_later(10, my_callback)
        assert "when=" in repr(t) and "my_callback" in repr(t)
        t.cancel()
        assert "cancelled" in repr(t)
        h.cancel()

    # --- timers -----------------------------------------------------------------------------

    def test_call_later_orders_by_deadline(self, loop):
        seen = []
        loop.call_later(0.03, seen.append, 3)
        loop.call_later(0.01, seen.append, 1)
        loop.call_later(0.02, seen.append, 2)
        loop.call_later(0.04, loop.stop)
        loop.run_forever()
        assert seen == [1, 2, 3]

    def test_call_at_uses_loop_time_and_when(self, loop):
        t0 = loop.time()
        fired = []
        h = loop.call_at(t0 + 0.02, lambda: fired.append(loop.time()))
        assert h.when() == pytest.approx(t0 + 0.02)
        loop.call_at(t0 + 0.03, loop.stop)
        loop.run_forever()
        assert fired and fired[0] >= t0 + 0.02

    def test_timer_never_fires_early(self, loop):
        deadlines = []

        def cb(when):
            deadlines.append((when, loop.time()))

        for d in (0.001, 0.005, 0.0105, 0.02):
            h = loop.call_later(d, lambda: None)
            loop.call_at(h.when(), cb, h.when())
        loop.call_later(0.03, loop.stop)
        loop.run_forever()
        assert len(deadlines) == 4
        for when, now in deadlines:
            assert now >= when

    def test_loop_time_is_monotonic_clock(self, loop):
        a = time.monotonic()
        b = loop.time()
        c = time.monotonic()
        assert a <= b <= c

    def test_cancelled_timer_does_not_run(self, loop):
        seen = []
        h = loop.call_later(0.01, seen.append, "late")
        h.cancel()
        loop.call_later(0.02, loop.stop)
        loop.run_forever()
        assert seen == []

    def test_none_delay_or_when_rejected(self, loop):
        with pytest.raises(TypeError):
            loop.call_later(None, lambda: None)
        with pytest.raises(TypeError):
            loop.call_at(None, lambda: None)

    # --- run_until_complete / stop / close --------------------------------------------------

    def test_run_until_complete_returns_result(self, loop):
        async def coro():
            await asyncio.sleep(0)
            return 42

        assert loop.run_until_complete(coro()) == 42

    def test_run_until_complete_raises_the_exception(self, loop):
        async def coro():
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            loop.run_until_complete(coro())

    def test_run_until_complete_stopped_early(self, loop):
        fut = loop.create_future()
        loop.call_soon(loop.stop)
        with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
            loop.run_until_complete(fut)

    @staticmethod
    def _refused_while_running(loop, call):
        """The RuntimeError messages ``call()`` raises from a callback of the running loop."""
        errors = []

        def attempt():
            try:
                call()
            except RuntimeError as e:
                errors.append(str(e))
            loop.stop()

        loop.call_soon(attempt)
        loop.run_forever()
        return errors

    def test_run_forever_not_reentrant(self, loop):
        errors = self._refused_while_running(loop, loop.run_forever)
        assert errors == ["This event loop is already running"]

    def test_is_running_inside_callbacks(self, loop):
        states = []
        loop.call_soon(lambda: states.append(loop.is_running()))
        loop.call_soon(loop.stop)
        assert not loop.is_running()
        loop.run_forever()
        assert states == [True]
        assert not loop.is_running()

    def test_running_loop_is_set_while_running(self, loop):
        got = []
        loop.call_soon(lambda: got.append(asyncio.get_running_loop()))
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert got == [loop]
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()

    def test_closed_loop_refuses_work(self, loop):
        loop.close()
        assert loop.is_closed()
        loop.close()  # idempotent
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.call_soon(lambda: None)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.call_later(1, lambda: None)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.call_soon_threadsafe(lambda: None)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.run_forever()
        coro = asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.run_until_complete(coro)
        coro.close()
        with pytest.raises(RuntimeError, match="Event loop is closed"):
            loop.run_in_executor(None, lambda: None)

    def test_close_while_running_raises(self, loop):
        errors = self._refused_while_running(loop, loop.close)
        assert errors == ["Cannot close a running event loop"]

    # --- exceptions -------------------------------------------------------------------------

    def test_callback_exception_reaches_handler_and_loop_continues(self, loop):
        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        def bad():
            raise ZeroDivisionError("oops")

        after = []
        loop.call_soon(bad)
        loop.call_soon(after.append, "still running")
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert after == ["still running"]
        assert len(contexts) == 1
        ctx = contexts[0]
        assert isinstance(ctx["exception"], ZeroDivisionError)
        assert ctx["message"].startswith("Exception in callback")
        assert "bad" in ctx["message"]
        assert "handle" in ctx

    def test_default_handler_logs_to_asyncio_logger(self, loop, caplog):
        def bad():
            raise KeyError("k")

        loop.call_soon(bad)
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.run_forever()
        records = [r for r in caplog.records if r.name == "asyncio"]
        assert records and records[0].getMessage().startswith("Exception in callback")
        assert records[0].exc_info[0] is KeyError

    def test_failing_custom_handler_falls_back_to_default(self, loop, caplog):
        def handler(lp, ctx):
            raise RuntimeError("handler broke")

        loop.set_exception_handler(handler)
        assert loop.get_exception_handler() is handler
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.run_forever()
        msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
        assert any(m.startswith("Unhandled error in exception handler") for m in msgs)

    def test_call_exception_handler_default_message(self, loop, caplog):
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            loop.call_exception_handler({"foo": "bar"})
        msg = caplog.records[-1].getMessage()
        assert msg.splitlines()[0] == "Unhandled exception in event loop"
        assert "foo: 'bar'" in msg

    def test_set_exception_handler_type_check(self, loop):
        with pytest.raises(TypeError):
            loop.set_exception_handler("not callable")

    def test_keyboard_interrupt_propagates_from_callback(self, loop):
        def interrupt():
            raise KeyboardInterrupt

        loop.call_soon(interrupt)
        with pytest.raises(KeyboardInterrupt):
            loop.run_forever()
        assert not loop.is_running()

    # --- threads ----------------------------------------------------------------------------

    def test_call_soon_threadsafe_wakes_a_blocked_loop(self, loop):
        got = []

        def worker():
            time.sleep(0.05)
            loop.call_soon_threadsafe(got.append, threading.get_ident())
            loop.call_soon_threadsafe(loop.stop)

        th = threading.Thread(target=worker)
        th.start()
        loop.run_forever()  # blocks with nothing scheduled until the thread wakes it
        th.join()
        assert got and got[0] != threading.get_ident()

    def test_run_in_executor(self, loop):
        async def main():
            r = await loop.run_in_executor(None, sum, [1, 2, 3])
            name = await loop.run_in_executor(None, lambda: threading.current_thread().name)
            return r, name

        r, name = loop.run_until_complete(main())
        assert r == 6
        assert name != threading.current_thread().name
        loop.run_until_complete(loop.shutdown_default_executor())

    def test_set_default_executor_type_check(self, loop):
        with pytest.raises(TypeError):
            loop.set_default_executor(object())

    def test_getaddrinfo_and_getnameinfo(self, loop):
        infos = loop.run_until_complete(loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM))
        assert infos[0][4] == ("127.0.0.1", 80)
        host, port = loop.run_until_complete(
            loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))
        assert (host, port) == ("127.0.0.1", "80")
        loop.run_until_complete(loop.shutdown_default_executor())

    def test_debug_mode_rejects_calls_from_other_threads(self, loop):
        loop.set_debug(True)
        assert loop.get_debug()
        errors = []

        def other_thread():
            try:
                loop.call_soon(lambda: None)
            except RuntimeError as e:
                errors.append(str(e))
            loop.call_soon_threadsafe(loop.stop)

        def start():
            threading.Thread(target=other_thread).start()

        loop.call_soon(start)
        loop.run_forever()
        assert errors and "Non-thread-safe operation" in errors[0]

    def test_debug_mode_reports_slow_callbacks(self, loop, caplog):
        loop.set_debug(True)
        loop.slow_callback_duration = 0.0

        def slowish():
            pass

        loop.call_soon(slowish)
        loop.call_soon(loop.stop)
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.run_forever()
        msgs = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
        assert any(m.startswith("Executing") and "slowish" in m for m in msgs)

    def test_debug_mode_rejects_coroutine_callbacks(self, loop):
        loop.set_debug(True)

        async def coro():
            pass

        with pytest.raises(TypeError):
            loop.call_soon(coro)

    # --- fds --------------------------------------------------------------------------------

    def test_add_reader_called_when_readable(self, loop, sock_pair):
        a, b = sock_pair
        got = []

        def on_read():
            got.append(a.recv(100))
            loop.remove_reader(a)
            loop.stop()

        assert loop.add_reader(a, on_read) is None
        loop.call_later(0.01, b.send, b"ping")
        loop.run_forever()
        assert got == [b"ping"]
        assert loop.remove_reader(a) is False

    def test_add_reader_is_level_triggered(self, loop, sock_pair):
        a, b = sock_pair
        calls = []
        b.send(b"x")

        def on_read():
            calls.append(1)
            if len(calls) == 3:
                loop.stop()

        loop.add_reader(a.fileno(), on_read)
        loop.run_forever()  # never reads: called again every iteration
        assert len(calls) == 3
        assert loop.remove_reader(a.fileno()) is True

    def test_add_reader_replaces_previous_reader(self, loop, sock_pair):
        a, b = sock_pair
        got = []
        loop.add_reader(a, got.append, "old")
        loop.add_reader(a, lambda: (got.append("new"), loop.stop()))
        b.send(b"x")
        loop.run_forever()
        assert got == ["new"]
        assert loop.remove_reader(a)

    def test_add_writer_called_when_writable(self, loop, sock_pair):
        a, b = sock_pair
        got = []
        loop.add_writer(a, lambda: (got.append("w"), loop.stop()))
        loop.run_forever()
        assert got == ["w"]
        assert loop.remove_writer(a) is True
        assert loop.remove_writer(a) is False

    def test_reader_and_writer_on_same_fd(self, loop, sock_pair):
        a, b = sock_pair
        got = set()

        def done():
            if got == {"r", "w"}:
                loop.stop()

        loop.add_writer(a, lambda: (got.add("w"), loop.remove_writer(a), done()))
        loop.add_reader(a, lambda: (got.add("r"), a.recv(10), loop.remove_reader(a), done()))
        b.send(b"x")
        loop.run_forever()
        assert got == {"r", "w"}

    def test_bad_fds_raise_like_asyncio(self, loop):
        with pytest.raises(ValueError):
            loop.add_reader(-1, lambda: None)
        with pytest.raises(ValueError):
            loop.add_writer(object(), lambda: None)
        s = socket.socket()
        fd = s.fileno()
        s.close()
        with pytest.raises(OSError):
            loop.add_reader(fd, lambda: None)
        assert loop.remove_reader(fd) is False

    def test_regular_file_cannot_be_watched(self, loop):
        with tempfile.TemporaryFile() as f:
            with pytest.raises(OSError):
                loop.add_reader(f.fileno(), lambda: None)

    # --- signals ----------------------------------------------------------------------------

    def test_signal_handler_runs_in_loop(self, loop):
        got = []
        loop.add_signal_handler(signal.SIGUSR1, lambda *a: (got.append(a), loop.stop()), "arg")
        try:
            loop.call_later(0.01, os.kill, os.getpid(), signal.SIGUSR1)
            loop.run_forever()
            assert got == [("arg",)]
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1) is True
        assert loop.remove_signal_handler(signal.SIGUSR1) is False
        assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL

    def test_signal_handler_argument_checks(self, loop):
        with pytest.raises(TypeError):
            loop.add_signal_handler("x", lambda: None)
        with pytest.raises(ValueError):
            loop.add_signal_handler(100000, lambda: None)

        async def coro():
            pass

        with pytest.raises(TypeError):
            loop.add_signal_handler(signal.SIGUSR1, coro)
        with pytest.raises(RuntimeError):
            loop.add_signal_handler(signal.SIGKILL, lambda: None)

    def test_sigint_in_runner_interrupts_main_task(self):
        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, os.kill, os.getpid(), signal.SIGINT)
            await asyncio.sleep(10)

        # asyncio.Runner only takes over SIGINT from Python's default handler; a test process
        # started in the background by a shell inherits SIGINT ignored
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with asyncio.Runner(loop_factory=type(self).factory) as runner:
                with pytest.raises(KeyboardInterrupt):
                    runner.run(main())
        finally:
            signal.signal(signal.SIGINT, previous)

    # --- low-level socket operations --------------------------------------------------------

    def test_sock_ops_tcp_roundtrip_and_large_sendall(self, loop):
        async def main():
            srv = socket.socket()
            srv.bind(("127.0.0.1", 0))
            srv.listen()
            srv.setblocking(False)
            cli = socket.socket()
            cli.setblocking(False)
            accept = asyncio.ensure_future(loop.sock_accept(srv))
            await loop.sock_connect(cli, srv.getsockname())
            conn, addr = await accept
            assert conn.gettimeout() == 0 and addr == cli.getsockname()
            payload = bytes(range(256)) * 20000          # 5 MB: sendall must wait for the reader
            sender = asyncio.ensure_future(loop.sock_sendall(cli, payload))
            got = bytearray()
            while len(got) < len(payload):
                got += await loop.sock_recv(conn, 65536)
            assert await sender is None
            assert got == payload                         # every byte, in order
            buf = bytearray(8)
            await loop.sock_sendall(conn, b"pong")
            assert await loop.sock_recv_into(cli, buf) == 4 and buf[:4] == b"pong"
            for s in (srv, cli, conn):
                s.close()

        loop.run_until_complete(main())

    def test_sock_recv_cancelled_then_reused(self, loop):
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            t = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            t.cancel()
            with pytest.raises(asyncio.CancelledError):
                await t
            await loop.sock_sendall(b, b"after")
            assert await loop.sock_recv(a, 10) == b"after"
            a.close()
            b.close()

        loop.run_until_complete(main())

    # engine keeps a socket's edge-triggered registration between sock_*() calls: whoever
    # comes next on that fd number must still get what asyncio gives it

    @staticmethod
    async def _parked_recv(loop, sock, peer, data):
        """sock_recv(sock) waits (parked in the loop) before peer sends data; returns what it got."""
        t = asyncio.ensure_future(loop.sock_recv(sock, 10))
        await asyncio.sleep(0)
        peer.send(data)
        return await t

    def test_sock_ops_on_a_new_socket_that_reuses_a_closed_ones_fd(self, loop):
        async def main():
            for _ in range(3):
                a, b = socket.socketpair()
                a.setblocking(False)
                assert await self._parked_recv(loop, a, b, b"one") == b"one"
                fd = a.fileno()
                a.close()
                b.close()
                c, d = socket.socketpair()        # the lowest free numbers: c takes a's fd
                c.setblocking(False)
                assert c.fileno() == fd
                assert await self._parked_recv(loop, c, d, b"two") == b"two"
                c.close()
                d.close()

        self.run(loop, main())

    def test_add_reader_after_sock_ops_is_level_triggered(self, loop):
        # unread data: the reader is called again and again until it is removed
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            try:
                assert await self._parked_recv(loop, a, b, b"abc") == b"abc"
                calls = []
                done = loop.create_future()

                def on_readable():
                    calls.append(1)
                    if len(calls) == 5:
                        loop.remove_reader(a)
                        done.set_result(None)

                b.send(b"unread")
                loop.add_reader(a, on_readable)
                await done
                assert len(calls) == 5
                assert a.recv(10) == b"unread"
            finally:
                a.close()
                b.close()

        self.run(loop, main())

    def test_transport_after_sock_ops_on_the_same_socket(self, loop):
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            t = asyncio.ensure_future(loop.sock_recv(a, 10))
            await asyncio.sleep(0)
            await loop.sock_sendall(b, b"raw")
            assert await t == b"raw"
            reader, writer = await asyncio.open_connection(sock=a)
            await loop.sock_sendall(b, b"line\n")
            assert await reader.readline() == b"line\n"
            writer.write(b"back")
            await writer.drain()
            assert await loop.sock_recv(b, 10) == b"back"
            writer.close()
            await writer.wait_closed()
            b.close()

        self.run(loop, main())

    def test_sock_ops_after_a_dup_outlives_the_closed_socket(self, loop):
        # a's file stays open through a2 after a is closed: bytes arriving on it must not
        # reach the socket that now has a's fd number, nor stop it from getting its own
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            assert await self._parked_recv(loop, a, b, b"first") == b"first"
            a2 = a.dup()
            fd = a.fileno()
            a.close()
            c, d = socket.socketpair()
            c.setblocking(False)
            try:
                assert fd in (c.fileno(), d.fileno())
                s, peer = (c, d) if c.fileno() == fd else (d, c)
                s.setblocking(False)
                t = asyncio.ensure_future(loop.sock_recv(s, 10))
                await asyncio.sleep(0)
                b.send(b"to-a2")                  # readable on a2's (and the old a's) file
                for _ in range(10):
                    await asyncio.sleep(0)
                assert not t.done()
                peer.send(b"mine")
                assert await t == b"mine"
                a2.setblocking(True)
                assert a2.recv(10) == b"to-a2"
            finally:
                for x in (a2, b, c, d):
                    x.close()

        self.run(loop, main())

    def test_sock_connect_refused_and_datagrams(self, loop):
        async def main():
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            probe.close()                                 # nothing listens there now
            s = socket.socket()
            s.setblocking(False)
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(s, ("127.0.0.1", port))
            s.close()
            u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u1.bind(("127.0.0.1", 0))
            u1.setblocking(False)
            u2.setblocking(False)
            r = asyncio.ensure_future(loop.sock_recvfrom(u1, 100))
            await asyncio.sleep(0)
            assert await loop.sock_sendto(u2, b"dgram", u1.getsockname()) == 5
            data, addr = await r
            assert data == b"dgram" and addr[1] == u2.getsockname()[1]
            u1.close()
            u2.close()

        loop.run_until_complete(main())

    def test_sock_ops_reject_blocking_socket_in_debug(self, loop):
        loop.set_debug(True)
        s = socket.socket()
        try:
            with pytest.raises(ValueError):
                loop.run_until_complete(loop.sock_recv(s, 1))
        finally:
            s.close()

    def test_sock_sendfile_whole_file_offset_count_and_position(self, sendfile_roundtrip,
                                                               tmp_path):
        content = bytes(range(256)) * 8000               # 2 MB: more than a socket buffer
        path = tmp_path / "blob"
        path.write_bytes(content)
        with open(path, "rb") as f:
            sent, data = sendfile_roundtrip(f)
            assert sent == len(content) and data == content
            assert f.tell() == len(content)
        with open(path, "rb") as f:
            sent, data = sendfile_roundtrip(f, offset=1000, count=50000)
            assert sent == 50000 and data == content[1000:51000]
            assert f.tell() == 51000
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        with open(empty, "rb") as f:
            assert sendfile_roundtrip(f) == (0, b"")

    def test_sock_sendfile_falls_back_for_non_files(self, loop, sendfile_roundtrip):
        import io
        content = b"not a regular file " * 10000
        sent, data = sendfile_roundtrip(io.BytesIO(content))
        assert sent == len(content) and data == content
        with pytest.raises(asyncio.SendfileNotAvailableError):
            sendfile_roundtrip(io.BytesIO(content), fallback=False)
        loop.run_until_complete(loop.shutdown_default_executor())

    def test_sock_sendfile_argument_checks(self, loop, tmp_path):
        path = tmp_path / "f"
        path.write_bytes(b"x")
        s = socket.socket()
        s.setblocking(False)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setblocking(False)
        try:
            with open(path, "rb") as f:
                for kw, exc in (({"count": 0}, ValueError), ({"offset": -1}, ValueError),
                                ({"count": "1"}, TypeError), ({"offset": 1.5}, TypeError)):
                    with pytest.raises(exc):
                        loop.run_until_complete(loop.sock_sendfile(s, f, **kw))
                with pytest.raises(ValueError):
                    loop.run_until_complete(loop.sock_sendfile(u, f))
            with open(path) as f:
                with pytest.raises(ValueError):
                    loop.run_until_complete(loop.sock_sendfile(s, f))
        finally:
            s.close()
            u.close()

    # --- stream transports ------------------------------------------------------------------

    def test_protocol_flow_control_and_eof(self, loop):
        events = []
        done = loop.create_future()

        class Sink(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                self.data = bytearray()
                tr.pause_reading()                      # a slow reader: the writer must pause
                assert not tr.is_reading()
                loop.call_later(0.05, tr.resume_reading)

            def data_received(self, data):
                self.data += data

            def eof_received(self):
                done.set_result(bytes(self.data))

        class Source(asyncio.Protocol):
            def connection_made(self, tr):
                self.tr = tr
                tr.set_write_buffer_limits(high=64 * 1024)
                tr.writelines([b"a" * 1000, bytearray(b"b" * 1000), memoryview(b"c" * 1000)])
                for _ in range(100):
                    tr.write(b"x" * 65536)
                events.append(("buffered", tr.get_write_buffer_size() > 0))
                tr.write_eof()

            def pause_writing(self):
                events.append("pause")

            def resume_writing(self):
                events.append("resume")

        async def main():
            server = await loop.create_server(Sink, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            tr, proto = await loop.create_connection(Source, "127.0.0.1", port)
            data = await asyncio.wait_for(done, 10)
            tr.close()
            server.close()
            await server.wait_closed()
            return data

        data = loop.run_until_complete(main())
        assert data == b"a" * 1000 + b"b" * 1000 + b"c" * 1000 + b"x" * 65536 * 100
        assert ("buffered", True) in events
        assert events.index("pause") < events.index("resume")

    def test_write_takes_bytes_bytearray_and_any_memoryview(self, loop):
        # every bytes-like kind is sent as its bytes (a memoryview's nbytes, whatever its item
        # format), a mutable buffer may be reused as soon as write() returns, and a buffer that
        # is not C-contiguous is a fatal write error, as in asyncio
        a, b = socket.socketpair()
        errors = []
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        words = array.array("I", [1, 2, 3])

        async def main():
            tr, _ = await loop.create_connection(asyncio.Protocol, sock=a)
            buf = bytearray(b"mutable")
            tr.write(buf)
            buf[:] = b"changed"
            tr.write(b"bytes")
            tr.write(memoryview(b"..view..")[2:6])
            tr.write(memoryview(bytearray(b"rw")))
            tr.write(memoryview(words))
            tr.write(memoryview(b""))
            tr.write(bytearray())
            tr.writelines([memoryview(b"AB"), bytearray(b"CD"), b"EF"])
            # sent at once (epoll), or by the send request of the next iteration (io_uring)
            for _ in range(100):
                if not tr.get_write_buffer_size():
                    break
                await asyncio.sleep(0.001)
            assert tr.get_write_buffer_size() == 0 and not errors
            tr.write(memoryview(b"abcdef")[::2])
            for _ in range(100):
                if errors and tr.is_closing():
                    break
                await asyncio.sleep(0.01)
            return tr

        try:
            tr = loop.run_until_complete(main())
            assert tr.is_closing()
            assert len(errors) == 1 and isinstance(errors[0]["exception"], BufferError)
            b.settimeout(10)
            got = b""
            while chunk := b.recv(65536):
                got += chunk
        finally:
            b.close()
        assert got == b"mutable" + b"bytes" + b"view" + b"rw" + words.tobytes() + b"ABCDEF"

    def test_buffered_protocol_receives_into_numpy(self, loop):
        import numpy as np
        target = np.zeros(1 << 20, dtype=np.uint8)
        done = loop.create_future()

        class Into(asyncio.BufferedProtocol):
            pos = 0

            def get_buffer(self, sizehint):
                return memoryview(target)[self.pos:]   # straight into the array, no copy

            def buffer_updated(self, nbytes):
                self.pos += nbytes
                if self.pos == len(target):
                    done.set_result(self.pos)

            def eof_received(self):
                if not done.done():
                    done.set_result(self.pos)

        payload = (np.arange(1 << 20) % 251).astype(np.uint8)

        async def main():
            server = await loop.create_server(Into, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(payload.tobytes())
            await w.drain()
            n = await asyncio.wait_for(done, 10)
            w.close()
            await w.wait_closed()
            server.close()
            await server.wait_closed()
            return n

        assert loop.run_until_complete(main()) == len(target)
        assert (target == payload).all()

    # --- tasks, asyncgens -------------------------------------------------------------------

    def test_create_task_name_and_factory(self, loop):
        async def coro():
            return asyncio.current_task().get_name()

        t = loop.create_task(coro(), name="named")
        assert loop.run_until_complete(t) == "named"
        made = []

        def factory(lp, c, **kw):
            made.append(c)
            return asyncio.Task(c, loop=lp, **kw)

        loop.set_task_factory(factory)
        assert loop.get_task_factory() is factory
        assert loop.run_until_complete(loop.create_task(coro(), name="f")) == "f"
        assert len(made) == 1
        with pytest.raises(TypeError):
            loop.set_task_factory(1)

    def test_create_future_belongs_to_loop(self, loop):
        fut = loop.create_future()
        assert fut.get_loop() is loop
        loop.call_soon(fut.set_result, "r")
        assert loop.run_until_complete(fut) == "r"

    def test_shutdown_asyncgens_finalizes_open_generators(self, loop):
        closed = []

        async def agen():
            try:
                yield 1
                yield 2
            finally:
                closed.append(True)

        async def main():
            g = agen()
            assert await g.__anext__() == 1
            return g

        g = loop.run_until_complete(main())
        assert closed == []
        loop.run_until_complete(loop.shutdown_asyncgens())
        assert closed == [True]
        del g

    def test_gather_and_wait_for(self, loop):
        async def work(i):
            await asyncio.sleep(0.001 * (i % 3))
            return i

        async def main():
            r = await asyncio.gather(*(work(i) for i in range(50)))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.sleep(5), 0.01)
            return r

        assert loop.run_until_complete(main()) == list(range(50))

    def test_runner_with_loop_factory(self):
        async def main():
            return type(asyncio.get_running_loop())

        with asyncio.Runner(loop_factory=type(self).factory) as runner:
            t = runner.run(main())
            assert isinstance(runner.get_loop(), t)


class TestEngineLoop(LoopBehaviour):
    factory = staticmethod(engine.new_event_loop)

    def test_busy_poll_setting_and_environment(self, loop):
        assert loop.get_busy_poll() == 100.0           # the default window, microseconds
        loop.set_busy_poll(0)
        assert loop.get_busy_poll() == 0.0
        loop.set_busy_poll(250)
        assert loop.get_busy_poll() == 250.0
        for bad in (-1, 2e6, float("nan")):
            with pytest.raises(ValueError):
                loop.set_busy_poll(bad)
        with pytest.raises((TypeError, ValueError)):
            loop.set_busy_poll("fast")
        code = "import engine; l = engine.new_event_loop(); print(l.get_busy_poll()); l.close()"
        env = dict(os.environ, ENGINE_BUSY_POLL_US="0")
        run = dict(env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
        out = subprocess.run([sys.executable, "-c", code], check=True, **run).stdout
        assert out.strip() == "0.0"
        env["ENGINE_BUSY_POLL_US"] = "lots"
        r = subprocess.run([sys.executable, "-c", code], **run)
        assert r.returncode != 0 and "ENGINE_BUSY_POLL_US='lots'" in r.stderr

    def test_poll_gap_setting_and_environment(self, loop):
        assert loop.get_poll_gap() == 250.0            # the default, microseconds
        loop.set_poll_gap(0)
        assert loop.get_poll_gap() == 0.0
        for bad in (-1, 2e6, float("nan")):
            with pytest.raises(ValueError):
                loop.set_poll_gap(bad)
        code = "import engine; l = engine.new_event_loop(); print(l.get_poll_gap()); l.close()"
        env = dict(os.environ, ENGINE_POLL_GAP_US="40")
        run = dict(env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
        out = subprocess.run([sys.executable, "-c", code], check=True, **run).stdout
        assert out.strip() == "40.0"
        env["ENGINE_POLL_GAP_US"] = "-5"
        r = subprocess.run([sys.executable, "-c", code], **run)
        assert r.returncode != 0 and "ENGINE_POLL_GAP_US='-5'" in r.stderr

    def test_poll_gap_0_polls_in_every_busy_iteration(self, loop):
        # as asyncio: the poll of the very next iteration sees a reader added while busy
        loop.set_poll_gap(0)
        a, b = socket.socketpair()
        try:
            got = []

            def start():
                loop.add_reader(a, lambda: got.append(a.recv(10)))
                b.send(b"x")

            loop.call_soon(start)
            assert self._busy_chain(loop, lambda: bool(got)) <= 3
            assert got == [b"x"]
            loop.remove_reader(a)
        finally:
            a.close()
            b.close()

    def test_busy_loop_skips_polls_within_the_gap(self, loop):
        # a reader is watched, but a busy iteration polls only once the gap has passed since
        # the last poll: with a gap of a whole second, a thousand busy iterations see nothing
        loop.set_poll_gap(1e6)
        a, b = socket.socketpair()
        try:
            got = []
            loop.add_reader(a, lambda: got.append(a.recv(10)))
            b.send(b"x")
            self._busy_chain(loop, lambda: bool(got))    # the first poll in a second: seen
            assert got == [b"x"]
            b.send(b"y")
            with pytest.raises(AssertionError, match="never got to the event"):
                self._busy_chain(loop, lambda: len(got) > 1, limit=1000)
            assert got == [b"x"]
            loop.set_poll_gap(0)
            self._busy_chain(loop, lambda: len(got) > 1)
            assert got == [b"x", b"y"]                  # nothing lost: the next poll has it
        finally:
            loop.remove_reader(a)
            a.close()
            b.close()

    def test_sock_pingpong_keeps_its_registration(self, loop):
        # sock_*() waits are edge-triggered and the registration stays between operations:
        # after the first wait, a ping-pong changes nothing with the kernel
        async def main():
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)

            async def echo():
                for _ in range(200):
                    await loop.sock_sendall(b, await loop.sock_recv(b, 64))

            task = asyncio.ensure_future(echo())
            await asyncio.sleep(0)
            before = loop._stats()["poller_updates"]
            for i in range(200):
                await loop.sock_sendall(a, b"%d" % i)
                assert await loop.sock_recv(a, 64) == b"%d" % i
            await task
            updates = loop._stats()["poller_updates"] - before
            a.close()
            b.close()
            return updates

        updates = self.run(loop, main())
        if loop.backend == "io_uring":
            # by design nothing is kept there (a poll request holds its file open): each wait
            # is a one-shot request that ends by itself when it fires
            assert updates > 200
        else:
            assert updates <= 2

    @pytest.mark.parametrize("window", [0, 100, 5000])
    def test_busy_polling_loses_no_event_timer_or_wakeup(self, loop, window):
        # ping-pong over a socketpair keeps the loop busy-polling; timers fall due and another
        # thread wakes the loop meanwhile, and every byte arrives in order
        loop.set_busy_poll(window)
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)

        async def main():
            timer_fired = loop.create_future()
            loop.call_later(0.05, timer_fired.set_result, "timer")
            woken = loop.create_future()
            threading.Timer(0.05, loop.call_soon_threadsafe, (woken.set_result, "thread")).start()
            got = bytearray()

            async def echo():                       # the peer: waits for every message
                while True:
                    data = await loop.sock_recv(b, 8)
                    if not data:
                        return
                    got.extend(data)
                    await loop.sock_sendall(b, data)

            peer = loop.create_task(echo())
            n = 0
            while not (timer_fired.done() and woken.done()) or n < 200:
                msg = b"%08d" % n
                await loop.sock_sendall(a, msg)
                assert await loop.sock_recv(a, 8) == msg
                n += 1
            a.shutdown(socket.SHUT_WR)
            await peer
            assert bytes(got) == b"".join(b"%08d" % i for i in range(n))
            # idle now: the window shrinks and the loop sleeps until the next timer
            await asyncio.sleep(0.02)
            return await timer_fired, await woken

        try:
            assert loop.run_until_complete(asyncio.wait_for(main(), 10)) == ("timer", "thread")
        finally:
            a.close()
            b.close()

    def test_call_before_poll_runs_at_the_end_of_the_iteration(self, loop):
        # inside one iteration: a ready callback, an fd event and a timer each ask for work at
        # the iteration's end; it runs after all three and before the next iteration's
        # callbacks (call_soon from the same callbacks); FIFO; a cancelled one never runs
        order = []
        a, b = socket.socketpair()
        b.send(b"x")                                     # a is readable from the start

        def on_readable():
            loop.remove_reader(a)
            order.append("fd")
            loop.call_before_poll(order.append, "end-fd")

        def first():
            order.append("ready")
            loop.call_before_poll(order.append, "end-ready")
            loop.call_before_poll(order.append, "never").cancel()
            loop.call_soon(order.append, "next-iteration")
            loop.call_soon(loop.stop)

        def timer():
            order.append("timer")
            loop.call_before_poll(order.append, "end-timer")

        try:
            loop.add_reader(a, on_readable)
            loop.call_at(loop.time() - 1, timer)         # due at once
            loop.call_soon(first)
            loop.run_forever()
        finally:
            a.close()
            b.close()
        assert order == ["ready", "fd", "timer", "end-ready", "end-fd", "end-timer",
                         "next-iteration"]

    def test_call_before_poll_never_waits_for_an_event(self, loop):
        # a before-poll callback that asks for another one: the loop must not sleep in between
        # (nothing else is scheduled; a hang would end at the guard timer with done < 3)
        done = []

        def chain(i):
            done.append(i)
            if i < 3:
                loop.call_before_poll(chain, i + 1)
            else:
                loop.stop()

        guard = loop.call_later(30, loop.stop)
        loop.call_before_poll(chain, 1)                  # outside an iteration: the next one
        loop.run_forever()
        guard.cancel()
        assert done == [1, 2, 3]

    def test_call_before_poll_errors_reach_the_handler_and_the_rest_run(self, loop):
        errors, ran = [], []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx["exception"]))

        def boom():
            raise ValueError("before-poll")

        loop.call_before_poll(boom)
        loop.call_before_poll(ran.append, "after")
        loop.call_before_poll(loop.stop)
        loop.run_forever()
        assert ran == ["after"]
        assert len(errors) == 1 and str(errors[0]) == "before-poll"
        loop.set_debug(True)                             # debug mode checks what it is given
        with pytest.raises(TypeError, match="call_before_poll"):
            loop.call_before_poll("not callable")
        loop.close()
        with pytest.raises(RuntimeError, match="closed"):
            loop.call_before_poll(ran.append, 1)


class TestAsyncioLoop(LoopBehaviour):
    factory = staticmethod(asyncio.new_event_loop)

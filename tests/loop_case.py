"""The base of the behaviour mixins: a test written once runs on engine's loop AND asyncio's.

    class NetworkBehaviour(LoopCase):       # the tests, written once
        timeout = 20

    class TestEngineNetwork(NetworkBehaviour):
        factory = staticmethod(engine.new_event_loop)

    class TestAsyncioNetwork(NetworkBehaviour):
        factory = staticmethod(asyncio.new_event_loop)

The ``loop`` fixture (tests/conftest.py, the only one) builds each test's loop with the class's
``factory``; a mixin whose tests take no ``loop`` runs each coroutine with ``run_in_runner()``
instead. A plain test function runs on both loops with ``@on_both_loops`` (ids [engine] and
[asyncio]). If asyncio's loop fails a behaviour test, the test is wrong, not engine.
"""
import asyncio

import pytest

import engine

LOOPS = {"engine": engine.new_event_loop, "asyncio": asyncio.new_event_loop}

on_both_loops = pytest.mark.parametrize("loop", list(LOOPS), indirect=True)


class LoopCase:
    """Mixin base: subclasses set ``factory`` to a zero-argument loop constructor."""

    factory = None
    timeout = 30            # seconds run() waits for a coroutine before it fails the test

    def run(self, loop, coro, timeout=None):
        """Run ``coro`` to completion on ``loop``; a hang fails after ``timeout`` seconds."""
        return loop.run_until_complete(
            asyncio.wait_for(coro, self.timeout if timeout is None else timeout))

    def run_in_runner(self, coro, timeout=None):
        """Run ``coro`` in an asyncio.Runner on a new loop from ``factory`` (no ``loop``
        fixture: the Runner makes the loop current, finalizes async generators and the
        default executor, and closes it); a hang fails after ``timeout`` seconds."""
        with asyncio.Runner(loop_factory=type(self).factory) as runner:
            return runner.run(
                asyncio.wait_for(coro, self.timeout if timeout is None else timeout))

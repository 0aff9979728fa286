"""Run one of CPython's own ``test.test_asyncio`` suites with engine as the event loop.

Used by tests/test_cpython_conformance.py, one subprocess per suite (policies, signal handlers
and other global state must not leak from one suite to the next)::

    python tests/cpython_conformance_runner.py SUITE [--out FILE] [--keep-testloop]

SUITE is a module of ``test.test_asyncio`` (``test_tasks``, ``test_events``...). The CPython tests
are imported from the installed ``test`` package, never copied. How engine becomes the loop:

* engine's event loop policy is installed, and re-installed before each test if a test reset it
  to asyncio's default: ``asyncio.new_event_loop()``, ``asyncio.run()``, ``asyncio.Runner`` and
  ``unittest.IsolatedAsyncioTestCase`` create engine loops. ``asyncio.DefaultEventLoopPolicy``
  is ``engine.EventLoopPolicy`` too (test_events' policy tests instantiate it by name);
* test_events: ``EventLoopTestsMixin`` runs in ``EngineEventLoopTests``, whose
  ``create_event_loop()`` returns ``engine.new_event_loop()``, instead of the selector-specific
  classes; test classes that are not about the loop are deselected (``DESELECT_*``);
* ``test_utils.TestCase.new_test_loop()`` *without* a time generator returns an engine loop
  instead of a ``test_utils.TestLoop``: such a TestLoop cannot fire timers (its default
  generator is exhausted at the first timer), so the test does not depend on virtual time.
  With a generator (virtual time) it stays a TestLoop, which never touches engine.
  ``--keep-testloop`` turns this off;
* test_runners and test_pep492 (``BaseTest``), test_base_events (``BaseEventLoopTests``,
  ``BaseEventLoopWithSelectorTests``) build an ``asyncio.BaseEventLoop`` with a mock selector,
  or a ``SelectorEventLoop``: they build an engine loop instead. test_base_events runs only
  those two classes and ``RunningLoopTests``;
* test_sendfile, test_server, test_buffered_proto, test_sslproto, test_subprocess build their
  loop as ``asyncio.SelectorEventLoop(...)``: that name is engine's loop in those suites;
  test_subprocess's SubprocessMixin runs in ``EngineSubprocessTests`` (no child watcher);
* ``test_utils.TestCase.close_loop()`` reads BaseEventLoop's private ``_default_executor``; for
  engine loops it shuts the default executor down, if the loop made one (``run_in_executor`` and
  ``set_default_executor`` are wrapped to know), with ``shutdown_default_executor()`` instead.

Every test records how many engine loops it created and ran (``engine.Loop.__init__`` and
``engine.Loop.run_forever`` are wrapped in this process), so the summary says how many tests
really ran on engine's loop.

Output: JSON lines (FILE or stdout): {"event": "start", "test": ID} before each test,
{"event": "result", ...} after it, {"event": "summary", ...} at the end. A crash, or a hang
(faulthandler kills the process after PER_TEST_TIMEOUT seconds in one test), leaves the summary
out and the last "start" names the culprit. Test ids drop the ``test.test_asyncio.`` prefix.
"""
from __future__ import annotations

import argparse
import asyncio
import faulthandler
import importlib
import json
import re
import signal
import sys
import time
import traceback
import unittest
import warnings

PER_TEST_TIMEOUT = 60.0
TB_TAIL_LINES = 12
ID_PREFIX = "test.test_asyncio."

# Tests not run, by suite: method names matching a pattern (first match wins) -> reason...
DESELECT_METHODS = {
    "test_events": [],
    "test_sock_lowlevel": [],
    "test_streams": [],
    "test_base_events": [],
    "test_sendfile": [],
    "test_server": [],
    "test_buffered_proto": [],
    "test_sslproto": [],
    "test_subprocess": [],
}
# ... and whole test classes -> reason.
_WATCHER = ("asyncio's child watcher classes (SIGCHLD handlers, waitpid(-1)); engine reaps its "
            "children with a pidfd per child and needs none: EngineSubprocessTests runs the mixin")
DESELECT_CLASSES = {
    "test_events": {
        "HandleTests": "asyncio.Handle built on a mock loop: asyncio's class, not engine's",
        "TimerTests": "asyncio.TimerHandle built directly: asyncio's class, not engine's",
        "AbstractEventLoopTests": "asyncio.AbstractEventLoop's NotImplementedError stubs",
    },
    "test_sock_lowlevel": {},
    "test_streams": {},
    "test_base_events": {
        "BaseEventTests": "asyncio.base_events helper functions (_ipaddr_info...), not the loop",
        "TestSelectorUtils": "asyncio.base_events._set_nodelay (a helper function, not the loop)",
    },
    "test_sendfile": {
        # SelectorEventLoop is engine's loop in this suite: one class runs the mixins on it
        "PollEventLoopTests": "same tests as EPollEventLoopTests (SelectorEventLoop is engine's)",
        "SelectEventLoopTests": "same tests as EPollEventLoopTests (SelectorEventLoop is engine's)",
    },
    "test_server": {},
    "test_buffered_proto": {},
    "test_sslproto": {
        "SslProtoHandshakeTests": "asyncio.sslproto.SSLProtocol unit tests on a mock loop",
    },
    "test_subprocess": {
        "SubprocessTransportTests": "asyncio.base_subprocess unit tests on a mock loop",
        "SubprocessThreadedWatcherTests": _WATCHER,
        "SubprocessSafeWatcherTests": _WATCHER,
        "SubprocessFastWatcherTests": _WATCHER,
        "SubprocessMultiLoopWatcherTests": _WATCHER,
        "SubprocessPidfdWatcherTests": _WATCHER,
        "GenericWatcherTests": _WATCHER,
    },
}
# suites whose test classes build their loop as asyncio.SelectorEventLoop(...): it is engine's
# loop there (the selector argument is ignored)
SELECTOR_SUITES = {"test_sendfile", "test_server", "test_buffered_proto", "test_sslproto",
                   "test_subprocess"}
# test_events: EventLoopTestsMixin (+ SubprocessTestsMixin) on asyncio's selector loops, not run:
# EngineEventLoopTests runs the mixin's tests on engine
REPLACED_CLASSES = {"KqueueEventLoopTests", "EPollEventLoopTests", "PollEventLoopTests",
                    "SelectEventLoopTests", "ProactorEventLoopTests"}
# (suite, class) whose tests keep test_utils.TestLoop even without a time generator
KEEP_TESTLOOP = {
    ("test_tasks", "GatherTestsBase"): "_run_loop() drains loop._ready (BaseEventLoop private)",
}


class _State:
    created = 0
    ran = 0


def short_id(test_id: str) -> str:
    return test_id[len(ID_PREFIX):] if test_id.startswith(ID_PREFIX) else test_id


ASYNCIO_DEFAULT_POLICY = asyncio.DefaultEventLoopPolicy


def install_engine():
    import engine

    with warnings.catch_warnings():
        # 3.12+: engine.install() warns that event loop policies are deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        engine.install()
    # what asyncio instantiates when no policy is set, and what tests instantiate by name
    asyncio.DefaultEventLoopPolicy = engine.EventLoopPolicy
    return engine


def ensure_engine_policy() -> None:
    """Re-install engine's policy if a test left asyncio's default one (or none) behind."""
    policy = asyncio.events._event_loop_policy
    if policy is None or type(policy) is ASYNCIO_DEFAULT_POLICY:
        install_engine()


def instrument(engine) -> None:
    """Count the engine loops each test creates and runs."""
    loop_cls = engine.Loop
    orig_init = loop_cls.__init__
    orig_run_forever = loop_cls.run_forever

    def __init__(self, *args, **kwargs):
        orig_init(self, *args, **kwargs)
        _State.created += 1

    def run_forever(self):
        _State.ran += 1
        return orig_run_forever(self)

    loop_cls.__init__ = __init__
    loop_cls.run_forever = run_forever

    # close_loop() below needs to know whether a loop has a default executor
    orig_run_in_executor = loop_cls.run_in_executor
    orig_set_default_executor = loop_cls.set_default_executor

    def run_in_executor(self, executor, func, *args):
        if executor is None:
            self.__dict__["_conformance_default_executor_used"] = True
        return orig_run_in_executor(self, executor, func, *args)

    def set_default_executor(self, executor):
        orig_set_default_executor(self, executor)
        self.__dict__["_conformance_default_executor_used"] = True

    loop_cls.run_in_executor = run_in_executor
    loop_cls.set_default_executor = set_default_executor


def adapt_test_utils(engine, name: str, module, keep_testloop: bool) -> None:
    from test.test_asyncio import utils as test_utils

    orig_close_loop = test_utils.TestCase.close_loop

    def close_loop(loop):
        if not isinstance(loop, engine.Loop):
            return orig_close_loop(loop)
        if not loop.is_closed() and loop.__dict__.get("_conformance_default_executor_used"):
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    test_utils.TestCase.close_loop = staticmethod(close_loop)

    if keep_testloop:
        return
    orig_new_test_loop = test_utils.TestCase.new_test_loop
    keep = tuple(getattr(module, cls) for (suite, cls) in KEEP_TESTLOOP
                 if suite == name and hasattr(module, cls))

    def new_test_loop(self, gen=None):
        if gen is not None or isinstance(self, keep):
            return orig_new_test_loop(self, gen)
        loop = engine.new_event_loop()
        self.set_event_loop(loop)
        return loop

    test_utils.TestCase.new_test_loop = new_test_loop


def adapt_base_test(engine, name: str, module) -> None:
    """An engine loop instead of an asyncio.BaseEventLoop with a mock selector (test_runners,
    test_pep492: BaseTest; test_base_events: BaseEventLoopTests) or a SelectorEventLoop
    (test_base_events: BaseEventLoopWithSelectorTests)."""
    if name == "test_runners":
        def new_loop(self):
            loop = engine.new_event_loop()
            loop.shutdown_ag_run = False            # checked by BaseTest.tearDown
            real_shutdown_asyncgens = loop.shutdown_asyncgens

            async def shutdown_asyncgens():
                loop.shutdown_ag_run = True
                await real_shutdown_asyncgens()

            loop.shutdown_asyncgens = shutdown_asyncgens
            return loop

        module.BaseTest.new_loop = new_loop
    elif name == "test_pep492":
        _engine_loop_in_setup(engine, module.BaseTest)
    elif name == "test_base_events":
        _engine_loop_in_setup(engine, module.BaseEventLoopTests)
        _engine_loop_in_setup(engine, module.BaseEventLoopWithSelectorTests)


def _engine_loop_in_setup(engine, cls) -> None:
    """cls.setUp(): an engine loop as self.loop, instead of the loop CPython builds there."""
    def setUp(self):
        super(cls, self).setUp()
        self.loop = engine.new_event_loop()
        self.set_event_loop(self.loop)

    cls.setUp = setUp


# the suites whose mixin runs in a class of ours on engine's loop: suite -> (class, mixin)
ENGINE_CASES = {
    "test_events": ("EngineEventLoopTests", "EventLoopTestsMixin"),
    "test_subprocess": ("EngineSubprocessTests", "SubprocessMixin"),
    "test_sock_lowlevel": ("EngineSockTests", "BaseSockTestsMixin"),
}


def _engine_case(engine, module, name: str, mixin: str) -> type:
    """``class <name>(module.<mixin>, test_utils.TestCase)`` on engine loops, named as if the
    suite's module defined it."""
    from test.test_asyncio import utils as test_utils

    case = type(name, (getattr(module, mixin), test_utils.TestCase),
                {"__module__": module.__name__})
    if mixin == "SubprocessMixin":          # builds no loop itself: the test classes' setUp does
        _engine_loop_in_setup(engine, case)
    else:                                   # the mixin's setUp asks create_event_loop()
        def create_event_loop(self):
            return engine.new_event_loop()

        case.create_event_loop = create_event_loop
    return case


def build_suite(name: str, engine, keep_testloop: bool,
                deselected: dict[str, str]) -> unittest.TestSuite:
    if name in SELECTOR_SUITES:
        class EngineSelectorEventLoop(engine.Loop):
            def __init__(self, selector=None):
                super().__init__()

        asyncio.SelectorEventLoop = EngineSelectorEventLoop
    module = importlib.import_module(ID_PREFIX + name)
    loader = unittest.TestLoader()
    adapt_test_utils(engine, name, module, keep_testloop)
    adapt_base_test(engine, name, module)
    if name not in DESELECT_CLASSES:
        return loader.loadTestsFromModule(module)

    classes = [(attr, cls) for attr, cls in sorted(vars(module).items())
               if isinstance(cls, type) and issubclass(cls, unittest.TestCase)
               and cls.__module__ == module.__name__
               and not (name == "test_events" and attr in REPLACED_CLASSES)]
    if name in ENGINE_CASES:
        case_name, mixin = ENGINE_CASES[name]
        classes.insert(0, (case_name, _engine_case(engine, module, case_name, mixin)))

    suite = unittest.TestSuite()
    for attr, cls in classes:
        reason = DESELECT_CLASSES[name].get(attr)
        for method in loader.getTestCaseNames(cls):
            why = reason or next((r for pattern, r in DESELECT_METHODS.get(name, ())
                                  if re.search(pattern, method)), None)
            if why:
                deselected[f"{name}.{attr}.{method}"] = why
            else:
                suite.addTest(cls(method))
    return suite


class Result(unittest.TestResult):
    def __init__(self, out):
        super().__init__()
        self.out = out
        self.records: list[dict] = []
        self._outcome: dict | None = None
        self._t0 = 0.0

    def _emit(self, obj) -> None:
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def _tail(self, err, test) -> str:
        text = self._exc_info_to_string(err, test)
        return "\n".join(text.rstrip().splitlines()[-TB_TAIL_LINES:])

    def startTest(self, test):
        ensure_engine_policy()
        super().startTest(test)
        _State.created = _State.ran = 0
        self._outcome = {"status": "pass", "detail": None}
        self._t0 = time.monotonic()
        self._emit({"event": "start", "test": short_id(test.id())})
        faulthandler.dump_traceback_later(PER_TEST_TIMEOUT, exit=True)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        if self._outcome is None:
            # 3.12+: a class skipped by a decorator is reported (addSkip, recorded there)
            # without a startTest()
            return
        rec = {"event": "result", "test": short_id(test.id()),
               "duration": round(time.monotonic() - self._t0, 3),
               "engine_loops_created": _State.created, "engine_loops_run": _State.ran,
               **self._outcome}
        self._outcome = None
        self.records.append(rec)
        self._emit(rec)

    def _set(self, status, detail):
        # the first failure of a test wins (a tearDown error comes after the test's own)
        if self._outcome["status"] in ("pass", "skip"):
            self._outcome = {"status": status, "detail": detail}

    def addError(self, test, err):
        super().addError(test, err)
        if self._outcome is not None:
            self._set("error", self._tail(err, test))
        else:  # setUpModule/setUpClass/tearDown* errors arrive outside a test, as an _ErrorHolder
            rec = {"event": "result", "test": short_id(test.id()), "status": "error",
                   "detail": self._tail(err, test), "duration": 0.0,
                   "engine_loops_created": 0, "engine_loops_run": 0}
            self.records.append(rec)
            self._emit(rec)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("failure", self._tail(err, test))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            status = "failure" if issubclass(err[0], test.failureException) else "error"
            self._set(status, f"subtest {subtest._subDescription()}\n{self._tail(err, test)}")

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if self._outcome is not None:
            self._outcome = {"status": "skip", "detail": reason}
        else:  # a whole class or module skipped in its setUpClass/setUpModule
            rec = {"event": "result", "test": short_id(test.id()), "status": "skip",
                   "detail": reason, "duration": 0.0,
                   "engine_loops_created": 0, "engine_loops_run": 0}
            self.records.append(rec)
            self._emit(rec)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._outcome = {"status": "expected_failure", "detail": self._tail(err, test)}

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("unexpected_success", "unexpected success")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", help="module of test.test_asyncio, e.g. test_tasks")
    parser.add_argument("--out", help="JSON lines output file (default: stdout)")
    parser.add_argument("--keep-testloop", action="store_true",
                        help="don't replace generator-less test_utils.TestLoop with engine loops")
    args = parser.parse_args(argv)

    out = open(args.out, "w") if args.out else sys.stdout
    faulthandler.enable()
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Started in the background by a non-interactive shell: SIGINT is inherited ignored and
        # Python leaves it so. asyncio.Runner only handles SIGINT over Python's default handler,
        # and test_runners interrupts itself with _thread.interrupt_main(): it would hang.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    deselected: dict[str, str] = {}
    try:
        engine = install_engine()
        instrument(engine)
        suite = build_suite(args.suite, engine, args.keep_testloop, deselected)
    except BaseException:
        out.write(json.dumps({"event": "summary", "suite": args.suite, "ok": False,
                              "setup_error": traceback.format_exc()}) + "\n")
        out.flush()
        return 2

    result = Result(out)
    result.startTestRun()
    try:
        suite.run(result)
    finally:
        result.stopTestRun()

    recs = result.records
    statuses = [r["status"] for r in recs]
    summary = {
        "event": "summary",
        "suite": args.suite,
        "ok": True,
        "python": sys.version.split()[0],
        "engine": getattr(engine, "__version__", "?"),
        "engine_file": engine.__file__,
        "tests_run": result.testsRun,
        "passed": statuses.count("pass"),
        "failed": sum(s in ("failure", "error", "unexpected_success") for s in statuses),
        "skipped": statuses.count("skip"),
        "expected_failures": statuses.count("expected_failure"),
        # tests that created an engine loop / ran one (run_forever) and were not skipped
        "created_engine_loop": sum(r["engine_loops_created"] > 0 and r["status"] != "skip"
                                   for r in recs),
        "ran_on_engine": sum(r["engine_loops_run"] > 0 and r["status"] != "skip" for r in recs),
        "keep_testloop": args.keep_testloop,
        "deselected": deselected,
        "duration": round(time.monotonic() - t0, 2),
    }
    out.write(json.dumps(summary) + "\n")
    out.flush()
    if out is not sys.stdout:
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPython's own asyncio test suites (``test.test_asyncio``), run against engine's event loop.

Each suite runs in its own subprocess (tests/cpython_conformance_runner.py, which documents how
engine is made the loop of the suite and how tests are counted as having run on it), from the
``test`` package installed with the running Python: nothing is copied from CPython. A suite that
does not exist on the running Python version is not parametrised.

A suite passes when its subprocess finished, at least one of its tests ran on an engine loop, and
every failure or error is listed in KNOWN_DIFFERENCES: a test that peeks at or patches asyncio
internals engine does not have. Genuine behaviour differences of engine's loop are bugs to fix in
the loop, never entries of KNOWN_DIFFERENCES.

Not run: test_selector_events, test_proactor_events (internals of asyncio's own loop classes,
with mocks), test_unix_events (selector/child-watcher internals), test_protocols and
test_transports (asyncio's base classes, no loop). The runner deselects test classes that are not
about the loop (asyncio.Handle/TimerHandle, helper functions, SSLProtocol/BaseSubprocessTransport
unit tests on mock loops, asyncio's child-watcher classes); its report lists them.

    ENGINE_CONFORMANCE_OUT=DIR   keep each suite's JSON-lines report in DIR/<suite>.jsonl
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

RUNNER = pathlib.Path(__file__).with_name("cpython_conformance_runner.py")
SUITE_TIMEOUT = 300  # seconds; the runner also aborts a single test hanging for 60 s

SUITES = [
    "test_events",               # EventLoopTestsMixin on engine (incl. TLS, UDP, pipes, pty)
    "test_tasks",
    "test_taskgroups",
    "test_timeouts",
    "test_waitfor",
    "test_locks",
    "test_queues",
    "test_futures",
    "test_futures2",
    "test_context",
    "test_pep492",
    "test_runners",
    "test_threads",              # asyncio.to_thread (the loop's default executor)
    "test_sock_lowlevel",        # loop.sock_* (BaseSockTestsMixin on engine)
    "test_streams",              # asyncio streams on engine's transports (TCP, Unix, TLS, pipes)
    "test_server",               # asyncio.Server: start_server, serve_forever, unix servers
    "test_buffered_proto",       # BufferedProtocol over engine's transports
    "test_sendfile",             # loop.sock_sendfile and loop.sendfile (native + fallbacks)
    "test_sslproto",             # start_tls, TLS handshake/shutdown on engine's transports
    "test_ssl",                  # TLS: create_connection/create_server(ssl=), timeouts, errors
    "test_subprocess",           # asyncio.subprocess on engine (SubprocessMixin, pidfd reaping)
    "test_eager_task_factory",   # 3.12+
    "test_staggered",            # 3.13+
    # BaseEventLoopTests (public loop API, on an engine loop instead of a mock-selector
    # BaseEventLoop) and RunningLoopTests; last because its failures are mostly private-API ones
    "test_base_events",
]

_RUN_ONCE = "counts iterations by patching BaseEventLoop._run_once (private, absent on engine)"
_NOT_TRANSPORT = ("asserts isinstance(transport, asyncio.Transport): engine's transport is a C "
                  "class (as uvloop's); asyncio.BaseTransport's __slots__ layout can't be a base "
                  "of it. Same methods, same behaviour")
_MOCK_SOCKET = ("patches asyncio.base_events.socket and loop._start_serving/_stop_serving "
                "(BaseEventLoop privates) to fake binding on foreign addresses")
_PRIVATE = "reads or patches BaseEventLoop private attributes: "
_MOCK_BASE_SOCKET = ("patches asyncio.base_events.socket (mock sockets): engine's loop does not "
                     "create its sockets through that module attribute")
_DESTROYED = ("drives loop._run_once() and reads len(loop._ready) (BaseEventLoop privates); "
              "the 'Task was destroyed but it is pending!' path itself works on engine")

# test id (without "test.test_asyncio.") -> why it cannot pass on engine's loop
KNOWN_DIFFERENCES: dict[str, str] = {
    "test_events.EngineEventLoopTests.test_timeout_rounding": _RUN_ONCE,
    "test_events.EngineEventLoopTests.test_create_connection": _NOT_TRANSPORT,
    "test_events.EngineEventLoopTests.test_create_unix_connection": _NOT_TRANSPORT,
    "test_events.EngineEventLoopTests.test_create_datagram_endpoint": _NOT_TRANSPORT,
    "test_events.EngineEventLoopTests.test_create_datagram_endpoint_ipv6": _NOT_TRANSPORT,
    "test_events.EngineEventLoopTests.test_create_datagram_endpoint_sock": _NOT_TRANSPORT,
    "test_sock_lowlevel.EngineSockTests.test_create_connection_sock": _NOT_TRANSPORT,
    "test_events.EngineEventLoopTests.test_create_server_multiple_hosts_ipv4": _MOCK_SOCKET,
    "test_events.EngineEventLoopTests.test_create_server_multiple_hosts_ipv6": _MOCK_SOCKET,
    "test_events.EngineEventLoopTests.test_prompt_cancellation":
        _PRIVATE + "_stop_serving (BaseSelectorEventLoop's server-socket teardown)",
    # the same BaseTaskTests methods, in each Task/Future implementation combination
    **{f"test_tasks.{cls}.{meth}": reason
       for cls in ("CTask_CFuture_Tests", "CTask_CFuture_SubclassTests", "CTask_PyFuture_Tests",
                   "CTaskSubclass_PyFuture_Tests", "PyTask_CFuture_Tests",
                   "PyTask_CFutureSubclass_Tests", "PyTask_PyFuture_Tests",
                   "PyTask_PyFuture_SubclassTests")
       for meth, reason in (("test_log_destroyed_pending_task", _DESTROYED),)},
    **{f"test_base_events.BaseEventLoopTests.{meth}": reason for meth, reason in (
        ("test__add_callback_handle", _PRIVATE + "_add_callback, _ready"),
        ("test__add_callback_cancelled_handle", _PRIVATE + "_add_callback, _ready"),
        ("test__run_once", _PRIVATE + "_run_once, _scheduled, _selector"),
        ("test__run_once_schedule_handle", _PRIVATE + "_run_once, _scheduled, _ready"),
        ("test__run_once_cancelled_event_cleanup", _PRIVATE + "_scheduled, _timer_cancelled_count"),
        ("test_call_soon", "asserts isinstance(h, asyncio.Handle) and h in loop._ready: engine's "
                           "Handle is its own class (as uvloop's), its queue a C ring"),
        ("test_call_later", "asserts isinstance(h, asyncio.TimerHandle) and h in "
                            "loop._scheduled: engine's TimerHandle is its own class, heap in C"),
        ("test_custom_run_forever_integration", _PRIVATE + "_run_forever_setup/_cleanup hooks"),
        ("test_not_implemented", _PRIVATE + "_make_socket_transport & co. (BaseEventLoop internals)"),
        ("test_run_forever_pre_stopped", _PRIVATE + "_selector, _process_events (mocks)"),
        ("test_single_selecter_event_callback_after_stopping",
         _PRIVATE + "_selector, _process_events (mocks)"),
        ("test_set_exc_handler_custom", _PRIVATE + "_run_once, _process_events"),
        ("test_set_exc_handler_broken", _PRIVATE + "_run_once, _process_events"),
    )},
    # BaseEventLoopWithSelectorTests: mocks in place of the sockets asyncio.base_events creates
    # (@patch_socket patches the `socket` module *of asyncio.base_events*; engine's loop creates
    # its sockets in C code that module patch can't reach) or of BaseEventLoop privates
    **{f"test_base_events.BaseEventLoopWithSelectorTests.{meth}": reason for meth, reason in (
        *((m, _MOCK_BASE_SOCKET) for m in (
            "test_create_connection_bluetooth", "test_create_connection_ip_addr",
            "test_create_connection_ipv6_scope", "test_create_connection_multiple_errors",
            "test_create_connection_multiple_errors_local_addr",
            "test_create_connection_no_inet_pton", "test_create_connection_service_name",
            "test_create_connection_timeout", "test_create_datagram_endpoint_cant_bind",
            "test_create_datagram_endpoint_ip_addr", "test_create_datagram_endpoint_no_addrinfo",
            "test_create_datagram_endpoint_setblk_err",
            "test_create_datagram_endpoint_socket_err", "test_create_server_cant_bind")),
        ("test_accept_connection_retry",
         _PRIVATE + "_accept_connection(protocol_factory, sock) with a mock socket"),
        ("test_accept_connection_exception",
         _PRIVATE + "_accept_connection, _remove_reader, mock call_later"),
    )},
}

FAILED = ("failure", "error", "unexpected_success")


def _test_asyncio_dir() -> pathlib.Path | None:
    spec = importlib.util.find_spec("test")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "test_asyncio"
    return path if path.is_dir() else None


_TEST_ASYNCIO = _test_asyncio_dir()
AVAILABLE = ([s for s in SUITES if (_TEST_ASYNCIO / f"{s}.py").is_file()]
             if _TEST_ASYNCIO is not None else [])


def test_cpython_test_package_is_installed():
    # Conformance cannot be checked without it: install a CPython that ships its `test` package
    # (pyenv and python.org builds do; on Debian, the python3.X-test... packages).
    assert _TEST_ASYNCIO is not None, "CPython's test package (test.test_asyncio) is missing"
    assert "test_tasks" in AVAILABLE and "test_events" in AVAILABLE


def _read_records(path: pathlib.Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pass  # a line cut short by a crash
    return records


def _tail(text: str, n: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


@pytest.mark.parametrize("suite", AVAILABLE)
def test_cpython_suite(suite, tmp_path):
    keep = os.environ.get("ENGINE_CONFORMANCE_OUT")
    out_dir = pathlib.Path(keep) if keep else tmp_path
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{suite}.jsonl"
    cmd = [sys.executable, str(RUNNER), suite, "--out", str(out)]
    try:
        # cwd: a scratch directory, where the tests may leave files, and where an engine/ source
        # directory cannot shadow the installed package
        proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True,
                              timeout=SUITE_TIMEOUT)
        stderr, rc = proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else (
            exc.stderr or "")
        rc = None

    records = _read_records(out)
    summary = next((r for r in records if r["event"] == "summary"), None)
    if summary is None:
        started = [r["test"] for r in records if r["event"] == "start"]
        finished = {r["test"] for r in records if r["event"] == "result"}
        culprit = next((t for t in reversed(started) if t not in finished), None)
        how = f"timed out after {SUITE_TIMEOUT}s" if rc is None else f"exited with {rc}"
        pytest.fail(f"{suite}: the runner {how} without a summary; in test {culprit}\n"
                    f"stderr tail:\n{_tail(stderr)}", pytrace=False)
    if not summary["ok"]:
        pytest.fail(f"{suite}: could not set the suite up:\n{summary['setup_error']}",
                    pytrace=False)
    assert rc == 0, f"{suite}: runner exited with {rc}\n{_tail(stderr)}"

    results = [r for r in records if r["event"] == "result"]
    failed = [r for r in results if r["status"] in FAILED]
    unexpected = [r for r in failed if r["test"] not in KNOWN_DIFFERENCES]
    stale = sorted(r["test"] for r in results
                   if r["status"] == "pass" and r["test"] in KNOWN_DIFFERENCES)
    print(f"{suite}: run={summary['tests_run']} on_engine={summary['ran_on_engine']} "
          f"failed={len(failed)} known={len(failed) - len(unexpected)} "
          f"skipped={summary['skipped']} deselected={len(summary['deselected'])}")
    # an entry that passes is no longer a difference: keep the list exact
    assert not stale, f"{suite}: KNOWN_DIFFERENCES entries that now pass (remove them): {stale}"

    assert summary["ran_on_engine"] > 0, f"{suite}: no test ran on an engine loop"
    if unexpected:
        report = "\n\n".join(f"--- {r['test']} [{r['status']}]\n{r['detail']}"
                             for r in unexpected)
        pytest.fail(f"{suite}: {len(unexpected)} test(s) failing on engine's loop and not in "
                    f"KNOWN_DIFFERENCES:\n\n{report}", pytrace=False)

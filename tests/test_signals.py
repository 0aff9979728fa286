"""engine serve --workers: signals and exit statuses, end to end (real processes, real signals).

Each server runs in its own session (start_new_session=True), so os.killpg reaches the
supervisor and its workers at once, as a terminal's Ctrl-C does."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import warnings

import pytest

import engine

from serve_util import ENGINE, WAIT

BANNER = re.compile(r"^engine serve: (\S+) \(")


class Group:
    """`engine serve ARGS --port 0` in a new session; waits for the banner and N ready workers."""

    def __init__(self, *args: str, workers: int = 2, cwd: str | None = None) -> None:
        self.proc = subprocess.Popen(
            [ENGINE, "serve", "--port", "0", "--workers", str(workers), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
            env=dict(os.environ, NO_COLOR="1"), start_new_session=True)
        self.out: list[str] = []
        assert self.proc.stdout is not None
        ready = 0
        deadline = time.monotonic() + WAIT
        banner = False
        while (not banner or ready < workers) and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.out.append(line.rstrip("\n"))
            banner = banner or bool(BANNER.match(line))
            ready += "ready" in line

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, err = self.proc.communicate()
            raise
        return self.proc.returncode, "\n".join(self.out) + out, err


def assert_clean(code: int, out: str, err: str) -> None:
    assert code == 0, (out, err)
    assert "died" not in err and "restarting" not in err, err
    assert "Traceback" not in err, err


def test_group_sigint_repeatedly_exits_0() -> None:
    for _ in range(8):
        g = Group()
        assert g.proc.poll() is None
        os.killpg(g.proc.pid, signal.SIGINT)
        assert_clean(*g.finish())


def test_group_sigterm_exits_0() -> None:
    for _ in range(3):
        g = Group()
        os.killpg(g.proc.pid, signal.SIGTERM)
        assert_clean(*g.finish())


def test_sigterm_to_supervisor_exits_0() -> None:
    for _ in range(3):
        g = Group()
        g.proc.send_signal(signal.SIGTERM)
        assert_clean(*g.finish())


def test_double_group_sigint_exits_0() -> None:
    for _ in range(3):
        g = Group()
        os.killpg(g.proc.pid, signal.SIGINT)
        time.sleep(0.05)
        killpg_if_alive(g.proc.pid, signal.SIGINT)
        code, out, err = g.finish()
        assert_clean(code, out, err)


def killpg_if_alive(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:         # already exited: the first signal was enough
        pass


def test_app_failing_at_import_reports_once(tmp_path) -> None:
    (tmp_path / "badapp.py").write_text("x = 1\nraise RuntimeError('boom at import')\n")
    proc = subprocess.run([ENGINE, "serve", "--port", "0", "--workers", "2", "badapp:app"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
                          env=dict(os.environ, NO_COLOR="1"))
    assert proc.returncode == 1, proc
    assert proc.stderr.count("boom at import") >= 1
    # one error report (message + traceback), not one per worker
    assert proc.stderr.count("Traceback") == 1, proc.stderr
    assert 'badapp.py", line 2' in proc.stderr, proc.stderr
    assert "listening on" not in proc.stdout and not BANNER.search(proc.stdout), proc.stdout
    assert "exit status 1" in proc.stderr and "exit status 3" not in proc.stderr, proc.stderr
    assert "importlib" not in proc.stderr, proc.stderr
    assert "died" not in proc.stderr


def test_version_flags() -> None:
    for args in (["--version"], ["serve", "--version"]):
        proc = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=WAIT)
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"engine {engine.__version__}"


def test_install_warns_only_where_asyncio_deprecates_policies(tmp_path) -> None:
    import asyncio
    old = asyncio.get_event_loop_policy()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            engine.install()
        deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
        assert bool(deprecations) == (sys.version_info >= (3, 14)), deprecations
        # and -W error does not raise on this Python below 3.14
        code = "import engine; engine.install(); print('ok')"
        proc = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path,
                              capture_output=True, text=True, timeout=WAIT)
        if sys.version_info < (3, 14):
            assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
        else:
            assert proc.returncode != 0 and "DeprecationWarning" in proc.stderr
    finally:
        asyncio.set_event_loop_policy(old)

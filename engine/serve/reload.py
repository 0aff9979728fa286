"""``engine serve --reload``: restart the server when Python files change. Development only.

The reloader process binds the listener once and runs the server as a child process
(``python -m engine serve`` with the same arguments, in its own process group), handing it the
listening socket, so connections made during a restart wait in the backlog instead of being
refused. Every ``--reload-interval`` seconds it compares the modification times of the ``*.py``
files under the ``--reload-dir`` directories (default: ``--app-dir``); on a change it drains the
running server (SIGTERM, waiting at most ``--timeout-graceful-shutdown`` + 5 s before SIGKILL)
and starts a new one. A server that exits by itself (say, a syntax error) is restarted at the
next change. Hidden directories, ``__pycache__``, ``node_modules``, ``site-packages`` and
virtual environments are not watched, and at most :data:`MAX_FILES` files are (a warning says
when a tree is larger). Polling needs no extra dependency; it costs a directory walk per
interval, which is why this is for development. SIGTERM/SIGINT stop the server and the
reloader; SIGHUP restarts the server at once. On Linux the server gets SIGTERM (a graceful
drain) if the reloader itself is killed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence

from ..server import bind
from .config import Config, ConfigError

__all__ = ["Reloader", "MAX_FILES", "SKIP_DIRS", "RELOAD_FD_ENV"]

logger = logging.getLogger("engine.reload")

MAX_FILES = 10_000
SKIP_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
KILL_GRACE = 5.0
PR_SET_PDEATHSIG = 1                 # <linux/prctl.h>
RELOAD_FD_ENV = "ENGINE_SERVE_RELOAD_FD"     # the listening socket handed to the server process


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a function for the child (between fork and exec) asking the kernel to SIGTERM it
    when the reloader dies, so that a killed reloader leaves no server behind; elsewhere None.
    Resolved here, in the parent: the child only makes the call."""
    try:
        import ctypes
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_pdeathsig() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:          # the reloader died before the call
            os.kill(os.getpid(), signal.SIGTERM)
    return set_pdeathsig


class Reloader:
    """Runs ``engine serve`` (``argv``, starting with ``serve``) as a child and restarts it."""

    def __init__(self, config: Config, argv: Sequence[str] | None) -> None:
        if not argv:
            raise ConfigError("reload restarts the `engine serve` command line; run it from "
                              "there (engine serve ... --reload)")
        self.config = config
        self.argv = list(argv)
        dirs = config.reload_dirs or [config.app_dir or "."]
        self.dirs = [os.path.abspath(d) for d in dirs]
        for d in self.dirs:
            if not os.path.isdir(d):
                raise ConfigError(f"reload directory {d!r} does not exist")
        self.interval = config.reload_interval if config.reload_interval > 0 else 0.5
        self.proc: subprocess.Popen[bytes] | None = None
        self.signals: list[int] = []
        self._warned_size = False

    # --- watching -----------------------------------------------------------------------------

    def _files(self) -> Iterator[str]:
        for top in self.dirs:
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(
                    d for d in dirnames
                    if not d.startswith(".") and d not in SKIP_DIRS
                    and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg")))
                for name in filenames:
                    if name.endswith(".py"):
                        yield os.path.join(dirpath, name)

    def snapshot(self) -> dict[str, int]:
        """``{path: st_mtime_ns}`` of the watched files (at most MAX_FILES)."""
        out: dict[str, int] = {}
        for path in self._files():
            if len(out) >= MAX_FILES:
                if not self._warned_size:
                    self._warned_size = True
                    logger.warning("reload: more than %d .py files under %s; watching the "
                                   "first %d only (use --reload-dir)", MAX_FILES,
                                   ", ".join(self.dirs), MAX_FILES)
                break
            with contextlib.suppress(OSError):
                out[path] = os.stat(path).st_mtime_ns
        return out

    @staticmethod
    def changes(before: dict[str, int], after: dict[str, int]) -> list[str]:
        """Files added, removed or modified between two snapshots."""
        changed = [p for p, m in after.items() if before.get(p) != m]
        changed += [p for p in before if p not in after]
        return sorted(changed)

    # --- the server process -------------------------------------------------------------------

    def _start(self, fd: int) -> None:
        env = dict(os.environ)
        env[RELOAD_FD_ENV] = str(fd)
        # -P: the working directory does not shadow the installed engine (the app's directory
        # is put on sys.path by Config.load_app, as in the reloader itself)
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "engine", *self.argv], env=env,
                                     pass_fds=(fd,), process_group=0,
                                     preexec_fn=_parent_death_signal())
        logger.info("reload: started server process %d", self.proc.pid)

    def _stop(self) -> int | None:
        """Drain the server process; returns its exit status (None if none was running)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is not None:
            return proc.returncode
        proc.send_signal(signal.SIGTERM)
        graceful = self.config.timeout_graceful_shutdown
        try:
            return proc.wait(None if graceful is None else graceful + KILL_GRACE)
        except subprocess.TimeoutExpired:
            logger.error("reload: server process %d did not stop in time, killing it", proc.pid)
            proc.kill()
            return proc.wait()

    def run(self) -> int:
        bound = bind(self.config.listeners())
        if len(bound) != 1:
            for b in bound:
                b.close()
            raise ConfigError("reload serves exactly one listener")
        listener = bound[0]
        fd = listener.fileno()                   # not inheritable: pass_fds hands it over
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)

        def on_signal(sig: int, frame: object) -> None:
            self.signals.append(sig)

        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {sig: signal.signal(sig, on_signal) for sig in handled}
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        status = 0
        try:
            print(f"engine serve: reloader pid {os.getpid()} watching "
                  f"{', '.join(self.dirs)} (development only)", flush=True)
            files = self.snapshot()
            self._start(fd)
            exited_logged = False
            while True:
                select.select([wake_r], [], [], self.interval)
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
                signals, self.signals = self.signals, []
                if signal.SIGTERM in signals or signal.SIGINT in signals:
                    code = self._stop()
                    status = code if code is not None else 0
                    break
                if self.proc is not None and self.proc.poll() is not None and not exited_logged:
                    exited_logged = True
                    logger.warning("reload: server process %d exited with status %d; waiting "
                                   "for a change", self.proc.pid, self.proc.returncode)
                now = self.snapshot()
                changed = self.changes(files, now)
                files = now
                if changed or signal.SIGHUP in signals:
                    shown = ", ".join(os.path.relpath(p) for p in changed[:3])
                    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                    logger.warning("reload: %s, restarting the server",
                                   f"{shown}{more} changed" if changed else "SIGHUP")
                    self._stop()
                    self._start(fd)
                    exited_logged = False
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, prev in previous.items():
                signal.signal(sig, prev)
            os.close(wake_r)
            os.close(wake_w)
            if self.proc is not None:
                self._stop()
            listener.close()
        return status

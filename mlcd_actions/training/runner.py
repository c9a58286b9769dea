"""Run training in a child process and keep it observable.

The child's stdout and stderr go, line by line, to a log file and to our stderr (masked).
Every ``interval`` seconds ``on_tick(elapsed)`` runs (``mlcd train`` uploads the log to the
MLflow run and logs the ``mlcd_heartbeat`` metric there). After ``timeout`` seconds the
child's whole process group gets SIGTERM, then SIGKILL, so a ``--command`` that started
its own children is ended too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlcd_actions.core import secrets

KILL_GRACE = 5.0


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    seconds: float


def _pump(stream, log_path: Path, echo: bool) -> None:
    with open(log_path, "ab", buffering=0) as log:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            if echo:
                try:
                    text = raw.decode("utf-8", errors="replace")
                    sys.stderr.write(secrets.mask(text))
                    sys.stderr.flush()
                except (OSError, ValueError):  # stderr closed: keep logging to the file
                    pass
    stream.close()


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:  # a forked child not yet in its own group
            if proc.poll() is not None:  # ended (and reaped: its pid may be reused)
                return
            try:
                os.kill(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
        except PermissionError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def can_fork() -> bool:
    """Can :meth:`Child.fork` run here: Linux (macOS forks badly once system frameworks
    are loaded) and this process has one thread (a fork copies no other thread, and a lock
    another thread held would stay held in the child)?"""
    return sys.platform.startswith("linux") and threading.active_count() == 1


class _Forked:
    """The part of ``subprocess.Popen`` that :class:`Child` uses, for a forked process."""

    def __init__(self, pid: int, stdout) -> None:
        self.pid, self.stdout, self.returncode = pid, stdout, None

    def _reap(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._reap(os.WNOHANG)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.005)
        return self.returncode


def _run_forked(fn: Callable[[], int], write_fd: int) -> None:
    """In the forked child: own session (the group can be killed), stdout and stderr to
    the pipe, run ``fn``, exit with its code without the parent's exit handlers."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
            signal.signal(sig, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        # the parent's sys.stdout may be a capture (pytest, click's runner), not fd 1
        sys.stdout = open(1, "w", encoding="utf-8", errors="replace",  # noqa: SIM115
                          buffering=1, closefd=False)
        sys.stderr = open(2, "w", encoding="utf-8", errors="replace",  # noqa: SIM115
                          buffering=1, closefd=False)
        code = fn()
    except BaseException:  # noqa: BLE001 - reported on the pipe, the exit code says it
        import traceback

        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


class Child:
    """A started child process whose output goes to ``log_path`` (and our stderr)."""

    def __init__(self, cmd: str | Sequence[str] | None, *, env: dict[str, str] | None,
                 cwd: str | os.PathLike | None, log_path: str | os.PathLike, echo: bool = True,
                 target: Callable[[], int] | None = None) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self.t0 = time.monotonic()
        if target is not None:
            self.proc = self._fork(target)
        else:
            self.proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), cwd=cwd, env=env,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.pump = threading.Thread(target=_pump, args=(self.proc.stdout, self.log_path, echo),
                                     daemon=True)
        self.pump.start()

    @classmethod
    def fork(cls, target: Callable[[], int], *, log_path: str | os.PathLike,
             echo: bool = True) -> Child:
        """Run ``target()`` in a forked copy of this process (see :func:`can_fork`): it
        has every module and object already loaded, so it starts at once; its return
        value is the exit code."""
        return cls(None, env=None, cwd=None, log_path=log_path, echo=echo, target=target)

    @staticmethod
    def _fork(target: Callable[[], int]) -> _Forked:
        import gc

        for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
            with contextlib.suppress(Exception):
                stream.flush()
        read_fd, write_fd = os.pipe()
        gc.freeze()  # the child's collections leave the parent's pages shared
        try:
            pid = os.fork()
        finally:
            gc.unfreeze()
        if pid == 0:  # pragma: no cover - the child; coverage is not collected there
            os.close(read_fd)
            _run_forked(target, write_fd)
        os.close(write_fd)
        return _Forked(pid, os.fdopen(read_fd, "rb"))

    def kill(self) -> None:
        _kill_group(self.proc)
        self.pump.join(10)

    def wait(self, *, timeout: float | None = None, interval: float = 10.0,
             on_tick: Callable[[float], None] | None = None,
             since: float | None = None) -> Outcome:
        """Wait for the end, or kill the process group ``timeout`` seconds after ``since``
        (a ``time.monotonic()`` value; default: the start)."""
        t0 = self.t0 if since is None else since
        timed_out = False
        next_tick = time.monotonic() + interval
        try:
            while True:
                try:
                    self.proc.wait(0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                now = time.monotonic()
                if timeout and now - t0 >= timeout:
                    timed_out = True
                    _kill_group(self.proc)
                    break
                if on_tick is not None and now >= next_tick:
                    next_tick = now + interval
                    on_tick(now - t0)
        except BaseException:
            _kill_group(self.proc)
            raise
        finally:
            self.pump.join(10)
        return Outcome(self.proc.returncode, timed_out, time.monotonic() - t0)


def run(cmd: str | Sequence[str], *, env: dict[str, str], cwd: str | os.PathLike,
        log_path: str | os.PathLike, timeout: float | None = None, interval: float = 10.0,
        on_tick: Callable[[float], None] | None = None, echo: bool = True) -> Outcome:
    """Run ``cmd`` (a shell string or an argv list) to the end or the timeout."""
    child = Child(cmd, env=env, cwd=cwd, log_path=log_path, echo=echo)
    return child.wait(timeout=timeout, interval=interval, on_tick=on_tick)

"""Run training in a child process and keep it observable.

The child's stdout and stderr go, line by line, to a log file and to our stderr (masked).
Every ``interval`` seconds ``on_tick(elapsed)`` runs (``mlcd train`` uploads the log to the
MLflow run and logs the ``mlcd_heartbeat`` metric there). After ``timeout`` seconds the
child's whole process group gets SIGTERM, then SIGKILL, so a ``--command`` that started
its own children is ended too.
"""

from __future__ import annotations

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
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Child:
    """A started child process whose output goes to ``log_path`` (and our stderr)."""

    def __init__(self, cmd: str | Sequence[str], *, env: dict[str, str],
                 cwd: str | os.PathLike, log_path: str | os.PathLike, echo: bool = True) -> None:
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.touch()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, shell=isinstance(cmd, str), cwd=cwd, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pump = threading.Thread(target=_pump, args=(self.proc.stdout, self.log_path, echo),
                                     daemon=True)
        self.pump.start()

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

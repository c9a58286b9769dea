"""A private ``dockerd`` a test may stop: its own data, exec root and socket under a temp
folder, in its own network namespace, with no bridge and no iptables rules.

The namespace matters: a ``dockerd --bridge=none`` deletes the ``docker0`` interface of
its namespace, which on the host is the shared engine's bridge (every container the
shared engine starts afterwards fails with "could not find bridge docker0").

Stopping is what ``systemctl stop docker`` does: SIGTERM, and the engine ends its
containers (a running build step too) before it exits. Starting it again on the same
folders brings back what it had committed (images, build cache).
"""

from __future__ import annotations

import shutil
import subprocess
import time

from tests.services import _docker_ping, engine_folder, remove_engine_folder, stop


class PrivateDockerd:
    def __init__(self) -> None:
        exe, unshare = shutil.which("dockerd"), shutil.which("unshare")
        if exe is None or unshare is None:
            raise RuntimeError("dockerd or unshare missing (./run test installs docker.io; "
                               "unshare is util-linux)")
        self.cmd = [unshare, "--net", "--", exe]  # exec'd: the pid is dockerd's
        self.root, self.tmpfs = engine_folder("mlcd-fdk-")
        self.url = f"unix://{self.root / 'docker.sock'}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> str:
        log = open(self.root / "dockerd.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*self.cmd, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
             "-H", self.url, "--bridge=none", "--iptables=false", "--ip6tables=false",
             "--shutdown-timeout=5"],
            stdout=log, stderr=subprocess.STDOUT)
        self.proc._mlcd_log = log  # type: ignore[attr-defined]
        deadline = time.monotonic() + timeout
        while not _docker_ping(self.url):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("private dockerd did not start: "
                                   + (self.root / "dockerd.log").read_text()[-2000:])
            time.sleep(0.3)
        self.starts += 1
        return self.url

    def stop(self) -> None:
        """SIGTERM and wait (containers get 5 s): the engine is gone when this returns."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            stop(self.proc)
        self.proc._mlcd_log.close()  # type: ignore[attr-defined]
        self.proc = None

    def remove(self) -> None:
        self.stop()
        remove_engine_folder(self.root)

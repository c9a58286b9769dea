"""The main snapshot: what the main branch last produced, so a pull request can be compared
with main without any server.

A folder (default :data:`DEFAULT_DIR`, ``.mlcd/main``)::

    model/          an MLflow model directory (MLmodel + files), loadable without a server
    evaluate.json   the main run's evaluate report (mlcd.report/v1)
    meta.json       schema, git sha and branch, time, lineage, model URI and run id, metrics

``mlcd evaluate --save-main-snapshot`` writes it (atomically: beside, then renamed), and
``mlcd evaluate`` reads it when no registry champion is reachable, re-scoring ``model/``
on the pull request's test set. CI carries the folder from the main branch's run to the
pull request's (an Actions cache or artifact, a GitLab artifact of the last main pipeline);
locally ``mlcd run`` on the main branch writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcd_actions.core.files import json_safe

DEFAULT_DIR = ".mlcd/main"
SCHEMA = "mlcd.main-snapshot/v1"
MODEL = "model"
REPORT = "evaluate.json"
META = "meta.json"
NONE_YET = "no model on main yet"


@dataclass
class Snapshot:
    directory: Path
    meta: dict[str, Any]

    @property
    def model_dir(self) -> Path:
        return self.directory / MODEL

    @property
    def sha(self) -> str | None:
        return self.meta.get("git_sha")

    @property
    def label(self) -> str:
        """How reports name it: ``main@abc1234``."""
        branch = self.meta.get("branch") or "main"
        return f"{branch}@{self.sha[:7]}" if self.sha else branch


def read(directory: str | os.PathLike) -> tuple[Snapshot | None, str]:
    """The snapshot in ``directory``, or None and why there is none (one phrase)."""
    d = Path(directory)
    meta_path = d / META
    if not meta_path.is_file():
        return None, f"{NONE_YET} ({d})"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"main snapshot {meta_path} is unreadable ({exc})"
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        return None, f"main snapshot {meta_path} is not {SCHEMA}"
    if not (d / MODEL / "MLmodel").is_file():
        return None, f"main snapshot {d} has no model ({MODEL}/MLmodel missing)"
    return Snapshot(d, meta), ""


def save(directory: str | os.PathLike, model_dir: str | os.PathLike, report: dict[str, Any],
         meta: dict[str, Any]) -> Path:
    """Replace the snapshot in ``directory`` with ``model_dir``, ``report`` and ``meta``."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        shutil.copytree(model_dir, tmp / MODEL)
        (tmp / REPORT).write_text(json.dumps(json_safe(report), indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")
        (tmp / META).write_text(json.dumps(json_safe({"schema": SCHEMA, **meta}), indent=2,
                                           sort_keys=True) + "\n", encoding="utf-8")
        _usual_modes(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}-old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _usual_modes(folder: Path) -> None:
    """mkdtemp makes 0700: give the folder the umask's usual mode, like any other output."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o777 & ~umask)

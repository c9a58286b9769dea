"""Local files: a path, a ``file://`` URI, a directory or a glob (CSV, TSV, Parquet, JSON lines).

``data/*.csv`` and ``data/**/*.parquet`` read every matching file in name order; a
directory reads the table files directly in it (not sub-directories: use ``dir/**/*.csv``).
Files may differ in columns or widen a type (int then float); ``ingest`` unifies them.

In CI the files must lie inside the job's workspace (``GITHUB_WORKSPACE``, or
``CI_PROJECT_DIR`` on GitLab), symlinks resolved, so a source URI taken from a pull request
or a variable cannot read ``../../home/runner/.ssh`` or ``/etc``: a path outside is refused
(exit 2) unless ``allow_outside_workspace`` (``--allow-outside-workspace``) asks for it.
Outside CI there is no workspace and no such boundary.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from mlcd_actions.core.errors import DataError
from mlcd_actions.data.tables import format_of, is_table_name, iter_file_batches
from mlcd_actions.sources.base import Source, SourceData

_GLOB = ("*", "?", "[")


def path_of(uri: str) -> str:
    """``file:///a/b.csv`` or ``file:b.csv`` -> a local path; a plain path unchanged."""
    if uri.lower().startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise DataError(f"{uri}: file URIs on another host are not supported")
        return url2pathname(unquote(parts.path)) if parts.path else ""
    return os.path.expanduser(uri)


def expand(pattern: str, *, label: str) -> list[Path]:
    """The files a path, directory or glob stands for, in a stable order."""
    if any(c in pattern for c in _GLOB):
        files = sorted(Path(p) for p in glob.glob(pattern, recursive=True)
                       if Path(p).is_file())
        if not files:
            raise DataError(f"{label}: no files match")
        return files
    path = Path(pattern)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_table_name(p.name)
                       and not p.name.startswith((".", "_")))
        if not files:
            raise DataError(f"{label}: directory holds no .csv, .parquet or .jsonl files")
        return files
    if not path.exists():
        raise DataError(f"{label}: no such file")
    return [path]


def workspace(env=None) -> Path | None:
    """The CI job's workspace (``GITHUB_WORKSPACE``, ``CI_PROJECT_DIR``), or None outside CI.

    When the job does not run inside the folder the variable names (runners that report a
    path they do not use, as ``gitlab-ci-local``'s shell executor reports ``/builds/...``),
    the job's working directory is the workspace."""
    env = os.environ if env is None else env
    root = env.get("GITHUB_WORKSPACE") or env.get("CI_PROJECT_DIR")
    if not root:
        return None
    declared, cwd = Path(root).resolve(), Path.cwd().resolve()
    return declared if cwd == declared or declared in cwd.parents else cwd


def check_inside(files: list[Path], root: Path | None, *, label: str) -> None:
    """Refuse (exit 2) a file that resolves outside ``root`` (symlinks and ``..`` followed)."""
    if root is None:
        return
    for f in files:
        real = f.resolve()
        if real != root and root not in real.parents:
            raise DataError(f"{label}: {f} is outside the workspace {root}; pass "
                            "--allow-outside-workspace to read it anyway")


class LocalSource(Source):
    name = "local"
    schemes = ("file",)
    options = ("format", "progress", "timeout", "retries", "allow_outside_workspace")

    @contextlib.contextmanager
    def open(self, uri: str) -> Iterator[SourceData]:
        pattern = path_of(uri)
        if not pattern:
            raise DataError(f"{uri}: no path in the URI")
        files = expand(pattern, label=uri)
        if not self.extra.get("allow_outside_workspace"):
            check_inside(files, workspace(), label=uri)
        formats = [format_of(f.name, explicit=self.format, label=str(f)) for f in files]
        details: dict[str, Any] = {
            "files": [{"path": str(f), "bytes": f.stat().st_size, "format": fmt}
                      for f, fmt in zip(files, formats, strict=False)],
            "content_length": sum(f.stat().st_size for f in files),
        }
        if len(files) == 1:
            details["modified"] = _mtime(files[0])

        def batches():
            for f, fmt in zip(files, formats, strict=False):
                yield from iter_file_batches(f, fmt, label=str(f))

        yield SourceData(batches(), details)

    @classmethod
    def contract_source(cls, kind: str, table_path: Path, workdir: Path,
                        fixture: Callable[[str], Any]) -> tuple[str, dict[str, Any]]:
        import pyarrow.parquet as pq

        target = workdir / "local-source" / "table.parquet"
        if kind == "missing":
            return str(target), {}
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pq.read_table(table_path)
        pq.write_table(table.slice(0, 0) if kind == "empty" else table, target)
        return str(target), {}


def _mtime(path: Path) -> str:
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc)
    return stamp.isoformat(timespec="seconds")

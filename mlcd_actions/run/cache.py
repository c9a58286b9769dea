"""Skip-unchanged for ``mlcd run``: content-hash keys and the stage cache under ``.mlcd/cache``.

A stage's key is a SHA-256 over everything that decides what the stage produces:

* the stage name and the mlcd version;
* its resolved options (command line, ``MLCD_<OPTION>`` env vars, ``mlcd.yaml``): every
  value that names an existing file or folder is replaced by the hash of its content, so
  editing ``schema.yaml`` or ``params.yaml`` changes the key but moving the project does not;
* the values wired in from upstream stages (the prepared train set's content, the
  training run's ``model-uri``...), so a changed upstream output re-runs the stage;
* for stages that import the project's code (``prepare`` with a transform, ``train``,
  ``build-training``), the hash of the project's Python files and requirements.

Options that only name where a stage writes (``--out``, ``--output``, ``--report-dir``)
count by name, never by content. Gate thresholds belong to the gate stages only, so
changing a threshold re-runs ``evaluate`` but not ``train``.

An entry (``<cache>/<stage>/<key>/``) keeps the stage's report, its outputs and copies of
the files it produced; a hit restores them and the stage is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions import __version__
from mlcd_actions.core.files import atomic_dir, sha256_file, write_json

DEFAULT_DIR = ".mlcd/cache"
ENTRY = "entry.json"
KEEP = 3  # entries kept per stage (the newest)
# folders never hashed as project content
_SKIP_DIRS = {"__pycache__", "node_modules", ".venv", "venv", "build", "dist"}
CODE_SUFFIXES = (".py",)
CODE_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "requirements.txt",
              "requirements-train.txt", "conda.yaml", "environment.yml", "ruff.toml",
              ".ruff.toml", "pytest.ini", "tox.ini", "MANIFEST.in")


def digest(data: Any) -> str:
    """SHA-256 of a JSON-able value (sorted keys: the same value, the same digest)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _walk(root: Path, *, dotfiles: bool = False) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyo")) and (dotfiles or not name.startswith(".")
                                                         or name in CODE_FILES):
                yield Path(dirpath) / name


def path_hash(path: Path) -> str:
    """Content hash of a file, or of every file under a folder (names and contents)."""
    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in _walk(path):
        h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
        h.update(sha256_file(f).encode("ascii") + b"\n")
    return h.hexdigest()


def code_hash(root: Path) -> str:
    """Hash of the project's code: ``*.py`` files and the requirement/packaging files."""
    h = hashlib.sha256()
    for f in _walk(root):
        if f.suffix in CODE_SUFFIXES or f.name in CODE_FILES:
            h.update(f.relative_to(root).as_posix().encode("utf-8") + b"\0")
            h.update(sha256_file(f).encode("ascii") + b"\n")
    return h.hexdigest()


class Hasher:
    """Replace path-like option values by content hashes (memoised for one run)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._memo: dict[Path, str] = {}

    def _existing(self, value: str) -> Path | None:
        if not value or "://" in value or "\n" in value or len(value) > 4096:
            return None
        p = Path(value)
        p = p if p.is_absolute() else self.root / p
        try:
            return p.resolve() if p.exists() else None
        except OSError:
            return None

    def value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {str(k): self.value(v) for k, v in value.items()}
        if isinstance(value, str):
            p = self._existing(value)
            if p is not None:
                if p not in self._memo:
                    self._memo[p] = path_hash(p)
                # the path's content, not where the project lives
                return {"path": value, "sha256": self._memo[p]}
        return value

    def forget(self) -> None:
        """Drop memoised hashes (files change between stages)."""
        self._memo.clear()


@dataclass
class Entry:
    stage: str
    key: str
    directory: Path
    status: str
    exit_code: int
    outputs: dict[str, Any] = field(default_factory=dict)
    reports: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256 (or "dir")


class Cache:
    """``<dir>/<stage>/<key>/{entry.json, reports/, files/}`` for one project root."""

    def __init__(self, directory: str | os.PathLike, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        d = Path(directory)
        self.dir = (d if d.is_absolute() else self.root / d).resolve()

    def _path(self, stage: str, key: str) -> Path:
        return self.dir / stage / key[:40]

    def lookup(self, stage: str, key: str) -> Entry | None:
        path = self._path(stage, key) / ENTRY
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("key") != key or data.get("status") not in ("passed", "skipped"):
            return None
        entry = Entry(stage, key, path.parent, data["status"], int(data.get("exit_code", 0)),
                      data.get("outputs") or {}, list(data.get("reports") or []),
                      dict(data.get("files") or {}))
        # an entry whose copies went missing is no entry
        for rel in entry.files:
            if not (entry.directory / "files" / rel).exists():
                return None
        return entry

    def relative(self, path: str | os.PathLike) -> str | None:
        """``path`` relative to the project, or None when it is outside it or in the cache."""
        p = Path(path)
        p = (p if p.is_absolute() else self.root / p).resolve()
        try:
            rel = p.relative_to(self.root)
        except ValueError:
            return None
        if p == self.root or p.is_relative_to(self.dir):
            return None
        return rel.as_posix()

    def store(self, stage: str, key: str, *, status: str, exit_code: int,
              outputs: dict[str, Any], reports: dict[str, Path],
              files: Iterable[str | os.PathLike]) -> Entry:
        """Keep the reports (name -> json path; the .md beside is kept too) and files."""
        target = self._path(stage, key)
        kept: dict[str, str] = {}
        with atomic_dir(target) as tmp:
            (tmp / "reports").mkdir()
            for name, json_path in reports.items():
                for suffix in (".json", ".md"):
                    src = json_path.with_suffix(suffix)
                    if src.is_file():
                        shutil.copy2(src, tmp / "reports" / f"{name}{suffix}")
            for f in files:
                rel = self.relative(f)
                if rel is None or rel in kept:
                    continue
                src = self.root / rel
                dest = tmp / "files" / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dest, dirs_exist_ok=True)
                    kept[rel] = "dir"
                elif src.is_file():
                    shutil.copy2(src, dest)
                    kept[rel] = sha256_file(src)
            write_json(tmp / ENTRY, {"stage": stage, "key": key, "mlcd_version": __version__,
                                     "status": status, "exit_code": exit_code,
                                     "outputs": outputs, "reports": sorted(reports),
                                     "files": kept})
        self._prune(stage, keep=target)
        return Entry(stage, key, target, status, exit_code, outputs, sorted(reports), kept)

    def restore(self, entry: Entry, report_dir: Path) -> list[str]:
        """Put the entry's reports and files back; returns the files that were rewritten."""
        report_dir.mkdir(parents=True, exist_ok=True)
        for name in entry.reports:
            for suffix in (".json", ".md"):
                src = entry.directory / "reports" / f"{name}{suffix}"
                if src.is_file():
                    dest = report_dir / f"{name}{suffix}"
                    if not dest.is_file() or dest.read_bytes() != src.read_bytes():
                        shutil.copy2(src, dest)
        rewritten = []
        for rel, sha in entry.files.items():
            src = entry.directory / "files" / rel
            dest = self.root / rel
            if sha == "dir":
                if not dest.is_dir() or path_hash(dest) != path_hash(src):
                    if dest.exists():
                        shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(src, dest)
                    rewritten.append(rel)
            elif not dest.is_file() or sha256_file(dest) != sha:
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
                rewritten.append(rel)
        return rewritten

    def _prune(self, stage: str, keep: Path) -> None:
        entries = sorted((p for p in (self.dir / stage).iterdir() if p.is_dir() and p != keep
                          and not p.name.startswith(".")),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP - 1:]:
            shutil.rmtree(old, ignore_errors=True)

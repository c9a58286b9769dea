"""Atomic writes: a failed stage leaves no half-written output (DESIGN §3).

Files are written to a temporary sibling and renamed into place; directories are
built in a temporary sibling and swapped in, so readers see the old or the new
content, never a mixture. What lands in place has the mode the umask gives any new file
or folder (0644 / 0755 under the usual 022), not the 0600 / 0700 of ``mkstemp`` /
``mkdtemp``; ``private=True`` keeps a file readable by its owner only (secrets).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_UMASK: int | None = None


def umask() -> int:
    """The process umask (read once: setting it to read it is not thread-safe)."""
    global _UMASK
    if _UMASK is None:
        with contextlib.suppress(OSError, ValueError):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    _UMASK = int(line.split()[1], 8)
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


def usual_mode(path: str | os.PathLike, *, private: bool = False) -> None:
    """Give ``path`` the mode a plain ``open()`` / ``mkdir`` would (umask applied);
    ``private`` files stay 0600."""
    p = Path(path)
    with contextlib.suppress(OSError):
        if p.is_dir():
            os.chmod(p, 0o777 & ~umask())
        elif not private:
            os.chmod(p, 0o666 & ~umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path`` (with
    the umask's usual mode, or 0600 when ``private``)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.is_file():
            usual_mode(tmp_path, private=private)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(path: str | os.PathLike, text: str, *, private: bool = False) -> Path:
    with atomic_path(path, private=private) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default,
                                       ensure_ascii=False) + "\n")


def _refuse_cwd_or_ancestor(path: str | os.PathLike, target: Path) -> None:
    """An output directory that is the cwd (or holds it) cannot be swapped: refuse it."""
    from mlcd_actions.core.errors import ConfigError

    cwd = Path.cwd().resolve()
    if target == cwd or target in cwd.parents or target == Path(target.anchor):
        what = "the current directory" if target == cwd else (
            "the filesystem root" if target == Path(target.anchor)
            else "a parent of the current directory")
        raise ConfigError(f"output directory {os.fspath(path)!r} is {what}; "
                          f"write to a subdirectory instead (e.g. ./out)")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``path`` whole.

    Files already in ``path`` that the new content does not write are kept, so a
    stage that writes two files into a shared folder does not delete a third.
    A target that is the current directory, one of its parents or ``/`` is refused
    (ConfigError): it cannot be swapped out from under the process. If the swap fails
    after existing files were moved across, they are moved back, never deleted.
    """
    target = Path(path).resolve()
    _refuse_cwd_or_ancestor(path, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    stranded = False
    try:
        yield tmp
        usual_mode(tmp)
        if target.exists() and not target.is_dir():
            raise NotADirectoryError(f"{target} exists and is not a directory")
        if target.is_dir():
            moved: list[str] = []
            try:
                for child in list(target.iterdir()):
                    if not (tmp / child.name).exists():
                        _rename(child, tmp / child.name)
                        moved.append(child.name)
                backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old",
                                               dir=target.parent))
                backup.rmdir()
                _rename(target, backup)
                try:
                    _rename(tmp, target)
                except BaseException:
                    _rename(backup, target)
                    raise
            except BaseException:
                stranded = not _move_back(moved, tmp, target)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        else:
            _rename(tmp, target)
    finally:
        if tmp.exists() and not stranded:
            shutil.rmtree(tmp, ignore_errors=True)


def _rename(src: Path, dst: Path) -> None:
    os.rename(src, dst)


def _move_back(names: list[str], tmp: Path, target: Path) -> bool:
    """Return files moved from ``target`` into ``tmp`` to where they were; True when all did."""
    ok = True
    for name in reversed(names):
        try:
            _rename(tmp / name, target / name)
        except OSError:
            ok = False
    if not ok:
        import logging

        logging.getLogger("mlcd").error("could not move every file back into %s; "
                                        "the rest are kept in %s", target, tmp)
    return ok


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any) -> Any:
    for attr in ("item", "tolist"):  # numpy scalars and arrays
        if hasattr(obj, attr):
            try:
                return getattr(obj, attr)()
            except Exception:  # noqa: BLE001 - fall through to str
                pass
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def json_safe(data: Any) -> Any:
    """Round-trip through JSON so NaN/inf and numpy types become plain values."""
    return json.loads(json.dumps(data, default=_json_default, allow_nan=True))

"""``build-training``: check the training code, then package it as a versioned artifact.

The library behind ``mlcd build-training [SRC_DIR] --out DIR`` (DESIGN §2):

1. **Version** from git (:mod:`mlcd_actions.ci.versioning`): ``X.Y.Z-alpha.N+sha`` on pull
   requests, ``X.Y.Z-beta.N+sha`` on the default branch, ``X.Y.Z`` on a release tag.
2. **Toggles**: a YAML file (``channels: {alpha: false, beta: true, release: true}``) may
   switch a channel off; the stage is then ``skipped`` with ``channel-enabled=false``.
3. **Checks**: ``ruff check`` (when the code has a ruff config or ``.py`` files and ruff is
   installed) and ``pytest`` (when there is a ``tests/`` folder or ``test_*.py``), or the
   ``--check-command`` commands instead. Any failure fails the stage (exit 1); the report
   carries the last lines of each failing command's output.
4. **Package**: a wheel when the code is a Python package (``pyproject.toml`` or
   ``setup.py``; ``pip wheel --no-deps --no-build-isolation``, then the wheel's version is
   set to the PEP 440 form of the git version), a zip otherwise. Both are deterministic:
   sorted entries, fixed timestamps and permissions, so the same input gives the same
   sha256. Excluded: ``.git``, ``__pycache__``, ``.mlcd``, ``.venv``, ``.dvc``, caches,
   ``/build``, ``/dist``, the output folder, and whatever the ``.gitignore`` files (and
   ``exclude`` patterns, gitignore syntax) exclude, which keeps DVC-tracked data out.

Outputs: ``artifact``, ``version``, ``channel``, ``sha256``, ``channel-enabled``,
``version-pep440``, ``artifact-kind``.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions.ci import gitinfo, versioning
from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.files import atomic_path, sha256_file
from mlcd_actions.core.results import FAILED, SKIPPED, Finding, StageResult, Table

STAGE = "build-training"
TAIL_LINES = 30
DEFAULT_CHECK_TIMEOUT = 1800.0
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)   # the earliest time a zip entry can carry
SOURCE_DATE_EPOCH = "315532800"         # the same instant, for build backends
KINDS = ("auto", "wheel", "zip")

# always left out, wherever they are (gitignore syntax)
ALWAYS_EXCLUDE = [
    ".git/", ".hg/", ".svn/", "__pycache__/", "*.py[cod]", ".mlcd/", ".venv/", "venv/",
    ".tox/", ".nox/", ".pytest_cache/", ".ruff_cache/", ".mypy_cache/", ".ipynb_checkpoints/",
    ".dvc/", "*.egg-info/", ".eggs/", ".DS_Store", "/build/", "/dist/", ".coverage",
    ".coverage.*", "htmlcov/", "node_modules/",
]


def _say(message: str) -> None:
    sys.stderr.write(f"{STAGE}: {secrets.mask(message)}\n")
    sys.stderr.flush()


# ------------------------------------------------------------------ toggles

def load_toggles(path: str | os.PathLike) -> dict[str, bool]:
    """``channels: {alpha: bool, beta: bool, release: bool}``; missing channels are on."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"toggles file not found: {path}", file=str(path))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read toggles file {path}: {exc}", file=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        where = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                          file=str(path), line=line) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'channels' key", file=str(path))
    unknown = sorted(set(data) - {"channels"})
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r} (expected 'channels')",
                          file=str(path))
    channels = data.get("channels") or {}
    if not isinstance(channels, dict):
        raise ConfigError(f"{path}: 'channels' must map alpha/beta/release to true/false",
                          file=str(path))
    out = {c: True for c in versioning.CHANNELS}
    for key, value in channels.items():
        if key not in versioning.CHANNELS:
            raise ConfigError(f"{path}: unknown channel {key!r} (expected alpha, beta or "
                              "release)", file=str(path))
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: channels.{key} must be true or false, not {value!r}",
                              file=str(path))
        out[key] = value
    return out


# ------------------------------------------------------------------ files

class SourceFiles:
    """The files of ``root`` that belong in the artifact, honouring ``.gitignore`` files."""

    def __init__(self, root: Path, *, extra_excludes: Iterable[str] = (),
                 skip: Iterable[Path] = ()) -> None:
        import pathspec

        self.root = root
        self._pathspec = pathspec
        self.always = pathspec.GitIgnoreSpec.from_lines(ALWAYS_EXCLUDE)
        self.extra = pathspec.GitIgnoreSpec.from_lines(list(extra_excludes))
        self.skip = {p.resolve() for p in skip}

    def _spec_for(self, directory: Path):
        gi = directory / ".gitignore"
        if not gi.is_file():
            return None
        try:
            lines = gi.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        return self._pathspec.GitIgnoreSpec.from_lines(lines)

    def _excluded(self, rel: str, is_dir: bool, stack: list[tuple[str, Any]]) -> bool:
        probe = rel + "/" if is_dir else rel
        for spec in (self.extra, self.always):
            if spec.check_file(probe).include is True:
                return True
        # the deepest .gitignore with an opinion decides (git's "last match wins")
        for base, spec in reversed(stack):
            sub = probe[len(base) + 1:] if base else probe
            verdict = spec.check_file(sub).include
            if verdict is not None:
                return verdict
        return False

    def list(self) -> list[tuple[str, Path]]:
        """``[(posix path relative to root, absolute path)]``, sorted."""
        out: list[tuple[str, Path]] = []
        self._walk(self.root, "", [], out)
        return sorted(out)

    def _walk(self, directory: Path, rel: str, stack: list[tuple[str, Any]],
              out: list[tuple[str, Path]]) -> None:
        spec = self._spec_for(directory)
        if spec is not None:
            stack = [*stack, (rel, spec)]
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"cannot list {directory}: {exc.strerror}",
                            file=str(directory)) from exc
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            path = Path(entry.path)
            if path.resolve() in self.skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                if not self._excluded(child_rel, True, stack):
                    self._walk(path, child_rel, stack, out)
            elif entry.is_file(follow_symlinks=True):
                if not self._excluded(child_rel, False, stack):
                    out.append((child_rel, path))


def write_zip(files: Sequence[tuple[str, Path | bytes]], dest: Path) -> None:
    """A deterministic zip: sorted entries, fixed time, 0644/0755 modes, deflate level 9."""
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for arcname, src in sorted(files, key=lambda f: f[0]):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so the mode below is read back
            if isinstance(src, bytes):
                mode = 0o644
                info.external_attr = (stat.S_IFREG | mode) << 16
                zf.writestr(info, src, compresslevel=9)
                continue
            st = src.stat()
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            size = st.st_size
            info.file_size = size
            with open(src, "rb") as fin, zf.open(info, "w", force_zip64=size > 2**31) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)


# ------------------------------------------------------------------ checks

@dataclass
class Check:
    label: str
    argv: list[str]
    auto: bool = False


@dataclass
class CheckRun:
    label: str
    exit_code: int | None
    duration_s: float
    tail: list[str] = field(default_factory=list)
    timed_out: bool = False
    note: str | None = None

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict:
        return {"command": self.label, "exit_code": self.exit_code,
                "duration_s": round(self.duration_s, 3), "passed": self.passed,
                "timed_out": self.timed_out, "tail": self.tail,
                **({"note": self.note} if self.note else {})}


def _ruff_executable() -> str | None:
    beside = Path(sys.executable).parent / "ruff"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ruff")


def _has_ruff_config(src: Path) -> bool:
    if (src / "ruff.toml").is_file() or (src / ".ruff.toml").is_file():
        return True
    pyproject = src / "pyproject.toml"
    try:
        return pyproject.is_file() and "[tool.ruff" in pyproject.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


_TEST_FILE = re.compile(r"(^|/)(test_[^/]*|[^/]*_test)\.py$")


def plan_checks(src: Path, files: Sequence[str], commands: Sequence[str]) -> tuple[
        list[Check], list[str]]:
    """The checks to run and warnings about checks that cannot run."""
    warnings: list[str] = []
    if commands:
        checks = []
        for cmd in commands:
            try:
                argv = shlex.split(cmd)
            except ValueError as exc:
                raise ConfigError(f"--check-command {cmd!r}: {exc}") from exc
            if not argv:
                raise ConfigError("--check-command is empty")
            checks.append(Check(cmd, argv))
        return checks, warnings

    checks = []
    has_py = any(f.endswith(".py") for f in files)
    if has_py or _has_ruff_config(src):
        ruff = _ruff_executable()
        if ruff:
            checks.append(Check("ruff check .", [ruff, "check", "--no-cache", "."], auto=True))
        else:
            warnings.append("ruff is not installed: static checks skipped")
    if (src / "tests").is_dir() or any(_TEST_FILE.search(f) for f in files):
        checks.append(Check("pytest", [sys.executable, "-m", "pytest", "-q",
                                       "-p", "no:cacheprovider"], auto=True))
    return checks, warnings


def run_check(check: Check, cwd: Path, *, timeout: float,
              env: Mapping[str, str] | None = None) -> CheckRun:
    """Run one check, streaming its output to stderr and keeping the last lines."""
    _say(f"check: {check.label}")
    run_env = {**os.environ, **(env or {}), "PYTHONDONTWRITEBYTECODE": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(check.argv, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                                errors="replace", env=run_env, start_new_session=True)
    except OSError as exc:
        return CheckRun(check.label, None, time.monotonic() - t0,
                        [f"cannot run {check.argv[0]}: {exc.strerror or exc}"],
                        note="command not found" if isinstance(exc, FileNotFoundError)
                        else "cannot start")

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = secrets.mask(line.rstrip("\n"))
            tail.append(line)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        code = proc.wait()
    reader.join(10)
    run = CheckRun(check.label, None if timed_out else code, time.monotonic() - t0,
                   list(tail), timed_out=timed_out)
    if timed_out:
        run.note = f"timed out after {timeout:g}s"
    elif check.auto and check.label == "pytest" and code == 5:
        run.exit_code = 0
        run.note = "no tests collected"
    return run


# ------------------------------------------------------------------ packaging

def project_name(src: Path) -> str | None:
    pyproject = src / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataError(f"{pyproject}: not valid TOML ({exc})", file=str(pyproject)) from exc
    name = (data.get("project") or {}).get("name")
    if not name:
        name = ((data.get("tool") or {}).get("poetry") or {}).get("name")
    return str(name) if name else None


def is_package(src: Path) -> bool:
    return (src / "pyproject.toml").is_file() or (src / "setup.py").is_file()


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-.")
    return cleaned or "training"


class BuildFailure(Exception):
    """Packaging failed; ``tail`` holds the last lines of the build's output."""

    def __init__(self, message: str, tail: Sequence[str]) -> None:
        super().__init__(message)
        self.message = message
        self.tail = list(tail)


def build_wheel(files: Sequence[tuple[str, Path]], out_dir: Path, pep440: str, *,
                timeout: float) -> Path:
    """``pip wheel`` a copy of ``files``, then set the wheel's version to ``pep440``."""
    with tempfile.TemporaryDirectory(prefix="mlcd-wheel-") as tmp:
        tree = Path(tmp) / "src"
        for rel, path in files:
            target = tree / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        wheels = Path(tmp) / "wheels"
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "--disable-pip-version-check", "--no-cache-dir", "-q",
               "-w", str(wheels), str(tree)]
        _say("pip wheel --no-deps --no-build-isolation")
        env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH,
               "PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_INPUT": "1"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  env=env, timeout=timeout, cwd=tmp, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BuildFailure(f"pip wheel timed out after {timeout:g}s", []) from exc
        output = [secrets.mask(line) for line in (proc.stdout + proc.stderr).splitlines()]
        built = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
        if proc.returncode != 0 or len(built) != 1:
            last = next((line for line in reversed(output) if line.strip()), "no output")
            raise BuildFailure(f"pip wheel exited {proc.returncode}: {last.strip()}",
                               output[-TAIL_LINES:])
        return set_wheel_version(built[0], pep440, out_dir)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def set_wheel_version(wheel: Path, version: str, out_dir: Path) -> Path:
    """A copy of ``wheel`` in ``out_dir`` whose version is ``version`` (PEP 440).

    Renames ``.dist-info``/``.data``, rewrites ``Version:`` in METADATA, regenerates
    RECORD, and writes entries sorted with fixed timestamps (deterministic).
    """
    from packaging.utils import parse_wheel_filename
    from packaging.version import Version

    version = str(Version(version))
    _name, _old, build, _tags = parse_wheel_filename(wheel.name)
    parts = wheel.name[:-len(".whl")].split("-")
    dist, tag_part = parts[0], "-".join(parts[-3:])
    build_part = f"-{parts[2]}" if build else ""
    new_name = f"{dist}-{version}{build_part}-{tag_part}.whl"

    with zipfile.ZipFile(wheel) as zin:
        entries = {i.filename: (zin.read(i), (i.external_attr >> 16) & 0o777)
                   for i in zin.infolist() if not i.is_dir()}
    dist_infos = {n.split("/", 1)[0] for n in entries if n.split("/", 1)[0].endswith(".dist-info")}
    if len(dist_infos) != 1:
        raise BuildFailure(f"{wheel.name}: expected one .dist-info folder, found "
                           f"{len(dist_infos)}", [])
    old_prefix = dist_infos.pop()[:-len(".dist-info")]
    new_prefix = f"{old_prefix.rsplit('-', 1)[0]}-{version}"

    renamed: dict[str, tuple[bytes, int]] = {}
    for name, (data, mode) in entries.items():
        top, _, rest = name.partition("/")
        if top == f"{old_prefix}.dist-info":
            name = f"{new_prefix}.dist-info/{rest}"
        elif top == f"{old_prefix}.data":
            name = f"{new_prefix}.data/{rest}"
        renamed[name] = (data, mode)
    dist_info = f"{new_prefix}.dist-info"
    meta_name = f"{dist_info}/METADATA"
    if meta_name not in renamed:
        raise BuildFailure(f"{wheel.name}: no METADATA in {old_prefix}.dist-info", [])
    meta, mode = renamed[meta_name]
    meta, count = re.subn(rb"^Version: .*$", f"Version: {version}".encode(), meta, count=1,
                          flags=re.MULTILINE)
    if count != 1:
        raise BuildFailure(f"{wheel.name}: METADATA has no Version field", [])
    renamed[meta_name] = (meta, mode)
    record_name = f"{dist_info}/RECORD"
    renamed.pop(record_name, None)

    def order(name: str) -> tuple[int, str]:
        return (1 if name.startswith(dist_info + "/") else 0, name)

    names = sorted(renamed, key=order)
    record_lines = [f"{n},{_record_hash(renamed[n][0])},{len(renamed[n][0])}" for n in names]
    record_lines.append(f"{record_name},,")
    renamed[record_name] = (("\n".join(record_lines) + "\n").encode(), 0o644)
    names.append(record_name)

    dest = out_dir / new_name
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for name in names:
            data, mode = renamed[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | (0o755 if mode & 0o111 else 0o644)) << 16
            zf.writestr(info, data, compresslevel=9)
    return dest


# ------------------------------------------------------------------ the stage

def run(src_dir: str | os.PathLike = ".", *, out: str | os.PathLike,
        base_version: str | None = None, check_commands: Sequence[str] = (),
        skip_checks: bool = False, toggles: str | os.PathLike | None = None,
        kind: str = "auto", name: str | None = None, excludes: Sequence[str] = (),
        check_timeout: float = DEFAULT_CHECK_TIMEOUT,
        env: Mapping[str, str] | None = None) -> StageResult:
    """Version, check and package the training code in ``src_dir`` into ``out``."""
    src = Path(src_dir)
    out_dir = Path(out)
    _check_options(src_dir, out, kind=kind, check_timeout=check_timeout)
    channels = load_toggles(toggles) if toggles else None
    src_abs = src.resolve()
    if kind == "wheel" and not is_package(src_abs):
        raise ConfigError(f"--artifact-kind wheel needs a pyproject.toml or setup.py in {src_dir}")

    ctx = gitinfo.context(src_abs, env)
    info = versioning.compute(ctx, src_abs, base_version=base_version)
    for warning in info.warnings:
        _say(f"warning: {warning}")
    _say(f"version {info.version} (channel {info.channel}, from {info.source})")

    result = StageResult(STAGE)
    result.warnings.extend(info.warnings)
    # `code-version` is train's --code-version (the same value as `version`)
    result.outputs = {"version": info.version, "code-version": info.version,
                      "version-pep440": info.pep440, "channel": info.channel}
    result.lineage = {"code_version": info.version, "git_sha": ctx.sha}
    result.details = {"git": ctx.to_dict(), "version": info.to_dict()}

    if channels is not None and not channels[info.channel]:
        result.status = SKIPPED
        result.reason = (f"channel {info.channel} is disabled in {toggles}: "
                         f"no artifact for {info.version}")
        result.outputs["channel-enabled"] = False
        return result
    result.outputs["channel-enabled"] = True

    files = SourceFiles(src_abs, extra_excludes=excludes, skip=[out_dir.resolve()]).list()
    if not files:
        raise DataError(f"nothing to package in {src_dir}: every file is excluded or the "
                        "folder is empty", file=str(src_dir))
    runs = _checks(result, src_abs, src_dir, [rel for rel, _ in files], check_commands,
                   skip_checks=skip_checks, timeout=check_timeout)
    if result.status == FAILED:
        return result
    _package(result, src_abs, out_dir, files, info, kind=kind, name=name,
             timeout=check_timeout, checks_run=len(runs))
    return result


def _check_options(src_dir: str | os.PathLike, out: str | os.PathLike, *, kind: str,
                   check_timeout: float) -> None:
    src, out_dir = Path(src_dir), Path(out)
    if not src.exists():
        raise DataError(f"source folder not found: {src_dir}", file=str(src_dir))
    if not src.is_dir():
        raise DataError(f"source is not a folder: {src_dir}", file=str(src_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder", file=str(out))
    if kind not in KINDS:
        raise ConfigError(f"--artifact-kind {kind!r}: expected one of {', '.join(KINDS)}")
    if check_timeout <= 0:
        raise ConfigError("--check-timeout must be positive")


def _checks(result: StageResult, src_abs: Path, src_dir, rel_files: list[str],
            check_commands: Sequence[str], *, skip_checks: bool,
            timeout: float) -> list[CheckRun]:
    """Run the checks, record them; a failed check makes ``result`` FAILED."""
    runs: list[CheckRun] = []
    if skip_checks:
        result.warnings.append("checks skipped (--skip-checks)")
    else:
        checks, warnings = plan_checks(src_abs, rel_files, check_commands)
        result.warnings.extend(warnings)
        if not checks:
            result.warnings.append(f"no checks: {src_dir} has no Python files and no tests; "
                                   "add --check-command to gate this code")
        for check in checks:
            runs.append(run_check(check, src_abs, timeout=timeout))
    result.details["checks"] = [r.to_dict() for r in runs]
    result.metrics["checks"] = len(runs)
    result.metrics["checks_failed"] = sum(not r.passed for r in runs)
    if runs:
        result.tables.append(Table("Checks", ["command", "exit code", "seconds", "verdict"], [
            [r.label, r.exit_code if r.exit_code is not None else (r.note or "-"),
             round(r.duration_s, 2), "passed" if r.passed else "failed"] for r in runs]))
    for warning in result.warnings:
        result.findings.append(Finding(warning, severity="warning", title=f"mlcd {STAGE}"))

    failed = [r for r in runs if not r.passed]
    if failed:
        first = failed[0]
        why = first.note or f"exit {first.exit_code}"
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        result.status = FAILED
        result.reason = f"check failed: {first.label} ({why}){more}"
        for r in failed:
            last = next((line for line in reversed(r.tail) if line.strip()), "")
            result.findings.append(Finding(
                f"{r.label} failed ({r.note or f'exit {r.exit_code}'}): {last}".strip(),
                title=f"mlcd {STAGE}: check failed", code="build-training.check"))
            result.markdown.append(_tail_block(f"`{r.label}` failed "
                                               f"({r.note or f'exit {r.exit_code}'})", r.tail))
    return runs


def _package(result: StageResult, src_abs: Path, out_dir: Path, files, info, *, kind: str,
             name: str | None, timeout: float, checks_run: int) -> None:
    """Build the wheel or zip into ``out_dir`` and record it (a failed build: FAILED)."""
    chosen = kind if kind != "auto" else ("wheel" if is_package(src_abs) else "zip")
    try:
        if chosen == "wheel":
            artifact = build_wheel(files, out_dir, info.pep440, timeout=timeout)
        else:
            base = _safe_name(name or project_name(src_abs) or src_abs.name)
            artifact = out_dir / f"{base}-{info.version}.zip"
            _say(f"zip {len(files)} file(s) -> {artifact}")
            write_zip(files, artifact)
    except BuildFailure as exc:
        result.status = FAILED
        result.reason = f"wheel build failed: {exc.message}"
        result.findings.append(Finding(exc.message, title=f"mlcd {STAGE}: build failed"))
        result.markdown.append(_tail_block("wheel build failed", exc.tail))
        return

    digest = sha256_file(artifact)
    result.outputs.update({"artifact": str(artifact), "sha256": digest,
                           "artifact-kind": chosen})
    result.artifacts.append(str(artifact))
    result.lineage["code_sha256"] = digest
    result.metrics.update({"files": len(files), "bytes": artifact.stat().st_size})
    result.details["files"] = [rel for rel, _ in files][:500]
    checked = f"{checks_run} check(s) passed" if checks_run else "no checks run"
    result.reason = f"{chosen} {artifact.name} ({info.channel}), {checked}"


def _tail_block(title: str, tail: Sequence[str]) -> str:
    body = "\n".join(tail[-TAIL_LINES:]) or "(no output)"
    fence = "````" if "```" in body else "```"
    return f"#### {title}\n\nLast {min(len(tail), TAIL_LINES)} line(s) of output:\n\n" \
           f"{fence}text\n{body}\n{fence}"

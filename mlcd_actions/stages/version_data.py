"""``version-data``: ``dvc add`` + ``dvc push`` data to a DVC remote and record its version.

The library behind ``mlcd version-data PATH... [--remote URL]`` (DESIGN §2). It uses
DVC's Python API (:class:`dvc.repo.Repo`):

1. find the DVC repository (upwards from the working directory); without one, ``dvc init``
   at the git top level, or ``dvc init --no-scm`` in the working directory outside git;
2. with ``remote``, configure it as the default remote (named ``mlcd`` unless a remote
   with that URL exists already); ``endpoint_url`` sets ``endpointurl`` for S3-compatible
   stores (``AWS_ENDPOINT_URL`` is honoured by the S3 client itself);
3. ``dvc add`` every path, ``dvc push`` their ``.dvc`` files to the remote;
4. the data version is the short md5 of the sorted ``<md5>  <path>`` lines of every added
   output: the same data at the same paths gives the same version, on any machine.

Re-running with unchanged data changes nothing and pushes nothing. In a CI job
(``GITHUB_ACTIONS=true`` or ``GITLAB_CI=true``) a remote that is a folder inside the job's
workspace (``GITHUB_WORKSPACE``, ``CI_PROJECT_DIR`` or the repository) is refused: it is
deleted with the job, so the "pushed" data would be lost. Exit codes: a missing
path, a bad configuration or such a throw-away remote is 2; a push that fails (remote unreachable, no bucket,
refused credentials) is 3, with one line naming the remote.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions.ci import gitinfo
from mlcd_actions.core import secrets
from mlcd_actions.core.errors import ConfigError, DataError, ServiceError
from mlcd_actions.core.results import StageResult, Table

STAGE = "version-data"
DEFAULT_REMOTE_NAME = "mlcd"
VERSION_LEN = 12
_SCHEME = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://")


def _say(message: str) -> None:
    """A progress line on stderr (stdout carries the verdict)."""
    sys.stderr.write(f"{STAGE}: {secrets.mask(message)}\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _dvc_output_to_stderr() -> Iterator[None]:
    """DVC's own messages ("Initialized DVC repository.", progress) go to stderr.

    DVC gives its logger handlers bound to stdout when imported; they are pointed at
    stderr for the duration, as is ``sys.stdout`` for ``dvc.ui``.
    """
    moved: list[tuple[logging.StreamHandler, Any]] = []
    for handler in logging.getLogger("dvc").handlers:
        stream = getattr(handler, "stream", None)
        if isinstance(handler, logging.StreamHandler) and stream in (sys.stdout, sys.__stdout__):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


class _TransferErrors(logging.Filter):
    """DVC's per-file "failed to transfer '<md5>'" records during a push: kept out of the
    terminal (a remote lost mid-push gives one such line per file, which buries the
    verdict) and collected, so the verdict names the first cause and mlcd's log holds all."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("failed to transfer"):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        why = " ".join(str(exc).split()) if exc is not None else ""
        self.lines.append(secrets.mask(f"{message}: {why}" if why else message))
        return False

    def first_cause(self) -> str | None:
        for line in self.lines:
            _, sep, why = line.partition("': ")
            if sep and why:
                return why[:200]
        return None


@contextlib.contextmanager
def _transfer_errors(collected: _TransferErrors) -> Iterator[_TransferErrors]:
    handlers = {h for name in ("dvc", "dvc_objects", "dvc_data")
                for h in logging.getLogger(name).handlers}
    for handler in handlers:
        handler.addFilter(collected)
    try:
        yield collected
    finally:
        for handler in handlers:
            handler.removeFilter(collected)
        mlcd_log = logging.getLogger("mlcd")
        for line in collected.lines:
            mlcd_log.info("dvc push: %s", line)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text.splitlines()[0]}: {str(cause).strip()}"
    return " ".join(secrets.mask(text.splitlines()[0]).split())


def scheme_of(url: str) -> str | None:
    m = _SCHEME.match(url)
    return m["scheme"].lower() if m else None


def _import_dvc():
    try:
        from dvc.repo import Repo
    except ImportError as exc:  # pragma: no cover - dvc is a dependency of the [dvc] extra
        raise ConfigError("DVC is not installed (pip install 'mlcd-actions[dvc]')") from exc
    return Repo


def open_repo(cwd: Path) -> tuple[Any, bool]:
    """The DVC repository holding ``cwd``; initialise one when there is none.

    Returns ``(repo, initialised_now)``.
    """
    Repo = _import_dvc()
    from dvc.exceptions import DvcException, NotDvcRepoError

    try:
        root = Repo.find_root(str(cwd))
        return Repo(root), False
    except NotDvcRepoError:
        pass
    git_root = gitinfo.repo_root(cwd)
    try:
        with _dvc_output_to_stderr():
            if git_root is not None:
                _say(f"no DVC repository: running dvc init in {git_root}")
                Repo.init(str(git_root))
            else:
                _say(f"no DVC repository and no git: running dvc init --no-scm in {cwd}")
                Repo.init(str(cwd), no_scm=True)
    except DvcException as exc:
        raise ConfigError(f"dvc init failed in {git_root or cwd}: {_first_line(exc)}") from exc
    root = Repo.find_root(str(cwd))
    return Repo(root), True


@dataclass
class RemotePlan:
    """The remote a push goes to, and the config change that makes it the default.

    The change is applied in memory for the push and written to ``.dvc/config`` only
    after the push succeeded, so a failed push leaves the configuration as it was.
    """

    name: str
    url: str                      # as written to .dvc/config (DVC makes local paths relative)
    display: str                  # as shown to the user (absolute for a local folder)
    section: dict[str, Any] = field(default_factory=dict)   # the remote's options in memory
    persist: bool = False
    make_default: bool = False


def plan_remote(repo: Any, url: str | None, *, endpoint_url: str | None = None,
                name: str | None = None) -> RemotePlan:
    """Validate ``url``/``endpoint_url``/``name`` against the repository's remotes."""
    remotes: dict[str, dict] = {k: dict(v) for k, v in repo.config.get("remote", {}).items()}
    default = repo.config.get("core", {}).get("remote")
    if url is None:
        current = name or default
        if not current:
            raise ConfigError("no DVC remote configured: pass --remote URL (a folder or "
                              "s3://bucket/prefix) or run `dvc remote add -d NAME URL`")
        if current not in remotes:
            raise ConfigError(f"DVC remote {current!r} is not defined in .dvc/config")
        existing = str(remotes[current].get("url", ""))
        section = dict(remotes[current])
        if endpoint_url:
            _check_endpoint(existing, endpoint_url)
            section["endpointurl"] = endpoint_url
        return RemotePlan(current, existing, existing, section,
                          persist=bool(endpoint_url) and
                          remotes[current].get("endpointurl") != endpoint_url)

    url = url.strip()
    if not url:
        raise ConfigError("--remote is empty: give a folder or s3://bucket/prefix")
    scheme = scheme_of(url)
    if scheme is None:
        local = Path(url).expanduser()
        if local.exists() and not local.is_dir():
            raise ConfigError(f"--remote {url} is a file, not a folder")
        display = os.path.abspath(local)
        # DVC writes a relative URL relative to .dvc/config, reading it against the cwd
        stored = display if local.is_absolute() else os.path.relpath(display)
    else:
        display = stored = url
        if scheme == "s3" and not re.match(r"^s3://[^/]+", url):
            raise ConfigError(f"--remote {url}: expected s3://bucket/prefix")
    if endpoint_url:
        _check_endpoint(url, endpoint_url)

    chosen = name
    if chosen is None:
        chosen = next((n for n, c in sorted(remotes.items()) if _same_url(c.get("url"), display)),
                      DEFAULT_REMOTE_NAME)
    old = remotes.get(chosen, {})
    same = _same_url(old.get("url"), display)
    # a new URL: options of the old remote (endpoint, region...) no longer apply
    section = dict(old) if same else {}
    section["url"] = display
    if endpoint_url:
        section["endpointurl"] = endpoint_url
    persist = (not same or default != chosen
               or (endpoint_url is not None and old.get("endpointurl") != endpoint_url))
    plan = RemotePlan(chosen, stored, display, section, persist=persist, make_default=True)
    _validate_plan(repo, plan)
    return plan


def _validate_plan(repo: Any, plan: RemotePlan) -> None:
    from dvc.config import Config
    from dvc.exceptions import DvcException

    conf = copy.deepcopy(dict(repo.config))
    conf.setdefault("remote", {})[plan.name] = dict(plan.section)
    try:
        Config.validate(conf)
    except DvcException as exc:
        raise ConfigError(f"DVC remote {plan.name!r} ({plan.display}): "
                          f"{_first_line(exc)}") from exc


def reopen_with(repo: Any, plan: RemotePlan) -> Any:
    """The repository reopened with the planned remote merged into its config in memory."""
    Repo = _import_dvc()
    override: dict[str, Any] = {"remote": {plan.name: dict(plan.section)}}
    if plan.make_default:
        override["core"] = {"remote": plan.name}
    root = repo.root_dir
    repo.close()
    return Repo(root, config=override)


def persist_remote(repo: Any, plan: RemotePlan) -> None:
    """Write the remote to ``.dvc/config`` (``dvc remote add -d -f`` / ``modify``)."""
    from dvc.exceptions import DvcException

    if not plan.persist:
        return
    try:
        with repo.config.edit("repo") as conf:
            old = conf["remote"].get(plan.name, {})
            section = dict(old) if _same_url(old.get("url"), plan.display) else {}
            section["url"] = plan.url
            if "endpointurl" in plan.section:
                section["endpointurl"] = plan.section["endpointurl"]
            conf["remote"][plan.name] = section
            if plan.make_default:
                conf["core"]["remote"] = plan.name
    except DvcException as exc:
        raise ConfigError(f"cannot write DVC remote {plan.name!r} to .dvc/config: "
                          f"{_first_line(exc)}") from exc


def precheck_remote(url: str | None, endpoint_url: str | None) -> None:
    """What can be said about ``--remote``/``--endpoint-url`` before touching any repository."""
    if url is None:
        return
    if not url.strip():
        raise ConfigError("--remote is empty: give a folder or s3://bucket/prefix")
    scheme = scheme_of(url.strip())
    if scheme is None:
        local = Path(url.strip()).expanduser()
        if local.exists() and not local.is_dir():
            raise ConfigError(f"--remote {url} is a file, not a folder")
    elif scheme == "s3" and not re.match(r"^s3://[^/]+", url.strip()):
        raise ConfigError(f"--remote {url}: expected s3://bucket/prefix")
    if endpoint_url:
        _check_endpoint(url.strip(), endpoint_url)


PERSISTENT_REMOTES = ("s3://bucket/prefix, gs://bucket/prefix, azure://container/prefix, "
                      "ssh://host/path or a folder outside the job's workspace")


def refuse_workspace_remote(url: str, repo_root: Path,
                            env: dict[str, str] | None = None) -> None:
    """In a CI job, a DVC remote folder inside the workspace is refused (exit 2).

    CI deletes the workspace with the job, so a push there keeps nothing. Outside CI (a
    local ``mlcd run``) such a folder is the embedded default and allowed.
    """
    from mlcd_actions.ci import emit as ci

    env = dict(os.environ) if env is None else env
    where = ci.platform(env)
    if where is None:
        return
    scheme = scheme_of(url)
    if scheme not in (None, "file"):
        return
    folder = Path(url[len("file://"):] if scheme == "file" else url).expanduser()
    folder = Path(os.path.abspath(folder))
    workspaces = [Path(v) for v in (env.get("GITHUB_WORKSPACE"), env.get("CI_PROJECT_DIR"))
                  if v] + [repo_root]
    for ws in workspaces:
        ws = Path(os.path.abspath(ws))
        if folder == ws or ws in folder.parents:
            raise ConfigError(
                f"DVC remote {url} is inside the CI job's workspace ({ws}), which is deleted "
                f"with the job: set a persistent remote ({PERSISTENT_REMOTES}) with "
                "--remote / MLCD_REMOTE / version-data.remote in mlcd.yaml, or "
                "`dvc remote add -d -f mlcd URL`")


def _check_endpoint(url: str, endpoint_url: str) -> None:
    if scheme_of(url) != "s3":
        raise ConfigError(f"--endpoint-url applies to s3:// remotes only, not {url}")
    if scheme_of(endpoint_url) not in ("http", "https"):
        raise ConfigError(f"--endpoint-url {endpoint_url}: expected http(s)://host[:port]")


def _same_url(a: Any, b: str) -> bool:
    if a is None:
        return False
    a = str(a)
    if scheme_of(a) or scheme_of(b):
        return a.rstrip("/") == b.rstrip("/")
    return os.path.abspath(a) == os.path.abspath(b)


def combined_version(entries: Sequence[tuple[str, str]]) -> str:
    """The data version: short md5 of sorted ``<md5>  <path>`` lines (like ``md5sum``)."""
    lines = "".join(f"{md5}  {path}\n" for path, md5 in sorted(entries))
    return hashlib.md5(lines.encode("utf-8")).hexdigest()  # noqa: S324 - an id, as DVC's own


def _check_paths(paths: Sequence[str | os.PathLike], cwd: Path) -> list[Path]:
    if not paths:
        raise ConfigError("give at least one PATH to version (a file or a folder)")
    resolved: list[Path] = []
    for p in paths:
        path = Path(p)
        full = path if path.is_absolute() else cwd / path
        if not full.exists():
            raise DataError(f"path not found: {p}", file=str(p))
        if not os.access(full, os.R_OK):
            raise DataError(f"path not readable: {p}", file=str(p))
        resolved.append(full.resolve())
    return resolved


def run(paths: Sequence[str | os.PathLike], *, remote: str | None = None,
        endpoint_url: str | None = None, remote_name: str | None = None,
        push: bool = True, cwd: str | os.PathLike | None = None) -> StageResult:
    """``dvc add`` + ``dvc push`` ``paths``; outputs ``data-version`` and ``dvc-files``."""
    work = Path(cwd or os.getcwd()).resolve()
    targets = _check_paths(paths, work)
    if remote_name is not None:
        remote_name = remote_name.strip().lower()
        if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", remote_name):
            raise ConfigError(f"--remote-name {remote_name!r}: use letters, digits, '-', '_', '.'")

    if push:
        precheck_remote(remote, endpoint_url)
        if remote and remote.strip():  # before anything is initialised or written
            refuse_workspace_remote(remote.strip(), gitinfo.repo_root(work) or work)
    repo, initialised = open_repo(work)
    from dvc.exceptions import DvcException

    try:
        root = Path(repo.root_dir).resolve()
        _check_inside(targets, paths, root)

        plan: RemotePlan | None = None
        if push:
            plan = plan_remote(repo, remote, endpoint_url=endpoint_url, name=remote_name)
            refuse_workspace_remote(plan.display, root)
            secrets.register(_url_password(plan.display))
            repo = reopen_with(repo, plan)
        rname = plan.name if plan else None
        rurl = plan.display if plan else None

        rel_targets = [os.path.relpath(t, work) for t in targets]
        _say(f"dvc add {' '.join(rel_targets)}")
        try:
            with _dvc_output_to_stderr():
                stages = repo.add([str(t) for t in targets])
        except DvcException as exc:
            raise DataError(f"dvc add failed: {_first_line(exc)}") from exc

        added = _Added.of(stages, work, root)
        entries, dvc_files = added.entries, added.dvc_files
        full_version = combined_version(entries)
        version = full_version[:VERSION_LEN]

        pushed = 0
        if push:
            _say(f"dvc push to remote {rname!r} ({rurl})")
            transfer = _TransferErrors()
            try:
                with _dvc_output_to_stderr(), _transfer_errors(transfer):
                    pushed = repo.push(targets=[str(Path(s.path)) for s in stages], remote=rname)
            except Exception as exc:  # noqa: BLE001 - any push failure is the remote's
                cause = transfer.first_cause()
                first = f" (first: {cause})" if cause else ""
                raise ServiceError(f"cannot push to DVC remote {rname!r} ({rurl}): "
                                   f"{_first_line(exc)}{first}") from exc
            persist_remote(repo, plan)
            _say(f"pushed {pushed} file(s); data version {version}")
    finally:
        repo.close()

    result = StageResult(STAGE)
    if not push and (remote or endpoint_url):
        result.warnings.append("--remote/--endpoint-url ignored with --no-push")
    where = f" to {rname} ({rurl})" if push else " (not pushed)"
    result.reason = (f"data version {version}: {len(entries)} output(s), "
                     f"{pushed} new file(s) pushed{where}")
    result.outputs = {"data-version": version, "dvc-files": dvc_files}
    if push:
        result.outputs["remote"] = secrets.mask(rurl or "")
    result.metrics = {"outputs": len(entries), "files": added.files, "bytes": added.size,
                      "pushed": pushed}
    result.lineage = {"data_version": version}
    result.details = {"data_version_full": full_version, "dvc_root": str(root),
                      "dvc_initialised": initialised, "remote_name": rname,
                      "remote_url": secrets.mask(rurl) if rurl else None,
                      "outputs": [{"path": p, "md5": m} for p, m in sorted(entries)]}
    result.artifacts = list(dvc_files)
    result.tables.append(Table("Versioned data", ["path", "md5", "bytes", "files", ".dvc file"],
                               added.rows))
    result.markdown.append(
        "Commit the `.dvc` files (and the `.gitignore` entries DVC wrote) so this data "
        f"version can be restored with `dvc pull`: {', '.join(f'`{f}`' for f in dvc_files)}.")
    return result


def _check_inside(targets: list[Path], paths: Sequence[str | os.PathLike], root: Path) -> None:
    """Every path is inside the DVC repository, and is not the repository or .dvc/.git."""
    for target, given in zip(targets, paths, strict=True):
        if target != root and root not in target.parents:
            raise DataError(f"path {given} is outside the DVC repository at {root}",
                            file=str(given))
        if target == root or any(part in (".dvc", ".git") for part in
                                 target.relative_to(root).parts):
            raise DataError(f"path {given} cannot be versioned with DVC (it is the "
                            "repository itself or inside .dvc/.git)", file=str(given))


@dataclass
class _Added:
    """What ``dvc add`` recorded: (path, md5) per output, table rows, the .dvc files."""

    entries: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    dvc_files: list[str] = field(default_factory=list)
    size: int = 0
    files: int = 0

    @classmethod
    def of(cls, stages, work: Path, root: Path) -> _Added:
        added = cls()
        for stage in stages:
            dvc_file = os.path.relpath(stage.path, work)
            added.dvc_files.append(Path(dvc_file).as_posix())
            for out in stage.outs:
                rel = Path(os.path.relpath(out.fs_path, root)).as_posix()
                md5 = out.hash_info.value if out.hash_info else None
                if not md5:
                    raise DataError(f"dvc add recorded no hash for {rel}", file=rel)
                size = out.meta.size if out.meta and out.meta.size is not None else None
                nfiles = (out.meta.nfiles if out.meta and out.meta.isdir else 1)
                added.size += size or 0
                added.files += nfiles or 0
                added.entries.append((rel, md5))
                added.rows.append([rel, md5, size, nfiles, Path(dvc_file).as_posix()])
        return added


def _url_password(url: str | None) -> str | None:
    m = re.match(r"^[a-zA-Z][\w+.-]*://[^:/@\s]+:(?P<pw>[^@/\s]+)@", url or "")
    return m["pw"] if m else None

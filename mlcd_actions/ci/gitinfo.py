"""Where the code came from: commit, branch, tag, pull request and CI run, on any platform.

One helper for every stage that stamps lineage or derives a version (DESIGN §3,
"Lineage"). The CI platform's own variables win, because a CI checkout is often a
detached HEAD or a merge commit; local git fills what the platform does not say::

    from mlcd_actions.ci import gitinfo
    ctx = gitinfo.context()            # GitContext(sha=..., branch=..., tag=..., ...)
    gitinfo.git_sha()                  # the commit checked out, or None outside git

* GitHub Actions: ``GITHUB_SHA``, ``GITHUB_REF``, ``GITHUB_REF_NAME``, ``GITHUB_REF_TYPE``,
  ``GITHUB_HEAD_REF``, ``GITHUB_BASE_REF``, ``GITHUB_EVENT_NAME``, ``GITHUB_RUN_NUMBER``
  and the event payload at ``GITHUB_EVENT_PATH`` (default branch, pull request number
  and head commit).
* GitLab CI: ``CI_COMMIT_SHA``, ``CI_COMMIT_BRANCH``, ``CI_COMMIT_TAG``,
  ``CI_MERGE_REQUEST_IID``, ``CI_MERGE_REQUEST_SOURCE_BRANCH_NAME``, ``CI_DEFAULT_BRANCH``,
  ``CI_PIPELINE_IID``.
* Elsewhere: ``git`` in a subprocess. Nothing here raises when ``git`` is missing or the
  directory is not a repository: the fields are ``None``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

GITHUB = "github"
GITLAB = "gitlab"
SHORT_LEN = 7
_GIT_TIMEOUT = 30.0
_PR_EVENTS = ("pull_request", "pull_request_target")
_PR_REF = re.compile(r"^refs/pull/(?P<number>\d+)/(?:merge|head)$")
# a release tag: v1.2.3 or 1.2.3 (no pre-release, no build metadata)
RELEASE_TAG = re.compile(r"^v?(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)$")


@dataclass
class GitContext:
    """What CI (or local git) says about the code being built.

    ``branch`` is the source branch on a pull/merge request, ``None`` on a tag build;
    ``platform`` is ``'github'``, ``'gitlab'`` or ``None`` (local).
    """

    sha: str | None = None
    short_sha: str | None = None
    branch: str | None = None
    tag: str | None = None
    is_pull_request: bool = False
    pr_number: int | None = None
    default_branch: str | None = None
    run_number: int | None = None
    platform: str | None = None
    # extras (not part of the fixed API, but useful for lineage)
    base_branch: str | None = None      # the target branch of a pull/merge request
    head_sha: str | None = None         # the PR head commit when the build is a merge commit

    @property
    def is_default_branch(self) -> bool:
        """True on a push build of the default branch (``main``/``master`` when unknown)."""
        if self.is_pull_request or self.tag or not self.branch:
            return False
        if self.default_branch:
            return self.branch == self.default_branch
        return self.branch in ("main", "master")

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------ local git

def run_git(args: list[str], cwd: str | os.PathLike = ".") -> str | None:
    """``git <args>`` in ``cwd``; its stripped stdout, or None on any failure."""
    try:
        proc = subprocess.run(["git", *args], cwd=os.fspath(cwd), capture_output=True,
                              text=True, timeout=_GIT_TIMEOUT, check=False,
                              env={**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def is_repo(cwd: str | os.PathLike = ".") -> bool:
    return run_git(["rev-parse", "--is-inside-work-tree"], cwd) == "true"


def repo_root(cwd: str | os.PathLike = ".") -> Path | None:
    out = run_git(["rev-parse", "--show-toplevel"], cwd)
    return Path(out) if out else None


def git_sha(cwd: str | os.PathLike = ".") -> str | None:
    """The full SHA of ``HEAD``, or None outside a repository (or before the first commit)."""
    out = run_git(["rev-parse", "--verify", "-q", "HEAD"], cwd)
    return out or None


def _local_branch(cwd: str | os.PathLike) -> str | None:
    out = run_git(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    return out or None


def tags_at(rev: str = "HEAD", cwd: str | os.PathLike = ".") -> list[str]:
    """Tags pointing at ``rev``; release tags first, highest version first."""
    out = run_git(["tag", "--points-at", rev], cwd)
    tags = [t for t in (out or "").splitlines() if t.strip()]
    return sorted(tags, key=lambda t: (release_key(t) is None, _neg(release_key(t)), t))


def _neg(key: tuple[int, int, int] | None) -> tuple[int, ...]:
    return tuple(-k for k in key) if key else ()


def release_key(tag: str | None) -> tuple[int, int, int] | None:
    """``(major, minor, patch)`` for a release tag (``v1.2.3`` or ``1.2.3``), else None."""
    m = RELEASE_TAG.match(tag or "")
    return (int(m["major"]), int(m["minor"]), int(m["patch"])) if m else None


def latest_release_tag(rev: str = "HEAD", cwd: str | os.PathLike = ".") -> str | None:
    """The highest release tag reachable from ``rev`` (merged into it), or None."""
    out = run_git(["tag", "--merged", rev], cwd)
    tags = [t for t in (out or "").splitlines() if release_key(t)]
    return max(tags, key=lambda t: release_key(t)) if tags else None  # type: ignore[arg-type,return-value]


def commits_since(tag: str | None, rev: str = "HEAD", cwd: str | os.PathLike = ".") -> int | None:
    """Commits in ``rev`` not in ``tag`` (all commits when ``tag`` is None); None outside git."""
    spec = f"{tag}..{rev}" if tag else rev
    out = run_git(["rev-list", "--count", spec], cwd)
    try:
        return int(out) if out is not None else None
    except ValueError:
        return None


def _local_default_branch(cwd: str | os.PathLike) -> str | None:
    out = run_git(["symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD"], cwd)
    if out and "/" in out:
        return out.split("/", 1)[1]
    return None


# ------------------------------------------------------------------ CI platforms

def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _nonempty(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _github_event(env: Mapping[str, str]) -> dict:
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _from_github(env: Mapping[str, str]) -> GitContext:
    event = _github_event(env)
    event_name = env.get("GITHUB_EVENT_NAME", "")
    ref = env.get("GITHUB_REF", "")
    ref_name = _nonempty(env.get("GITHUB_REF_NAME"))
    ref_type = env.get("GITHUB_REF_TYPE", "")
    pr = event.get("pull_request") if isinstance(event.get("pull_request"), dict) else {}
    pr_ref = _PR_REF.match(ref)

    is_pr = event_name in _PR_EVENTS or bool(pr_ref)
    pr_number = None
    if is_pr:
        pr_number = (int(pr_ref["number"]) if pr_ref else None) or _int(pr.get("number")) \
            or _int(event.get("number"))

    tag = None
    branch = None
    if ref_type == "tag" or ref.startswith("refs/tags/"):
        tag = ref_name if ref_type == "tag" and ref_name else ref.removeprefix("refs/tags/")
    elif is_pr:
        branch = _nonempty(env.get("GITHUB_HEAD_REF")) or _nonempty(
            (pr.get("head") or {}).get("ref") if isinstance(pr.get("head"), dict) else None)
    elif ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    elif ref_type == "branch" and ref_name:
        branch = ref_name

    repo = event.get("repository") if isinstance(event.get("repository"), dict) else {}
    head = pr.get("head") if isinstance(pr.get("head"), dict) else {}
    return GitContext(
        sha=_nonempty(env.get("GITHUB_SHA")), branch=branch, tag=tag, is_pull_request=is_pr,
        pr_number=pr_number, default_branch=_nonempty(repo.get("default_branch")),
        run_number=_int(env.get("GITHUB_RUN_NUMBER")), platform=GITHUB,
        base_branch=_nonempty(env.get("GITHUB_BASE_REF")) if is_pr else None,
        head_sha=_nonempty(head.get("sha")))


def _from_gitlab(env: Mapping[str, str]) -> GitContext:
    iid = _int(env.get("CI_MERGE_REQUEST_IID"))
    tag = _nonempty(env.get("CI_COMMIT_TAG"))
    is_mr = iid is not None
    branch = None
    if is_mr:
        branch = _nonempty(env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"))
    elif not tag:
        branch = _nonempty(env.get("CI_COMMIT_BRANCH")) or _nonempty(env.get("CI_COMMIT_REF_NAME"))
    return GitContext(
        sha=_nonempty(env.get("CI_COMMIT_SHA")), branch=branch, tag=tag, is_pull_request=is_mr,
        pr_number=iid, default_branch=_nonempty(env.get("CI_DEFAULT_BRANCH")),
        run_number=_int(env.get("CI_PIPELINE_IID")), platform=GITLAB,
        base_branch=_nonempty(env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME")) if is_mr else None,
        head_sha=_nonempty(env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")) if is_mr else None)


def detect_platform(env: Mapping[str, str]) -> str | None:
    if env.get("GITHUB_ACTIONS") == "true" or env.get("GITHUB_SHA"):
        return GITHUB
    if env.get("GITLAB_CI") == "true" or env.get("CI_COMMIT_SHA"):
        return GITLAB
    return None


def context(cwd: str | os.PathLike = ".", env: Mapping[str, str] | None = None) -> GitContext:
    """The git context of the build in ``cwd``: CI variables first, local git for the rest.

    Never raises: outside CI and outside a git repository every field is None/False.
    """
    env = os.environ if env is None else env
    platform = detect_platform(env)
    if platform == GITHUB:
        ctx = _from_github(env)
    elif platform == GITLAB:
        ctx = _from_gitlab(env)
    else:
        ctx = GitContext()

    if ctx.sha is None:
        ctx.sha = git_sha(cwd)
    if platform is None and ctx.sha is not None:
        tags = tags_at("HEAD", cwd)
        ctx.tag = tags[0] if tags else None
        ctx.branch = _local_branch(cwd)
        ctx.default_branch = _local_default_branch(cwd)
    elif ctx.branch is None and ctx.tag is None and not ctx.is_pull_request and ctx.sha:
        # CI gave a commit but no ref (a manual run on a detached HEAD): ask git
        ctx.branch = _local_branch(cwd)
    ctx.short_sha = ctx.sha[:SHORT_LEN] if ctx.sha else None
    return ctx

"""Artifact versions from git: ``X.Y.Z-alpha.N+sha``, ``X.Y.Z-beta.N+sha`` or ``X.Y.Z``.

The channel follows where the build runs (DESIGN §2, ``build-training``):

* ``release``: the commit carries a release tag (``vX.Y.Z`` or ``X.Y.Z``) -> ``X.Y.Z``;
* ``beta``: a push build of the default branch -> ``X.Y.Z-beta.N+<short sha>``;
* ``alpha``: a pull/merge request, or any other branch -> ``X.Y.Z-alpha.N+<short sha>``.

``X.Y.Z`` is the next patch after the latest release tag reachable from the commit
(``0.1.0`` when there is none), or ``base_version`` when given. ``N`` is the CI run
number (``GITHUB_RUN_NUMBER``/``CI_PIPELINE_IID``), else the number of commits since that
tag. Python wheels need PEP 440: :func:`to_pep440` maps ``1.2.3-alpha.5+abc1234`` to
``1.2.3a5+abc1234`` and ``-beta.N`` to ``bN``.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field

from mlcd_actions.ci import gitinfo
from mlcd_actions.core.errors import ConfigError

ALPHA = "alpha"
BETA = "beta"
RELEASE = "release"
CHANNELS = (ALPHA, BETA, RELEASE)
DEFAULT_BASE = "0.1.0"

_SEMVER = re.compile(
    r"^(?P<core>(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*))"
    r"(?:-(?P<pre>alpha|beta)\.(?P<n>0|[1-9]\d*))?"
    r"(?:\+(?P<build>[0-9A-Za-z.-]+))?$")
_PEP440_PRE = {ALPHA: "a", BETA: "b"}


@dataclass
class VersionInfo:
    version: str            # semver, the public ``version`` output
    pep440: str             # the same version in PEP 440 (wheel file names, METADATA)
    channel: str            # alpha | beta | release
    base: str               # X.Y.Z
    number: int | None      # N (None on a release)
    sha: str | None
    source: str             # how X.Y.Z was found: tag | base-version | default
    base_tag: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def parse_core(text: str, *, option: str = "--base-version") -> tuple[int, int, int]:
    """``X.Y.Z`` (an optional leading ``v`` allowed) -> ``(X, Y, Z)``; ConfigError otherwise."""
    key = gitinfo.release_key(str(text).strip())
    if key is None:
        raise ConfigError(f"{option} {text!r}: expected X.Y.Z (e.g. 1.4.0)")
    return key


def next_patch(tag: str) -> str:
    major, minor, patch = parse_core(tag, option="release tag")
    return f"{major}.{minor}.{patch + 1}"


def to_pep440(semver: str) -> str:
    """``1.2.3-alpha.5+abc1234`` -> ``1.2.3a5+abc1234``; ``1.2.3-beta.5`` -> ``1.2.3b5``.

    A short SHA made only of digits with a leading zero becomes ``+g0123456``.
    """
    m = _SEMVER.match(semver)
    if not m:
        raise ValueError(f"not a version this tool produces: {semver!r}")
    from packaging.version import Version

    out = m["core"]
    if m["pre"]:
        out += f"{_PEP440_PRE[m['pre']]}{m['n']}"
    if m["build"]:
        local = re.sub(r"[^0-9A-Za-z.]", ".", m["build"]).lower()
        if str(Version(f"0+{local}")) != f"0+{local}":
            # PEP 440 drops leading zeros of a numeric local segment ("0123456" -> "123456");
            # prefix "g" (as setuptools-scm does) so the commit stays readable
            local = "g" + local
        out += f"+{local}"
    return str(Version(out))


def channel_of(ctx: gitinfo.GitContext) -> str:
    if gitinfo.release_key(ctx.tag) is not None:
        return RELEASE
    if ctx.is_default_branch:
        return BETA
    return ALPHA


def compute(ctx: gitinfo.GitContext, cwd: str | os.PathLike = ".", *,
            base_version: str | None = None) -> VersionInfo:
    """The version of the code in ``cwd`` built in context ``ctx`` (see module docstring)."""
    warnings: list[str] = []
    channel = channel_of(ctx)
    if channel == RELEASE:
        major, minor, patch = gitinfo.release_key(ctx.tag)  # type: ignore[misc]
        core = f"{major}.{minor}.{patch}"
        if base_version and ".".join(map(str, parse_core(base_version))) != core:
            warnings.append(f"--base-version {base_version} ignored: the release tag "
                            f"{ctx.tag} sets the version")
        return VersionInfo(core, core, RELEASE, core, None, ctx.sha, "tag", ctx.tag, warnings)

    in_git = ctx.sha is not None and gitinfo.is_repo(cwd)
    base_tag = gitinfo.latest_release_tag("HEAD", cwd) if in_git else None
    if base_version:
        core = ".".join(map(str, parse_core(base_version)))
        source = "base-version"
    elif base_tag:
        core = next_patch(base_tag)
        source = "tag"
    else:
        core = DEFAULT_BASE
        source = "default"
        if in_git and gitinfo.run_git(["rev-parse", "--is-shallow-repository"], cwd) == "true":
            warnings.append("shallow clone without tags: the version starts from "
                            f"{DEFAULT_BASE}; fetch tags (actions/checkout fetch-depth: 0, "
                            "GIT_DEPTH: 0 on GitLab) to continue from the latest release")

    if ctx.run_number is not None:
        number = ctx.run_number
    elif in_git:
        number = gitinfo.commits_since(base_tag, "HEAD", cwd) or 0
    else:
        number = 0
    if ctx.sha is None:
        warnings.append("not a git repository and no CI commit: the version carries no SHA")

    semver = f"{core}-{channel}.{number}"
    if ctx.short_sha:
        semver += f"+{ctx.short_sha}"
    return VersionInfo(semver, to_pep440(semver), channel, core, number, ctx.sha, source,
                       base_tag, warnings)

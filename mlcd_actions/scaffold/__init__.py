"""Files ``mlcd init`` writes: the thin CI callers (copied byte for byte into
``action-templates/workflows/``) and the commented ``mlcd.yaml`` template."""

from __future__ import annotations

from importlib import resources

# the reusable workflows / GitLab templates the callers point at; `mlcd init --repo --ref`
# rewrites these two strings
DEFAULT_REPO = "mlcd-actions/mlcd-actions"
DEFAULT_REF = "v1"

GITHUB = {  # scaffold file -> path in the user's repository
    "github/mlcd-pr.yml": ".github/workflows/mlcd-pr.yml",
    "github/mlcd-cd.yml": ".github/workflows/mlcd-cd.yml",
    "github/mlcd-monitor.yml": ".github/workflows/mlcd-monitor.yml",
}
GITLAB = {"gitlab/gitlab-ci.yml": ".gitlab-ci.yml"}


def read(name: str) -> str:
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def render(name: str, *, repo: str = DEFAULT_REPO, ref: str = DEFAULT_REF) -> str:
    text = read(name)
    if repo != DEFAULT_REPO:
        text = text.replace(f"{DEFAULT_REPO}/", f"{repo}/").replace(
            f"project: {DEFAULT_REPO}", f"project: {repo}")
    if ref != DEFAULT_REF:
        text = text.replace(f"@{DEFAULT_REF}", f"@{ref}").replace(
            f"ref: {DEFAULT_REF}", f"ref: {ref}")
    return text

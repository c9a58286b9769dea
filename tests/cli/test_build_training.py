"""``mlcd build-training`` on real git repositories built in tmp, with real ruff/pytest/pip."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent.parent / "data" / "build_training"
GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}
OK = "python -c pass"  # a check that passes fast


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def copy_fixture(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("conftest.py",
                                                                          "__pycache__"))
    return dest


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def scripts_repo() -> Path:
    """The scripts fixture as a git repo on main: 3 commits, v1.4.0 on the first."""
    repo = copy_fixture("scripts", Path.cwd() / "src")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "first")
    git(repo, "tag", "v1.4.0")
    (repo / "params.yaml").write_text("lr: 0.2\n")
    commit_all(repo, "second")
    commit_all(repo, "third")
    return repo


def report(name: str = "build-training") -> dict:
    return json.loads(Path(".mlcd/reports", f"{name}.json").read_text())


def github_env(tmp_path: Path, sha: str, kind: str) -> dict[str, str]:
    event = tmp_path / "event.json"
    payload: dict = {"repository": {"default_branch": "main"}}
    env = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": sha, "GITHUB_RUN_NUMBER": "12",
           "GITHUB_EVENT_PATH": str(event)}
    if kind == "pr":
        payload["pull_request"] = {"number": 7, "head": {"ref": "feat", "sha": sha}}
        env.update(GITHUB_EVENT_NAME="pull_request", GITHUB_REF="refs/pull/7/merge",
                   GITHUB_REF_NAME="7/merge", GITHUB_HEAD_REF="feat", GITHUB_BASE_REF="main")
    elif kind == "main":
        env.update(GITHUB_EVENT_NAME="push", GITHUB_REF="refs/heads/main",
                   GITHUB_REF_NAME="main", GITHUB_REF_TYPE="branch")
    else:
        env.update(GITHUB_EVENT_NAME="push", GITHUB_REF="refs/tags/v1.5.0",
                   GITHUB_REF_NAME="v1.5.0", GITHUB_REF_TYPE="tag")
    event.write_text(json.dumps(payload))
    return env


def gitlab_env(tmp_path: Path, sha: str, kind: str) -> dict[str, str]:
    env = {"GITLAB_CI": "true", "CI_COMMIT_SHA": sha, "CI_PIPELINE_IID": "12",
           "CI_DEFAULT_BRANCH": "main"}
    if kind == "pr":
        env.update(CI_MERGE_REQUEST_IID="7", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="feat")
    elif kind == "main":
        env.update(CI_COMMIT_BRANCH="main")
    else:
        env.update(CI_COMMIT_TAG="1.5.0")
    return env


@pytest.mark.parametrize("platform", ["github", "gitlab"])
@pytest.mark.parametrize("kind, version, pep440, channel", [
    ("pr", "1.4.1-alpha.12+{sha}", "1.4.1a12+{sha}", "alpha"),
    ("main", "1.4.1-beta.12+{sha}", "1.4.1b12+{sha}", "beta"),
    ("tag", "1.5.0", "1.5.0", "release"),
])
def test_ci_versions(mlcd, scripts_repo, tmp_path, monkeypatch, platform, kind, version, pep440,
                     channel):
    sha = git(scripts_repo, "rev-parse", "HEAD")
    env = (github_env if platform == "github" else gitlab_env)(tmp_path, sha, kind)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--skip-checks")
    assert r.exit_code == 0, r
    out = report()["outputs"]
    assert out["version"] == version.format(sha=sha[:7])
    assert out["code-version"] == out["version"]  # feeds train --code-version by name
    assert out["version-pep440"] == pep440.format(sha=sha[:7])
    assert out["channel"] == channel and out["channel-enabled"] is True
    assert out["artifact"] == f"out/scripts-{out['version']}.zip" or \
        out["artifact"].endswith(f"-{out['version']}.zip")
    assert Path(out["artifact"]).is_file()
    assert out["sha256"] == hashlib.sha256(Path(out["artifact"]).read_bytes()).hexdigest()
    assert report()["lineage"]["code_version"] == out["version"]


def test_local_versions(mlcd, scripts_repo):
    def version(*extra: str) -> str:
        r = mlcd("build-training", str(scripts_repo), "--out", "out", "--skip-checks", *extra)
        assert r.exit_code == 0, r
        return report()["outputs"]["version"]

    sha = git(scripts_repo, "rev-parse", "--short=7", "HEAD")
    assert version() == f"1.4.1-beta.2+{sha}"  # on main, two commits since v1.4.0
    assert version("--base-version", "2.0.0") == f"2.0.0-beta.2+{sha}"
    git(scripts_repo, "checkout", "-q", "-b", "feature")
    assert version() == f"1.4.1-alpha.2+{sha}"
    git(scripts_repo, "tag", "1.4.1")
    assert version() == "1.4.1"
    assert report()["outputs"]["channel"] == "release"


def test_no_tags_starts_at_0_1_0_and_counts_commits(mlcd):
    repo = copy_fixture("scripts", Path.cwd() / "src")
    git(repo, "init", "-q", "-b", "main")
    commit_all(repo, "one")
    commit_all(repo, "two")
    r = mlcd("build-training", str(repo), "--out", "out", "--skip-checks")
    assert r.exit_code == 0, r
    sha = git(repo, "rev-parse", "--short=7", "HEAD")
    assert report()["outputs"]["version"] == f"0.1.0-beta.2+{sha}"


def test_not_a_git_repo_still_builds(mlcd):
    copy_fixture("scripts", Path.cwd() / "src")
    r = mlcd("build-training", "src", "--out", "out", "--skip-checks")
    assert r.exit_code == 0, r
    assert report()["outputs"]["version"] == "0.1.0-alpha.0"
    assert any("not a git repository" in w for w in report()["warnings"])


def test_auto_checks_and_wheel(mlcd, tmp_path):
    repo = copy_fixture("package", Path.cwd() / "pkg")
    git(repo, "init", "-q", "-b", "main")
    sha = commit_all(repo, "first")[:7]
    r = mlcd("build-training", "pkg", "--out", "dist")
    assert r.exit_code == 0, r
    out = report()["outputs"]
    assert out["artifact-kind"] == "wheel" and out["version"] == f"0.1.0-beta.1+{sha}"
    wheel = Path(out["artifact"])
    assert wheel.name == f"demo_train-0.1.0b1+{sha}-py3-none-any.whl"
    assert [c["command"] for c in report()["details"]["checks"]] == ["ruff check .", "pytest"]
    assert "1 passed" in "\n".join(report()["details"]["checks"][1]["tail"])
    assert not (repo / "build").exists() and not list(repo.glob("src/*.egg-info"))

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(f"demo_train-0.1.0b1+{sha}.dist-info/METADATA").decode()
        assert f"\nVersion: 0.1.0b1+{sha}\n" in meta
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in zf.infolist())
    # a real installer accepts it (RECORD hashes are checked) and sees the version
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--disable-pip-version-check", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import importlib.metadata as m, demo_train.train as t; "
            "print(m.version('demo-train'), t.train([{'y': 2}], {'label': 'y'}).value)")
    printed = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": str(target)}).stdout
    assert printed.split() == [f"0.1.0b1+{sha}", "2"]


def test_package_forced_to_zip(mlcd):
    copy_fixture("package", Path.cwd() / "pkg")
    r = mlcd("build-training", "pkg", "--out", "dist", "--artifact-kind", "zip", "--skip-checks")
    assert r.exit_code == 0, r
    artifact = Path(report()["outputs"]["artifact"])
    assert artifact.name == "demo-train-0.1.0-alpha.0.zip"
    with zipfile.ZipFile(artifact) as zf:
        assert "pyproject.toml" in zf.namelist()


def test_ruff_failure_exits_1_with_output_in_report(mlcd, scripts_repo):
    (scripts_repo / "train.py").write_text(
        "import os\nimport sys\n\n\ndef main():\n    print(os.sep)\n")
    r = mlcd("build-training", str(scripts_repo), "--out", "out")
    assert r.exit_code == 1, r
    assert r.verdict == "mlcd build-training: failed — check failed: ruff check . (exit 1)"
    md = Path(".mlcd/reports/build-training.md").read_text()
    assert "F401" in md and "`sys` imported but unused" in md
    assert not Path("out").exists()
    checks = report()["details"]["checks"]
    assert [c["passed"] for c in checks] == [False, True]  # pytest still ran


def test_failing_test_exits_1(mlcd, scripts_repo):
    (scripts_repo / "test_train.py").write_text(
        "def test_broken():\n    assert 1 + 1 == 3, 'arithmetic is broken'\n")
    r = mlcd("build-training", str(scripts_repo), "--out", "out")
    assert r.exit_code == 1, r
    assert "check failed: pytest (exit 1)" in r.verdict
    assert "arithmetic is broken" in Path(".mlcd/reports/build-training.md").read_text()


def test_check_commands_replace_detection(mlcd, scripts_repo):
    fail = "python -c 'import sys; print(\"lint says no\"); sys.exit(3)'"
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--check-command", OK,
             "--check-command", fail)
    assert r.exit_code == 1, r
    assert r.verdict.endswith(f"check failed: {fail} (exit 3)")
    assert [c["command"] for c in report()["details"]["checks"]] == [OK, fail]
    assert "lint says no" in Path(".mlcd/reports/build-training.md").read_text()


def test_check_commands_from_env_one_per_line(mlcd, scripts_repo):
    r = mlcd("build-training", str(scripts_repo), "--out", "out",
             env={"MLCD_CHECK_COMMAND": f"{OK}\npython -c 'print(1)'"})
    assert r.exit_code == 0, r
    assert [c["command"] for c in report()["details"]["checks"]] == [OK, "python -c 'print(1)'"]


def test_check_command_not_found_exits_1(mlcd, scripts_repo):
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--check-command",
             "no-such-linter-xyz --strict")
    assert r.exit_code == 1, r
    assert "check failed: no-such-linter-xyz --strict (command not found)" in r.verdict


def test_check_timeout_exits_1(mlcd, scripts_repo):
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--check-timeout", "1",
             "--check-command", "python -c 'import time; time.sleep(30)'")
    assert r.exit_code == 1, r
    assert "(timed out after 1s)" in r.verdict


def test_zip_excludes_and_layout(mlcd, scripts_repo):
    src = scripts_repo
    (src / "data").mkdir()
    (src / "data" / "big.csv").write_text("x,y\n1,2\n")       # .gitignore: data/
    (src / "run.log").write_text("log\n")                      # .gitignore: *.log
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    (src / ".venv" / "lib").mkdir(parents=True)
    (src / ".venv" / "lib" / "x.py").write_text("x = 1\n")
    (src / "notes").mkdir()
    (src / "notes" / ".gitignore").write_text("*.tmp\n!keep.tmp\n")
    (src / "notes" / "a.tmp").write_text("a\n")
    (src / "notes" / "keep.tmp").write_text("k\n")
    r = mlcd("build-training", str(src), "--out", str(src / "artifacts"), "--skip-checks",
             "--exclude", "params.yaml")
    assert r.exit_code == 0, r
    r = mlcd("build-training", str(src), "--out", str(src / "artifacts"), "--skip-checks",
             "--exclude", "params.yaml")  # the first artifact is not packaged into the second
    assert r.exit_code == 0, r
    with zipfile.ZipFile(report()["outputs"]["artifact"]) as zf:
        names = zf.namelist()
        infos = {i.filename: i for i in zf.infolist()}
    assert names == [".gitignore", "bin/prepare.sh", "notes/.gitignore", "notes/keep.tmp",
                     "test_train.py", "train.py"]
    assert (infos["bin/prepare.sh"].external_attr >> 16) & 0o777 == 0o755
    assert (infos["train.py"].external_attr >> 16) & 0o777 == 0o644
    assert {i.date_time for i in infos.values()} == {(1980, 1, 1, 0, 0, 0)}


def test_zip_is_deterministic(mlcd, tmp_path):
    a = copy_fixture("scripts", Path.cwd() / "a")
    r = mlcd("build-training", "a", "--out", "out1", "--skip-checks")
    assert r.exit_code == 0, r
    first = report()["outputs"]["sha256"]
    b = copy_fixture("scripts", tmp_path / "elsewhere" / "a")  # new inodes and mtimes
    os.utime(b / "train.py", (1_000_000_000, 1_000_000_000))
    r = mlcd("build-training", str(b), "--out", "out2", "--skip-checks")
    assert r.exit_code == 0, r
    assert report()["outputs"]["sha256"] == first
    assert Path("out1", "a-0.1.0-alpha.0.zip").read_bytes() == \
        Path("out2", "a-0.1.0-alpha.0.zip").read_bytes()
    (a / "train.py").write_text((a / "train.py").read_text() + "\n# changed\n")
    r = mlcd("build-training", "a", "--out", "out1", "--skip-checks")
    assert report()["outputs"]["sha256"] != first


def test_toggles_skip_disabled_channel(mlcd, scripts_repo, monkeypatch):
    Path("toggles.yaml").write_text("channels:\n  alpha: false\n  beta: true\n")
    sha = git(scripts_repo, "rev-parse", "HEAD")
    monkeypatch.setenv("GITLAB_CI", "true")
    monkeypatch.setenv("CI_COMMIT_SHA", sha)
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "3")
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--toggles", "toggles.yaml")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd build-training: skipped — channel alpha is disabled in "
                                "toggles.yaml")
    rep = report()
    assert rep["status"] == "skipped" and rep["outputs"]["channel-enabled"] is False
    assert "artifact" not in rep["outputs"] and not Path("out").exists()
    dotenv = Path(".mlcd/reports/build-training.env").read_text()
    assert "MLCD_CHANNEL_ENABLED=false" in dotenv

    monkeypatch.delenv("CI_MERGE_REQUEST_IID")
    monkeypatch.setenv("CI_COMMIT_BRANCH", "main")
    monkeypatch.setenv("CI_DEFAULT_BRANCH", "main")
    r = mlcd("build-training", str(scripts_repo), "--out", "out", "--toggles", "toggles.yaml",
             "--skip-checks")
    assert r.exit_code == 0, r
    assert report()["outputs"]["channel"] == "beta"
    assert report()["outputs"]["channel-enabled"] is True


@pytest.mark.parametrize("content, message", [
    ("channels:\n  gamma: true\n", "toggles.yaml: unknown channel 'gamma'"),
    ("channels:\n  alpha: maybe\n", "toggles.yaml: channels.alpha must be true or false"),
    ("channels: [alpha]\n", "toggles.yaml: 'channels' must map"),
    ("flags: {}\n", "toggles.yaml: unknown key 'flags'"),
    ("channels:\n  alpha: [\n", "toggles.yaml:3: not valid YAML"),
])
def test_bad_toggles_exit_2(mlcd, content, message):
    copy_fixture("scripts", Path.cwd() / "src")
    Path("toggles.yaml").write_text(content)
    r = mlcd("build-training", "src", "--out", "out", "--toggles", "toggles.yaml")
    assert r.exit_code == 2, r
    assert message in r.verdict


@pytest.mark.parametrize("args, message", [
    (["missing-dir", "--out", "out"], "source folder not found: missing-dir"),
    (["src", "--out", "src/train.py"], "Directory 'src/train.py' is a file"),
    (["src", "--out", "out", "--base-version", "1.2"], "--base-version '1.2': expected X.Y.Z"),
    (["src", "--out", "out", "--artifact-kind", "wheel"], "--artifact-kind wheel needs a pyproject.toml"),
    (["src", "--out", "out", "--toggles", "nope.yaml"], "toggles file not found: nope.yaml"),
    (["src", "--out", "out", "--check-command", "python -c 'unterminated"],
     "No closing quotation"),
])
def test_bad_input_exit_2(mlcd, args, message):
    copy_fixture("scripts", Path.cwd() / "src")
    r = mlcd("build-training", *args)
    assert r.exit_code == 2, r
    assert message in r.verdict


def test_empty_source_exit_2(mlcd):
    Path("empty").mkdir()
    (Path("empty") / ".gitignore").write_text("*\n")
    r = mlcd("build-training", "empty", "--out", "out")
    assert r.exit_code == 2, r
    assert "nothing to package in empty" in r.verdict


def test_no_checks_found_warns(mlcd):
    Path("cfg").mkdir()
    Path("cfg/params.yaml").write_text("lr: 1\n")
    r = mlcd("build-training", "cfg", "--out", "out")
    assert r.exit_code == 0, r
    assert "no checks run" in r.verdict
    assert any(w.startswith("no checks: cfg has no Python files") for w in report()["warnings"])


def test_wheel_build_failure_exits_1(mlcd):
    Path("bad").mkdir()
    Path("bad/setup.py").write_text("raise SystemExit('setup.py refuses to build')\n")
    r = mlcd("build-training", "bad", "--out", "out", "--skip-checks")
    assert r.exit_code == 1, r
    assert r.verdict.startswith("mlcd build-training: failed — wheel build failed: pip wheel "
                                "exited 1")
    assert "setup.py refuses to build" in Path(".mlcd/reports/build-training.md").read_text()
    assert not Path("out").exists()


def test_help_imports_nothing_heavy():
    code = ("import sys; from mlcd_actions.cli import main; main(['build-training', '--help']);"
            "print([m for m in ('dvc', 'pandas', 'mlflow', 'sklearn', 'numpy', 'yaml') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "--check-command" in out and out.strip().endswith("[]")


def test_options_from_mlcd_yaml(mlcd, scripts_repo):
    Path("mlcd.yaml").write_text(
        "version: 1\nbuild-training:\n  out: from-config\n  artifact-name: trainer\n"
        "  check-command:\n    - python -c pass\n    - python -c 'print(2)'\n")
    r = mlcd("build-training", str(scripts_repo))
    assert r.exit_code == 0, r
    assert [c["command"] for c in report()["details"]["checks"]] == [
        "python -c pass", "python -c 'print(2)'"]
    assert Path(report()["outputs"]["artifact"]).parent == Path("from-config")
    assert Path(report()["outputs"]["artifact"]).name.startswith("trainer-1.4.1-beta.2+")

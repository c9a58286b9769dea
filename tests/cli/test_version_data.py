"""``mlcd version-data`` against real DVC remotes: a local folder and S3 (moto_server)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def make_data(root: Path) -> None:
    (root / "data" / "raw").mkdir(parents=True)
    (root / "data" / "raw" / "part-0.csv").write_text("id,x\n1,0.5\n2,1.5\n")
    (root / "data" / "raw" / "part-1.csv").write_text("id,x\n3,2.5\n")
    (root / "train.csv").write_text("id,y\n1,0\n2,1\n")


def report(root: Path = Path(".")) -> dict:
    return json.loads((root / ".mlcd" / "reports" / "version-data.json").read_text())


def outputs(root: Path = Path(".")) -> dict:
    return report(root)["outputs"]


def pull_fresh(repo_dir: Path) -> None:
    """Delete the DVC cache and the data, then ``dvc pull`` everything from the remote."""
    from dvc.repo import Repo

    shutil.rmtree(repo_dir / ".dvc" / "cache", ignore_errors=True)
    with Repo(str(repo_dir)) as repo:
        repo.pull()


def test_local_remote_roundtrip_without_git(mlcd, tmp_path):
    work = Path.cwd()
    make_data(work)
    remote = tmp_path / "remote"
    r = mlcd("version-data", "data/raw", "train.csv", "--remote", str(remote))
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd version-data: passed — data version ")
    out = outputs()
    version = out["data-version"]
    assert len(version) == 12 and int(version, 16) >= 0
    assert out["dvc-files"] == ["data/raw.dvc", "train.csv.dvc"]
    assert out["remote"] == str(remote)
    assert report()["metrics"]["pushed"] == 4  # three files + the directory manifest
    assert (work / ".dvc" / "config").read_text().count("no_scm = True") == 1
    assert "Initialized DVC repository" not in r.stdout  # DVC's chatter goes to stderr

    # the remote really holds the content: restore from it with a cold cache
    shutil.rmtree(work / "data" / "raw")
    (work / "train.csv").unlink()
    pull_fresh(work)
    assert (work / "data" / "raw" / "part-1.csv").read_text() == "id,x\n3,2.5\n"
    assert (work / "train.csv").read_text() == "id,y\n1,0\n2,1\n"


def test_rerun_is_idempotent_and_uses_configured_remote(mlcd, tmp_path):
    make_data(Path.cwd())
    remote = tmp_path / "remote"
    r1 = mlcd("version-data", "data/raw", "train.csv", "--remote", str(remote))
    assert r1.exit_code == 0, r1
    first = outputs()["data-version"]
    objects = sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file())
    r2 = mlcd("version-data", "data/raw", "train.csv")  # remote from .dvc/config now
    assert r2.exit_code == 0, r2
    assert outputs()["data-version"] == first
    assert report()["metrics"]["pushed"] == 0
    assert sorted(p.relative_to(remote) for p in remote.rglob("*") if p.is_file()) == objects

    (Path("data/raw/part-1.csv")).write_text("id,x\n3,9.5\n")
    r3 = mlcd("version-data", "data/raw", "train.csv")
    assert r3.exit_code == 0, r3
    assert outputs()["data-version"] != first
    assert report()["metrics"]["pushed"] == 2  # the changed file + the new directory manifest


def test_relative_remote_is_stored_relative(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--remote", "../store")
    assert r.exit_code == 0, r
    assert "url = ../../store" in Path(".dvc/config").read_text()
    assert any((Path.cwd().parent / "store").rglob("*"))


def test_git_repo_commit_clone_and_pull(mlcd, tmp_path):
    work = Path.cwd()
    git(work, "init", "-q", "-b", "main")
    make_data(work)
    remote = tmp_path / "remote"
    r = mlcd("version-data", "data/raw", "train.csv", "--remote", str(remote))
    assert r.exit_code == 0, r
    config = (work / ".dvc" / "config").read_text()
    assert "no_scm" not in config and "remote = mlcd" in config
    assert "/raw" in (work / "data" / ".gitignore").read_text()
    git(work, "add", ".dvc/config", ".dvc/.gitignore", ".dvcignore", "data/raw.dvc",
        "data/.gitignore", "train.csv.dvc", ".gitignore")
    git(work, "commit", "-q", "-m", "data")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(work), str(clone))
    assert not (clone / "train.csv").exists()
    pull_fresh(clone)
    assert (clone / "data" / "raw" / "part-0.csv").read_text() == "id,x\n1,0.5\n2,1.5\n"
    assert (clone / "train.csv").read_text() == "id,y\n1,0\n2,1\n"


def test_s3_remote_with_env_endpoint(mlcd, s3, tmp_path):
    endpoint, client = s3
    client.create_bucket(Bucket="mlcd-data-env")
    make_data(Path.cwd())
    r = mlcd("version-data", "data/raw", "train.csv", "--remote", "s3://mlcd-data-env/dvc")
    assert r.exit_code == 0, r
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="mlcd-data-env")["Contents"]]
    assert len(keys) == 4 and all(k.startswith("dvc/files/md5/") for k in keys)  # 3 + manifest
    assert "endpointurl" not in Path(".dvc/config").read_text()  # env, not persisted

    shutil.rmtree("data/raw")
    pull_fresh(Path.cwd())
    assert Path("data/raw/part-0.csv").read_text() == "id,x\n1,0.5\n2,1.5\n"


def test_s3_remote_with_endpoint_option(mlcd, s3, monkeypatch):
    endpoint, client = s3
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    client.create_bucket(Bucket="mlcd-data-opt")
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--remote", "s3://mlcd-data-opt/p",
             "--endpoint-url", endpoint)
    assert r.exit_code == 0, r
    assert f"endpointurl = {endpoint}" in Path(".dvc/config").read_text()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="mlcd-data-opt")["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("p/files/md5/")
    Path("train.csv").unlink()
    pull_fresh(Path.cwd())
    assert Path("train.csv").read_text() == "id,y\n1,0\n2,1\n"


def test_s3_missing_bucket_exits_3_and_keeps_config(mlcd, s3, tmp_path):
    make_data(Path.cwd())
    good = tmp_path / "good"
    assert mlcd("version-data", "train.csv", "--remote", str(good)).exit_code == 0
    before = Path(".dvc/config").read_text()
    r = mlcd("version-data", "train.csv", "--remote", "s3://no-such-bucket-here/x")
    assert r.exit_code == 3, r
    assert r.verdict.startswith("mlcd version-data: failed — cannot push to DVC remote 'mlcd' "
                                "(s3://no-such-bucket-here/x)")
    assert "bucket" in r.verdict.lower()
    assert Path(".dvc/config").read_text() == before  # a failed push changes no config
    assert report()["status"] == "error"


def test_s3_unreachable_endpoint_exits_3(mlcd, monkeypatch):
    from tests.services import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--remote", "s3://bucket-x/y")
    assert r.exit_code == 3, r
    assert "cannot push to DVC remote 'mlcd' (s3://bucket-x/y)" in r.verdict
    assert "connect" in r.verdict.lower()


def test_local_remote_unwritable_exits_3(mlcd, tmp_path):
    make_data(Path.cwd())
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the remote's parent should be")
    r = mlcd("version-data", "train.csv", "--remote", str(blocker / "remote"))
    assert r.exit_code == 3, r
    assert f"cannot push to DVC remote 'mlcd' ({blocker / 'remote'})" in r.verdict


def test_missing_path_exits_2(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "nope/missing.csv", "--remote", "../r")
    assert r.exit_code == 2, r
    assert r.verdict == "mlcd version-data: failed — path not found: nope/missing.csv"
    assert not Path(".dvc").exists()  # nothing initialised for a bad command line
    assert not Path("train.csv.dvc").exists()


def test_no_paths_is_usage_error(mlcd):
    r = mlcd("version-data")
    assert r.exit_code == 2, r


def test_no_remote_configured_exits_2(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv")
    assert r.exit_code == 2, r
    assert "no DVC remote configured" in r.verdict and "--remote" in r.verdict


def test_remote_that_is_a_file_exits_2(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--remote", "train.csv")
    assert r.exit_code == 2, r
    assert "--remote train.csv is a file" in r.verdict
    assert not Path(".dvc").exists()


def test_endpoint_url_needs_s3_remote(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--remote", "../r", "--endpoint-url",
             "http://127.0.0.1:9")
    assert r.exit_code == 2, r
    assert "--endpoint-url applies to s3:// remotes only" in r.verdict
    assert not Path(".dvc").exists()  # rejected before anything is initialised


def test_git_tracked_file_exits_2(mlcd):
    work = Path.cwd()
    git(work, "init", "-q", "-b", "main")
    make_data(work)
    git(work, "add", "train.csv")
    git(work, "commit", "-q", "-m", "tracked")
    r = mlcd("version-data", "train.csv", "--remote", "../r")
    assert r.exit_code == 2, r
    assert "dvc add failed" in r.verdict and "train.csv" in r.verdict


def test_no_push_adds_locally(mlcd):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", "--no-push")
    assert r.exit_code == 0, r
    assert "(not pushed)" in r.verdict
    assert outputs()["dvc-files"] == ["train.csv.dvc"]
    assert Path("train.csv.dvc").is_file()


def test_env_var_options(mlcd, tmp_path):
    make_data(Path.cwd())
    r = mlcd("version-data", "train.csv", env={"MLCD_REMOTE": str(tmp_path / "envremote")})
    assert r.exit_code == 0, r
    assert (tmp_path / "envremote").is_dir()


def test_help_imports_no_dvc():
    code = ("import sys; from mlcd_actions.cli import main; main(['version-data', '--help']);"
            "print([m for m in ('dvc', 'pandas', 'mlflow', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "--remote" in out and out.strip().endswith("[]")


def test_ci_refuses_a_remote_inside_the_job_workspace(mlcd, tmp_path):
    """In a CI job a folder remote in the workspace is thrown away with the job: exit 2,
    one line naming the persistent kinds, nothing initialised or pushed; outside CI (a local
    `mlcd run`) the same remote is fine, and in CI a folder outside the workspace is too."""
    work = Path.cwd()
    make_data(work)
    ci = {"GITLAB_CI": "true", "CI_PROJECT_DIR": str(work)}
    r = mlcd("version-data", "train.csv", "--remote", ".mlcd/dvc-remote", env=ci)
    assert r.exit_code == 2, r
    assert r.verdict.startswith("mlcd version-data: failed — DVC remote .mlcd/dvc-remote is "
                                "inside the CI job's workspace"), r
    assert "s3://" in r.verdict and "gs://" in r.verdict and "ssh://" in r.verdict, r
    assert "Traceback" not in r.output
    assert not Path(".dvc").exists() and not Path("train.csv.dvc").exists()
    # the repository's configured default remote is checked too (GitHub this time)
    assert mlcd("version-data", "train.csv", "--remote", ".mlcd/dvc-remote").exit_code == 0
    gh = {"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(work)}
    r = mlcd("version-data", "train.csv", env=gh)
    assert r.exit_code == 2 and "inside the CI job's workspace" in r.verdict, r
    r = mlcd("version-data", "train.csv", "--remote", str(tmp_path / "kept"), env=gh)
    assert r.exit_code == 0, r

"""Secrets and untrusted input, through the CLI as CI runs it.

* a value read through ``${VAR}`` in mlcd.yaml is announced with ``::add-mask::`` on
  GitHub and appears in no report, log, job summary, output file or terminal line, on
  success and on failure;
* ``ingest`` refuses, in CI, a local file outside the job's workspace (``..``, an absolute
  path, a symlink pointing out) unless ``--allow-outside-workspace``; and any SQL other
  than one read-only SELECT.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

TOKEN = "tok-9f8e7d6c5b4a-SECRET"


def _everything(root: Path) -> str:
    """The text of every file under ``root`` (reports, logs, snapshots' manifests...)."""
    out = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".parquet":
            out.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(out)


@pytest.mark.parametrize("exists", [True, False], ids=["passes", "fails"])
def test_a_config_secret_is_masked_everywhere(mlcd, http_server, tmp_path, monkeypatch, exists):
    base, root = http_server
    (root / "data.csv").write_text("a,b\n1,x\n2,y\n")
    name = "data.csv" if exists else "gone.csv"
    Path("mlcd.yaml").write_text(
        "ingest:\n"
        f"  source-uri: '{base}/{name}?k=${{DATA_TOKEN}}'\n"
        "  out: snap\n"
        "  header: ['X-Api: ${DATA_TOKEN}']\n"
        "  retries: 0\n")
    out_file, summary = tmp_path / "gh_output", tmp_path / "summary.md"
    out_file.touch()
    summary.touch()
    r = mlcd("ingest", env={"DATA_TOKEN": TOKEN, "GITHUB_ACTIONS": "true",
                            "GITHUB_OUTPUT": str(out_file), "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == (0 if exists else 2), r
    assert f"::add-mask::{TOKEN}" in r.stdout
    terminal = r.output.replace(f"::add-mask::{TOKEN}", "")
    assert TOKEN not in terminal, r
    assert "***" in r.output
    for where in (Path.cwd(), out_file, summary):
        text = _everything(where) if where.is_dir() else where.read_text()
        assert TOKEN not in text, where


@pytest.fixture
def ci_workspace(tmp_path, monkeypatch):
    """A CI job: the workspace is the current directory; a file lies outside it."""
    monkeypatch.setenv("GITHUB_WORKSPACE", str(Path.cwd()))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("user,password\nroot,hunter2\n")
    (Path.cwd() / "inside.csv").write_text("a\n1\n")
    return outside


@pytest.mark.parametrize("make_uri", [
    lambda out: os.path.relpath(out / "secret.csv"),      # ../outside/secret.csv
    lambda out: str(out / "secret.csv"),                  # absolute
    lambda out: f"file://{out / 'secret.csv'}",
    lambda out: str(Path("link.csv")),                    # a symlink pointing out
    lambda out: os.path.relpath(out) + "/*.csv",          # a glob outside
], ids=["dotdot", "absolute", "file-uri", "symlink", "glob"])
def test_ingest_refuses_paths_outside_the_workspace(mlcd, ci_workspace, make_uri):
    Path("link.csv").symlink_to(ci_workspace / "secret.csv")
    uri = make_uri(ci_workspace)
    r = mlcd("ingest", uri, "--out", "snap")
    assert r.exit_code == 2, r
    assert "is outside the workspace" in r.verdict and "--allow-outside-workspace" in r.verdict
    assert "hunter2" not in r.output and not Path("snap").exists()
    ok = mlcd("ingest", uri, "--out", "snap", "--allow-outside-workspace")
    assert ok.exit_code == 0, ok
    inside = mlcd("ingest", "inside.csv", "--out", "snap2")
    assert inside.exit_code == 0, inside


def test_a_reported_workspace_the_job_does_not_run_in_falls_back_to_the_job_folder(
        mlcd, tmp_path, monkeypatch):
    """gitlab-ci-local's shell executor reports CI_PROJECT_DIR=/builds/<group>/<project> but
    runs the job elsewhere: the job's own folder is then the workspace."""
    monkeypatch.setenv("CI_PROJECT_DIR", "/builds/acme/credit")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("user,password\nroot,hunter2\n")
    Path("inside.csv").write_text("a\n1\n")
    assert mlcd("ingest", "inside.csv", "--out", "snap").exit_code == 0
    r = mlcd("ingest", str(outside / "secret.csv"), "--out", "snap2")
    assert r.exit_code == 2 and "is outside the workspace" in r.verdict, r


@pytest.mark.parametrize("query, word", [
    ("DELETE FROM t", "only SELECT"),
    ("SELECT * FROM t; DROP TABLE t", "exactly one statement"),
    ("UPDATE t SET a = 0", "only SELECT"),
    ("INSERT INTO t VALUES (9)", "only SELECT"),
    ("PRAGMA writable_schema = 1", "only SELECT"),
    ("ATTACH DATABASE 'x.db' AS x", "only SELECT"),
])
def test_ingest_runs_only_a_read_only_select(mlcd, query, word):
    with sqlite3.connect("db.sqlite") as conn:
        conn.execute("CREATE TABLE t (a INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    before = Path("db.sqlite").read_bytes()
    r = mlcd("ingest", "sqlite:///db.sqlite", "--query", query, "--out", "snap")
    assert r.exit_code == 2, r
    assert word in r.verdict, r
    assert Path("db.sqlite").read_bytes() == before
    with sqlite3.connect("db.sqlite") as conn:
        assert conn.execute("SELECT a FROM t").fetchall() == [(1,)]

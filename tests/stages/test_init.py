"""`mlcd init`: scaffolds a working project, never overwrites edits without --force, and
its CI callers are the starter workflows in action-templates/workflows/ byte for byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlcd_actions import scaffold

ROOT = Path(__file__).resolve().parents[2]
HOUSES = ROOT / "examples" / "house-prices"


def _house_copy(dest: Path) -> Path:
    shutil.copytree(HOUSES, dest, ignore=shutil.ignore_patterns(
        "mlcd.yaml", "schema.yaml", ".mlcd", ".dvc", ".dvcignore", "__pycache__"))
    return dest


def test_starter_workflows_are_the_scaffold_templates_byte_for_byte():
    starters = ROOT / "action-templates" / "workflows"
    for name in [*scaffold.GITHUB, *scaffold.GITLAB]:
        packaged = scaffold.read(name)
        assert (starters / Path(name).name).read_text(encoding="utf-8") == packaged, name


@pytest.mark.parametrize("name", [*scaffold.GITHUB, *scaffold.GITLAB])
def test_templates_are_thin_callers(name):
    doc = yaml.safe_load(scaffold.read(name))
    if name.startswith("github/"):
        assert doc["permissions"] == {}
        (job,) = doc["jobs"].values()
        assert job["uses"].startswith(f"{scaffold.DEFAULT_REPO}/.github/workflows/")
        assert job["uses"].endswith(f"@{scaffold.DEFAULT_REF}")
        # secrets are passed by name (zizmor flags `secrets: inherit`)
        assert job["secrets"] and all(v == f"${{{{ secrets.{k} }}}}"
                                      for k, v in job["secrets"].items())
        assert job["permissions"]
    else:
        (inc,) = doc["include"]
        assert inc["project"] == scaffold.DEFAULT_REPO and inc["ref"] == scaffold.DEFAULT_REF


def test_init_writes_config_schema_dvc_and_workflows(tmp_path, mlcd):
    work = tmp_path / "work"
    _house_copy(work / "proj")
    os.chdir(work / "proj")
    r = mlcd("init", "--repo", "acme/mlcd-actions", "--ref", "v1.2.0")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd init: passed")
    for rel in ("mlcd.yaml", "schema.yaml", ".github/workflows/mlcd-pr.yml",
                ".github/workflows/mlcd-cd.yml", ".github/workflows/mlcd-monitor.yml",
                ".dvc/config"):
        assert Path(rel).is_file(), rel
    pr = Path(".github/workflows/mlcd-pr.yml").read_text()
    assert "uses: acme/mlcd-actions/.github/workflows/pr.yml@v1.2.0" in pr
    cfg = yaml.safe_load(Path("mlcd.yaml").read_text())
    assert cfg["label"] == "price" and cfg["train"]["task"] == "regression"
    assert cfg["run"]["source"] == "data/houses.csv"
    assert cfg["prepare"]["split-by-id"] == "house_id"
    assert ".mlcd/*" in Path(".gitignore").read_text().split()
    assert "!.mlcd/data/*.dvc" in Path(".gitignore").read_text().split()
    assert oct(Path("mlcd.yaml").stat().st_mode & 0o777) != oct(0o600)


def test_rerun_keeps_edits_and_force_overwrites(tmp_path, mlcd):
    work = tmp_path / "work"
    _house_copy(work / "proj")
    os.chdir(work / "proj")
    assert mlcd("init", "--no-dvc").exit_code == 0
    edited = Path("mlcd.yaml").read_text().replace("r2=0.1", "r2=0.3")
    Path("mlcd.yaml").write_text(edited)
    r = mlcd("init", "--no-dvc")
    assert r.exit_code == 0, r
    assert "mlcd.yaml" in r.stdout and "skipped (exists; --force overwrites)" in r.stdout
    assert Path("mlcd.yaml").read_text() == edited
    r = mlcd("init", "--no-dvc", "--force")
    assert r.exit_code == 0, r
    assert "overwritten" in r.stdout
    assert "r2=0.1" in Path("mlcd.yaml").read_text()
    assert Path(".gitignore").read_text().count(".mlcd/*") == 1


def test_gitlab_flavour(tmp_path, mlcd):
    work = tmp_path / "work"
    _house_copy(work / "proj")
    os.chdir(work / "proj")
    r = mlcd("init", "--ci", "gitlab", "--no-dvc")
    assert r.exit_code == 0, r
    assert Path(".gitlab-ci.yml").read_text() == scaffold.read("gitlab/gitlab-ci.yml")
    assert not Path(".github").exists()


def test_personal_data_gets_a_policy_and_sensitive_columns_are_found(tmp_path, mlcd):
    work = tmp_path / "work"
    (work / "data").mkdir()
    credit = ROOT / "examples/credit-approval/data/applications.csv"
    (work / "data" / "applications.csv").write_text(
        "".join(credit.read_text().splitlines(keepends=True)[:400]))
    r = mlcd("init", "--no-dvc")
    assert r.exit_code == 0, r
    cfg = yaml.safe_load(Path("mlcd.yaml").read_text())
    assert cfg["label"] == "approved"
    assert cfg["sensitive"] == ["age_band", "sex"] or set(cfg["sensitive"]) == {"sex", "age_band"}
    assert cfg["check-data"]["pii-policy"] == "pii-policy.yaml"
    assert yaml.safe_load(Path("pii-policy.yaml").read_text())["columns"] == {
        "email": "must-be-hashed"}
    assert "personal data in email" in r.stdout


def test_rerun_after_dropping_personal_data_keeps_config_and_policy_consistent(mlcd):
    import pandas as pd

    Path("data").mkdir()
    frame = pd.DataFrame({"email": [f"u{i}@example.com" for i in range(60)],
                          "income": range(60), "churn": [0, 1] * 30})
    frame.to_csv("data/customers.csv", index=False)
    assert mlcd("init", "--no-dvc").exit_code == 0
    assert yaml.safe_load(Path("pii-policy.yaml").read_text())["columns"] == {
        "email": "must-be-hashed"}
    frame.drop(columns=["email"]).to_csv("data/customers.csv", index=False)
    for args in ((), ("--force",)):   # kept or rewritten: mlcd.yaml names a file init wrote
        r = mlcd("init", "--no-dvc", *args)
        assert r.exit_code == 0, r
        policy = yaml.safe_load(Path("mlcd.yaml").read_text())["check-data"]["pii-policy"]
        assert Path(policy).is_file()
    assert yaml.safe_load(Path("pii-policy.yaml").read_text())["columns"] == {}


def test_no_data_is_a_usage_error(mlcd):
    r = mlcd("init")
    assert r.exit_code == 2, r
    assert "pass --data PATH" in r.verdict
    r = mlcd("init", "--data", "nope.csv")
    assert r.exit_code == 2, r


@pytest.mark.slow
def test_init_then_run_works_first_time_on_the_regression_example(tmp_path):
    """The acceptance check: no config, `mlcd init`, `mlcd run` passes."""
    proj = _house_copy(tmp_path / "houses")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "MLCD_", "MLFLOW_")) and k != "CI"}
    env.update(HOME=str(tmp_path), MLCD_PROGRESS="0")

    def mlcd(*args):
        return subprocess.run([sys.executable, "-m", "mlcd_actions", *args], cwd=proj, env=env,
                              capture_output=True, text=True, timeout=900)

    init = mlcd("init")
    assert init.returncode == 0, init.stdout + init.stderr
    run = mlcd("run")
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("mlcd run: passed") and "summary.md" in last

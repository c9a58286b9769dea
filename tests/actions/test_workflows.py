"""The reusable workflows and the starter workflows, run under act as a user's repository
runs them (see conftest.py for how act is wired offline)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.actions.conftest import ROOT, git_repo, stop_local_servers
from tests.fake_forge import TOKEN, FakeForge

pytestmark = [pytest.mark.slow, pytest.mark.service]
STARTERS = ROOT / "action-templates" / "workflows"
REQUIREMENTS = "requirements-ci.txt"  # the example's code check runs ruff
PR_EVENT = {"number": 7, "pull_request": {"number": 7, "head": {"ref": "feature"},
                                          "base": {"ref": "main"}}}


def caller(repo: Path, starter: str, **with_: object) -> str:
    """Install a starter workflow into the repository, with extra `with:` inputs."""
    data = yaml.safe_load((STARTERS / starter).read_text(encoding="utf-8"))
    data = {("on" if k is True else k): v for k, v in data.items()}  # YAML 1.1 reads on: as True
    for job in data["jobs"].values():
        if "uses" in job:
            job.setdefault("with", {}).update(with_)
    target = repo / ".github" / "workflows" / starter
    target.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return starter


def pr_env(forge: FakeForge, tracking_uri: str) -> dict:
    return {"env": {"GITHUB_API_URL": forge.url},
            "secrets": {"GITHUB_TOKEN": TOKEN},
            "variables": {"MLFLOW_TRACKING_URI": tracking_uri}}


def test_pr_workflow_passes_writes_summary_and_comment(act_env, project, mlflow_server):
    (project / REQUIREMENTS).write_text("ruff\n")
    wf = caller(project, "mlcd-pr.yml", requirements=REQUIREMENTS)
    git_repo(project)
    with FakeForge() as forge:
        run = act_env.run(project, "pull_request", wf, payload=PR_EVENT,
                          **pr_env(forge, mlflow_server))
        comments = [r for r in forge.state.requests if r.method in ("POST", "PATCH")]
    assert run.code == 0, run
    results = run.job_results()
    assert set(results.values()) == {"succeeded"} and len(results) == 3, results
    # every stage ran through its action and passed
    for stage in ("ingest", "validate", "prepare", "check-data", "train", "evaluate",
                  "check-fairness", "report"):
        assert re.search(rf"mlcd {stage}: passed", run.output), (stage, run)
    # the job summary carries the stage reports (act prints summary lines as "Summary - ")
    summary = [ln for ln in run.output.splitlines() if "Summary - " in ln]
    assert any("evaluate" in ln.lower() for ln in summary), run
    # the sticky comment went to the (fake) GitHub API, on PR 7
    assert any("/issues/7/comments" in r.path for r in comments), comments
    # outputs flow between steps: evaluate got train's model URI
    assert re.search(r"model-uri=runs:/[0-9a-f]{32}/model", run.output), run


def test_pr_with_worse_model_fails_at_evaluate(act_env, project, mlflow_server):
    (project / "params.yaml").write_text("model: logistic_regression\nC: 0.00001\nseed: 0\n")
    (project / REQUIREMENTS).write_text("ruff\n")
    wf = caller(project, "mlcd-pr.yml", comment=False, requirements=REQUIREMENTS)
    git_repo(project)
    with FakeForge() as forge:
        run = act_env.run(project, "pull_request", wf, payload=PR_EVENT,
                          **pr_env(forge, mlflow_server))
    assert run.code != 0, run
    results = run.job_results()
    model_job = next(j for j in results if "train and evaluate" in j)
    assert results[model_job] == "failed", results
    assert re.search(r"mlcd evaluate: failed", run.output), run
    assert re.search(r"mlcd train: passed", run.output), run
    # the data job passed; the report job still ran and wrote the summary
    assert [v for j, v in results.items() if "data checks" in j] == ["succeeded"], results
    assert any("report" in j for j in results), results


def _set_outputs(run, name: str) -> set[str]:
    return set(re.findall(rf"::set-output:: {re.escape(name)}=(\S*)", run.output))


def _first(run, pattern: str, job_part: str) -> int:
    for i, line in enumerate(run.output.splitlines()):
        if job_part in line.split("]")[0] and re.search(pattern, line):
            return i
    raise AssertionError(f"{pattern!r} not found in job {job_part!r}:\n{run!r}")


def test_cd_workflow_versions_everything_and_gates_production_on_staging(
        act_env, project, mlflow_server, tmp_path):
    state = tmp_path / "deployments"
    remote = tmp_path / "dvc-remote"
    (project / REQUIREMENTS).write_text("ruff\n")
    # no Docker engine here: the image job is switched off explicitly and the `local`
    # target (mlcd.yaml) serves the registered model version in both environments
    wf = caller(project, "mlcd-cd.yml", **{"build-image": False, "dvc-remote": str(remote),
                                           "requirements": REQUIREMENTS})
    git_repo(project)
    try:
        run = act_env.run(project, "push", wf, env={"MLCD_STATE_DIR": str(state)},
                          variables={"MLFLOW_TRACKING_URI": mlflow_server})
    finally:
        stop_local_servers(state)
    assert run.code == 0, run
    results = run.job_results()
    assert results and set(results.values()) == {"succeeded"}, results
    jobs = " ".join(results)
    for name in ("data", "train, evaluate, register", "deploy staging", "deploy production"):
        assert name in jobs, (name, results)
    assert "app image" not in jobs  # build-image: false
    # versioned artifacts: data (DVC), code (build-training), model (registry)
    assert _set_outputs(run, "data-version") - {""}, run
    assert any(v.endswith(tuple("0123456789")) or "beta" in v
               for v in _set_outputs(run, "version")), run
    versions = _set_outputs(run, "model-version") - {""}
    assert len(versions) == 1, versions
    assert any(remote.rglob("*")), "nothing pushed to the DVC remote"
    # staging deploy and smoke test, then production (alias champion), its smoke test
    staging_smoke = _first(run, r"mlcd smoke-test: passed", "deploy staging")
    production_start = _first(run, r"⭐ Run", "deploy production")
    assert production_start > staging_smoke, "production started before staging's smoke test"
    _first(run, r"mlcd deploy: passed .*production", "deploy production")
    _first(run, r"mlcd smoke-test: passed", "deploy production")
    assert re.search(r"alias=champion", run.output), run
    assert not re.search(r"mlcd rollback:", run.output)  # the smoke test passed


def test_cd_job_graph_gates_production():
    """The production job needs staging (whose last step is the smoke test), is bound to
    the protected environment, and rolls back when its own smoke test fails."""
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "cd.yml").read_text())
    jobs = data["jobs"]
    assert "staging" in jobs["production"]["needs"]
    assert jobs["production"]["environment"]["name"] == "${{ inputs.production-environment }}"
    assert data[True]["workflow_call"]["inputs"]["production-environment"]["default"] == \
        "production"
    steps = jobs["staging"]["steps"]
    assert [s.get("id") for s in steps].index("smoke-test") > \
        [s.get("id") for s in steps].index("deploy")
    prod = {s.get("id"): s for s in jobs["production"]["steps"]}
    assert "failure()" in prod["rollback"]["if"]
    assert prod["rollback"]["uses"].endswith("/action-templates/rollback@v1")
    # the same image digest / registered version in both environments
    assert prod["deploy"]["with"]["image"] == \
        {s.get("id"): s for s in steps}["deploy"]["with"]["image"]
    for job in ("model",):
        assert "train-runs-on" in jobs[job]["runs-on"]


def test_monitor_workflow_dispatches_retraining_on_drift(act_env, project):
    # production data that drifted: incomes and amounts tripled
    import pandas as pd

    current = pd.read_csv(project / "data" / "new_applications.csv")
    for col in current.select_dtypes("number").columns:
        if col not in ("applicant_id",):
            current[col] = current[col] * 3
    current.to_csv(project / "data" / "new_applications.csv", index=False)
    wf = caller(project, "mlcd-monitor.yml")
    git_repo(project)
    with FakeForge() as forge:
        run = act_env.run(project, "workflow_dispatch", wf,
                          env={"GITHUB_API_URL": forge.url},
                          secrets={"GITHUB_TOKEN": TOKEN})
        writes = [(r.method, r.path, r.body) for r in forge.state.requests
                  if r.method in ("POST", "PATCH")]
    assert re.search(r"mlcd monitor: failed — .*drift", run.output), run
    assert any(p.endswith("/dispatches") and "mlcd-retrain" in json.dumps(b)
               for _m, p, b in writes), writes
    assert any(p.endswith("/issues") for _m, p, _b in writes), writes
    assert re.search(r"::set-output:: retrain=true", run.output), run


def test_full_starter_runs_the_pull_request_pipeline(act_env, project, mlflow_server):
    """mlcd-full.yml, copied as is: on a pull request the data, model and report jobs run
    and pass; the delivery and monitoring jobs are skipped by their conditions."""
    shutil.copy2(STARTERS / "mlcd-full.yml", project / ".github" / "workflows" / "mlcd.yml")
    git_repo(project)
    with FakeForge() as forge:
        run = act_env.run(project, "pull_request", "mlcd.yml", payload=PR_EVENT,
                          **pr_env(forge, mlflow_server))
        comments = [r for r in forge.state.requests if r.method in ("POST", "PATCH")]
    assert run.code == 0, run
    results = run.job_results()
    assert {j.strip() for j in results} == {"mlcd/data", "mlcd/model", "mlcd/report"}, results
    assert set(results.values()) == {"succeeded"}, results
    assert not any(k in " ".join(results) for k in ("staging", "production", "monitor"))
    for stage in ("ingest", "validate", "prepare", "check-data", "train", "evaluate",
                  "check-fairness", "report"):
        assert re.search(rf"mlcd {stage}: passed", run.output), (stage, run)
    assert any("/issues/7/comments" in r.path for r in comments), comments


def test_cd_strategy_promote_and_the_protected_override_job():
    """Production: deploy with the strategy input -> smoke-test -> promote (shadow/canary);
    rollback not after a failed promote (it aborted already). The override job runs only
    after a failed gate, when asked, bound to its protected environment."""
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "cd.yml").read_text())
    jobs = data["jobs"]
    inputs = data[True]["workflow_call"]["inputs"]
    assert inputs["strategy"]["default"] == "direct"
    prod = [s.get("id") for s in jobs["production"]["steps"]]
    assert prod.index("deploy") < prod.index("smoke-test") < prod.index("promote") \
        < prod.index("rollback")
    steps = {s.get("id"): s for s in jobs["production"]["steps"]}
    assert steps["deploy"]["with"]["strategy"] == "${{ inputs.strategy }}"
    assert steps["promote"]["if"] == "${{ inputs.strategy != 'direct' }}"
    assert "steps.promote.outcome != 'failure'" in steps["rollback"]["if"]
    override = jobs["override"]
    assert override["environment"]["name"] == "${{ inputs.override-environment }}"
    assert "failure()" in override["if"] and "inputs.override-stage != ''" in override["if"]
    ids = [s.get("id") for s in override["steps"]]
    assert ids.index("override") < ids.index("evaluate") < ids.index("register")
    assert "override" in jobs["production"]["needs"]

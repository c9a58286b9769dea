"""The GitLab pipeline (action-templates/gitlab/pipeline.yml) run by gitlab-ci-local (shell
executor) on a copy of examples/credit-approval, against a real MLflow server, a DVC remote
folder and a fake GitLab API on loopback.

The tests of this module run in order on one project copy, like a team's history: a merge
request, the main branch to staging, production by hand, a worse model in a merge request,
a failed production smoke test with its rollback, a scheduled monitoring run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fake_forge import GITLAB_TOKEN, TRIGGER_TOKEN, FakeForge

pytestmark = [pytest.mark.slow, pytest.mark.service]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "credit-approval"
VENV_BIN = Path(sys.executable).parent
MR_IID = "7"
CI_YML = """\
include:
  - local: /action-templates/gitlab/pipeline.yml
    inputs:
      source: data/applications.csv
      dvc-remote: {dvc_remote}
      monitor-reference: data/applications.csv
      monitor-current: data/drifted.csv
"""


@dataclass
class Run:
    code: int
    output: str

    def status(self, job: str) -> str | None:
        """PASS / FAIL / WARN of a job in gitlab-ci-local's summary, None when it did not run."""
        m = re.search(rf"^\s*(PASS|FAIL|WARN)\s+{re.escape(job)}\s*$", self.output, re.M)
        return m.group(1) if m else None

    def job_log(self, job: str) -> str:
        return "\n".join(line for line in self.output.splitlines()
                         if line.startswith(job + " "))

    def __repr__(self) -> str:
        return f"<gitlab-ci-local exit {self.code}>\n{self.output[-12000:]}"


class Project:
    def __init__(self, root: Path, env: dict[str, str], variables: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.variables = variables

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True,
                              text=True, env=self.env).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm",
                 message)

    def run(self, *args: str, timeout: float = 900, schema: bool = False, **variables: str) -> Run:
        """gitlab-ci-local ARGS; ``schema`` adds its JSON-schema check of the expanded
        configuration (a few seconds; the static tests validate every template already)."""
        cmd = ["gitlab-ci-local", "--shell-isolation", "--no-artifacts-to-source",
               "--force-shell-executor", "--no-color", "--max-job-name-padding", "0",
               "--json-schema-validation" if schema else "--no-json-schema-validation"]
        for key, value in {**self.variables, **variables}.items():
            cmd += ["--variable", f"{key}={value}"]
        proc = subprocess.run([*cmd, *args], cwd=self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        return Run(proc.returncode, proc.stdout + proc.stderr)

    def artifact(self, job: str, name: str) -> Path:
        return self.root / ".gitlab-ci-local" / "artifacts" / job / ".mlcd" / "reports" / name

    def report(self, job: str, stage: str) -> dict:
        return json.loads(self.artifact(job, f"{stage}.json").read_text(encoding="utf-8"))

    def dotenv(self, job: str, stage: str) -> dict[str, str]:
        lines = self.artifact(job, f"{stage}.env").read_text(encoding="utf-8").splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


def _kill_servers(state_dir: Path) -> None:
    """Stop the `mlcd serve` processes the deploy jobs started (local target), by pid."""
    pids: set[int] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "pid" and isinstance(v, int):
                    pids.add(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in state_dir.glob("*.json"):
        try:
            walk(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass



def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in (
        Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:1] or ["?"])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """This module's own `mlflow server`: the registry versions these tests assert on must
    not be shifted by other modules registering the same model name."""
    from tests.services import kill_mlflow, start_mlflow

    proc, uri = start_mlflow(tmp_path_factory.mktemp("gitlab-mlflow"))
    try:
        yield uri
    finally:
        kill_mlflow(proc)

@pytest.fixture(scope="module")
def forge():
    with FakeForge() as f:
        yield f


@pytest.fixture(scope="module")
def project(tmp_path_factory, gitlab_ci_local_bin, mlflow_server, forge):
    base = tmp_path_factory.mktemp("gitlab")
    root = base / "credit"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(
        ".mlcd", "__pycache__", ".gitlab-ci-local", ".dvc", "*.dvc", "mlruns", "mlartifacts"))
    shutil.copytree(REPO / "action-templates" / "gitlab", root / "action-templates" / "gitlab")
    # current data with drift for the scheduled monitor: income tripled
    import pandas as pd

    current = pd.read_csv(root / "data" / "new_applications.csv")
    numeric = [c for c in ("income", "annual_income", "loan_amount") if c in current.columns]
    assert numeric, f"no income/loan column in {list(current.columns)}"
    for col in numeric:
        current[col] = current[col] * 3
    current.to_csv(root / "data" / "drifted.csv", index=False)
    state_dir = base / "deployments"
    (root / ".gitlab-ci.yml").write_text(CI_YML.format(dvc_remote=base / "dvc-remote"),
                                         encoding="utf-8")
    (root / ".gitignore").write_text(".mlcd/\n__pycache__/\n.gitlab-ci-local/\n",
                                     encoding="utf-8")
    home = base / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "MLCD_", "MLFLOW_"))
           and k not in ("CI", "VIRTUAL_ENV")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               PATH=os.pathsep.join([str(gitlab_ci_local_bin), str(VENV_BIN),
                                     env.get("PATH", "")]))
    variables = {
        "GITLAB_CI": "true",  # gitlab-ci-local sets GITLAB_CI=false; GitLab sets true
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLCD_PROGRESS": "0",
        "MLCD_STATE_DIR": str(state_dir),  # jobs run in separate folders: share the records
        "CI_API_V4_URL": forge.url,
        "CI_PROJECT_ID": "42",
        "MLCD_GITLAB_TOKEN": GITLAB_TOKEN,
        "MLCD_TRIGGER_TOKEN": TRIGGER_TOKEN,
    }
    proj = Project(root, env, variables)
    proj.git("init", "-q", "-b", "main")
    proj.git("remote", "add", "origin", "https://gitlab.example.com/acme/credit.git")
    proj.commit("credit-approval")
    proj.git("update-ref", "refs/remotes/origin/main", "HEAD")
    proj.git("symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
    try:
        yield proj
    finally:
        _kill_servers(state_dir)


def mlflow_alias(uri: str, name: str, alias: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(
        name, alias).version


MR = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": MR_IID}
MAIN = {"CI_PIPELINE_SOURCE": "push"}
CHECKS = ["mlcd-ingest", "mlcd-validate", "mlcd-prepare", "mlcd-check-data",
          "mlcd-build-training", "mlcd-train", "mlcd-evaluate", "mlcd-check-fairness"]
# the default-branch pipeline up to staging (gitlab-ci-local runs the named jobs in order)
DELIVERY = [*CHECKS, "mlcd-version-data", "mlcd-register", "mlcd-build-app",
            "mlcd-deploy-staging", "mlcd-smoke-test-staging", "mlcd-report"]


@pytest.mark.parametrize("given, message", [
    ("retrain=often", "`retrain` input: provided value is not a boolean"),
    ("deploy-target=ftp", "`deploy-target` input: `ftp` cannot be used"),
])
def test_wrong_input_types_are_rejected(project, given, message):
    run = project.run("--list", "--input", given)
    assert run.code != 0, run
    assert message in run.output, run


def test_a_string_for_a_number_input_is_rejected(project):
    original = (project.root / ".gitlab-ci.yml").read_text(encoding="utf-8")
    broken = original + """\
  - local: /action-templates/gitlab/jobs/predict.yml
    inputs:
      input: data/new_applications.csv
      retry: "twice"
"""
    (project.root / ".gitlab-ci.yml").write_text(broken, encoding="utf-8")
    try:
        run = project.run("--list")
    finally:
        (project.root / ".gitlab-ci.yml").write_text(original, encoding="utf-8")
    assert run.code != 0, run
    assert "`retry` input: provided value is not a number" in run.output, run


def test_merge_request_pipeline_passes(project, forge):
    project.git("checkout", "-q", "-b", "feature/better-features")
    run = project.run(schema=True, **MR)
    assert run.code == 0, run
    for job in [*CHECKS, "mlcd-report"]:
        assert run.status(job) == "PASS", (job, run)
    # no delivery in a merge request
    for job in ("mlcd-version-data", "mlcd-register", "mlcd-deploy-staging",
                "mlcd-deploy-production", "mlcd-monitor"):
        assert run.status(job) is None, (job, run)
    # outputs travel as dotenv: evaluate scored the model train logged
    model_uri = project.dotenv("mlcd-train", "train")["MLCD_MODEL_URI"]
    assert model_uri.startswith("runs:/")
    assert model_uri in project.artifact("mlcd-evaluate", "evaluate.json").read_text()
    # gates in the merge request: one JUnit test case per gate
    junit = project.artifact("mlcd-evaluate", "evaluate.junit.xml").read_text()
    assert 'name="accuracy &gt;= 0.75"' in junit and 'failures="0"' in junit
    assert "passed: accuracy = 0." in junit  # a passed case carries its value
    metrics = project.artifact("mlcd-evaluate", "evaluate.metrics.txt").read_text()
    assert re.search(r"^evaluate_accuracy 0\.\d+$", metrics, re.M), metrics
    # the sticky merge request note
    notes = [r for r in forge.state.requests
             if r.method in ("POST", "PUT") and f"/merge_requests/{MR_IID}/notes" in r.path]
    assert notes, forge.state.requests
    assert "mlcd report" in json.dumps(notes[-1].body)


def test_production_is_a_manual_job_unless_continuous_deployment(project):
    project.git("checkout", "-q", "main")
    project.git("merge", "-q", "--no-edit", "feature/better-features")
    listing = project.run("--list", **MAIN)
    assert listing.code == 0, listing
    jobs = {line.split()[0]: line for line in listing.output.splitlines() if line.strip()}
    assert re.search(r"\bmanual\b.*\bproduction\b", jobs["mlcd-deploy-production"]), listing
    assert re.search(r"\bon_failure\b", jobs["mlcd-rollback-production"]), listing
    assert "mlcd-monitor" not in jobs, listing
    # GitLab would run the pipeline and leave production waiting for a person; gitlab-ci-local
    # refuses to plan a pipeline whose jobs need a manual job that was not triggered
    refused = project.run(**MAIN)
    assert refused.code != 0, refused
    assert ("mlcd-deploy-production is when:manual, its needed by mlcd-smoke-test-production"
            in refused.output), refused
    assert refused.status("mlcd-ingest") is None, refused  # nothing ran
    cd = project.run("--list", "--input", "continuous-deployment=true", **MAIN)
    assert cd.code == 0, cd
    line = next(x for x in cd.output.splitlines() if x.startswith("mlcd-deploy-production "))
    assert re.search(r"\bon_success\b", line) and "manual" not in line, cd


def test_main_branch_delivers_to_staging(project, mlflow_server, forge):
    run = project.run(*DELIVERY, **MAIN)
    assert run.code == 0, run
    # GitLab keeps main's evaluate artifacts (the main snapshot in .mlcd/main/) for merge
    # requests to fetch through the job artifacts API (the fake API serves this copy)
    kept = project.root.parent / "main-evaluate-artifacts"
    shutil.copytree(project.root / ".gitlab-ci-local" / "artifacts" / "mlcd-evaluate", kept)
    forge.state.artifacts["mlcd-evaluate"] = kept
    for job in DELIVERY:
        assert run.status(job) == "PASS", (job, run)
    for job in ("mlcd-deploy-production", "mlcd-smoke-test-production",
                "mlcd-rollback-production"):
        assert run.status(job) is None, (job, run)
    # no deploy-target input: deploy.target (local) in mlcd.yaml holds, so no image is built
    assert "mlcd build-app: skipped — the deploy target is local" in \
        run.job_log("mlcd-build-app"), run
    assert project.dotenv("mlcd-version-data", "version-data")["MLCD_DATA_VERSION"]
    version = project.dotenv("mlcd-register", "register")["MLCD_MODEL_VERSION"]
    deployed = project.dotenv("mlcd-deploy-staging", "deploy")
    assert deployed["MLCD_TARGET"] == "local"
    assert deployed["MLCD_ENVIRONMENT"] == "staging"
    assert deployed["MLCD_MODEL_VERSION"] == version
    assert deployed["MLCD_ALIAS"] == "staging"  # not register's `candidate`
    assert mlflow_alias(mlflow_server, "credit-approval", "staging") == version
    smoke = project.report("mlcd-smoke-test-staging", "smoke-test")
    assert smoke["status"] == "passed" and deployed["MLCD_URL"] in smoke["reason"], smoke
    # the local target in CI: no environment URL (a loopback address of the runner is not a
    # deployment), and its `mlcd serve` ends with the environment's smoke-test job
    assert "MLCD_ENVIRONMENT_URL" not in deployed
    assert "stopped the local deployment of staging" in run.job_log("mlcd-smoke-test-staging")
    state = json.loads((Path(project.variables["MLCD_STATE_DIR"]) / "staging.json").read_text())
    assert not _alive(state["current"]["handle"]["pid"]), state


def test_production_runs_when_triggered_by_hand(project, mlflow_server):
    jobs = ["mlcd-deploy-production", "mlcd-smoke-test-production", "mlcd-rollback-production"]
    run = project.run("--manual", "mlcd-deploy-production", *jobs, **MAIN)
    assert run.code == 0, run
    assert run.status("mlcd-deploy-production") == "PASS", run
    assert run.status("mlcd-smoke-test-production") == "PASS", run
    assert run.status("mlcd-rollback-production") is None, run  # only on failure
    version = project.dotenv("mlcd-register", "register")["MLCD_MODEL_VERSION"]
    assert mlflow_alias(mlflow_server, "credit-approval", "champion") == version


def test_a_worse_model_fails_the_evaluate_job(project, forge):
    project.git("checkout", "-q", "-b", "feature/worse")
    params = project.root / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("C: 1.0", "C: 0.00001"),
                      encoding="utf-8")
    project.commit("tiny C")
    run = project.run("mlcd-train", "mlcd-evaluate", "mlcd-report", **MR)
    assert run.code != 0, run
    assert run.status("mlcd-train") == "PASS", run
    assert run.status("mlcd-evaluate") == "FAIL", run
    # the report still tells why, and fails too: a gate of the pipeline failed
    assert run.status("mlcd-report") == "FAIL", run
    assert "mlcd report: failed" in run.job_log("mlcd-report"), run
    report = project.report("mlcd-evaluate", "evaluate")
    assert report["status"] == "failed" and report["exit_code"] == 1, report
    # worse than the champion (production's v1): the max-drop gate explains by how much
    drop = [g for g in report["gates"] if g["threshold"].startswith("max drop")]
    assert drop and drop[0]["verdict"] == "failed" and drop[0]["delta"] < 0, report["gates"]
    assert report["outputs"]["baseline-uri"] == "models:/credit-approval/1", report["outputs"]
    junit = project.artifact("mlcd-evaluate", "evaluate.junit.xml").read_text()
    assert "<failure" in junit
    assert "mlcd evaluate: failed" in run.job_log("mlcd-evaluate"), run
    # the merge request's evaluate fetched main's snapshot through the job artifacts API
    fetched = [r for r in forge.state.requests
               if r.path == "/projects/42/jobs/artifacts/main/download"]
    assert fetched and fetched[-1].query["job"] == ["mlcd-evaluate"], forge.state.requests


def test_report_without_a_token_says_so_and_still_reports(project, forge):
    before = len(forge.state.requests)
    run = project.run("mlcd-report", MLCD_GITLAB_TOKEN="", **MR)
    assert "no MLCD_GITLAB_TOKEN CI/CD variable" in run.job_log("mlcd-report"), run
    # the report is written; the job fails because this merge request's evaluate failed
    assert run.status("mlcd-report") == "FAIL", run
    assert re.search(r"mlcd report: failed — .*overall failed \(failed: evaluate\)",
                     run.job_log("mlcd-report")), run
    assert len(forge.state.requests) == before, forge.state.requests[before:]


def test_rollback_runs_when_the_production_smoke_test_fails(project, mlflow_server):
    project.git("checkout", "-q", "main")
    # a new version (v2, retrained on main: it passes evaluate, as register requires before
    # it moves an alias) reaches production and fails its smoke test
    registered = project.run("mlcd-train", "mlcd-evaluate", "mlcd-register", **MAIN)
    assert registered.status("mlcd-evaluate") == "PASS", registered
    assert registered.status("mlcd-register") == "PASS", registered
    assert project.dotenv("mlcd-register", "register")["MLCD_MODEL_VERSION"] == "2"
    jobs = ["mlcd-deploy-production", "mlcd-smoke-test-production", "mlcd-rollback-production"]
    run = project.run("--manual", "mlcd-deploy-production", *jobs,
                      MLCD_LATENCY_BUDGET_MS="0.000001", **MAIN)
    assert run.code != 0, run
    assert run.status("mlcd-deploy-production") == "PASS", run
    assert project.dotenv("mlcd-deploy-production", "deploy")["MLCD_PREVIOUS_VERSION"] == "1"
    assert run.status("mlcd-smoke-test-production") == "FAIL", run
    assert run.status("mlcd-rollback-production") == "PASS", run
    rolled = project.dotenv("mlcd-rollback-production", "rollback")
    assert rolled["MLCD_ROLLED_BACK_FROM"] == "2", rolled
    assert mlflow_alias(mlflow_server, "credit-approval", "champion") == "1"


def test_scheduled_monitoring_triggers_retraining(project, forge):
    run = project.run(CI_PIPELINE_SOURCE="schedule")
    assert run.status("mlcd-monitor") == "FAIL", run  # drift is a failed gate
    for job in CHECKS:
        assert run.status(job) is None, (job, run)
    out = project.dotenv("mlcd-monitor", "monitor")
    assert out["MLCD_RETRAIN"] == "true" and out["MLCD_DISPATCHED"] == "true", out
    triggers = [r for r in forge.state.requests if r.path.endswith("/trigger/pipeline")]
    assert triggers, forge.state.requests
    assert "MLCD_RETRAIN" in json.dumps(triggers[-1].body)

"""`mlcd run` on a copy of the credit-approval example: every stage passes, a second run
skips every stage, a threshold change re-runs only the gates, a changed data row re-runs
from ingest. One first run is shared by the module (it trains, registers and deploys)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlcd_actions.run.pipeline import STEP_IDS

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "credit-approval"
GATES = {"evaluate", "check-fairness"}

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "MLCD_", "MLFLOW_")) and k != "CI"}
    env.update(HOME=str(home), MLCD_PROGRESS="0", PYTHONDONTWRITEBYTECODE="1")
    return env


def copy_example(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".mlcd", ".dvc", ".dvcignore",
                                                              "__pycache__"))
    return dest


class Pipeline:
    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        self.timings: list[float] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "mlcd_actions", "run", *args],
                              cwd=self.root, env=_env(self.home), capture_output=True,
                              text=True, timeout=900)
        self.timings.append(time.monotonic() - t0)
        return proc

    def steps(self) -> dict[str, dict]:
        data = json.loads((self.root / ".mlcd/reports/run.json").read_text())
        return {s["step"]: s for s in data["details"]["steps"]}

    def ran(self) -> set[str]:
        return {k for k, s in self.steps().items() if s["status"] not in ("cached", "not run")}


def _show(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n" \
           f"{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    base = tmp_path_factory.mktemp("run")
    home = base / "home"
    home.mkdir()
    pipe = Pipeline(copy_example(EXAMPLE, base / "credit-approval"), home)
    proc = pipe.run()
    yield pipe, proc
    # belt and braces: no server may outlive the tests
    for env in ("staging", "production"):
        state = pipe.root / ".mlcd/deployments" / f"{env}.json"
        if state.exists():
            pid = (json.loads(state.read_text()).get("current") or {}).get("handle", {}).get("pid")
            if pid:
                try:
                    os.killpg(pid, 15)
                except (ProcessLookupError, PermissionError):
                    pass


def test_first_run_passes_every_stage_and_names_the_report(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    last = proc.stdout.strip().splitlines()[-1]
    report = pipe.root / ".mlcd/reports/summary.md"
    assert last.startswith("mlcd run: passed"), last
    assert str(report) in last
    assert report.is_file()
    steps = pipe.steps()
    assert list(steps) == list(STEP_IDS)
    assert {k: s["status"] for k, s in steps.items()} == {k: "passed" for k in STEP_IDS}
    # the summary table: one row per stage
    for step in STEP_IDS:
        assert any(line.startswith(step + " ") for line in proc.stdout.splitlines()), step
    data = json.loads((pipe.root / ".mlcd/reports/run.json").read_text())
    print(f"\nfirst mlcd run: {pipe.timings[0]:.1f}s wall, "
          f"{data['metrics']['cpu_seconds']:.1f}s CPU in process, load {os.getloadavg()}")


def test_first_run_stops_the_servers_it_started(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    assert "stopped the staging deployment" in proc.stdout
    for env in ("staging", "production"):
        state = json.loads((pipe.root / ".mlcd/deployments" / f"{env}.json").read_text())
        pid = state["current"]["handle"]["pid"]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_second_run_skips_every_stage(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    again = pipe.run()
    assert again.returncode == 0, _show(again)
    steps = pipe.steps()
    assert {k: s["status"] for k, s in steps.items()} == {k: "cached" for k in STEP_IDS}
    assert "17 stage(s) passed (0 ran, 17 skipped unchanged)" in again.stdout
    # the restored reports are the first run's: the report stage still finds them all
    assert (pipe.root / ".mlcd/reports/train.json").is_file()
    print(f"\nsecond mlcd run: {pipe.timings[-1]:.1f}s vs first {pipe.timings[0]:.1f}s "
          f"(ratio {pipe.timings[-1] / pipe.timings[0]:.3f})")


def test_restores_deleted_outputs_when_skipping(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    predictions = pipe.root / ".mlcd/predictions/predictions.parquet"
    before = predictions.read_bytes()
    predictions.unlink()
    shutil.rmtree(pipe.root / ".mlcd/data/prepared")
    again = pipe.run("--until", "predict")
    assert again.returncode == 0, _show(again)
    assert pipe.ran() == set()
    assert predictions.read_bytes() == before
    assert (pipe.root / ".mlcd/data/prepared/train.parquet").is_file()


def test_changing_only_thresholds_reruns_only_the_gates(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    cfg = pipe.root / "mlcd.yaml"
    text = cfg.read_text()
    changed = text.replace("- accuracy>=0.75", "- accuracy>=0.7").replace(
        "- demographic_parity_difference<=0.2", "- demographic_parity_difference<=0.25")
    assert changed != text
    cfg.write_text(changed)
    again = pipe.run()
    assert again.returncode == 0, _show(again)
    assert pipe.ran() == GATES | {"report"}, again.stdout[-3000:]
    gates = json.loads((pipe.root / ".mlcd/reports/evaluate.json").read_text())["gates"]
    assert any("0.7" in str(g["threshold"]) for g in gates if g["metric"] == "accuracy"), gates


def test_print_cache_key_is_stable_and_excludes_gate_thresholds(first):
    pipe, _ = first

    def key(stage: str) -> str:
        proc = pipe.run("--print-cache-key", stage)
        assert proc.returncode == 0, _show(proc)
        return proc.stdout.splitlines()[0]

    train, evaluate = key("train"), key("evaluate")
    assert len(train) == 64 and train == key("train")
    cfg = pipe.root / "mlcd.yaml"
    cfg.write_text(cfg.read_text().replace("- roc_auc>=0.80", "- roc_auc>=0.79"))
    assert key("train") == train
    assert key("evaluate") != evaluate


def test_from_reruns_from_a_stage_and_force_ignores_the_cache(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    again = pipe.run("--from", "evaluate", "--until", "check-fairness")
    assert again.returncode == 0, _show(again)
    assert pipe.ran() == {"evaluate", "check-fairness"}
    assert pipe.steps()["train"]["status"] == "cached"
    again = pipe.run("--force", "--until", "validate")
    assert again.returncode == 0, _show(again)
    assert pipe.ran() == {"ingest", "validate"}


def test_keep_serving_leaves_the_server_up(first):
    import urllib.request

    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    again = pipe.run("--until", "smoke-test-staging", "--keep-serving")
    assert again.returncode == 0, _show(again)
    assert {"deploy-staging", "smoke-test-staging"} <= pipe.ran()
    state = json.loads((pipe.root / ".mlcd/deployments/staging.json").read_text())["current"]
    try:
        with urllib.request.urlopen(state["url"] + "/health", timeout=10) as resp:
            assert resp.status == 200
    finally:
        os.killpg(state["handle"]["pid"], 15)


def test_changing_one_data_row_reruns_from_ingest(first):
    pipe, proc = first
    assert proc.returncode == 0, _show(proc)
    import pandas as pd

    # one applicant of the training side (the split is by hashed id: it stays there)
    applicant = str(pd.read_parquet(pipe.root / ".mlcd/data/prepared/train.parquet")
                    ["applicant_id"].iloc[0])
    data = pipe.root / "data/applications.csv"
    lines = data.read_text().splitlines(keepends=True)
    row = next(i for i, line in enumerate(lines) if line.startswith(applicant + ","))
    fields = lines[row].split(",")
    fields[2] = str(int(fields[2]) + 1)  # the applicant's age
    lines[row] = ",".join(fields)
    data.write_text("".join(lines))
    again = pipe.run("--until", "train")
    assert again.returncode == 0, _show(again)
    assert pipe.ran() == {"ingest", "validate", "prepare", "check-data", "version-data",
                          "train"}, again.stdout[-3000:]
    assert pipe.steps()["build-training"]["status"] == "cached"


def test_bad_until_and_missing_source_exit_2(tmp_path, mlcd):
    (tmp_path / "work" / "mlcd.yaml").write_text("version: 1\nlabel: y\n")
    r = mlcd("run")
    assert r.exit_code == 2, r
    assert "no data source" in r.verdict
    (tmp_path / "work" / "mlcd.yaml").write_text("version: 1\nrun:\n  source: d.csv\n")
    r = mlcd("run", "--until", "trian")
    assert r.exit_code == 2, r
    assert "unknown stage 'trian'" in r.verdict


def test_raw_snapshot_fails_the_pii_policy(tmp_path, mlcd):
    """The example's compliance check catches the planted e-mail column unless hashed."""
    work = tmp_path / "work"
    shutil.copy(EXAMPLE / "pii-policy.yaml", work)
    r = mlcd("ingest", EXAMPLE / "data/applications.csv", "--out", "raw")
    assert r.exit_code == 0, r
    r = mlcd("check-data", "raw/data.parquet", "--pii-policy", "pii-policy.yaml")
    assert r.exit_code == 1, r
    assert "email" in r.verdict and "hash" in r.verdict
    first_email = (EXAMPLE / "data/applications.csv").read_text().splitlines()[1].split(",")[1]
    assert "@" in first_email and first_email not in r.output

"""``mlcd train`` through the CLI against a real ``mlflow server`` on loopback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port

DATA = Path(__file__).resolve().parents[1] / "data" / "train"


def _report() -> dict:
    return json.loads(Path(".mlcd/reports/train.json").read_text())


def _outputs(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "=" in line and "<<" not in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def test_entrypoint_classifier_on_a_tracking_server(mlcd, mlflow_server, isolated, tmp_path):
    import mlflow
    from mlflow import MlflowClient

    shutil.copy(DATA / "user_model.py", "user_model.py")
    Path("params.yaml").write_text("C: 0.5\n")
    gh_out = tmp_path / "gh_output"
    gh_out.touch()
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--test", DATA / "clf_test.parquet",
             "--label", "approved", "--entrypoint", "user_model:classifier",
             "--params", "params.yaml", "--experiment", "cli-train",
             "--tracking-uri", mlflow_server,
             env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(gh_out)})
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd train: passed — classification model from "
                                "user_model:classifier")
    assert "user: trained on 90 rows" in r.stderr          # the log streams through
    outputs = _report()["outputs"]
    run_id = outputs["run-id"]
    assert outputs["model-uri"] == f"runs:/{run_id}/model"
    assert outputs["lineage-id"].startswith("lin-")
    gh = _outputs(gh_out)
    assert gh["run-id"] == run_id and gh["model-uri"] == outputs["model-uri"]
    assert gh["lineage-id"] == outputs["lineage-id"] and gh["experiment-id"]

    client = MlflowClient(mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["C"] == "0.5" and run.data.params["label"] == "approved"
    assert run.data.metrics["user_metric"] == 0.5          # the user's own logging
    assert 0.5 <= run.data.metrics["test_accuracy"] <= 1
    assert run.data.tags["mlcd.lineage_id"] == outputs["lineage-id"]
    local = mlflow.artifacts.download_artifacts(run_id=run_id, tracking_uri=mlflow_server,
                                                artifact_path="golden/samples.json")
    golden = json.loads(Path(local).read_text())
    assert golden["classes"] == ["no", "yes"] and len(golden["probabilities"][0]) == 2
    mlflow.set_tracking_uri(mlflow_server)
    info = mlflow.models.get_model_info(outputs["model-uri"])
    assert info.flavors.get("sklearn") and info.signature is not None
    assert info.metadata["mlcd"]["classes"] == ["no", "yes"]


@pytest.mark.parametrize("mode", ["save", "log"])
def test_command_script_regressor(mlcd, mlflow_server, isolated, mode):
    from mlflow import MlflowClient

    shutil.copy(DATA / "train_script.py", "train.py")
    r = mlcd("train", "--train", DATA / "reg_train.parquet", "--test", DATA / "reg_test.parquet",
             "--label", "price", "--command", "python train.py", "--experiment", "cli-train",
             "--tracking-uri", mlflow_server, env={"MODE": mode})
    assert r.exit_code == 0, r
    assert "script: 90 rows, test=" in r.stderr
    outputs = _report()["outputs"]
    run = MlflowClient(mlflow_server).get_run(outputs["run-id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_rmse"] > 0 and "test_r2" in run.data.metrics
    import mlflow

    mlflow.set_tracking_uri(mlflow_server)
    info = mlflow.models.get_model_info(outputs["model-uri"])
    assert info.signature is not None
    if mode == "log":
        assert run.data.metrics["script_metric"] == 1.0
        assert _report()["details"]["flavor"] == "logged-by-command"
    else:
        assert info.metadata["mlcd"]["task"] == "regression"


def test_failing_command_exits_1_with_its_last_lines(mlcd, mlflow_server, isolated, tmp_path):
    shutil.copy(DATA / "train_script.py", "train.py")
    summary = tmp_path / "summary.md"
    summary.touch()
    r = mlcd("train", "--train", DATA / "reg_train.parquet", "--label", "price",
             "--command", "python train.py", "--experiment", "cli-train",
             "--tracking-uri", mlflow_server,
             env={"MODE": "fail", "GITHUB_ACTIONS": "true",
                  "GITHUB_STEP_SUMMARY": str(summary)})
    assert r.exit_code == 1, r
    assert r.verdict == ("mlcd train: failed — training command exited with code 1: "
                         "script: ERROR feature store unreachable")
    text = summary.read_text()
    assert "script: loading features..." in text and "feature store unreachable" in text


def test_raising_entrypoint_exits_1(mlcd, mlflow_server, isolated):
    shutil.copy(DATA / "user_model.py", "user_model.py")
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--label", "approved",
             "--entrypoint", "user_model:broken", "--tracking-uri", mlflow_server)
    assert r.exit_code == 1, r
    assert "user_model:broken raised ValueError" in r.verdict
    md = Path(".mlcd/reports/train.md").read_text()
    assert "column 'age' looks wrong" in md and "in broken" in md


def test_bad_input_exit_2(mlcd, isolated):
    r = mlcd("train", "--train", "missing.parquet", "--label", "y")
    assert r.exit_code == 2 and "missing.parquet: no such file" in r.verdict, r
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--label", "nope")
    assert r.exit_code == 2 and "label column 'nope' not found" in r.verdict, r
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--label", "approved",
             "--estimator", "magic")
    assert r.exit_code == 2 and "not a built-in estimator" in r.verdict, r
    r = mlcd("train", "--label", "approved")
    assert r.exit_code == 2 and "--train" in r.verdict, r


def test_unreachable_tracking_server_exit_3(mlcd, isolated):
    port = free_port()
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--label", "approved",
             "--tracking-uri", f"http://127.0.0.1:{port}",
             env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"})
    assert r.exit_code == 3, r
    assert f"MLflow tracking server http://127.0.0.1:{port} unavailable" in r.verdict


def test_help_imports_no_heavy_modules():
    code = ("import sys\nfrom mlcd_actions.cli import main\n"
            "for cmd in ('train', 'register'):\n"
            "    assert main([cmd, '--help']) == 0\n"
            "heavy = [m for m in ('pandas', 'sklearn', 'mlflow', 'numpy', 'dvc') "
            "if m in sys.modules]\nassert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--entrypoint" in proc.stdout and "--alias" in proc.stdout


def test_builtin_estimator_with_inf_names_the_column_exit_2(mlcd, isolated):
    """Issue 15 defect 2: as predict and evaluate do; before any run starts."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(DATA / "clf_train.parquet")
    df.loc[4, "tenure"] = np.inf
    df.to_parquet("inf.parquet")
    r = mlcd("train", "--train", "inf.parquet", "--label", "approved")
    assert r.exit_code == 2, r
    assert r.verdict == ("mlcd train: failed — inf.parquet: feature column 'tenure' has 1 "
                         "infinite value(s), first at data row 5; the built-in "
                         "logistic_regression cannot fit them (replace or drop them in "
                         "prepare)"), r
    assert "Traceback" not in r.output
    assert not Path(".mlcd/mlflow.db").exists()


@pytest.mark.parametrize("entrypoint, code, verdict", [
    ("nosuchmod:train", 2, "--entrypoint nosuchmod:train: no module named 'nosuchmod'"),
    ("user_model:nosuchfunc", 2,
     "--entrypoint user_model:nosuchfunc: module 'user_model' has no function 'nosuchfunc'"),
    ("user_model:NOT_CALLABLE", 2,
     "--entrypoint user_model:NOT_CALLABLE: 'NOT_CALLABLE' is not a function (type int)"),
    ("user_model:no_predict", 1,
     "user_model:no_predict returned a dict, which has no predict method; the training "
     "function must return the fitted model"),
    ("user_model:imports_missing", 1,
     "user_model:imports_missing raised ModuleNotFoundError: No module named 'nosuchdep'"),
])
def test_unusable_entrypoint_or_model_is_one_line(mlcd, mlflow_server, isolated, entrypoint,
                                                  code, verdict):
    """Issue 15 defects 3 and 4: a bad --entrypoint is a usage error (2); a function that
    returns something without predict is named as such, not as 'raised TypeError'; the
    terminal shows no traceback (the training log keeps the user's)."""
    Path("user_model.py").write_text(
        "NOT_CALLABLE = 3\n\n"
        "def no_predict(train_df, params):\n    return {'weights': [1, 2]}\n\n"
        "def imports_missing(train_df, params):\n    import nosuchdep  # noqa\n")
    r = mlcd("train", "--train", DATA / "clf_train.parquet", "--label", "approved",
             "--entrypoint", entrypoint, "--tracking-uri", mlflow_server)
    assert r.exit_code == code, r
    assert verdict in r.verdict, r
    assert "raised TypeError" not in r.verdict
    assert "Traceback" not in r.output and "child.py" not in r.output, r

"""``mlcd evaluate`` through the CLI: gates, champion comparison, bad input, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.models.test_loading import DATA, LABEL, PIP, _clf_pipeline
from tests.models.test_loading import eval_store as eval_store  # noqa: F401 - shared fixture
from tests.models.test_loading import store as shared_store

TEST = DATA / "test.csv"
store = shared_store  # the fixture, under its own name


def report(name: str = "evaluate") -> dict:
    return json.loads(Path(f".mlcd/reports/{name}.json").read_text())


def test_good_model_passes_threshold(mlcd, store):
    r = mlcd("evaluate", "--model-uri", "models:/credit@champion", "--test", TEST,
             "--label", LABEL, "--threshold", "accuracy>=0.8", "--threshold", "roc_auc>=0.9")
    assert r.exit_code == 0, r
    # the two thresholds and the default lift over the naive baseline
    assert r.verdict.startswith("mlcd evaluate: passed — 3 gate(s) passed")
    rep = report()
    assert [g["verdict"] for g in rep["gates"]] == ["passed", "passed", "passed"]
    assert rep["gates"][2]["threshold"].startswith("lift >= 0.1 over naive baseline")
    assert rep["outputs"]["passed"] is True
    assert rep["outputs"]["accuracy"] == rep["metrics"]["accuracy"] > 0.8
    assert "roc-auc" in rep["outputs"] and "log-loss" in rep["outputs"]


def test_worse_model_fails_against_champion(mlcd, store):
    r = mlcd("evaluate", "--model-uri", "models:/credit/2", "--test", TEST, "--label", LABEL,
             "--name", "credit", "--max-drop", "accuracy=0.01", "--max-drop", "f1=5%",
             "--min-lift", "none")
    assert r.exit_code == 1, r
    assert "accuracy dropped by" in r.verdict and "(+1 more)" in r.verdict
    rep = report()
    acc = rep["gates"][0]
    assert acc["metric"] == "accuracy" and acc["verdict"] == "failed"
    assert acc["baseline"] == rep["details"]["baseline"]["metrics"]["accuracy"]
    assert acc["delta"] == pytest.approx(acc["value"] - acc["baseline"])
    assert rep["details"]["baseline"]["version"] == "1"
    assert rep["outputs"]["passed"] is False
    md = Path(".mlcd/reports/evaluate.md").read_text()
    assert "metrics: credit v2 vs baseline credit v1" in md
    assert "| accuracy |" in md and "worse" in md
    assert "xychart-beta" in md and "line [" in md


def test_champion_against_itself_passes_max_drop(mlcd, store):
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", TEST, "--label", LABEL,
             "--name", "credit", "--max-drop", "accuracy=0")
    assert r.exit_code == 0, r
    drop = [g for g in report()["gates"] if g["threshold"].startswith("max drop")]
    assert drop[0]["delta"] == 0


def test_no_gates_warns_loudly(mlcd, store, tmp_path):
    out = tmp_path / "gh_output"
    out.write_text("")
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", TEST, "--label", LABEL,
             "--min-lift", "none", env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)})
    assert r.exit_code == 0, r
    assert "no gates configured" in r.verdict
    assert "::warning" in r.stdout and "no gates configured" in r.stdout
    assert any("no gates configured" in w for w in report()["warnings"])
    outputs = out.read_text()
    assert "passed=true" in outputs and "accuracy=" in outputs


def test_no_champion_skips_max_drop_and_says_so(mlcd, store):
    r = mlcd("evaluate", "--model-uri", "models:/credit/2", "--test", TEST, "--label", LABEL,
             "--name", "never-registered", "--max-drop", "accuracy=0.01", "--min-lift", "none")
    assert r.exit_code == 0, r
    assert "no gate checked" in r.verdict
    rep = report()
    assert rep["gates"][0]["verdict"] == "skipped"
    assert any("no champion for model 'never-registered'" in w for w in rep["warnings"])
    # the skipped row itself says why, and the "vs main" table says there is nothing yet
    assert "no champion for model 'never-registered'" in rep["gates"][0]["message"]
    assert "no model on main yet" in rep["gates"][0]["message"]
    md = Path(".mlcd/reports/evaluate.md").read_text()
    assert "| no model on main yet (.mlcd/main) |" in md


def test_model_that_learned_nothing_fails_the_default_lift(mlcd, store):
    # credit v2 is barely better than chance: no threshold configured, still caught
    r = mlcd("evaluate", "--model-uri", "models:/credit/2", "--test", TEST, "--label", LABEL)
    assert r.exit_code == 1, r
    assert "vs naive baseline (majority class) 0.5: lift" in r.verdict
    (row,) = report()["gates"]
    assert row["metric"] == "balanced_accuracy" and row["baseline"] == 0.5
    naive = next(t for t in report()["tables"] if t["title"].startswith("metrics vs naive"))
    assert naive["columns"][2:] == ["majority class", "stratified guess"]


def test_main_snapshot_is_the_baseline_without_a_champion(mlcd, store, tmp_path):
    snap = tmp_path / "main"
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", TEST, "--label", LABEL,
             "--main-snapshot", str(snap), "--save-main-snapshot")
    assert r.exit_code == 0, r
    meta = json.loads((snap / "meta.json").read_text())
    assert meta["schema"] == "mlcd.main-snapshot/v1" and (snap / "model" / "MLmodel").is_file()
    assert json.loads((snap / "evaluate.json").read_text())["stage"] == "evaluate"
    # a pull request's candidate, no registry champion: compared with what main produced
    r = mlcd("evaluate", "--model-uri", "models:/credit/2", "--test", TEST, "--label", LABEL,
             "--name", "never-registered", "--max-drop", "accuracy=0.01", "--min-lift", "none",
             env={"MLCD_MAIN_SNAPSHOT": str(snap)})
    assert r.exit_code == 1, r
    assert "accuracy dropped by" in r.verdict
    rep = report()
    assert rep["outputs"]["baseline-source"] == "main"
    vs_main = next(t for t in rep["tables"] if t["title"].startswith("metrics vs main"))
    assert [row[0] for row in vs_main["rows"]] == ["accuracy", "balanced_accuracy", "precision",
                                                    "recall", "f1", "roc_auc", "log_loss"]
    assert all(row[2] is not None and row[3] is not None for row in vs_main["rows"])


def test_gate_that_cannot_be_checked_fails_unless_allowed(mlcd, store):
    args = ("evaluate", "--model-uri", store["pyfunc"]["runs"], "--test", TEST, "--label", LABEL,
            "--threshold", "roc_auc>=0.7", "--threshold", "accuracy>=0.1", "--min-lift", "none")
    r = mlcd(*args)
    assert r.exit_code == 1, r
    assert "roc_auc could not be computed" in r.verdict and "has no predict_proba" in r.verdict
    rep = report()
    assert [g["verdict"] for g in rep["gates"]] == ["failed", "passed"]
    assert rep["outputs"]["passed"] is False
    r = mlcd(*args, env={"MLCD_ALLOW_SKIPPED_GATES": "true"})
    assert r.exit_code == 0, r
    assert [g["verdict"] for g in report()["gates"]] == ["skipped", "passed"]
    r = mlcd(*args, "--allow-skipped-gates")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd evaluate: passed — 1 gate(s) passed")


def test_env_and_comma_separated_thresholds(mlcd, store):
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", TEST, "--label", LABEL,
             env={"MLCD_THRESHOLD": "accuracy >= 0.5, f1>=0.5"})
    assert r.exit_code == 0, r
    assert [g["metric"] for g in report()["gates"]] == ["accuracy", "f1", "balanced_accuracy"]


@pytest.mark.parametrize("args,needle", [
    (["--test", "missing.csv"], "missing.csv: no such file"),
    (["--label", "nope"], "label column 'nope' not found"),
    (["--threshold", "accuracy at least 0.8"], "is not of the form"),
    (["--threshold", "acuracy>=0.8"], "unknown metric 'acuracy'"),
    (["--model-uri", "models:/credit/42"], "models:/credit/42 not found"),
    (["--model-uri", "runs:/0123456789abcdef0123456789abcdef/model"], "not found"),
    (["--baseline", "models:/credit@nope"], "models:/credit@nope not found"),
])
def test_bad_input_exits_2(mlcd, store, args, needle):
    base = {"--model-uri": "models:/credit/1", "--test": str(TEST), "--label": LABEL}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    r = mlcd("evaluate", *[x for kv in base.items() for x in kv])
    assert r.exit_code == 2, r
    assert needle in r.verdict, r


def test_one_class_label_exits_2(mlcd, store, tmp_path):
    df = pd.read_csv(TEST)
    df[LABEL] = 1
    path = tmp_path / "one.csv"
    df.to_csv(path, index=False)
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", path, "--label", LABEL)
    assert r.exit_code == 2, r
    assert "only one class (1)" in r.verdict


def test_nan_in_features_exits_2_naming_column(mlcd, store, tmp_path):
    df = pd.read_csv(TEST)
    df.loc[[3, 7], "debt"] = None
    path = tmp_path / "nan.csv"
    df.to_csv(path, index=False)
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", path, "--label", LABEL)
    assert r.exit_code == 2, r
    assert "'debt' has 2 missing or infinite value(s), first at data row 4" in r.verdict


def test_missing_label_values_exit_2(mlcd, store, tmp_path):
    df = pd.read_csv(TEST)
    df[LABEL] = df[LABEL].astype("Int64")
    df.loc[10, LABEL] = None
    path = tmp_path / "nolabel.csv"
    df.to_csv(path, index=False)
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", path, "--label", LABEL)
    assert r.exit_code == 2, r
    assert "1 missing value(s), first at data row 11" in r.verdict


def test_wrong_shape_model_fails_clearly(mlcd, store):
    r = mlcd("evaluate", "--model-uri", store["wrong_shape"]["runs"], "--test", TEST,
             "--label", LABEL, "--threshold", "accuracy>=0.5")
    assert r.exit_code == 1, r
    assert "returned predictions of shape (161,), expected (160,)" in r.verdict


def test_tracking_server_down_exits_3(mlcd):
    from tests.services import free_port

    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", TEST, "--label", LABEL,
             "--tracking-uri", f"http://127.0.0.1:{free_port()}",
             env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    assert r.exit_code == 3, r
    assert "unavailable" in r.verdict


@pytest.mark.service
def test_against_real_mlflow_server(mlcd, mlflow_server, monkeypatch):
    """Log and register two models on a real ``mlflow server``; the worse one fails."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    train = pd.read_csv(DATA / "train.csv")
    x, y = train.drop(columns=[LABEL]), train[LABEL]
    exp = mlflow.set_experiment("evaluate-server-test")
    name = "credit-server"
    for model in (_clf_pipeline(["income", "debt"]).fit(x, y),
                  _clf_pipeline(["debt"]).fit(x, y)):
        with mlflow.start_run(experiment_id=exp.experiment_id):
            mlflow.sklearn.log_model(model, name="model", pip_requirements=PIP,
                                     signature=infer_signature(x, model.predict(x)),
                                     registered_model_name=name)
    client = MlflowClient(mlflow_server)
    client.set_registered_model_alias(name, "champion", "1")

    r = mlcd("evaluate", "--model-uri", f"models:/{name}/2", "--test", TEST, "--label", LABEL,
             "--name", name, "--max-drop", "accuracy=0.01", "--threshold", "accuracy>=0.5")
    assert r.exit_code == 1, r
    assert "accuracy dropped by" in r.verdict
    rep = report()
    assert rep["details"]["baseline"]["resolved_uri"] == f"models:/{name}/1"
    run_id = client.get_model_version(name, "2").run_id
    logged = client.get_run(run_id).data.metrics
    assert logged["eval_accuracy"] == pytest.approx(rep["metrics"]["accuracy"])


def test_text_in_a_numeric_column_exits_2_naming_column_and_row(mlcd, store, tmp_path):
    df = pd.read_csv(TEST)
    df["income"] = df["income"].astype(object)
    df.loc[9, "income"] = "unknown"
    df.to_csv(tmp_path / "t.csv", index=False)
    r = mlcd("evaluate", "--model-uri", "models:/credit/1", "--test", tmp_path / "t.csv",
             "--label", LABEL, "--threshold", "accuracy>=0.5")
    assert r.exit_code == 2, r
    assert "feature column 'income' must be a number" in r.verdict
    assert "data row 10 holds 'unknown'" in r.verdict

"""``mlcd check-fairness`` through the CLI: per-group gates, scoping, bad input, exit codes."""

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


def report() -> dict:
    return json.loads(Path(".mlcd/reports/check-fairness.json").read_text())


def fair(mlcd, uri, *args, **kw):
    return mlcd("check-fairness", "--model-uri", uri, "--test", TEST, "--label", LABEL, *args,
                **kw)


def test_model_favouring_one_group_fails(mlcd, store):
    r = fair(mlcd, store["biased"]["runs"], "--sensitive", "sex",
             "--threshold", "demographic_parity_difference<=0.1")
    assert r.exit_code == 1, r
    assert "sex:demographic_parity_difference = 1 misses <= 0.1" in r.verdict
    rep = report()
    groups = {g["group"]: g for g in rep["details"]["features"]["sex"]["groups"]}
    assert groups["M"]["selection_rate"] == 1.0 and groups["F"]["selection_rate"] == 0.0
    assert rep["outputs"]["passed"] is False
    assert rep["outputs"]["demographic-parity-difference"] == 1.0
    md = Path(".mlcd/reports/check-fairness.md").read_text()
    assert "**groups by sex**" in md and "xychart-beta" in md
    assert Path(".mlcd/reports/check-fairness-sex.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fair_model_passes_on_every_feature(mlcd, store):
    r = fair(mlcd, "models:/credit@champion", "--sensitive", "sex", "--sensitive", "age_band",
             "--threshold", "demographic_parity_difference<=0.3",
             "--threshold", "equalized_odds_difference<=0.9")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd check-fairness: passed — 4 fairness gate(s) passed")
    assert [g["metric"] for g in report()["gates"]] == [
        "sex:demographic_parity_difference", "age_band:demographic_parity_difference",
        "sex:equalized_odds_difference", "age_band:equalized_odds_difference"]


def test_threshold_scoped_to_one_feature(mlcd, store):
    r = fair(mlcd, store["biased"]["runs"], "--sensitive", "sex,age_band",
             "--threshold", "age_band:demographic_parity_difference<=0.5")
    assert r.exit_code == 0, r  # sex is unfair but not gated
    assert [g["metric"] for g in report()["gates"]] == ["age_band:demographic_parity_difference"]


def test_min_group_size_reports_small_group_without_gating_it(mlcd, store):
    r = fair(mlcd, "models:/credit/1", "--sensitive", "age_band", "--min-group-size", "40",
             "--threshold", "demographic_parity_difference<=1")
    assert r.exit_code == 0, r
    rep = report()
    feature = rep["details"]["features"]["age_band"]
    small = [g for g in feature["groups"] if g["count"] < 40]
    assert small and all(g["gated"] is False for g in small)
    assert feature["excluded"] == [g["group"] for g in small]
    assert any("under --min-group-size 40" in w for w in rep["warnings"])


def test_gate_fails_when_too_few_groups_reach_min_group_size(mlcd, store):
    args = ("--sensitive", "sex", "--min-group-size", "80",
            "--threshold", "demographic_parity_difference<=0.5")
    r = fair(mlcd, "models:/credit/1", *args)
    assert r.exit_code == 1, r
    assert r.verdict == ("mlcd check-fairness: failed — sex: only 1 group has >= 80 rows; "
                         "demographic parity cannot be checked")
    rep = report()
    assert rep["gates"][0]["verdict"] == "failed" and rep["outputs"]["passed"] is False
    assert any("--allow-skipped-gates" in w for w in rep["warnings"])
    r = fair(mlcd, "models:/credit/1", *args, "--allow-skipped-gates")
    assert r.exit_code == 0, r
    assert "no gate checked (1 skipped)" in r.verdict
    assert report()["gates"][0]["verdict"] == "skipped"


def test_no_gates_warns_loudly(mlcd, store):
    r = fair(mlcd, "models:/credit/1", "--sensitive", "sex")
    assert r.exit_code == 0, r
    assert "no gates configured" in r.verdict
    assert any("no gates configured" in w for w in report()["warnings"])


def test_regression_model_fairness(mlcd, store):
    r = mlcd("check-fairness", "--model-uri", store["regressor"]["runs"], "--test",
             DATA / "regression.csv", "--label", "target", "--sensitive", "region",
             "--threshold", "mae_difference<=0.5", "--threshold", "rmse_ratio>=0.5")
    assert r.exit_code == 0, r
    groups = report()["details"]["features"]["region"]["groups"]
    assert {g["group"] for g in groups} == {"a", "b"} and all(g["mae"] > 0 for g in groups)


@pytest.mark.parametrize("args,needle", [
    (["--sensitive", "religion"], "sensitive feature 'religion' not found"),
    (["--sensitive", "sex", "--threshold", "race:demographic_parity_difference<=0.1"],
     "'race' is not a --sensitive feature"),
    (["--sensitive", "sex", "--threshold", "parity<=0.1"], "unknown fairness metric 'parity'"),
    (["--sensitive", "sex", "--test", "nope.parquet"], "nope.parquet: no such file"),
    (["--sensitive", "sex", "--label", "y"], "label column 'y' not found"),
    (["--sensitive", "sex", "--model-uri", "models:/credit/7"], "models:/credit/7 not found"),
    (["--threshold", "demographic_parity_difference<=0.1"], "--sensitive is required"),
])
def test_bad_input_exits_2(mlcd, store, args, needle):
    base = {"--model-uri": "models:/credit/1", "--test": str(TEST), "--label": LABEL}
    rest = []
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1]
        else:
            rest += args[i:i + 2]
    r = mlcd("check-fairness", *[x for kv in base.items() for x in kv], *rest)
    assert r.exit_code == 2, r
    assert needle in r.verdict, r


def test_not_configured_is_skipped_with_its_reason(mlcd, store):
    """No --sensitive and no gate (a dataset without sensitive columns): skipped, exit 0,
    as `mlcd run` does, so a CI job running every stage passes (issue 13)."""
    r = mlcd("check-fairness", "--model-uri", "models:/credit/1", "--test", TEST,
             "--label", LABEL, env={"GITHUB_ACTIONS": "true"})
    assert r.exit_code == 0, r
    assert r.verdict == ("mlcd check-fairness: skipped — not configured: no sensitive feature "
                         "(set `sensitive:` in mlcd.yaml or --sensitive COL to check fairness)")
    assert report()["status"] == "skipped"


def test_one_class_label_and_nan_features_exit_2(mlcd, store, tmp_path):
    df = pd.read_csv(TEST)
    one = df.assign(**{LABEL: 0})
    one.to_csv(tmp_path / "one.csv", index=False)
    r = mlcd("check-fairness", "--model-uri", "models:/credit/1", "--test", tmp_path / "one.csv",
             "--label", LABEL, "--sensitive", "sex")
    assert r.exit_code == 2, r
    assert "only one class" in r.verdict
    df.loc[0, "income"] = float("inf")
    df.to_csv(tmp_path / "inf.csv", index=False)
    r = mlcd("check-fairness", "--model-uri", "models:/credit/1", "--test", tmp_path / "inf.csv",
             "--label", LABEL, "--sensitive", "sex")
    assert r.exit_code == 2, r
    assert "'income' has 1 missing or infinite value(s), first at data row 1" in r.verdict


def test_wrong_shape_model_fails(mlcd, store):
    r = fair(mlcd, store["wrong_shape"]["runs"], "--sensitive", "sex")
    assert r.exit_code == 1, r
    assert "returned predictions of shape (161,)" in r.verdict


def test_tracking_server_down_exits_3(mlcd):
    from tests.services import free_port

    r = fair(mlcd, "models:/credit@champion", "--sensitive", "sex",
             "--tracking-uri", f"http://127.0.0.1:{free_port()}",
             env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "2"})
    assert r.exit_code == 3, r
    assert "unavailable" in r.verdict


@pytest.mark.service
def test_against_real_mlflow_server(mlcd, mlflow_server, monkeypatch):
    import mlflow
    from mlflow.models import infer_signature

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_registry_uri(mlflow_server)
    train = pd.read_csv(DATA / "train.csv")
    x = train.drop(columns=[LABEL])
    biased = _clf_pipeline(["income"], ["sex"]).fit(x, (x["sex"] == "F").astype(int))
    exp = mlflow.set_experiment("fairness-server-test")
    with mlflow.start_run(experiment_id=exp.experiment_id):
        mlflow.sklearn.log_model(biased, name="model", pip_requirements=PIP,
                                 signature=infer_signature(x, biased.predict(x)),
                                 registered_model_name="credit-biased")
    r = fair(mlcd, "models:/credit-biased/1", "--sensitive", "sex",
             "--threshold", "sex:equalized_odds_difference<=0.2")
    assert r.exit_code == 1, r
    assert "sex:equalized_odds_difference = 1 misses <= 0.2" in r.verdict

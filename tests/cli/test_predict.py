"""``mlcd predict`` through the CLI: outputs, verdicts, exit codes, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.delivery.serving import fixtures


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return fixtures.binary_model(tmp_path_factory.mktemp("predict") / "model")


def test_predict_writes_outputs_and_report(mlcd, model_dir):
    df = fixtures.frame(25, seed=11)
    df.to_parquet("in.parquet")
    r = mlcd("predict", "--model-uri", model_dir, "--input", "in.parquet", "--output",
             "out/preds.parquet", "--chunk-rows", "10")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd predict: passed — 25 predictions")
    out = pd.read_parquet("out/preds.parquet")
    pred, proba = fixtures.in_process(model_dir, df)
    assert np.array_equal(out["prediction"].to_numpy(), pred)
    assert np.array_equal(out["probability"].to_numpy(), proba[:, 1])
    report = json.loads(open(".mlcd/reports/predict.json").read())
    assert report["outputs"] == {"predictions-path": "out/preds.parquet", "rows": 25}


def test_options_from_env_and_repeated_id_columns(mlcd, model_dir):
    df = fixtures.frame(6)
    df.to_csv("in.csv", index=False)
    r = mlcd("predict", "--input", "in.csv", "--output", "out.csv", "--id-column", "customer_id",
             "--id-column", "color", env={"MLCD_MODEL_URI": str(model_dir)})
    assert r.exit_code == 0, r
    assert list(pd.read_csv("out.csv").columns) == ["customer_id", "color", "prediction",
                                                    "probability"]


def test_missing_feature_column_exit_2_naming_it(mlcd, model_dir):
    fixtures.frame(4).drop(columns=["b"]).to_csv("in.csv", index=False)
    r = mlcd("predict", "--model-uri", model_dir, "--input", "in.csv", "--output", "o.parquet")
    assert r.exit_code == 2, r
    assert "in.csv: feature column 'b'" in r.verdict


@pytest.mark.parametrize("output", ["pred.txt", "pred.json", "pred"])
def test_output_with_an_unknown_extension_exit_2_nothing_written(mlcd, model_dir, output):
    fixtures.frame(4).to_parquet("in.parquet")
    r = mlcd("predict", "--model-uri", model_dir, "--input", "in.parquet", "--output", output)
    assert r.exit_code == 2, r
    assert f"--output {output}: predict writes .parquet, .csv or .tsv" in r.verdict or \
        f"--output {output}:" in r.verdict
    assert not Path(output).exists()


def test_missing_input_exit_2(mlcd, model_dir):
    r = mlcd("predict", "--model-uri", model_dir, "--input", "gone.parquet", "--output",
             "o.parquet")
    assert r.exit_code == 2, r
    assert "gone.parquet: no such file" in r.verdict


def test_malformed_csv_exit_2(mlcd, model_dir, data_dir):
    r = mlcd("predict", "--model-uri", model_dir, "--input",
             data_dir / "predict" / "malformed.csv", "--output", "o.csv")
    assert r.exit_code == 2, r
    assert "malformed CSV" in r.verdict


def test_wrong_shape_model_exit_1(mlcd, tmp_path):
    bad = fixtures.wrong_shape_model(tmp_path / "bad")
    fixtures.frame(4).to_parquet("in.parquet")
    r = mlcd("predict", "--model-uri", bad, "--input", "in.parquet", "--output", "o.parquet")
    assert r.exit_code == 1, r
    assert "shape" in r.verdict


def test_spark_engine_exit_2_when_pyspark_is_missing(mlcd, model_dir, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    r = mlcd("predict", "--model-uri", model_dir, "--input", "x.parquet", "--output",
             "o.parquet", "--engine", "spark")
    assert r.exit_code == 2, r
    assert "pyspark, which is not installed" in r.verdict


@pytest.mark.slow
def test_spark_engine_through_the_cli(mlcd, model_dir):
    pytest.importorskip("pyspark", reason="the spark extra is part of the test install")
    df = fixtures.frame(20, seed=12)
    df.to_parquet("in.parquet")
    r = mlcd("predict", "--model-uri", model_dir, "--input", "in.parquet", "--output",
             "preds.parquet", "--engine", "spark", "--spark-master", "local[1]")
    assert r.exit_code == 0, r
    assert r.verdict.startswith("mlcd predict: passed — 20 predictions")
    out = pd.read_parquet("preds.parquet").sort_values("customer_id")
    pred, _ = fixtures.in_process(model_dir, df)
    assert out["prediction"].tolist() == pred.tolist()
    report = json.loads(open(".mlcd/reports/predict.json").read())
    assert report["details"]["engine"] == "spark"

"""``predict --engine spark``: a real Spark session in local mode, same answers as pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import DataError
from mlcd_actions.stages import predict
from tests.delivery.serving import fixtures

pytest.importorskip("pyspark", reason="the spark extra is part of the test install")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def spark():
    """One local session for the module: predict reuses an active session (and leaves it
    running), as under spark-submit; starting one per test costs about 15 s."""
    from mlcd_actions.delivery import predict_spark

    session, started = predict_spark._session("local[2]", 10_000)
    assert started
    yield session
    session.stop()


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"binary": fixtures.binary_model(root / "binary"),
            "multi": fixtures.multiclass_model(root / "multi")}


def _read_sorted(path, key="customer_id"):
    return pd.read_parquet(path).sort_values(key).reset_index(drop=True)


def test_spark_and_pandas_engines_agree_on_parquet_and_csv(models_dir, tmp_path):
    df = fixtures.frame(300, seed=7)
    src = tmp_path / "parts"
    src.mkdir()
    for i in range(3):
        df.iloc[i * 100:(i + 1) * 100].to_parquet(src / f"part-{i}.parquet")
    df.to_csv(tmp_path / "in.csv", index=False)
    (tmp_path / "sp.parquet").write_text("an older output, replaced at the end")

    res = predict.run(str(models_dir["multi"]), str(src), str(tmp_path / "sp.parquet"),
                      engine="spark", chunk_rows=64)
    assert res.status == "passed" and res.outputs["rows"] == 300
    assert (tmp_path / "sp.parquet").is_dir()
    assert res.details["engine"] == "spark"
    predict.run(str(models_dir["multi"]), str(src), str(tmp_path / "pd.parquet"))
    spark_out, pandas_out = _read_sorted(tmp_path / "sp.parquet"), _read_sorted(tmp_path /
                                                                                "pd.parquet")
    assert list(spark_out.columns) == list(pandas_out.columns)
    assert spark_out["prediction"].tolist() == pandas_out["prediction"].tolist()
    for col in [c for c in pandas_out.columns if c.startswith("probability")]:
        assert np.allclose(spark_out[col], pandas_out[col], rtol=1e-12, atol=0)
    assert res.tables[0].title == "Predicted classes"
    assert sum(row[1] for row in res.tables[0].rows) == 300

    csv_res = predict.run(str(models_dir["binary"]), str(tmp_path / "in.csv"),
                          str(tmp_path / "csv_out.csv"), engine="spark")
    assert csv_res.outputs["rows"] == 300
    parts = sorted((tmp_path / "csv_out.csv").glob("part-*.csv"))
    got = pd.concat([pd.read_csv(p) for p in parts]).sort_values("customer_id")
    pred, proba = fixtures.in_process(models_dir["binary"], df)
    assert got["prediction"].tolist() == pred.tolist()
    assert np.allclose(got["probability"], proba[:, 1], rtol=1e-9)


def test_missing_feature_and_bad_values_are_data_errors(models_dir, tmp_path):
    df = fixtures.frame(40, seed=9)
    df.drop(columns=["b"]).to_parquet(tmp_path / "nob.parquet")
    with pytest.raises(DataError, match="feature column 'b'"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "nob.parquet"),
                    str(tmp_path / "o.parquet"), engine="spark")
    assert not (tmp_path / "o.parquet").exists()

    bad = df.copy()
    bad.loc[30, "a"] = np.nan  # a row far from the first few the driver samples
    bad.to_parquet(tmp_path / "nan.parquet")
    (tmp_path / "keep.parquet").write_text("previous output")
    with pytest.raises(DataError, match="'a'"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "nan.parquet"),
                    str(tmp_path / "keep.parquet"), engine="spark")
    assert (tmp_path / "keep.parquet").read_text() == "previous output"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keep.parquet")]

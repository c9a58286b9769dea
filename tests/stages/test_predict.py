"""``predict.run``: chunked batch predictions, exact against the model in process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlcd_actions.core.errors import ConfigError, DataError, StageFailed
from mlcd_actions.stages import predict
from tests.delivery.serving import fixtures


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"binary": fixtures.binary_model(root / "binary"),
            "multi": fixtures.multiclass_model(root / "multi"),
            "reg": fixtures.regression_model(root / "reg")}


def test_parquet_file_exact_with_ids_and_probability(models_dir, tmp_path):
    df = fixtures.frame(50, seed=1)
    df.to_parquet(tmp_path / "in.parquet")
    res = predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                      str(tmp_path / "out.parquet"), chunk_rows=7)
    assert res.status == "passed"
    assert res.outputs == {"predictions-path": str(tmp_path / "out.parquet"), "rows": 50}
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["customer_id", "prediction", "probability"]
    pred, proba = fixtures.in_process(models_dir["binary"], df)
    assert out["customer_id"].tolist() == df["customer_id"].tolist()
    assert np.array_equal(out["prediction"].to_numpy(), pred)
    assert np.array_equal(out["probability"].to_numpy(), proba[:, 1])
    assert res.tables and res.tables[0].title == "Predicted classes"
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert meta.num_rows == 50
    # the class column is dictionary encoded; unique ids and probabilities are not
    group = meta.row_group(0)
    encoded = {group.column(i).path_in_schema: group.column(i).has_dictionary_page
               for i in range(group.num_columns)}
    assert encoded == {"customer_id": False, "prediction": True, "probability": False}


def test_chunking_gives_the_same_result_as_one_chunk(models_dir, tmp_path):
    fixtures.frame(101, seed=2).to_parquet(tmp_path / "in.parquet")
    outs = []
    for rows in (1, 10, 100, 1_000_000):
        path = tmp_path / f"out{rows}.parquet"
        predict.run(str(models_dir["multi"]), str(tmp_path / "in.parquet"), str(path),
                    chunk_rows=rows)
        outs.append(pd.read_parquet(path))
    for other in outs[1:]:
        pd.testing.assert_frame_equal(outs[0], other)


def test_directory_of_parquet_files_in_name_order(models_dir, tmp_path):
    src = tmp_path / "parts"
    src.mkdir()
    df = fixtures.frame(30, seed=4)
    for i in range(3):
        df.iloc[i * 10:(i + 1) * 10].to_parquet(src / f"part-{i}.parquet")
    (src / "_SUCCESS").write_text("")
    res = predict.run(str(models_dir["reg"]), str(src), str(tmp_path / "out.parquet"),
                      chunk_rows=4)
    out = pd.read_parquet(tmp_path / "out.parquet")
    pred, proba = fixtures.in_process(models_dir["reg"], df)
    assert proba is None and list(out.columns) == ["customer_id", "prediction"]
    assert np.array_equal(out["prediction"].to_numpy(), pred)
    assert res.outputs["rows"] == 30 and len(res.details["files"]) == 3


def test_csv_in_and_out_multiclass_columns(models_dir, tmp_path):
    df = fixtures.frame(40, seed=5)
    df.to_csv(tmp_path / "in.csv", index=False)
    predict.run(str(models_dir["multi"]), str(tmp_path / "in.csv"), str(tmp_path / "out.csv"),
                chunk_rows=9)
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["customer_id", "prediction", "probability_hi",
                                 "probability_lo", "probability_mid"]
    pred, proba = fixtures.in_process(models_dir["multi"], pd.read_csv(tmp_path / "in.csv"))
    assert out["prediction"].tolist() == pred.tolist()
    assert np.array_equal(out[["probability_hi", "probability_lo", "probability_mid"]]
                          .to_numpy(), proba)


def test_explicit_id_columns_replace_the_default(models_dir, tmp_path):
    df = fixtures.frame(10)
    df["order_ref"] = [f"o{i}" for i in range(10)]
    df.to_parquet(tmp_path / "in.parquet")
    predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                str(tmp_path / "out.parquet"), id_columns=["order_ref", "color"])
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["order_ref", "color", "prediction", "probability"]
    assert out["color"].tolist() == df["color"].tolist()


def test_shipped_csv_sample(models_dir, tmp_path, data_dir):
    res = predict.run(str(models_dir["binary"]), str(data_dir / "predict" / "rows.csv"),
                      str(tmp_path / "out.parquet"))
    assert res.outputs["rows"] == 4
    assert pd.read_parquet(tmp_path / "out.parquet")["customer_id"].tolist() == [1, 2, 3, 4]


def test_missing_feature_column_names_it_and_writes_nothing(models_dir, tmp_path):
    tmp_path = tmp_path / "io"
    tmp_path.mkdir()
    fixtures.frame(5).drop(columns=["color"]).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "out.parquet").write_bytes(b"previous output")
    with pytest.raises(DataError, match="feature column 'color'"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                    str(tmp_path / "out.parquet"))
    assert (tmp_path / "out.parquet").read_bytes() == b"previous output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_missing_input_and_unknown_id_column(models_dir, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "nope.parquet"),
                    str(tmp_path / "out.parquet"))
    fixtures.frame(5).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(DataError, match="id column 'ref' not found"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                    str(tmp_path / "out.parquet"), id_columns=["ref"])


def test_malformed_csv_is_a_data_error_and_no_output(models_dir, tmp_path, data_dir):
    tmp_path = tmp_path / "io"
    tmp_path.mkdir()
    with pytest.raises(DataError, match="malformed CSV"):
        predict.run(str(models_dir["binary"]), str(data_dir / "predict" / "malformed.csv"),
                    str(tmp_path / "out.csv"))
    assert not (tmp_path / "out.csv").exists()
    assert list(tmp_path.iterdir()) == []


def test_csv_value_of_the_wrong_type_names_the_column(models_dir, tmp_path):
    (tmp_path / "in.csv").write_text("a,b,c,color\n1,2,3,red\n1,x,3,red\n")
    with pytest.raises(DataError, match="column 'b'"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.csv"),
                    str(tmp_path / "out.csv"))


def test_empty_input(models_dir, tmp_path):
    fixtures.frame(5).iloc[:0].to_parquet(tmp_path / "in.parquet")
    with pytest.raises(DataError, match="no rows"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                    str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_model_returning_the_wrong_shape_fails(tmp_path):
    model = fixtures.wrong_shape_model(tmp_path / "bad")
    fixtures.frame(5).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(StageFailed, match="shape"):
        predict.run(str(model), str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_bad_options(models_dir, tmp_path):
    fixtures.frame(5).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(ConfigError, match="--output"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                    str(tmp_path / "out.xlsx"))
    with pytest.raises(ConfigError, match="--chunk-rows"):
        predict.run(str(models_dir["binary"]), str(tmp_path / "in.parquet"),
                    str(tmp_path / "out.csv"), chunk_rows=0)


def test_spark_engine_without_pyspark_says_so(models_dir, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyspark" else real(name, *a))
    with pytest.raises(ConfigError, match="pyspark, which is not installed"):
        predict.run(str(models_dir["binary"]), "in.parquet", str(tmp_path / "o.parquet"),
                    engine="spark")


def test_predict_over_http_source(models_dir, tmp_path, http_server):
    base, root = http_server
    df = fixtures.frame(20, seed=8)
    df.to_parquet(root / "batch.parquet")
    res = predict.run(str(models_dir["binary"]), f"{base}/batch.parquet",
                      str(tmp_path / "out.parquet"), chunk_rows=6)
    out = pd.read_parquet(tmp_path / "out.parquet")
    pred, _ = fixtures.in_process(models_dir["binary"], df)
    assert res.outputs["rows"] == 20 and np.array_equal(out["prediction"].to_numpy(), pred)
    assert out["customer_id"].tolist() == df["customer_id"].tolist()

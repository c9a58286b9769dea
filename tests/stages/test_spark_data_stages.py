"""validate, check-data and monitor with ``--engine spark`` (a real Spark session in local
mode, one for the module) against the pandas engine on the same data: the same failures,
findings, verdicts and bad-input lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlcd_actions.stages import check_data, monitor, validate

pytest.importorskip("pyspark", reason="the spark extra is part of the test install")
pytestmark = pytest.mark.slow

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module", autouse=True)
def spark():
    """One local session for the module: the stages reuse an active session (and leave it
    running), as under spark-submit; starting one per test costs 15 s or more."""
    from mlcd_actions.data.spark import session

    spark, started = session.start(session.Settings(
        "local[2]", {"spark.sql.shuffle.partitions": "4"}), "mlcd tests")  # tiny data
    assert started
    yield spark
    spark.stop()


def _table(result, title):
    return next(t for t in result.tables if t.title.startswith(title))


def _both(fn, *args, **kwargs):
    return fn(*args, **kwargs), fn(*args, engine="spark", **kwargs)


# --------------------------------------------------------------------------- validate

def _people_with_failures() -> pd.DataFrame:
    df = pd.read_csv(DATA / "validate" / "people.csv")
    df.loc[[3, 17], "age"] = [5, 130]                  # in_range twice
    df.loc[20, "city"] = "Paris"                       # isin
    df.loc[21, "id"] = df.loc[2, "id"]                 # unique, far apart
    df.loc[4, "joined"] = "10/01/2024"                 # str_matches
    df.loc[[5, 19], "joined"] = None                   # not nullable
    df["score"] = df["score"].astype("float32")        # dtype
    return df


def test_validate_same_failures_rows_and_schema_lines(tmp_path):
    shutil.copy(DATA / "validate" / "people.yaml", "people.yaml")
    df = _people_with_failures()
    parts = Path("parts")                              # three files, small row groups:
    parts.mkdir()                                      # rows must count across them
    for i, (lo, hi) in enumerate([(0, 9), (9, 15), (15, 24)]):
        pq.write_table(pa.Table.from_pandas(df.iloc[lo:hi], preserve_index=False),
                       parts / f"part-{i}.parquet", row_group_size=4)
    df.to_csv("people.csv", index=False)
    for data, reference in (("parts", str(DATA / "validate" / "people.csv")),
                            ("people.csv", None)):
        pandas_r, spark_r = _both(validate.run, data, "people.yaml", reference=reference)
        assert spark_r.details["engine"] == "spark"
        assert spark_r.status == pandas_r.status == "failed"
        assert spark_r.reason == pandas_r.reason
        got, want = _table(spark_r, "schema failures").rows, _table(pandas_r, "schema failures").rows
        if data.endswith(".csv"):   # CSV has no float32: the dtype failure is parquet's only
            want = [r for r in want if not r[1].startswith("dtype")]
            got = [r for r in got if not r[1].startswith("dtype")]
        assert got == want and len(want) >= 5
        assert [(f.code, f.line, f.count, f.rows) for f in spark_r.findings] == \
               [(f.code, f.line, f.count, f.rows) for f in pandas_r.findings]
        if reference:   # the skew check against the reference: same statistics and gates
            assert _table(spark_r, "skew vs").rows == _table(pandas_r, "skew vs").rows
            assert [(g.metric, g.verdict) for g in spark_r.gates] == \
                   [(g.metric, g.verdict) for g in pandas_r.gates]
    by_check = {(r[0], r[1].split("(")[0]): r for r in _table(spark_r, "schema failures").rows}
    assert by_check[("joined", "not_nullable")][2:4] == [2, "6, 20"]
    assert by_check[("id", "field_uniqueness")][2:4] == [2, "3, 22"]


def test_validate_python_schema_with_a_custom_check():
    df = pd.read_csv(DATA / "validate" / "people.csv")
    df.loc[[7, 12], "age"] = 99                         # People.age_is_not_99 fails twice
    df.to_parquet("people.parquet", index=False)
    schema = f"{DATA / 'validate' / 'people_model.py'}:People"
    pandas_r, spark_r = _both(validate.run, "people.parquet", schema)
    assert spark_r.status == pandas_r.status == "failed"
    assert _table(spark_r, "schema failures").rows == _table(pandas_r, "schema failures").rows
    assert spark_r.reason == pandas_r.reason


def test_validate_coercion_and_multi_column_uniqueness():
    import pandera.pandas as pdr

    df = pd.DataFrame({"code": ["1", "2", "x", "4", "5", "6"], "m": ["3", "2", "5", "1", "7", "8"],
                       "a": [1, 1, 2, 3, 3, 4], "b": ["p", "p", "q", "r", "r", "s"]})
    df.to_parquet("coerce.parquet", index=False)
    schema = pdr.DataFrameSchema({"code": pdr.Column(int, coerce=True),
                                  "m": pdr.Column(int, pdr.Check.ge(2), coerce=True),
                                  "a": pdr.Column(int), "b": pdr.Column(str)}, unique=["a", "b"])
    Path("coerce.yaml").write_text(schema.to_yaml(), encoding="utf-8")
    pandas_r, spark_r = _both(validate.run, "coerce.parquet", "coerce.yaml")
    assert _table(spark_r, "schema failures").rows == _table(pandas_r, "schema failures").rows
    assert {r[1] for r in _table(spark_r, "schema failures").rows} >= {
        "coerce_dtype('int64')", "multiple_fields_uniqueness", "greater_than_or_equal_to(2)"}


# --------------------------------------------------------------------------- check-data

def test_check_data_same_masked_findings_groups_and_gates():
    df = pd.read_csv(DATA / "check_data" / "people.csv")
    big = pd.concat([df] * 40, ignore_index=True)
    big["age"] = np.arange(len(big)) % 57 + 18          # numeric: quartile groups
    big.loc[5, "email_sha"] = "not a hash"
    big.loc[[9, 200], "sex"] = None
    big.to_parquet("people.parquet", index=False)
    kwargs = dict(label="approved", sensitive=["sex", "age"],
                  pii_policy=str(DATA / "check_data" / "policy.yaml"),
                  thresholds=["label_rate_gap<=0.5"], min_group_size=10)
    pandas_r, spark_r = _both(check_data.run, "people.parquet", **kwargs)
    assert spark_r.details["engine"] == "spark"
    assert spark_r.status == pandas_r.status == "failed"
    assert spark_r.reason == pandas_r.reason
    assert [f.message for f in spark_r.findings] == [f.message for f in pandas_r.findings]
    shown = json.dumps([f.message for f in spark_r.findings] + [
        str(r) for r in _table(spark_r, "PII findings").rows])
    assert "john.doe@example.com" not in shown and "4111111111111111" not in shown   # masked
    assert "j***@e***.com" in shown
    for title in ("PII findings", "groups of sex", "groups of age"):
        got, want = _table(spark_r, title).rows, _table(pandas_r, title).rows
        assert len(got) == len(want) > 0
        for g, w in zip(got, want, strict=True):
            assert g == pytest.approx(w) if all(isinstance(x, (int, float)) for x in w) \
                else [x if not isinstance(x, float) else pytest.approx(x) for x in g] == w
    assert [(g.metric, g.verdict) for g in spark_r.gates] == \
           [(g.metric, g.verdict) for g in pandas_r.gates]
    for key, value in pandas_r.metrics.items():
        if "scan" not in key:
            assert spark_r.metrics[key] == pytest.approx(value), key


# --------------------------------------------------------------------------- monitor

def test_monitor_same_verdicts_and_statistics():
    D = DATA / "monitor"
    pandas_r, spark_r = _both(monitor.run, D / "reference.csv", D / "current_shifted.csv")
    assert spark_r.status == pandas_r.status == "failed"
    assert spark_r.outputs == pandas_r.outputs
    assert spark_r.details["drift"] == pandas_r.details["drift"]   # small data: exact
    # a prediction log with labels: drift in Spark, accuracy decay from its columns
    pandas_r, spark_r = _both(monitor.run, D / "reference.csv", D / "predictions.jsonl",
                              labels=str(D / "labels.csv"),
                              baseline_metrics=str(D / "baseline.json"))
    assert spark_r.outputs == pandas_r.outputs
    assert spark_r.metrics == pytest.approx(pandas_r.metrics)


def test_monitor_large_data_same_statistics():
    """Past EXACT_KS_MAX (the grid path, with quantile bins that need their values read
    back): PSI and its bins, every count and KS are the pandas engine's, the same verdicts."""
    rng = np.random.default_rng(3)
    n = 110_000
    ref = pd.DataFrame({"x": rng.normal(0, 1, n), "c": rng.choice(list("abc"), n),
                        "i": rng.integers(-2, 3, n)})        # edges in one-value bins
    cur = pd.DataFrame({"x": rng.normal(0.25, 1, n), "c": rng.choice(list("abcd"), n),
                        "i": rng.integers(-3, 3, n)})
    cur.loc[:50, "x"] = np.nan
    ref.to_parquet("ref.parquet")
    cur.to_parquet("cur.parquet")
    pandas_r, spark_r = _both(monitor.run, "ref.parquet", "cur.parquet")
    assert spark_r.outputs == pandas_r.outputs and spark_r.status == pandas_r.status
    assert [(g.metric, g.verdict) for g in spark_r.gates] == \
           [(g.metric, g.verdict) for g in pandas_r.gates]
    for column in ("x", "i"):
        p, s = pandas_r.details["drift"][column], spark_r.details["drift"][column]
        for key in ("psi", "bin_labels", "ref_hist", "cur_hist", "ks", "ks_pvalue",
                    "ref_count", "cur_count", "ref_nulls", "cur_nulls"):
            assert s[key] == p[key], (column, key)
    assert spark_r.details["drift"]["c"] == pandas_r.details["drift"]["c"]


def test_monitor_exact_ks_when_the_grid_needs_splitting(monkeypatch):
    """Undecided grid bins split into sub-bins before their values are read back, and
    (no split allowed, no value allowed back) the sorting fallback: KS still equals the
    pandas engine's."""
    from mlcd_actions.data.spark import drift as spark_drift

    rng = np.random.default_rng(5)
    n = 20_000
    for name, shift in (("ref", 0.0), ("cur", 0.01)):
        x = rng.normal(shift, 1, n).round(3)      # ties
        x[0] = 1e6               # one far value: every other one lands in one grid bin
        pd.DataFrame({"x": x}).to_parquet(f"{name}.parquet")
    want = monitor.run("ref.parquet", "cur.parquet").details["drift"]["x"]
    calls = []
    for name in ("_refine", "_ks"):          # the real functions, counted
        real = getattr(spark_drift, name)
        monkeypatch.setattr(spark_drift, name,
                            lambda *a, _real=real, _name=name: calls.append(_name) or _real(*a))
    for limit, levels, path in ((2000, 4, "_refine"), (0, 1, "_ks")):   # split; sorted
        monkeypatch.setattr(spark_drift, "RESOLVE_MAX", limit)
        monkeypatch.setattr(spark_drift, "GRID_LEVELS", levels)
        calls.clear()
        got = monitor.run("ref.parquet", "cur.parquet", engine="spark").details["drift"]["x"]
        assert path in calls and (limit == 0 or "_ks" not in calls), calls
        assert (got["ks"], got["ks_pvalue"], got["psi"]) == (want["ks"], want["ks_pvalue"],
                                                             want["psi"])


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("args", [
    ("validate", "missing.parquet", "--schema", "people.yaml"),
    ("validate", "people.csv", "--schema", "broken.yaml"),
    ("check-data", "people.csv", "--sensitive", "nope"),
    ("check-data", "missing.csv"),
    ("monitor", "--reference", "people.csv", "--current", "missing.csv"),
    ("monitor", "--reference", "people.csv", "--current", "people.csv", "--columns", "nope"),
])
def test_bad_input_same_line_and_exit_code(mlcd, args):
    shutil.copy(DATA / "validate" / "people.csv", "people.csv")
    shutil.copy(DATA / "validate" / "people.yaml", "people.yaml")
    Path("broken.yaml").write_text("columns:\n  age: [1, 2\n", encoding="utf-8")
    pandas_r = mlcd(*args)
    spark_r = mlcd(*args, "--engine", "spark")
    assert pandas_r.exit_code == 2, pandas_r
    assert spark_r.exit_code == pandas_r.exit_code, spark_r
    assert spark_r.verdict == pandas_r.verdict
    assert "Traceback" not in spark_r.output


def test_engine_and_spark_settings_from_mlcd_yaml(mlcd):
    """``engine: spark`` in mlcd.yaml switches the stage (the active session is reused)."""
    shutil.copy(DATA / "validate" / "people.csv", "people.csv")
    shutil.copy(DATA / "validate" / "people.yaml", "people.yaml")
    Path("mlcd.yaml").write_text("engine: spark\nspark:\n  master: local[1]\n  conf:\n"
                                 "    spark.sql.shuffle.partitions: 4\n", encoding="utf-8")
    r = mlcd("validate", "people.csv", "--schema", "people.yaml")
    assert r.exit_code == 0, r
    report = json.loads(Path(".mlcd/reports/validate.json").read_text())
    assert report["details"]["engine"] == "spark"


def test_uris_file_for_both_engines_hadoop_filesystems_for_spark(mlcd, spark):
    """``file:`` URIs (``file:///abs`` and Hadoop's ``file:/abs``) are read by both engines;
    another filesystem's URI is Spark's alone (handed over as it is): the pandas engine
    says so in one line, exit 2, and an unreachable HDFS is one line too."""
    shutil.copy(DATA / "validate" / "people.yaml", "people.yaml")
    df = pd.read_csv(DATA / "validate" / "people.csv")
    df.loc[3, "age"] = 5
    df.to_parquet("people.parquet", index=False)
    local = mlcd("validate", "people.parquet", "--schema", "people.yaml")
    assert local.exit_code == 1, local
    path = Path("people.parquet").resolve()
    for uri in (path.as_uri(), f"file:{path}"):
        for engine in ("pandas", "spark"):
            r = mlcd("validate", uri, "--schema", "people.yaml", "--engine", engine)
            assert (r.exit_code, r.verdict) == (local.exit_code, local.verdict), r
    monitor_r = mlcd("monitor", "--reference", path.as_uri(), "--current", f"file:{path}",
                     "--engine", "spark")
    assert monitor_r.exit_code == 0, monitor_r

    hdfs = "hdfs://127.0.0.1:9/data/people.parquet"     # nothing listens on port 9
    r = mlcd("validate", hdfs, "--schema", "people.yaml")
    assert r.exit_code == 2 and "hdfs:// is not a local path" in r.verdict, r
    spark.sparkContext._jsc.hadoopConfiguration().set("ipc.client.connect.max.retries", "0")
    r = mlcd("validate", hdfs, "--schema", "people.yaml", "--engine", "spark")
    assert r.exit_code == 3 and hdfs in r.verdict, r    # nothing answers: outside service
    assert "Traceback" not in r.output and len(r.verdict.splitlines()) == 1

"""prepare library: steps, splits (seeded, stratified, hashed id), transforms, bad input."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError, DataError, StageFailed
from mlcd_actions.stages import prepare
from tests.conftest import DATA

LOANS = DATA / "prepare" / "loans.csv"


@pytest.fixture
def loans(isolated):
    shutil.copy(LOANS, "loans.csv")
    shutil.copy(DATA / "prepare" / "transforms.py", "user_transforms.py")
    return "loans.csv"


def _read(out):
    return pd.read_parquet(f"{out}/train.parquet"), pd.read_parquet(f"{out}/test.parquet")


@pytest.mark.parametrize("spec,kind,columns,method,value", [
    ("impute:age=median", "impute", ["age"], "median", None),
    ("impute:city,zip=constant:unknown", "impute", ["city", "zip"], "constant", "unknown"),
    ("impute:*=mode", "impute", ["*"], "most_frequent", None),
    ("scale:income", "scale", ["income"], "standard", None),
    ("encode:city=one-hot", "encode", ["city"], "onehot", None),
    ("derive:ratio=income / age", "derive", ["ratio"], None, "income / age"),
    ("drop:user_id", "drop", ["user_id"], None, None),
    ({"scale": "age=minmax"}, "scale", ["age"], "minmax", None),
])
def test_parse_step(spec, kind, columns, method, value):
    step = prepare.parse_step(spec)
    assert (step.kind, step.columns, step.method, step.value) == (kind, columns, method, value)


@pytest.mark.parametrize("spec,message", [
    ("normalize:age", "unknown kind 'normalize'"),
    ("impute:age", "unknown impute method '(none)'"),
    ("impute:age=constant", "constant needs a value"),
    ("scale:age=zscore", "unknown scale method 'zscore'"),
    ("derive:x", "derive is 'derive:<new column>=<expression>'"),
    ("drop:a=1", "drop takes no '=' part"),
    ("age", "expected 'kind:columns[=method]'"),
    ({"a": 1, "b": 2}, "exactly one key"),
])
def test_parse_step_errors(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        prepare.parse_step(spec)


def test_split_is_seeded_stratified_and_atomic(loans):
    r = prepare.run(loans, label="approved", out="out", test_size=0.25, seed=3)
    assert r.status == "passed", r.reason
    train, test = _read("out")
    assert (len(train), len(test)) == (15, 5)
    assert r.outputs == {"train-path": "out/train.parquet", "test-path": "out/test.parquet",
                         "train-rows": 15, "test-rows": 5}
    assert test["approved"].value_counts().to_dict() in ({"yes": 3, "no": 2}, {"no": 3, "yes": 2})
    assert "stratified, seed 3" in r.reason
    first = (open("out/train.parquet", "rb").read(), open("out/test.parquet", "rb").read())
    prepare.run(loans, label="approved", out="out", test_size=0.25, seed=3)
    again = (open("out/train.parquet", "rb").read(), open("out/test.parquet", "rb").read())
    assert first == again                                       # idempotent, byte for byte
    prepare.run(loans, label="approved", out="out2", test_size=0.25, seed=4)
    assert set(_read("out2")[1]["user_id"]) != set(test["user_id"])


def test_steps_are_fitted_on_train_only(loans):
    r = prepare.run(loans, label="approved", out="out", seed=1, steps=[
        "impute:age=median", "impute:income=mean", "impute:city=constant:unknown",
        "derive:income_per_age=income / age", "scale:income=standard", "encode:city",
        "drop:user_id"])
    assert r.status == "passed", r.reason
    train, test = _read("out")
    assert "user_id" not in train.columns and "city" not in train.columns
    assert {"city_Paris", "city_Rome", "city_Berlin"} <= set(train.columns)
    assert train["income"].mean() == pytest.approx(0.0, abs=1e-9)   # scaled on train
    assert train.isna().sum().sum() == 0 and test.isna().sum().sum() == 0
    assert list(train.columns) == list(test.columns)
    # the test side is scaled with the training mean/std, so it is not centred itself
    assert test["income"].mean() != pytest.approx(0.0, abs=1e-6)
    assert [s["spec"] for s in r.details["steps"]][0] == "impute:age=median"


def test_imputation_values_come_from_the_training_rows(loans):
    r = prepare.run(loans, label="approved", out="out", seed=1, steps=["impute:age=median"])
    train, _ = _read("out")
    raw = pd.read_csv(loans).set_index("user_id")
    train_ages = raw.loc[train["user_id"], "age"]
    assert r.details["steps"][0]["values"]["age"] == train_ages.median()


def test_split_by_hashed_id_keeps_sides_across_versions(loans):
    prepare.run(loans, label="approved", out="v1", split_by_id="user_id", test_size=0.3)
    df = pd.read_csv(loans)
    grown = pd.concat([df, pd.DataFrame({"user_id": [f"n{i}" for i in range(30)],
                                         "age": 30, "city": "Rome", "income": 1.0,
                                         "approved": "yes"})]).sample(frac=1, random_state=0)
    grown.to_csv("v2.csv", index=False)
    r = prepare.run("v2.csv", label="approved", out="v2", split_by_id="user_id",
                    test_size=0.3)
    assert "by hashed id 'user_id'" in r.reason
    t1, t2 = set(_read("v1")[1]["user_id"]), set(_read("v2")[1]["user_id"])
    assert t1 == t2 & set(df["user_id"])
    assert prepare.stable_bucket(pd.Series(["u1", 7, 7.0]), 0).tolist()[1:] == \
        prepare.stable_bucket(pd.Series([7, 7]), 0).tolist()


def test_regression_label_is_not_stratified(isolated):
    pd.DataFrame({"x": range(30), "y": np.linspace(0, 1, 30)}).to_csv("r.csv", index=False)
    r = prepare.run("r.csv", label="y", out="out")
    assert r.details["stratify"] is False and r.details["label_kind"] == "regression"


def test_user_transform_from_the_working_directory(loans):
    r = prepare.run(loans, label="approved", out="out", transform="user_transforms:add_ratio")
    assert r.status == "passed"
    assert "income_per_age" in _read("out")[0].columns
    r = prepare.run(loans, label="approved", out="out3",
                    transform="user_transforms.py:add_ratio")
    assert r.status == "passed"


def test_transform_that_raises_fails_with_its_traceback_and_keeps_outputs(loans):
    prepare.run(loans, label="approved", out="out")
    before = open("out/train.parquet", "rb").read()
    r = prepare.run(loans, label="approved", out="out", transform="user_transforms:boom")
    assert r.status == "failed" and r.code() == 1
    assert r.reason == ("transform user_transforms:boom raised ValueError: cannot parse "
                        "income in row 3")
    tail = r.details["traceback"]
    assert tail[-1] == "ValueError: cannot parse income in row 3"
    assert any("_helper" in line for line in tail)
    assert not any("mlcd_actions" in line for line in tail)
    assert r.findings[0].file == "user_transforms.py" and r.findings[0].line == 14
    assert "```text" in r.markdown[0]
    assert open("out/train.parquet", "rb").read() == before


@pytest.mark.parametrize("transform,error,message", [
    ("user_transforms:not_a_frame", StageFailed, "returned dict, not a pandas DataFrame"),
    ("user_transforms:drop_label", StageFailed, "dropped the label column 'approved'"),
    ("user_transforms:int_columns", StageFailed, "non-text column name 0"),
    ("user_transforms:nope", ConfigError, "has no function 'nope'"),
    ("no_such_module:f", ConfigError, "module 'no_such_module' not found"),
    ("justaname", ConfigError, "expected 'module:function'"),
    ("missing.py:f", ConfigError, "missing.py: no such file"),
])
def test_transform_misbehaving(loans, transform, error, message):
    with pytest.raises(error, match=message):
        prepare.run(loans, label="approved", out="out", transform=transform)
    assert not os.path.exists("out")


def test_transform_failing_at_import_is_reported_like_a_raise(loans):
    open("broken_tx.py", "w").write("import json\nraise RuntimeError('module-level bug')\n")
    r = prepare.run(loans, label="approved", out="out", transform="broken_tx:f")
    assert r.status == "failed" and "while importing" in r.reason
    assert r.details["traceback"][-1] == "RuntimeError: module-level bug"


@pytest.mark.parametrize("frame,kwargs,error,message", [
    ({"x": [1, 2, 3, 4], "y": [1, 1, 1, 1]}, {}, DataError,
     "label 'y' has a single class (1); a stratified split needs two or more"),
    ({"x": [1, 2, 3, 4, 5], "y": [1, 1, 1, 1, 0]}, {}, DataError,
     "class 0 has only 1 row"),
    ({"x": [1, 2, 3], "y": [None, None, None]}, {}, DataError, "label 'y' is empty"),
    ({"x": [1.0, 2, 3, 4], "y": [1.5, np.inf, 2.5, 3.5]}, {}, DataError,
     "label 'y' has 1 infinite value(s) (first at row 2)"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"label": "nope"}, DataError,
     "label column 'nope' not found"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"split_by_id": "id"}, DataError,
     "id column (--split-by-id) 'id' not found"),
    ({"id": [1, None, 3, 4], "y": [0, 1, 0, 1]}, {"split_by_id": "id"}, DataError,
     "id column 'id' has 1 null value(s) (first at row 2)"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"split_by_id": "x", "stratify": True},
     ConfigError, "cannot be combined"),
    ({"x": [1, 2, 3, 4], "y": [0, 1, 0, 1]}, {"test_size": 1.5}, ConfigError,
     "must be a fraction between 0 and 1"),
    ({"x": [1.0, np.inf, 3, 4, 5, 6], "y": [0, 1, 0, 1, 0, 1]},
     {"steps": ["scale:x"]}, DataError, "column 'x' has 1 infinite value(s)"),
    ({"x": [None] * 6, "y": [0, 1, 0, 1, 0, 1]}, {"steps": ["impute:x=median"]}, DataError,
     "column 'x' is all null in the training split"),
    ({"x": ["a"] * 6, "y": [0, 1, 0, 1, 0, 1]}, {"steps": ["scale:x"]}, DataError,
     "column 'x' is not numeric"),
    ({"x": [1] * 6, "y": [0, 1, 0, 1, 0, 1]}, {"steps": ["scale:zz"]}, DataError,
     "column 'zz' not found"),
    ({"x": [1] * 6, "y": [0, 1, 0, 1, 0, 1]}, {"steps": ["scale:y"]}, ConfigError,
     "would change the label column 'y'"),
    ({"x": [1] * 6, "y": [0, 1, 0, 1, 0, 1]}, {"steps": ["derive:z=nope + 1"]}, ConfigError,
     "cannot evaluate 'nope + 1'"),
])
def test_bad_input(isolated, frame, kwargs, error, message):
    pd.DataFrame(frame).to_csv("d.csv", index=False)
    kwargs = {"label": "y", "out": "out", **kwargs}
    with pytest.raises(error) as exc:
        prepare.run("d.csv", **kwargs)
    assert message in exc.value.one_line()


def test_rows_without_label_are_dropped_with_a_warning(isolated):
    pd.DataFrame({"x": range(10), "y": [0, 1, None, 1, 0, 1, 0, 1, 0, 1]}).to_csv(
        "d.csv", index=False)
    r = prepare.run("d.csv", label="y", out="out")
    assert r.outputs["train-rows"] + r.outputs["test-rows"] == 9
    assert "dropped 1 row(s) without a label 'y' (first at row 3)" in r.warnings[0]


def test_unicode_long_strings_and_nan_inf_features_survive(isolated):
    long = "ü✓" * 50_000
    df = pd.DataFrame({"t": ["naïve", long, None, "日本語"] * 3, "f": [np.nan, np.inf, -1.0, 2.0] * 3,
                       "y": [0, 1] * 6})
    df.to_parquet("d.parquet")
    r = prepare.run("d.parquet", label="y", out="out")
    assert r.status == "passed"
    both = pd.concat(_read("out"))
    assert (both["t"] == long).sum() == 3 and np.isinf(both["f"]).sum() == 3


def test_out_that_is_a_file_is_a_config_error(loans):
    open("out", "w").write("x")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        prepare.run(loans, label="approved", out="out")

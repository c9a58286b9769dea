"""mlcd_actions.models.mlmodel: reading a local MLflow model without mlflow gives what mlflow gives,
and every case it does not cover goes to mlflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.models import loading as models
from mlcd_actions.models import mlmodel

PIP = ["scikit-learn"]


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200),
                      "n": rng.integers(0, 5, size=200)})
    return x, (x.a - x.b > 0).astype(int)


def _save(path: Path, frame, fmt: str = "cloudpickle", signature: bool = True, **kw) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = frame
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    mlflow.sklearn.save_model(model, str(path), serialization_format=fmt,
                              signature=infer_signature(x, y) if signature else None,
                              pip_requirements=PIP, **kw)
    return path


@pytest.mark.parametrize("fmt", ["cloudpickle", "pickle", "skops"])
def test_light_load_matches_mlflow(tmp_path, frame, fmt):
    import mlflow.sklearn
    from mlflow.models import Model

    path = _save(tmp_path / fmt, frame, fmt, metadata={"mlcd": {"task": "classification"}})
    light = mlmodel.read(path)
    assert light is not None
    ours, theirs = light.load_sklearn(), mlflow.sklearn.load_model(str(path))
    x = frame[0]
    np.testing.assert_array_equal(ours.predict_proba(x), theirs.predict_proba(x))
    ref = Model.load(str(path))
    assert light.signature.inputs.to_dict() == ref.signature.inputs.to_dict()
    assert light.signature.outputs.to_dict() == ref.signature.outputs.to_dict()
    assert light.signature.inputs.input_names() == ref.signature.inputs.input_names()
    assert [c.type.name for c in light.signature.inputs.inputs] == \
        [c.type.name for c in ref.signature.inputs.inputs]
    assert light.metadata == ref.metadata
    assert (light.run_id, light.model_id) == (ref.run_id, ref.model_id)


def test_loaded_model_is_the_same_either_way(tmp_path, frame, monkeypatch):
    path = _save(tmp_path / "m", frame)
    light = models.load(str(path))
    monkeypatch.setattr(mlmodel, "read", lambda p: None)  # force the mlflow route
    heavy = models.load(str(path))
    assert type(light.signature).__module__ == "mlcd_actions.models.mlmodel"
    assert type(heavy.signature).__module__.startswith("mlflow")
    for attr in ("input_columns", "task", "classes", "flavor", "run_id", "model_id", "metadata"):
        assert getattr(light, attr) == getattr(heavy, attr), attr
    assert models.signature_types(light) == models.signature_types(heavy) == \
        {"a": "double", "b": "double", "n": "long"}
    x = models.prepare_features(frame[0], None, light)
    np.testing.assert_array_equal(light.predict_proba(x), heavy.predict_proba(x))


def test_local_sklearn_model_loads_without_importing_mlflow(tmp_path, frame):
    path = _save(tmp_path / "m", frame, "skops")
    code = ("import sys; from mlcd_actions.models import loading as models; m = models.load(sys.argv[1]); "
            "print(m.flavor, m.input_columns, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["sklearn", "['a',", "'b',", "'n']", "False"]


@pytest.mark.parametrize("value", [None, "true", "TRUE", "1", "false", "False", "0", "", "yes"])
def test_pickle_flag_is_read_as_mlflow_reads_it(monkeypatch, value):
    from mlflow.environment_variables import MLFLOW_ALLOW_PICKLE_DESERIALIZATION as flag

    if value is None:
        monkeypatch.delenv(mlmodel.PICKLE_FLAG, raising=False)
    else:
        monkeypatch.setenv(mlmodel.PICKLE_FLAG, value)
    try:
        theirs = flag.get()
    except ValueError:  # mlflow rejects the value: mlcd leaves it to mlflow to say so
        theirs = False
    assert mlmodel.pickle_allowed() is theirs


def test_flag_set_to_refuse_is_left_to_mlflow(tmp_path, frame, monkeypatch):
    path = _save(tmp_path / "m", frame)
    monkeypatch.setenv(mlmodel.PICKLE_FLAG, "false")
    assert mlmodel.read(path).load_sklearn() is None
    with pytest.raises(ConfigError, match="MLFLOW_ALLOW_PICKLE_DESERIALIZATION"):
        models.load(str(path))


def test_cases_mlflow_must_read(tmp_path, frame):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    x, y = frame
    # a tensor signature (numpy input)
    arr = tmp_path / "tensor"
    mlflow.sklearn.save_model(LogisticRegression().fit(x.to_numpy(), y), str(arr),
                              signature=mlflow.models.infer_signature(x.to_numpy(), y.to_numpy()),
                              pip_requirements=PIP)
    assert mlmodel.read(arr) is None
    assert models.load(str(arr)).flavor == "sklearn"
    # code paths: mlflow puts them on sys.path first
    (tmp_path / "helper.py").write_text("X = 1\n")
    coded = _save(tmp_path / "coded", frame, code_paths=[str(tmp_path / "helper.py")])
    assert mlmodel.read(coded).load_sklearn() is None
    assert models.load(str(coded)).flavor == "sklearn"
    # no signature at all is read here
    bare = _save(tmp_path / "bare", frame, signature=False)
    light = mlmodel.read(bare)
    assert light.signature is None and light.load_sklearn() is not None
    assert models.load(str(bare)).input_columns == ["a", "b", "n"]


def test_broken_files_are_config_errors(tmp_path, frame):
    path = _save(tmp_path / "m", frame)
    (path / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read MLmodel"):
        models.load(str(path))
    path = _save(tmp_path / "p", frame, "pickle")
    (path / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match=r"cannot be loaded: UnpicklingError"):
        models.load(str(path))

"""Write an MLflow ``sklearn`` model directory without importing mlflow.

``import mlflow`` costs 1.5-2 s of CPU in every ``mlcd train`` process, and for a
scikit-learn model what ``mlflow.sklearn.save_model`` writes is a handful of plain files.
:func:`plan` decides whether this module writes exactly what mlflow 3 would, and
:func:`save` writes it:

* ``model.pkl``: the estimator, ``cloudpickle``/``pickle`` at ``pickle.DEFAULT_PROTOCOL``;
* ``input_example.json`` (pandas ``split`` orient, missing values as mlflow writes them)
  and ``serving_input_example.json`` (``{"dataframe_split": ...}``, indented);
* ``MLmodel``: flavors ``python_function`` (loader ``mlflow.sklearn``) and ``sklearn``,
  the signature (named input columns, a tensor output), the input-example info, the
  metadata, run and model ids, ``model_size_bytes``, ``mlflow_version``;
* ``requirements.txt`` (``mlflow==<installed>`` first), ``conda.yaml``, ``python_env.yaml``.

Only where it is exact: a DataFrame input whose columns are string-named and numeric,
boolean, naive datetime or text; predictions that are a 1-D or 2-D numpy array of a plain
dtype; pinned ``name==version`` requirements without mlflow; the ``cloudpickle`` or
``pickle`` format; no code paths; a released (not dev) mlflow installed; no Databricks
runtime; ``MLFLOW_LOCK_MODEL_DEPENDENCIES`` off. Anything else makes :func:`plan` return
None and the caller saves through mlflow. ``tests/training/test_sklearn_model.py`` checks
every file against ``mlflow.sklearn.save_model`` and loads the result with mlflow.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import os
import pickle
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = ("cloudpickle", "pickle")
MODEL_FILE = "model.pkl"
EXAMPLE_FILE = "input_example.json"
SERVING_FILE = "serving_input_example.json"
BUILD_PACKAGES = ("pip", "setuptools", "wheel")
_PIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+$")
_TRUE = ("true", "1", "t", "yes", "y")
# numpy dtypes whose MLflow tensor type is their own name
_TENSOR_KINDS = frozenset("biuf")


@dataclass
class Plan:
    """What :func:`save` writes: everything but the ids, decided before logging starts."""

    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    example_split: dict[str, Any]
    requirements: list[str]
    mlflow_version: str
    serialization_format: str


def mlflow_version() -> str | None:
    """The installed mlflow's version (``mlflow.version.VERSION``), without importing it."""
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _databricks() -> bool:
    return bool(os.environ.get("DATABRICKS_ENV_VERSION")
                or os.environ.get("DATABRICKS_RUNTIME_VERSION")
                or os.path.exists("/databricks/DBR_VERSION"))


def _column_type(col) -> str | None:
    """MLflow's DataType name for a column (``mlflow.types.utils._infer_pandas_column``),
    or None when only mlflow can say."""
    import numpy as np
    import pandas as pd

    dtype = col.dtype
    if isinstance(dtype, pd.StringDtype):
        return "string"
    if not isinstance(dtype, np.dtype):
        # a pandas extension dtype (categorical, nullable integers, tz-aware datetimes)
        return None
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return "boolean"
    if kind == "i":
        return "integer" if size <= 4 else "long" if size == 8 else None
    if kind == "u":
        return "integer" if size < 4 else "long" if size < 8 else None
    if kind == "f":
        return "float" if size <= 4 else "double" if size <= 8 else None
    if kind == "M":
        return "datetime"
    if kind == "O":
        values = [v for v in col.tolist() if not _missing(v)]
        if values and all(type(v) is str for v in values):
            return "string"
    return None


def _missing(x) -> bool:
    """``mlflow.types.utils._is_none_or_nan``."""
    import pandas as pd

    if isinstance(x, float):
        return x != x
    return x is None or x is pd.NA or x is pd.NaT


def _inputs(frame) -> list[dict[str, Any]] | None:
    out = []
    for name in frame.columns:
        if not isinstance(name, str):
            return None
        col = frame[name]
        kind = _column_type(col)
        if kind is None:
            return None
        out.append({"type": kind, "name": name,
                    "required": not any(_missing(x) for x in col)})
    return out or None


def _outputs(pred) -> list[dict[str, Any]] | None:
    import numpy as np

    if type(pred) is not np.ndarray or pred.ndim not in (1, 2) or len(pred) == 0:
        return None
    dtype = pred.dtype
    if dtype.kind in _TENSOR_KINDS:
        name = str(dtype)
    elif dtype.kind == "O":
        name = "object"
    elif dtype.kind == "U":
        name = "str"
    else:
        return None
    return [{"type": "tensor", "tensor-spec": {"dtype": name,
                                               "shape": [-1, *pred.shape[1:]]}}]


def _json_default(o):
    """``mlflow.utils.proto_json_utils.NumpyEncoder`` for what a plain frame holds."""
    import numpy as np
    import pandas as pd

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (pd.Timestamp, dt.date, dt.datetime, dt.time)):
        return o.isoformat()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _split(example) -> dict[str, Any]:
    """``mlflow.models.utils._convert_dataframe_to_split_dict``."""
    result = example.where(example.notnull(), None).to_dict(orient="split")
    del result["index"]
    return result


def plan(model, sig_input, sig_pred, input_example, requirements: list[str], *,
         serialization_format: str, code_paths=None) -> Plan | None:
    """A :class:`Plan` when this module writes exactly what mlflow would, else None."""
    import pandas as pd

    version = mlflow_version()
    if (version is None or "dev" in version or serialization_format not in FORMATS
            or code_paths or _databricks() or _flag("MLFLOW_LOCK_MODEL_DEPENDENCIES")
            or not callable(getattr(model, "predict", None))
            or not isinstance(sig_input, pd.DataFrame)
            or not isinstance(input_example, pd.DataFrame) or input_example.empty
            or list(input_example.columns) != list(sig_input.columns)):
        return None
    names = [r.split("==")[0].lower().replace("_", "-") for r in requirements]
    if (not all(_PIN.match(r) for r in requirements) or len(set(names)) != len(names)
            or {"mlflow", "mlflow-skinny", "mlflow-tracing", "databricks-connect"} & set(names)):
        return None
    inputs, outputs = _inputs(sig_input), _outputs(sig_pred)
    if inputs is None or outputs is None or _inputs(input_example) is None:
        return None
    try:
        split = _split(input_example)
        json.dumps(split, default=_json_default)
    except (TypeError, ValueError):
        return None
    return Plan(inputs=inputs, outputs=outputs, example_split=split,
                requirements=[f"mlflow=={version}", *requirements], mlflow_version=version,
                serialization_format=serialization_format)


def _python_version() -> str:
    v = sys.version_info
    return f"{v.major}.{v.minor}.{v.micro}"


def _package_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def save(path: str | os.PathLike, model, p: Plan, *, run_id: str | None,
         model_id: str | None, artifact_path: str | None, metadata: dict | None,
         utc_time_created: str | None = None) -> Path:
    """Write the model directory ``path`` (which must not exist) as ``p`` says."""
    import sklearn
    import yaml

    path = Path(path)
    path.mkdir(parents=True)
    example = json.dumps(p.example_split, default=_json_default)
    serving = json.dumps({"dataframe_split": p.example_split}, default=_json_default, indent=2)
    (path / EXAMPLE_FILE).write_text(example, encoding="utf-8")
    (path / SERVING_FILE).write_text(serving, encoding="utf-8")
    if p.serialization_format == "cloudpickle":
        import cloudpickle as lib
    else:
        lib = pickle
    with open(path / MODEL_FILE, "wb") as out:
        lib.dump(model, out, protocol=pickle.DEFAULT_PROTOCOL)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    python = _python_version()
    doc: dict[str, Any] = {
        "artifact_path": artifact_path,
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": "mlflow.sklearn", "model_path": MODEL_FILE,
                "predict_fn": "predict", "python_version": python},
            "sklearn": {
                "code": None, "pickled_model": MODEL_FILE,
                "serialization_format": p.serialization_format,
                "sklearn_version": sklearn.__version__, "skops_trusted_types": None},
        },
        "is_signature_from_type_hint": False,
        "metadata": metadata,
        "mlflow_version": p.mlflow_version,
        "model_id": model_id,
        "model_size_bytes": size,
        "model_uuid": model_id,
        "prompts": None,
        "run_id": run_id,
        "saved_input_example_info": {
            "artifact_path": EXAMPLE_FILE, "pandas_orient": "split",
            "serving_input_path": SERVING_FILE, "type": "dataframe"},
        "signature": {"inputs": json.dumps(p.inputs), "outputs": json.dumps(p.outputs),
                      "params": None},
        "type_hint_from_example": False,
        "utc_time_created": utc_time_created or str(
            dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)),
    }
    for key in ("artifact_path", "run_id", "metadata"):
        if doc[key] is None:
            del doc[key]
    with open(path / "MLmodel", "w") as out:
        yaml.safe_dump(doc, stream=out, default_flow_style=False)
    pip = _package_version("pip")
    conda = {"channels": ["conda-forge"],
             "dependencies": [f"python={python}", f"pip<={pip}" if pip else "pip",
                              {"pip": list(p.requirements)}],
             "name": "mlflow-env"}
    with open(path / "conda.yaml", "w") as out:
        yaml.safe_dump(conda, stream=out, default_flow_style=False)
    (path / "requirements.txt").write_text("\n".join(p.requirements), encoding="utf-8")
    build = []
    for package in BUILD_PACKAGES:
        version = _package_version(package)
        build.append(f"{package}=={version}" if version else package)
    env = {"python": python, "build_dependencies": build, "dependencies": ["-r requirements.txt"]}
    with open(path / "python_env.yaml", "w") as out:
        yaml.safe_dump(env, out, sort_keys=False, default_flow_style=False)
    return path

"""Load any MLflow model the way ``evaluate``, ``check-fairness``, ``predict`` and ``serve`` need it.

:func:`load` takes every MLflow model URI a user may hold:

* ``runs:/<run_id>/<path>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>``,
  ``models:/<name>/latest``, ``models:/m-<logged model id>`` (what MLflow 3 ``log_model``
  returns), a local directory holding an ``MLmodel`` file, or a ``file:`` URI.

It returns a :class:`LoadedModel`: the scikit-learn flavor when the model has one (so
``predict_proba`` works), else the generic ``python_function`` flavor. The ``mlcd``
entry of the MLmodel metadata (written by ``mlcd train``: ``task``, ``label``,
``features``/``feature_columns``, ``classes``) is preferred over anything inferred.

Errors, one line each: a model, version, alias or run that does not exist is a
:class:`~mlcd_actions.core.errors.ConfigError` (exit 2) naming the URI; a tracking server
that cannot be reached is a :class:`~mlcd_actions.core.errors.ServiceError` (exit 3, via
:func:`mlcd_actions.models.tracking.with_retries`); a model that returns the wrong number of
predictions is :class:`~mlcd_actions.core.errors.StageFailed` (exit 1).

The model is fed, as DESIGN §2 says, a frame of every column but the label
(:func:`prepare_features`): a model selects its own features. When the signature
names input columns the frame follows the signature's order (columns the model never
saw are left out; a missing one is a :class:`~mlcd_actions.core.errors.DataError`). Values
that do not fit the signature's column types (text in a column the model needs as a
number) are a DataError naming the column and the first bad data row
(:func:`check_feature_types`, also used when the model raises, and MLflow's own schema
enforcement errors are classified the same way).

mlflow, numpy and pandas are imported inside functions; a scikit-learn model in a local
directory is read without importing mlflow at all (:mod:`mlcd_actions.models.mlmodel`).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, DataError, MlcdError, StageFailed, first_line
from mlcd_actions.models import tracking

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)

_ALIAS_RE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")
_VERSION_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[^/]+)/?$")
_RUN_RE = re.compile(r"^runs:/(?P<run_id>[^/]+)(/(?P<path>.*))?$")


#: Predictions of the same rows computed in different batches (``predict``'s chunks and
#: files, ``serve``'s micro-batches, the numeric fast path, Spark partitions) agree within
#: this relative and absolute tolerance: BLAS kernels may round the last bits differently
#: by CPU and batch shape. Class labels are equal. (docs/stages/predict.md, "Exactness")
BATCH_RTOL = 1e-9
BATCH_ATOL = 1e-12


@dataclass
class LoadedModel:
    """A model ready to predict, with what is known about it.

    * ``uri``: the URI as given; ``resolved_uri``: what was downloaded (an alias
      becomes ``models:/name/version``)
    * ``name``/``version``: registry name and version when the URI names them
    * ``run_id``: the MLflow run that logged the model (None for a bare local model)
    * ``signature``: the MLflow ``ModelSignature`` (or :class:`mlcd_actions.models.mlmodel.Signature`,
      the same API, when mlflow was not needed to load the model) or None
    * ``input_columns``: input column names from the signature (None without one)
    * ``task``: ``'classification'`` or ``'regression'``; None only when neither the
      metadata nor the flavor tells (see :func:`resolve_task`)
    * ``classes``: class labels of a classifier (None when unknown or regression)
    * ``metadata``: the MLmodel metadata dict (``metadata['mlcd']`` from ``mlcd train``)
    * ``flavor``: ``'sklearn'`` or ``'python_function'``
    """

    uri: str
    name: str | None
    version: str | None
    run_id: str | None
    signature: Any
    input_columns: list[str] | None
    task: str | None
    classes: list | None
    metadata: dict
    flavor: str
    resolved_uri: str = ""
    model_id: str | None = None
    label: str | None = None
    _impl: Any = field(default=None, repr=False)
    _local_dir: str | None = field(default=None, repr=False)
    _model_dir: str | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        """How reports name this model: ``name v3`` or the URI."""
        if self.name and self.version:
            return f"{self.name} v{self.version}"
        return self.uri

    @property
    def local_path(self) -> str | None:
        """The directory holding the model files (a download, or the user's own path)."""
        return self._model_dir

    def report_lineage(self) -> dict[str, str]:
        """The ``lineage`` of a report about this model: its lineage ``id`` (from the
        ``mlcd`` metadata ``mlcd train`` writes), ``model_uri``, ``run_id`` and registry
        name/version when known. ``register`` applies a report only when its ``run_id`` and
        ``id`` are those of the model being registered."""
        meta = self.metadata.get("mlcd") if isinstance(self.metadata.get("mlcd"), dict) else {}
        pairs = (("id", meta.get("lineage_id")), ("model_uri", self.uri),
                 ("run_id", self.run_id), ("model_name", self.name),
                 ("model_version", self.version))
        return {k: str(v) for k, v in pairs if v}

    @property
    def has_proba(self) -> bool:
        return self.flavor == "sklearn" and hasattr(self._impl, "predict_proba")

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        """Predictions as a 1-D numpy array, one per row (shape checked)."""
        raw = self._call("predict", df)
        return check_predictions(raw, len(df), what=f"model {self.display}")

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray | None:
        """Class probabilities ``(rows, classes)``, or None when the model has none."""
        if not self.has_proba:
            return None
        raw = self._call("predict_proba", df)
        n_classes = len(self.classes) if self.classes else None
        return check_probabilities(raw, len(df), n_classes, what=f"model {self.display}")

    def _call(self, method: str, df: pd.DataFrame):
        fn = getattr(self._impl, method)
        try:
            return fn(df)
        except MlcdError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user's model: one clear line
            try:
                check_feature_types(df, self)
            except DataError as err:
                raise err from exc
            schema_error = _schema_error(exc, df, self)
            if schema_error is not None:
                raise schema_error from exc
            bad = non_finite_columns(df)
            if bad:
                col, count, row = bad[0]
                more = f" (+{len(bad) - 1} more columns)" if len(bad) > 1 else ""
                raise DataError(
                    f"feature column {col!r} has {count} missing or infinite value(s), first at "
                    f"data row {row + 1}{more}; model {self.display} cannot {method} them: "
                    f"{first_line(exc)}") from exc
            unparsable = _unparsable_text(exc, df, self)
            if unparsable is not None:
                raise unparsable from exc
            raise StageFailed(f"model {self.display} raised in {method}: "
                              f"{type(exc).__name__}: {first_line(exc)}") from exc


def load(uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load the model at ``uri`` (see the module docstring for the accepted forms)."""
    uri = str(uri).strip()
    if not uri:
        raise ConfigError("--model-uri is empty")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    name = version = run_id = None
    local = _local_dir_of(uri)
    if local is not None:
        resolved = str(local)
        where = None
    else:  # runs:/, models:/ or another artifact scheme (s3://...): mlflow downloads it
        where = tracking.configure(tracking_uri)
        resolved, name, version, run_id = _resolve(uri, where)
    tmp = None
    if local is None:
        tmp = tempfile.mkdtemp(prefix="mlcd-model-")
        try:
            path = _download(resolved, uri, tmp, where)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    else:
        path = local
    try:
        model = _load_local(Path(path), uri)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    model.name, model.version = name, version
    model.run_id = run_id or model.run_id
    model.resolved_uri = resolved
    model._model_dir = str(path)
    if tmp:
        model._local_dir = tmp
        weakref.finalize(model, shutil.rmtree, tmp, True)
    return model


def local_model_dir(uri: str) -> Path | None:
    """The local model directory :func:`load` reads for a path or ``file:`` URI (None for
    ``runs:/``, ``models:/`` and other remote URIs; ConfigError when it is no model)."""
    return _local_dir_of(str(uri).strip())


def _local_dir_of(uri: str) -> Path | None:
    """A local model directory for a path or ``file:`` URI; None for remote URIs."""
    if uri.startswith("file:"):
        from urllib.parse import unquote, urlparse

        path = Path(unquote(urlparse(uri).path))
    elif "://" in uri or uri.startswith(("runs:/", "models:/")):
        return None
    else:
        path = Path(uri)
    if not path.exists():
        raise ConfigError(f"model {uri}: no such file or directory")
    if path.is_file() and path.name == "MLmodel":
        path = path.parent
    if not (path / "MLmodel").is_file():
        raise ConfigError(f"model {uri}: not an MLflow model (no MLmodel file in {path})")
    return path


def _resolve(uri: str, where: str) -> tuple[str, str | None, str | None, str | None]:
    """``(resolved_uri, name, version, run_id)`` for a registry or run URI."""
    from mlflow import MlflowClient

    client = MlflowClient()
    m = _ALIAS_RE.match(uri)
    if m:
        name, alias = m["name"], m["alias"]
        mv = _registry_call(lambda: client.get_model_version_by_alias(name, alias), uri, where,
                            f"resolving alias {alias!r} of model {name!r}")
        return f"models:/{name}/{mv.version}", name, str(mv.version), mv.run_id
    m = _VERSION_RE.match(uri)
    if m:
        name, ver = m["name"], m["version"]
        if ver.lower() == "latest":
            versions = _registry_call(
                lambda: client.search_model_versions(f"name = '{_quote(name)}'"), uri, where,
                f"listing versions of model {name!r}")
            if not versions:
                raise ConfigError(f"model {uri}: registered model {name!r} has no versions")
            mv = max(versions, key=lambda v: int(v.version))
            return f"models:/{name}/{mv.version}", name, str(mv.version), mv.run_id
        if ver.isdigit():
            mv = _registry_call(lambda: client.get_model_version(name, ver), uri, where,
                                f"reading version {ver} of model {name!r}")
            return uri, name, str(mv.version), mv.run_id
        return uri, name, None, None  # a stage name ('Production'): mlflow resolves it
    m = _RUN_RE.match(uri)
    if m:
        return uri, None, None, m["run_id"]
    return uri, None, None, None


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _registry_call(fn, uri: str, where: str, what: str):
    try:
        return tracking.with_retries(fn, what=what, uri=where)
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _not_found(exc, uri) from exc


def _download(resolved: str, uri: str, dst: str, where: str) -> str:
    import mlflow

    try:
        return tracking.with_retries(
            lambda: mlflow.artifacts.download_artifacts(artifact_uri=resolved, dst_path=dst),
            what=f"downloading model {uri}", uri=where)
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        raise _not_found(exc, uri) from exc


def _not_found(exc: BaseException, uri: str) -> MlcdError:
    text = first_line(exc)
    code = getattr(exc, "error_code", "") or ""
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND") or \
            "not found" in text.lower() or "does not exist" in text.lower():
        return ConfigError(f"model {uri} not found: {text}")
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        from mlcd_actions.core.errors import ServiceError

        return ServiceError(f"model {uri}: tracking server refused access: {text}")
    return ConfigError(f"model {uri} cannot be loaded: {type(exc).__name__}: {text}")


def _load_local(path: Path, uri: str) -> LoadedModel:
    from mlcd_actions.models import mlmodel

    try:
        light = mlmodel.read(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"model {uri}: cannot read MLmodel: {first_line(exc)}") from exc
    try:
        impl = light.load_sklearn() if light is not None else None
    except Exception as exc:  # noqa: BLE001 - unpickling error, missing module...
        raise _cannot_load(uri, exc) from exc
    if impl is not None:  # mlflow not imported: about 2 s saved (see mlcd_actions.models.mlmodel)
        flavor, info = "sklearn", light
    else:
        impl, flavor, info = _load_with_mlflow(path, uri)
    metadata = dict(info.metadata or {})
    mlcd_meta = metadata.get("mlcd") if isinstance(metadata.get("mlcd"), dict) else {}
    signature = info.signature
    input_columns = _signature_columns(signature)
    task = mlcd_meta.get("task")
    if task not in TASKS:
        task = _infer_task(impl, flavor)
    classes = mlcd_meta.get("classes")
    if classes is None and task == CLASSIFICATION:
        estimator_classes = getattr(impl, "classes_", None) if flavor == "sklearn" else None
        if estimator_classes is not None:
            classes = [_plain(c) for c in estimator_classes]
    if input_columns is None:
        names = mlcd_meta.get("features") or mlcd_meta.get("feature_columns")
        if names is None and flavor == "sklearn":
            names = getattr(impl, "feature_names_in_", None)
        input_columns = [str(c) for c in names] if names is not None else None
    return LoadedModel(uri=uri, name=None, version=None, run_id=info.run_id,
                       signature=signature, input_columns=input_columns, task=task,
                       classes=list(classes) if classes is not None else None,
                       metadata=metadata, flavor=flavor, resolved_uri=uri,
                       model_id=getattr(info, "model_id", None),
                       label=mlcd_meta.get("label"), _impl=impl)


def _load_with_mlflow(path: Path, uri: str):
    """``(model, flavor, mlflow Model)`` through mlflow: sklearn flavor first (so
    ``predict_proba`` works), else ``python_function``."""
    from mlflow.models import Model

    try:
        mlmodel = Model.load(str(path))
    except Exception as exc:  # noqa: BLE001 - a broken MLmodel file
        raise ConfigError(f"model {uri}: cannot read MLmodel: {first_line(exc)}") from exc
    flavors = mlmodel.flavors or {}
    try:
        if "sklearn" in flavors:
            import mlflow.sklearn

            return mlflow.sklearn.load_model(str(path)), "sklearn", mlmodel
        if "python_function" in flavors:
            return _load_pyfunc(path, mlmodel), "python_function", mlmodel
    except Exception as exc:  # noqa: BLE001 - missing module, unpickling error...
        raise _cannot_load(uri, exc) from exc
    raise ConfigError(f"model {uri}: no sklearn or python_function flavor "
                      f"(flavors: {', '.join(flavors) or 'none'})")


def _load_pyfunc(path: Path, mlmodel):
    """``mlflow.pyfunc.load_model`` with the warnings it logs, its requirement check done
    the cheap way first.

    MLflow checks the model's ``requirements.txt`` against the environment and warns
    about each mismatch; to do so it maps every installed distribution to its modules
    (``importlib_metadata.packages_distributions``: 0.7-1.2 s, most of a
    ``python_function`` model's load). Here each requirement is first looked up by its
    own distribution name, as MLflow looks it up: when every one is installed at a version
    its specifier allows (or is one MLflow skips: unparsable, a marker that does not
    apply), MLflow would not warn, and the model is loaded with ``suppress_warnings=True``
    plus MLflow's Python-version warning. Anything else (a requirement missing or at
    another version, a distribution installed under another name) runs MLflow's own
    check, which warns as always.
    """
    import mlflow.pyfunc

    py_warning = getattr(mlflow.pyfunc, "_warn_potentially_incompatible_py_version_if_necessary",
                         None)
    if py_warning is None or not _requirements_met(path):
        return mlflow.pyfunc.load_model(str(path))
    model = mlflow.pyfunc.load_model(str(path), suppress_warnings=True)
    conf = (mlmodel.flavors or {}).get("python_function") or {}
    py_warning(model_py_version=conf.get("python_version"))
    return model


def _requirements_met(path: Path) -> bool:
    """True when every requirement of the model at ``path`` is met by an installed
    distribution of that name (see :func:`_load_pyfunc`); False when one is not, or
    cannot be told this way."""
    try:
        import importlib_metadata
        import mlflow
        from mlflow.pyfunc import _get_pip_requirements_from_model_path
        from packaging.requirements import Requirement
        from packaging.version import Version

        requirements = _get_pip_requirements_from_model_path(str(path))
    except Exception:  # noqa: BLE001 - MLflow changed: let it check
        return False
    for text in requirements:
        try:
            req = Requirement(text)
        except Exception:  # noqa: BLE001 - a path or URL: MLflow skips it too
            continue
        try:
            if req.marker and not req.marker.evaluate():
                continue
            if req.name == "mlflow":
                if req.extras:
                    return False
                installed = mlflow.__version__
                if Version(installed).is_devrelease:
                    continue
            elif req.name == "pyspark":
                return False  # MLflow strips a dev suffix from pyspark's version
            else:
                installed = importlib_metadata.version(req.name)
            if req.specifier and not req.specifier.contains(installed):
                return False
        except Exception:  # noqa: BLE001 - not installed under that name, odd version...
            return False
    return True


def _cannot_load(uri: str, exc: BaseException) -> ConfigError:
    return ConfigError(f"model {uri} cannot be loaded: {type(exc).__name__}: {first_line(exc)}")


def _signature_columns(signature) -> list[str] | None:
    if signature is None or signature.inputs is None:
        return None
    try:
        if not signature.inputs.has_input_names():
            return None
        return [str(n) for n in signature.inputs.input_names()]
    except Exception:  # noqa: BLE001 - tensor specs have no names
        return None


def _infer_task(impl, flavor: str) -> str | None:
    if flavor == "sklearn":
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(impl) or hasattr(impl, "classes_"):
            return CLASSIFICATION
        if is_regressor(impl):
            return REGRESSION
    return None


def resolve_alias(name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """``models:/name/version`` the alias points at, or None when the registered model or
    the alias does not exist. An unreachable server is a ServiceError (exit 3)."""
    from mlflow import MlflowClient

    where = tracking.configure(tracking_uri)
    client = MlflowClient()
    try:
        mv = tracking.with_retries(lambda: client.get_model_version_by_alias(name, alias),
                                   what=f"resolving alias {alias!r} of model {name!r}", uri=where)
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below
        err = _not_found(exc, f"models:/{name}@{alias}")
        if isinstance(err, ConfigError) and " not found" in err.message:
            return None
        raise err from exc
    return f"models:/{name}/{mv.version}"


def resolve_task(model: LoadedModel, y: pd.Series) -> str:
    """The model's task; when the model does not say, guess from the label values.

    A label of strings, booleans or categories, or of integers with at most 20
    distinct values, is a classification label; anything else is regression.
    """
    import pandas as pd

    if model.task in TASKS:
        return model.task
    if (pd.api.types.is_bool_dtype(y) or pd.api.types.is_object_dtype(y)
            or pd.api.types.is_string_dtype(y) or isinstance(y.dtype, pd.CategoricalDtype)):
        return CLASSIFICATION
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= 20:
        return CLASSIFICATION
    return REGRESSION


def prepare_features(df: pd.DataFrame, label: str | None, model: LoadedModel,
                     *, path: str | os.PathLike | None = None,
                     first_row: int = 0) -> pd.DataFrame:
    """The frame a model is fed: every column but the label, in the model's input order.

    With a signature (or recorded feature list) the columns follow it and columns the
    model never saw are left out; a column it needs that is missing is a DataError
    naming it. Without one, every column but the label in file order. ``first_row``:
    the 0-based file row of ``df``'s first row (a chunk of a file), for messages.
    """
    cols = [c for c in df.columns if c != label]
    if model.input_columns:
        missing = [c for c in model.input_columns if c not in df.columns]
        if label is not None and label in model.input_columns:
            missing = [c for c in missing if c != label]
        if missing:
            where = f"{path}: " if path else ""
            raise DataError(f"{where}feature column(s) {', '.join(map(repr, missing))} that model "
                            f"{model.display} needs are missing")
        cols = [c for c in model.input_columns if c != label]
    out = df.loc[:, cols]
    check_feature_types(out, model, path=path, first_row=first_row)
    return out


# MLflow column types (signature) -> what a value must be
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer"})


def signature_types(model: LoadedModel) -> dict[str, str]:
    """``{column: MLflow type name}`` from the model's signature (``'double'``, ``'long'``,
    ``'string'``...); empty without a column-based signature."""
    sig = model.signature
    if sig is None or sig.inputs is None:
        return {}
    try:
        if not sig.inputs.has_input_names():
            return {}
        return {str(spec.name): str(getattr(spec.type, "name", spec.type))
                for spec in sig.inputs.inputs}
    except Exception:  # noqa: BLE001 - tensor specs have no names
        return {}


def check_feature_types(df: pd.DataFrame, model: LoadedModel, *,
                        path: str | os.PathLike | None = None, first_row: int = 0) -> None:
    """DataError when a column the signature types as a number holds something else.

    Names the column, the signature type and the first bad data row (counted from 1):
    ``t.csv: feature column 'income' must be a number (model signature: double), but
    data row 3 holds 'abc'``. Text that reads as a number (``'1.5'``) is left to the
    model. Shared by evaluate, check-fairness, predict and serve (via :meth:`predict`).
    """
    types = signature_types(model)
    if not types:
        return
    for col in df.columns:
        expected = types.get(str(col))
        if expected not in NUMERIC_TYPES:
            continue
        bad = _first_non_number(df[col])
        if bad is not None:
            row, value = bad
            where = f"{path}: " if path else ""
            raise DataError(f"{where}feature column {str(col)!r} must be a number (model "
                            f"{model.display} signature: {expected}), but data row "
                            f"{first_row + row + 1} "
                            f"holds {_show(value)}")


def _first_non_number(s: pd.Series) -> tuple[int, Any] | None:
    """``(0-based row, value)`` of the first non-missing value that is not a number."""
    import numpy as np
    import pandas as pd

    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return None
    values = s.reset_index(drop=True)
    present = values.notna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        bad = present
    else:
        import numbers as numtypes

        as_text = values.astype(object).where(present, np.nan)
        numbers = pd.to_numeric(as_text.map(
            lambda v: v if isinstance(v, (str, numtypes.Number)) and not isinstance(v, bool)
            else "\0not a number"), errors="coerce")
        bad = present & numbers.isna().to_numpy()
    if not bad.any():
        return None
    row = int(np.flatnonzero(bad)[0])
    return row, values.iloc[row]


def _schema_error(exc: BaseException, df: pd.DataFrame, model: LoadedModel) -> DataError | None:
    """MLflow's schema enforcement error (pyfunc models) as one DataError line."""
    text = str(exc)
    if type(exc).__name__ != "MlflowException" or "enforce schema" not in text:
        return None
    detail = text.rsplit("Error: ", 1)[-1] if "Error: " in text else first_line(exc)
    detail = (detail.strip().splitlines() or [""])[0].strip()
    m = re.search(r"for column (?P<col>.+?)\. ", detail)
    col = m["col"] if m else None
    if col is None or col not in df.columns:
        return DataError(f"the features do not match model {model.display}'s signature: "
                         f"{detail}")
    expected = signature_types(model).get(col, "?")
    row = _first_mismatch(df[col], expected)
    at = f"; first bad value {_show(row[1])} at data row {row[0] + 1}" if row else ""
    return DataError(f"feature column {col!r} does not match model {model.display}'s "
                     f"signature ({expected}): {detail}{at}")


def _first_mismatch(s: pd.Series, expected: str) -> tuple[int, Any] | None:
    """First value of ``s`` that does not fit the MLflow type ``expected`` (best effort)."""
    import numpy as np

    if expected in NUMERIC_TYPES:
        bad = _first_non_number(s)
        if bad is not None:
            return bad
        if expected in ("long", "integer"):
            values = s.reset_index(drop=True)
            numbers = np.asarray(values, dtype=object)
            for i, v in enumerate(numbers):
                if isinstance(v, (float, np.floating)) and not float(v).is_integer():
                    return i, v
        return None
    import pandas as pd

    kinds = {"string": str, "boolean": (bool, np.bool_)}
    if expected in kinds:
        values = s.reset_index(drop=True)
        for i, v in enumerate(values.astype(object)):
            if not pd.isna(v) and not isinstance(v, kinds[expected]):
                return i, v
    return None


_NOT_FLOAT_RE = re.compile(r"could not convert string to float: (?P<value>'.*'|\".*\")")


def _unparsable_text(exc: BaseException, df: pd.DataFrame, model: LoadedModel
                     ) -> DataError | None:
    """A model without a signature that failed on text in a numeric column (scikit-learn's
    ``could not convert string to float: 'abc'``): find the column and the row."""
    m = _NOT_FLOAT_RE.search(str(exc))
    if not m:
        return None
    import ast

    try:
        value = ast.literal_eval(m["value"])
    except (ValueError, SyntaxError):
        return None
    for col in df.columns:
        s = df[col]
        if s.dtype.kind in "biufc":
            continue
        hits = (s.reset_index(drop=True).astype(object) == value).to_numpy()
        if hits.any():
            row = int(hits.argmax())
            return DataError(f"feature column {str(col)!r} must be a number for model "
                             f"{model.display}, but data row {row + 1} holds {_show(value)}")
    return None


def _show(value: Any, limit: int = 40) -> str:
    text = repr(_plain(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def non_finite_columns(df: pd.DataFrame, *, missing: bool = True) -> list[tuple[str, int, int]]:
    """``[(column, count, first_row)]`` for columns holding NaN/None (unless ``missing`` is
    False) or ±inf (``first_row`` 0-based; messages say ``data row first_row + 1``)."""
    import numpy as np
    import pandas as pd

    out = []
    for col in df.columns:
        s = df[col]
        bad = s.isna().to_numpy() if missing else np.zeros(len(s), dtype=bool)
        if pd.api.types.is_float_dtype(s.dtype):
            bad = bad | np.isinf(s.to_numpy(dtype=float, na_value=np.nan))
        count = int(bad.sum())
        if count:
            out.append((str(col), count, int(np.flatnonzero(bad)[0])))
    return out


def check_predictions(raw, n_rows: int, *, what: str = "model") -> np.ndarray:
    """One prediction per row as a 1-D array, or StageFailed naming the shape."""
    import numpy as np
    import pandas as pd

    if isinstance(raw, pd.DataFrame):
        if raw.shape[1] != 1:
            raise StageFailed(f"{what} returned predictions of shape {raw.shape}, expected "
                              f"({n_rows},): one prediction per row")
        raw = raw.iloc[:, 0]
    arr = np.asarray(raw)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 or arr.shape[0] != n_rows:
        raise StageFailed(f"{what} returned predictions of shape {arr.shape}, expected "
                          f"({n_rows},): one prediction per row")
    return arr


def check_probabilities(raw, n_rows: int, n_classes: int | None, *,
                        what: str = "model") -> np.ndarray:
    """``(rows, classes)`` probabilities, or StageFailed naming the shape."""
    import numpy as np

    arr = np.asarray(raw, dtype=float)
    expected = f"({n_rows}, {n_classes if n_classes else 'classes'})"
    if arr.ndim != 2 or arr.shape[0] != n_rows or (n_classes and arr.shape[1] != n_classes):
        raise StageFailed(f"{what} returned probabilities of shape {arr.shape}, "
                          f"expected {expected}")
    return arr


def _plain(value):
    """numpy scalar -> Python scalar (JSON-friendly class labels)."""
    return value.item() if hasattr(value, "item") else value

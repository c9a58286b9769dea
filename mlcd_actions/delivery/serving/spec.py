"""What a model takes and gives, as ``serve`` and ``predict`` need it.

:class:`ModelSpec` wraps a :class:`mlcd_actions.models.loading.LoadedModel`: the input columns
in signature order with their MLflow types, the identity shown by ``/metadata`` and
stamped on every prediction-log line (name, version, run id, lineage id), and one
prediction call that returns predictions and, for classifiers, probabilities (shapes
checked by :mod:`mlcd_actions.models.loading`).

Probabilities are shown the same way everywhere: a binary classifier's probability is
the probability of its second (positive) class, a float; a multiclass one is a list in
the order of ``classes``. Batch output columns: ``probability`` for a binary
classifier, ``probability_<class>`` per class otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from mlcd_actions.models.loading import LoadedModel

log = logging.getLogger("mlcd")

LINEAGE_TAG = "mlcd.lineage_id"
# MLflow column types a JSON value can be checked against
KNOWN_TYPES = ("double", "float", "long", "integer", "boolean", "string", "datetime", "binary")


@dataclass(frozen=True)
class Column:
    name: str
    type: str | None      # an MLflow DataType name from KNOWN_TYPES, or None (any value)
    required: bool = True


class _FrameArrays(Mapping):
    """A DataFrame's columns as the 1-D arrays :meth:`ModelSpec.predict_fast` takes, each
    taken out only when asked for."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df

    def __getitem__(self, name: str) -> np.ndarray:
        return self.df[name].to_numpy()

    def __iter__(self):
        return iter(self.df.columns)

    def __len__(self) -> int:
        return len(self.df.columns)


class ModelSpec:
    """A loaded model plus everything the serving path precomputes once."""

    def __init__(self, model: LoadedModel, *, name: str | None = None,
                 version: str | None = None, lineage_id: str | None = None) -> None:
        self.model = model
        self.columns: list[Column] | None = signature_columns(model)
        self.name = name or model.name
        self.version = str(version) if version is not None else model.version
        self.run_id = model.run_id
        self.task = model.task
        self.classes = list(model.classes) if model.classes is not None else None
        self.lineage_id = lineage_id or find_lineage_id(model)
        self._steps = _pipeline_steps(model)
        self._fast = None
        self._frameless = None
        self._direct = None
        if self.columns is not None:
            from mlcd_actions.delivery.serving import fastpath

            types = {c.name: c.type for c in self.columns}
            self._fast = fastpath.build(model, types, self._predict_frame)
            if self._fast is None:
                self._frameless = fastpath.build_frameless(model, types, self._predict_frame)
            if model.flavor == "python_function":
                from mlcd_actions.delivery.serving import pyfuncpath

                self._direct = pyfuncpath.build(model, self.columns, self._predict_frame)

    @property
    def input_names(self) -> list[str] | None:
        return [c.name for c in self.columns] if self.columns is not None else None

    def metadata(self) -> dict[str, Any]:
        """What ``GET /metadata`` returns."""
        sig = self.model.signature
        signature = None
        if sig is not None:
            signature = {
                "inputs": sig.inputs.to_dict() if sig.inputs is not None else None,
                "outputs": sig.outputs.to_dict() if sig.outputs is not None else None,
            }
        return {
            "model_name": self.name,
            "model_version": self.version,
            "lineage_id": self.lineage_id,
            "run_id": self.run_id,
            "model_uri": self.model.uri,
            "flavor": self.model.flavor,
            "task": self.task,
            "classes": self.classes,
            "input_columns": self.input_names,
            "signature": signature,
        }

    @property
    def fast(self) -> bool:
        """True when numeric batches skip the DataFrame (see :mod:`.fastpath`)."""
        return self._fast is not None

    @property
    def frameless(self) -> bool:
        """True when a ColumnTransformer pipeline is fed without a DataFrame."""
        return self._frameless is not None

    @property
    def direct(self) -> bool:
        """True when a python_function model skips MLflow's per-call work (:mod:`.pyfuncpath`)."""
        return self._direct is not None

    @property
    def row_wise(self) -> bool:
        """False when the probe showed that the model answers a row differently inside a
        batch: the micro-batcher then never mixes requests (:mod:`.pyfuncpath`)."""
        return self._direct is None or self._direct.row_wise

    def predict_arrays(self, arrays: dict[str, np.ndarray], n_rows: int, *,
                       proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`predict` for ``{column: 1-D array}`` (a request's validated batch)."""
        if self._fast is not None:
            x = self._fast.matrix(arrays, n_rows)
            if x is not None:
                out = self._try_fast(x, n_rows, proba)
                if out is not None:
                    return out
        elif self._frameless is not None:
            out = self._try_frameless(arrays, n_rows, proba)
            if out is not None:
                return out
        elif self._direct is not None and self._direct.accepts(arrays):
            try:
                return self._checked(self._direct.predict(arrays, n_rows), None, n_rows)
            except Exception:  # noqa: BLE001 - the DataFrame path classifies the error
                pass
        import pandas as pd

        return self._predict_frame(pd.DataFrame(arrays, copy=False), proba)

    def predict_fast(self, arrays: Mapping[str, np.ndarray], n_rows: int, *,
                     proba: bool = True) -> tuple[np.ndarray, np.ndarray | None] | None:
        """What :meth:`predict` answers for a frame of these columns through the numeric
        fast path or the frameless one, without building the frame; None when neither
        applies or it declines (the caller then uses :meth:`predict` on a DataFrame,
        which classifies any error)."""
        if self._fast is not None:
            if not all(f in arrays for f in self._fast.features):
                return None
            x = self._fast.matrix({f: arrays[f] for f in self._fast.features}, n_rows)
            return None if x is None else self._try_fast(x, n_rows, proba)
        if self._frameless is not None and all(c in arrays for c in self._frameless.columns):
            return self._try_frameless({c: arrays[c] for c in self._frameless.columns},
                                       n_rows, proba)
        return None

    def predict(self, df: pd.DataFrame, *, proba: bool = True
                ) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictions (1-D) and probabilities ``(rows, classes)`` or None."""
        out = self.predict_fast(_FrameArrays(df), len(df), proba=proba)
        return out if out is not None else self._predict_frame(df, proba)

    def _try_frameless(self, arrays, n_rows: int, proba: bool):
        try:
            return self._checked(*self._frameless.predict(
                arrays, n_rows, proba and self.model.has_proba), n_rows)
        except Exception:  # noqa: BLE001 - the DataFrame path classifies the error
            return None

    def _try_fast(self, x: np.ndarray, n_rows: int, proba: bool):
        try:
            return self._checked(*self._fast.predict(x, proba and self.model.has_proba), n_rows)
        except Exception:  # noqa: BLE001 - the DataFrame path classifies the error
            return None

    def _checked(self, pred, prob, n_rows: int):
        """A fast path's answer, checked for shape as the model's own answers are."""
        from mlcd_actions.models.loading import check_predictions, check_probabilities

        what = f"model {self.model.display}"
        pred = check_predictions(pred, n_rows, what=what)
        if prob is not None:
            n_classes = len(self.classes) if self.classes else None
            prob = check_probabilities(prob, n_rows, n_classes, what=what)
        return pred, prob

    def _predict_frame(self, df: pd.DataFrame, proba: bool = True
                       ) -> tuple[np.ndarray, np.ndarray | None]:
        """The DataFrame path: the model's own calls, with errors classified.

        For a scikit-learn ``Pipeline`` classifier the transform steps run once and feed
        both the final estimator's ``predict`` and ``predict_proba``: exactly what
        ``Pipeline.predict``/``predict_proba`` compute, at about half the cost. Any
        error falls back to the model's own calls, which classify it (bad values: a
        DataError; a failing model: StageFailed).
        """
        want_proba = proba and self.model.has_proba
        if want_proba and self._steps is not None:
            try:
                return self._predict_pipeline(df)
            except Exception:  # noqa: BLE001 - the plain path below reports it properly
                pass
        pred = self.model.predict(df)
        return pred, (self.model.predict_proba(df) if want_proba else None)

    def _predict_pipeline(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        from mlcd_actions.models.loading import check_predictions, check_probabilities

        xt = df
        for step in self._steps[:-1]:
            xt = step.transform(xt)
        final = self._steps[-1]
        what = f"model {self.model.display}"
        raw_pred, raw_proba = one_pass(final, xt)
        pred = check_predictions(raw_pred, len(df), what=what)
        n_classes = len(self.classes) if self.classes else None
        return pred, check_probabilities(raw_proba, len(df), n_classes, what=what)

    def proba_columns(self, proba: np.ndarray) -> list[str]:
        """Batch output column names for a probability matrix."""
        k = proba.shape[1]
        if k == 2:
            return ["probability"]
        labels = self.classes if self.classes and len(self.classes) == k else list(range(k))
        return [f"probability_{c}" for c in labels]


def _pipeline_steps(model: LoadedModel) -> list | None:
    """The active steps of a scikit-learn Pipeline classifier (None for anything else)."""
    impl = getattr(model, "_impl", None)  # the loaded estimator (LoadedModel keeps it here)
    if model.flavor != "sklearn" or impl is None:
        return None
    from sklearn.pipeline import Pipeline

    from mlcd_actions.delivery.serving.fastpath import active_steps

    steps = active_steps(impl) if type(impl) is Pipeline else None
    return steps if steps and hasattr(steps[-1], "predict_proba") else None


def one_pass(final, xt) -> tuple[np.ndarray, np.ndarray]:
    """``(final.predict(xt), final.predict_proba(xt))`` computed with one pass of the model
    where its ``predict`` is derived from the same numbers (scikit-learn source, 1.x):

    * forests with one output: ``classes_.take(argmax(predict_proba))``;
    * ``HistGradientBoostingClassifier``: ``predict`` thresholds (binary: ``raw > 0``) or
      takes the argmax of the raw scores ``predict_proba`` turns into probabilities;
    * ``LogisticRegression`` (binary or multinomial): both come from one
      ``decision_function`` (:func:`.fastpath.logistic_answers`).

    Anything else makes both calls.
    """
    import numpy as np

    kind = type(final).__name__
    sklearn = type(final).__module__.startswith("sklearn.")
    classes = getattr(final, "classes_", None)
    if sklearn and kind in _FOREST_CLASSIFIERS and getattr(final, "n_outputs_", 0) == 1 \
            and classes is not None:
        proba = final.predict_proba(xt)
        return classes.take(np.argmax(proba, axis=1), axis=0), proba
    if sklearn and kind == "HistGradientBoostingClassifier" and classes is not None \
            and hasattr(final, "_raw_predict") and hasattr(final, "_loss"):
        raw = final._raw_predict(xt)
        if raw.shape[1] == 1:
            encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        return classes[encoded], final._loss.predict_proba(raw)
    from mlcd_actions.delivery.serving.fastpath import logistic_answers, logistic_supported

    if logistic_supported(final):
        return logistic_answers(classes, final.decision_function(xt), True)
    return final.predict(xt), final.predict_proba(xt)


_FOREST_CLASSIFIERS = frozenset({"RandomForestClassifier", "ExtraTreesClassifier"})


def proba_values(proba: np.ndarray) -> np.ndarray:
    """Per row: the positive-class probability (binary) or the whole row (multiclass)."""
    return proba[:, 1] if proba.shape[1] == 2 else proba


def signature_columns(model: LoadedModel) -> list[Column] | None:
    """Input columns with their MLflow types (from the signature), else names only."""
    sig = model.signature
    cols: list[Column] = []
    if sig is not None and sig.inputs is not None:
        try:
            if sig.inputs.has_input_names():
                for spec in sig.inputs.inputs:
                    type_name = getattr(spec.type, "name", None)
                    cols.append(Column(str(spec.name),
                                       type_name if type_name in KNOWN_TYPES else None,
                                       bool(getattr(spec, "required", True))))
        except Exception:  # noqa: BLE001 - tensor signatures have no column names
            cols = []
    if cols:
        return cols
    if model.input_columns:
        return [Column(str(c), None, True) for c in model.input_columns]
    return None


def find_lineage_id(model: LoadedModel) -> str | None:
    """The lineage id: model metadata first, then the run tag ``mlcd.lineage_id``.

    The run is asked only when the model came from the tracking server (a ``runs:/``
    or ``models:/`` URI), so a model baked into an image needs no server.
    """
    meta = model.metadata or {}
    mlcd_meta = meta.get("mlcd") if isinstance(meta.get("mlcd"), dict) else {}
    for value in (mlcd_meta.get("lineage_id"), meta.get("lineage_id"),
                  (mlcd_meta.get("lineage") or {}).get("id")
                  if isinstance(mlcd_meta.get("lineage"), dict) else None):
        if value:
            return str(value)
    if model.run_id and str(model.uri).startswith(("runs:/", "models:/")):
        try:
            from mlflow import MlflowClient

            tags = MlflowClient().get_run(model.run_id).data.tags
            value = tags.get(LINEAGE_TAG)
            return str(value) if value else None
        except Exception as exc:  # noqa: BLE001 - lineage is informative, never fatal
            log.warning("cannot read tag %s of run %s: %s", LINEAGE_TAG, model.run_id, exc)
    return None

"""Numeric features straight to a fitted scikit-learn model as one float matrix.

A scikit-learn estimator fitted on a DataFrame checks, on every call, that the frame it
is given has the same column names in the same order, and converts it to a matrix. For
a single-row request that bookkeeping (plus building the DataFrame) costs far more than
the arithmetic: about 2 ms against 20 µs for a scaler and a logistic regression.

:class:`NumpyPath` keeps shallow copies of the model's steps without their recorded
``feature_names_in_`` and feeds them a C-contiguous float64 matrix whose columns it lays
out itself, in the order the first step was fitted with. It is built only when

* the model is scikit-learn (a ``Pipeline`` of transformers and a final estimator, or
  one estimator) whose first step recorded its feature names;
* every one of those features is an input column that is numeric (signature type
  double/float/long/integer) or untyped (no signature: checked per batch);
* a probe batch gives the same class predictions, and numbers (probabilities,
  regression) within a relative 1e-9, through both paths (a ``ColumnTransformer`` selecting columns by name fails here, so such
  models keep the DataFrame path).

For the plainest pipelines (standard scaling, then a logistic, linear or ridge
regression) :class:`CompiledPath` goes one step further and does the steps' arithmetic
itself (about 20 µs a row instead of 0.8 ms), under the same probe.

At call time a batch whose arrays are not all numeric, or any error, goes back to the
DataFrame path, which classifies errors (bad values: 422; a failing model: 500).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from mlcd_actions.models.loading import LoadedModel

log = logging.getLogger("mlcd")

NUMERIC = frozenset({"double", "float", "long", "integer"})
PROBE_ROWS = 8
# scikit-learn classifiers whose ``predict`` is ``classes_[argmax(predict_proba)]`` (for
# LogisticRegression the probabilities are monotone in the decision function it uses)
ARGMAX_CLASSIFIERS = frozenset({
    "LogisticRegression", "RandomForestClassifier", "ExtraTreesClassifier",
    "DecisionTreeClassifier", "ExtraTreeClassifier", "GradientBoostingClassifier",
    "HistGradientBoostingClassifier", "KNeighborsClassifier", "GaussianNB",
})


class NumpyPath:
    """Predict from ``{column: 1-D array}`` without a DataFrame (see the module doc)."""

    compiled = False

    def __init__(self, features: list[str], transforms: list, final: Any,
                 has_proba: bool) -> None:
        self.features = features
        self.transforms = transforms
        self.final = final
        self.has_proba = has_proba
        # estimators whose predict is classes_[argmax(predict_proba)]: one call, not two
        self.argmax = (has_proba and type(final).__name__ in ARGMAX_CLASSIFIERS
                       and getattr(final, "classes_", None) is not None)

    def matrix(self, arrays: Mapping[str, np.ndarray], n_rows: int) -> np.ndarray | None:
        """The float64 matrix in fitted order, or None when a column is not numeric."""
        out = np.empty((n_rows, len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            a = arrays.get(name)
            if a is None or a.dtype.kind not in "fiu":
                return None
            out[:, j] = a
        return out

    def predict(self, x: np.ndarray, proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        for step in self.transforms:
            x = step.transform(x)
        if proba and self.has_proba:
            p = self.final.predict_proba(x)
            if self.argmax:  # what the estimator's own predict computes, from p
                return self.final.classes_.take(np.argmax(p, axis=1)), p
            return self.final.predict(x), p
        return self.final.predict(x), None


class CompiledPath(NumpyPath):
    """The same arithmetic as a few linear scikit-learn steps, without their input checks.

    Only for exact types whose ``transform``/``predict``/``predict_proba`` are a few
    numpy operations on fitted arrays: ``StandardScaler``, ``LogisticRegression``,
    ``LinearRegression`` and ``Ridge``. A matrix holding NaN or infinity is refused
    (None), so the DataFrame path reports it as scikit-learn would.
    """

    compiled = True

    def __init__(self, features: list[str], transforms: list, final: Any) -> None:
        super().__init__(features, transforms, final, hasattr(final, "predict_proba"))
        self._kind = type(final).__name__

    def predict(self, x: np.ndarray, proba: bool):
        if not np.isfinite(x).all():
            raise ValueError("non-finite input")  # the caller takes the DataFrame path
        for step in self.transforms:
            x = x.copy()
            if step.with_mean:
                x -= step.mean_
            if step.with_std:
                x /= step.scale_
        final = self.final
        d = x @ final.coef_.T + final.intercept_
        if self._kind != "LogisticRegression":
            return d, None
        classes = final.classes_
        if d.ndim == 2 and d.shape[1] == 1:
            d = d.ravel()
        if d.ndim == 1:
            pred = classes.take((d > 0).astype(np.intp))
            if not (proba and self.has_proba):
                return pred, None
            from scipy.special import expit

            p = expit(d)
            return pred, np.stack([1 - p, p], axis=1)
        pred = classes.take(np.argmax(d, axis=1))
        if not (proba and self.has_proba):
            return pred, None
        from sklearn.utils.extmath import softmax

        return pred, softmax(d.copy(), copy=False)


_COMPILABLE_TRANSFORMS = frozenset({"StandardScaler"})
_COMPILABLE_FINALS = frozenset({"LogisticRegression", "LinearRegression", "Ridge"})


def _compiled(features: list[str], steps: list) -> CompiledPath | None:
    if not all(type(s).__name__ in _COMPILABLE_TRANSFORMS and
               type(s).__module__.startswith("sklearn.") for s in steps[:-1]):
        return None
    final = steps[-1]
    if type(final).__name__ not in _COMPILABLE_FINALS or \
            not type(final).__module__.startswith("sklearn.") or \
            not isinstance(getattr(final, "coef_", None), np.ndarray):
        return None
    return CompiledPath(features, steps[:-1], final)


def build(model: LoadedModel, column_types: Mapping[str, str | None],
          reference) -> NumpyPath | None:
    """A verified :class:`NumpyPath` for ``model``, or None when it does not apply.

    ``column_types``: the signature's MLflow type per input column. ``reference(df,
    proba)`` is the DataFrame path the probe result is compared with.
    """
    impl = getattr(model, "_impl", None)
    if model.flavor != "sklearn" or impl is None:
        return None
    try:
        steps = active_steps(impl)
        if steps is None:
            return None
        names = getattr(steps[0], "feature_names_in_", None)
        if names is None:
            return None
        features = [str(n) for n in names]
        if any(f not in column_types or column_types[f] not in NUMERIC | {None}
               for f in features):
            return None
        compiled = _compiled(features, steps)
        if compiled is not None and _agrees(compiled, column_types, reference):
            return compiled
        stripped = [_without_names(s) for s in steps]
        path = NumpyPath(features, stripped[:-1], stripped[-1],
                         hasattr(steps[-1], "predict_proba"))
        if not _agrees(path, column_types, reference):
            log.info("numpy fast path disabled for %s: probe results differ", model.display)
            return None
        return path
    except Exception as exc:  # noqa: BLE001 - the DataFrame path always works
        log.info("numpy fast path disabled for %s: %s: %s", model.display,
                 type(exc).__name__, exc)
        return None


def active_steps(impl) -> list | None:
    """The steps a scikit-learn model runs: a Pipeline's active steps (``None`` and
    ``'passthrough'`` left out) or ``[impl]``; None when they cannot be run one by one
    (metadata routing on, a last step without ``predict``, a middle one without
    ``transform``)."""
    from sklearn import get_config
    from sklearn.pipeline import Pipeline

    if get_config().get("enable_metadata_routing"):
        return None
    if type(impl) is Pipeline:
        steps = [s for _, s in impl.steps if s is not None and s != "passthrough"]
    else:
        steps = [impl]
    if not steps or not hasattr(steps[-1], "predict"):
        return None
    if not all(hasattr(s, "transform") for s in steps[:-1]):
        return None
    return steps


def _without_names(step):
    """A shallow copy that no longer checks column names (fitted state is shared)."""
    twin = copy.copy(step)
    if "feature_names_in_" in vars(twin):
        del twin.feature_names_in_
    return twin


def _agrees(path: NumpyPath, column_types: Mapping[str, str | None], reference) -> bool:
    import pandas as pd

    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for name in path.features:
        if column_types.get(name) in ("long", "integer"):
            arrays[name] = rng.integers(0, 5, PROBE_ROWS).astype(np.int64)
        else:
            arrays[name] = rng.normal(size=PROBE_ROWS).round(3)
    want_pred, want_proba = reference(pd.DataFrame(arrays), path.has_proba)
    pred, proba = path.predict(path.matrix(arrays, PROBE_ROWS), path.has_proba)
    pred, want_pred = np.asarray(pred), np.asarray(want_pred)
    if pred.dtype.kind == "f" and want_pred.dtype.kind == "f":
        # a regressor: the two matrices differ in memory layout, so BLAS may round the
        # last bit differently
        if not np.allclose(pred, want_pred, rtol=1e-9, atol=1e-12):
            return False
    elif not np.array_equal(pred, want_pred):
        return False
    if want_proba is None:
        return proba is None or not path.has_proba
    return proba is not None and np.allclose(proba, want_proba, rtol=1e-9, atol=1e-12)

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
SMALL_BATCH = 64  # rows up to which a one-hot column is encoded with a dictionary
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
        return logistic_answers(final.classes_, d, proba and self.has_proba)


def logistic_answers(classes: np.ndarray, d: np.ndarray, proba: bool
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``LogisticRegression``'s ``predict`` and ``predict_proba`` from its decision
    function ``d``, as scikit-learn computes them (1.x): labels by ``d > 0`` (binary) or
    the argmax; probabilities ``expit`` stacked as ``[1 - p, p]`` (binary) or the
    softmax of ``d`` (multinomial)."""
    if d.ndim == 2 and d.shape[1] == 1:
        d = d.ravel()
    if d.ndim == 1:
        pred = classes.take((d > 0).astype(np.intp))
        if not proba:
            return pred, None
        from scipy.special import expit

        p = expit(d)
        return pred, np.stack([1 - p, p], axis=1)
    pred = classes.take(np.argmax(d, axis=1))
    if not proba:
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


# ------------------------------------------------------------ ColumnTransformer first

class FramelessPath:
    """A ``Pipeline`` whose first step is a ``ColumnTransformer``, fed without a DataFrame.

    scikit-learn's ``ColumnTransformer.transform`` on a one-row DataFrame spends most of
    a request (pandas column selection, per-transformer input checks): about 8 ms of the
    9 ms one row of one-hot + HistGradientBoosting takes, where the trees take 0.7 ms.
    This path selects the columns from the request's arrays itself and computes, per
    fitted transformer, what it computes:

    * ``OneHotEncoder`` (no ``drop``, no infrequent categories, float64 output, string or
      number categories without missing values): the category's index per value (a
      dictionary lookup; for a large batch, of the distinct values ``pandas.factorize``
      finds), 1.0 at the category's index, an unknown category all zeros under ``handle_unknown=
      'ignore'`` (an error otherwise, which sends the batch to the DataFrame path);
    * ``StandardScaler``: ``(x - mean_) / scale_`` on float64, as its ``transform``;
    * ``'passthrough'`` (and the remainder, an identity ``FunctionTransformer`` once
      fitted): the numeric columns as float64;
    * any other transformer of one column named by a string (``TfidfVectorizer`` on a
      text column): its own ``transform`` on the column's array;

    then stacks the blocks the way ``ColumnTransformer`` does (dense ``np.hstack``, or
    ``scipy.sparse.hstack(...).tocsr()`` when it was fitted to output sparse) and runs the
    rest of the pipeline's steps; a random forest last is run tree by tree
    (:func:`forest_proba`). It is built only when a probe batch gives the same
    transformed matrix (exactly) and the same predictions as the DataFrame path; at call
    time any error sends the batch to the DataFrame path, which classifies it.
    """

    def __init__(self, ct, blocks: list, rest: list, final, has_proba: bool) -> None:
        self.ct = ct
        self.blocks = blocks
        self.rest = rest
        self.final = final
        self.has_proba = has_proba
        self.sparse = bool(getattr(ct, "sparse_output_", False))
        self.columns = sorted({c for _, cols, _ in blocks for c in cols})

    def transform(self, arrays: Mapping[str, np.ndarray], n_rows: int):
        from scipy import sparse

        parts = [fn(arrays, cols, n_rows) for _, cols, fn in self.blocks]
        if self.sparse:  # what ColumnTransformer does, without the COO round trip for a request
            return csr_hstack(parts, n_rows) if n_rows <= SMALL_BATCH \
                else sparse.hstack(parts).tocsr()
        parts = [p.toarray() if sparse.issparse(p) else p for p in parts]
        return np.hstack(parts)

    def predict(self, arrays: Mapping[str, np.ndarray], n_rows: int, proba: bool):
        from mlcd_actions.delivery.serving.spec import one_pass

        x = self.transform(arrays, n_rows)
        for step in self.rest:
            x = step.transform(x)
        final = self.final
        if forest_supported(final, x):
            p = forest_proba(final, x)
            pred = final.classes_.take(np.argmax(p, axis=1), axis=0)
            return pred, (p if proba and self.has_proba else None)
        if logistic_supported(final):
            return logistic_answers(final.classes_, linear_decision(final, x),
                                    proba and self.has_proba)
        if proba and self.has_proba:
            return one_pass(final, x)
        return final.predict(x), None


def csr_hstack(parts: list, n_rows: int):
    """``scipy.sparse.hstack(parts).tocsr()`` for CSR and dense blocks, as it stores it
    (each row's entries block by block, a dense block's zeros left out), without the
    COO round trip: about 0.8 ms for one row of two blocks. For a large chunk scipy's own
    conversion is the faster (100,000 rows of 35 entries: 0.055 against 0.12 CPU s)."""
    from scipy import sparse

    rows, cols, data = [], [], []
    offset = 0
    for p in parts:
        p = p if sparse.issparse(p) and p.format == "csr" else sparse.csr_matrix(p)
        rows.append(np.repeat(np.arange(n_rows), np.diff(p.indptr)))
        cols.append(p.indices.astype(np.int64) + offset)
        data.append(p.data)
        offset += p.shape[1]
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_rows), out=indptr[1:])
    dtype = np.result_type(*[d.dtype for d in data])
    return sparse.csr_matrix((np.concatenate(data).astype(dtype, copy=False)[order],
                              np.concatenate(cols)[order], indptr),
                             shape=(n_rows, offset))


def logistic_supported(final) -> bool:
    """A fitted scikit-learn ``LogisticRegression`` with numpy coefficients whose
    probabilities are those of :func:`logistic_answers` (binary, or multinomial: not the
    one-vs-rest option of older scikit-learn versions)."""
    classes = getattr(final, "classes_", None)
    return (type(final).__name__ == "LogisticRegression"
            and type(final).__module__.startswith("sklearn.")
            and isinstance(getattr(final, "coef_", None), np.ndarray)
            and isinstance(classes, np.ndarray) and len(classes) >= 2
            and (len(classes) == 2 or getattr(final, "multi_class", "deprecated")
                 in ("deprecated", "multinomial")))


def linear_decision(final, x) -> np.ndarray:
    """``final.decision_function(x)`` without its input checks: the same product
    (``safe_sparse_dot(x, coef_.T) + intercept_``). Non-finite values or another width
    raise, as the checks would (the DataFrame path then reports them)."""
    from scipy import sparse
    from sklearn.utils.extmath import safe_sparse_dot

    values = x.data if sparse.issparse(x) else x
    if x.shape[1] != final.coef_.shape[1] or not np.isfinite(values).all():
        raise ValueError("input the model's own checks refuse")
    scores = safe_sparse_dot(x, final.coef_.T, dense_output=True) + final.intercept_
    return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores


def forest_supported(final, x) -> bool:
    """A fitted single-output ``RandomForestClassifier``/``ExtraTreesClassifier`` and a
    dense matrix: :func:`forest_proba` applies."""
    return (type(final).__name__ in ("RandomForestClassifier", "ExtraTreesClassifier")
            and type(final).__module__.startswith("sklearn.")
            and getattr(final, "n_outputs_", 0) == 1 and isinstance(x, np.ndarray)
            and x.ndim == 2)


def forest_proba(forest, x: np.ndarray) -> np.ndarray:
    """``forest.predict_proba(x)`` as scikit-learn computes it with ``n_jobs=1`` (the
    trees' class fractions summed in order, then divided by the number of trees),
    without the per-tree input checks and the joblib dispatch (about 60 µs a tree for one
    row, 6 ms for 100 trees). Non-finite input raises (the DataFrame path decides)."""
    x32 = np.asarray(x, dtype=np.float32)
    if not np.isfinite(x32).all():
        raise ValueError("non-finite input")
    k = int(forest.n_classes_)
    out = np.zeros((x32.shape[0], k), dtype=np.float64)
    for tree in forest.estimators_:
        out += tree.tree_.predict(x32)[:, :k]
    out /= len(forest.estimators_)
    return out


def _onehot_block(enc):
    """The computation of a fitted ``OneHotEncoder``, or None when not supported."""
    if type(enc).__name__ != "OneHotEncoder" or not type(enc).__module__.startswith("sklearn.") \
            or getattr(enc, "drop_idx_", None) is not None \
            or getattr(enc, "_infrequent_enabled", False) \
            or np.dtype(enc.dtype) != np.float64 \
            or enc.handle_unknown not in ("ignore", "error", "infrequent_if_exist"):
        return None
    lookups: list[dict] = []
    for cats in enc.categories_:
        values = cats.tolist()
        if not all(isinstance(v, str) for v in values) and \
                not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
                        for v in values):
            return None  # None/NaN categories, mixed types: the DataFrame path
        lookups.append({v: i for i, v in enumerate(values)})
    offsets = np.cumsum([0] + [len(c) for c in enc.categories_])
    ignore = enc.handle_unknown != "error"
    textual = [all(isinstance(v, str) for v in c.tolist()) for c in enc.categories_]

    def run(arrays, cols, n):
        import pandas as pd

        out = np.zeros((n, int(offsets[-1])), dtype=np.float64)
        for j, col in enumerate(cols):
            values = arrays[col]
            if textual[j] != (values.dtype.kind == "O"):
                raise TypeError(f"column {col!r}: {values.dtype} for these categories")
            # the category's index per value, -1 for an unknown one: a dictionary for a
            # few rows (a request); for many (a batch chunk) the distinct values are found
            # by a hash lookup in C (pandas.factorize) and only they go through the dictionary
            lookup = lookups[j]
            if n <= SMALL_BATCH:
                items = values.tolist()
                if textual[j] and not all(type(v) is str for v in items):
                    raise TypeError(f"column {col!r}: a value that is not a string")
                codes = np.array([lookup.get(v, -1) for v in items], dtype=np.intp)
            else:
                if textual[j] and pd.api.types.infer_dtype(values, skipna=False) != "string":
                    raise TypeError(f"column {col!r}: a value that is not a string")
                seen, distinct = pd.factorize(values, use_na_sentinel=False)
                codes = np.array([lookup.get(v, -1) for v in distinct.tolist()],
                                 dtype=np.intp)[seen]
            known = codes >= 0
            if not ignore and not known.all():
                raise ValueError(f"column {col!r}: unknown category")
            rows = np.flatnonzero(known)
            out[rows, offsets[j] + codes[rows].astype(np.intp)] = 1.0
        return out

    return run


def _scaler_block(scaler):
    if type(scaler).__name__ != "StandardScaler" or \
            not type(scaler).__module__.startswith("sklearn."):
        return None

    def run(arrays, cols, n):
        x = np.empty((n, len(cols)), dtype=np.float64)
        for j, col in enumerate(cols):
            a = arrays[col]
            if a.dtype.kind not in "fiub":
                raise TypeError(f"column {col!r} is not numeric")
            x[:, j] = a
        if scaler.with_mean:
            x -= scaler.mean_
        if scaler.with_std:
            x /= scaler.scale_
        return x

    return run


def _passthrough_block(arrays, cols, n):
    x = np.empty((n, len(cols)), dtype=np.float64)
    for j, col in enumerate(cols):
        a = arrays[col]
        if a.dtype.kind not in "fiub":
            raise TypeError(f"column {col!r} is not numeric")
        x[:, j] = a
    return x


def _one_column_block(trans):
    def run(arrays, cols, n):
        return trans.transform(arrays[cols[0]])

    return run


def _tfidf_block(vec, vector_rows: int = SMALL_BATCH):
    """A fitted ``TfidfVectorizer``'s ``transform`` of one text column, as scikit-learn
    computes it (1.x: ``CountVectorizer._count_vocab`` with the fitted vocabulary, then
    ``TfidfTransformer.transform``: sublinear tf, idf weights, row normalisation with the
    same kernels), without its input checks; None when not supported. The counts of more
    than ``vector_rows`` documents are computed by :class:`text.WordCounts` when it
    supports the vectorizer and the chunk (the same matrix), else document by document."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.utils.sparsefuncs_fast import (
        inplace_csr_row_normalize_l1,
        inplace_csr_row_normalize_l2,
    )

    from mlcd_actions.delivery.serving.text import WordCounts

    tf = getattr(vec, "_tfidf", None)
    if type(vec) is not TfidfVectorizer or vec.input != "content" or tf is None \
            or not isinstance(getattr(vec, "vocabulary_", None), dict) \
            or tf.norm not in (None, "l1", "l2") \
            or np.dtype(vec.dtype) not in (np.float64, np.float32):
        return None
    try:
        idf = tf.idf_ if tf.use_idf else None
    except AttributeError:
        return None
    normalize = {"l1": inplace_csr_row_normalize_l1, "l2": inplace_csr_row_normalize_l2,
                 None: None}[tf.norm]
    analyze, vocab, dtype = vec.build_analyzer(), vec.vocabulary_, np.dtype(vec.dtype)
    shape_cols = len(vocab)
    vectorised = WordCounts.of(vec)

    def count(docs: np.ndarray, n: int):
        indices: list = []
        counts: list[int] = []
        indptr = [0]
        for doc in docs.tolist():
            if type(doc) is not str:
                raise TypeError("a document that is not a string")
            counter: dict = {}
            for feature in analyze(doc):
                idx = vocab.get(feature)
                if idx is not None:
                    counter[idx] = counter.get(idx, 0) + 1
            indices.extend(counter)
            counts.extend(counter.values())
            indptr.append(len(indices))
        x = sparse.csr_matrix((np.asarray(counts, dtype=dtype),
                               np.asarray(indices, dtype=np.int32),
                               np.asarray(indptr, dtype=np.int32)), shape=(n, shape_cols))
        x.sort_indices()
        return x

    def run(arrays, cols, n):
        docs = arrays[cols[0]]
        x = vectorised.counts(docs) if vectorised is not None and n > run.vector_rows \
            else None
        if x is None:
            x = count(docs, n)
        if vec.binary:
            x.data.fill(1)
        if tf.sublinear_tf:
            np.log(x.data, x.data)
            x.data += 1.0
        if idf is not None:
            x.data *= idf[x.indices]
        if normalize is not None:
            normalize(x)
        return x

    run.vector_rows = vector_rows
    return run


def _identity(trans) -> bool:
    """The ``FunctionTransformer`` a fitted ``ColumnTransformer`` puts for passthrough."""
    return (type(trans).__name__ == "FunctionTransformer"
            and type(trans).__module__.startswith("sklearn.")
            and trans.func is None and not trans.validate)


def _ct_blocks(ct) -> list | None:
    """``[(name, [columns], fn), ...]`` for the fitted ``ColumnTransformer``, or None."""
    names_in = [str(c) for c in getattr(ct, "feature_names_in_", [])]
    if not names_in or getattr(ct, "_sklearn_output_config", {}).get("transform") \
            not in (None, "default"):
        return None
    blocks = []
    for name, trans, columns in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        one = isinstance(columns, str)
        cols = [columns] if one else list(columns) if isinstance(columns, (list, tuple,
                                                                          np.ndarray)) else None
        if cols is None:
            return None
        if cols and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool)
                        for c in cols):
            cols = [names_in[int(c)] for c in cols]
        if not all(isinstance(c, str) for c in cols):
            return None  # boolean masks, slices: the DataFrame path
        if not cols:
            continue
        if isinstance(trans, str) or _identity(trans):
            if isinstance(trans, str) and trans != "passthrough":
                return None
            blocks.append((name, cols, _passthrough_block))
            continue
        fn = None if one else (_onehot_block(trans) or _scaler_block(trans))
        if fn is None and one:
            fn = _tfidf_block(trans) or _one_column_block(trans)
        if fn is None:
            return None
        blocks.append((name, cols, fn))
    return blocks or None


def build_frameless(model: LoadedModel, column_types: Mapping[str, str | None],
                    reference) -> FramelessPath | None:
    """A verified :class:`FramelessPath` for a ``Pipeline(ColumnTransformer, ...)``."""
    impl = getattr(model, "_impl", None)
    if model.flavor != "sklearn" or impl is None:
        return None
    try:
        from sklearn.compose import ColumnTransformer

        steps = active_steps(impl)
        if steps is None or len(steps) < 2 or type(steps[0]) is not ColumnTransformer:
            return None
        blocks = _ct_blocks(steps[0])
        if blocks is None:
            return None
        path = FramelessPath(steps[0], blocks, steps[1:-1], steps[-1],
                             hasattr(steps[-1], "predict_proba"))
        if any(c not in column_types for c in path.columns):
            return None
        if not _frameless_agrees(path, column_types, reference):
            log.info("frameless path disabled for %s: probe results differ", model.display)
            return None
        return path
    except Exception as exc:  # noqa: BLE001 - the DataFrame path always works
        log.info("frameless path disabled for %s: %s: %s", model.display,
                 type(exc).__name__, exc)
        return None


def _probe_arrays(path: FramelessPath, column_types: Mapping[str, str | None]
                  ) -> dict[str, np.ndarray]:
    """Probe rows: known (and unknown) categories, words of a vectorizer, numbers."""
    rng = np.random.default_rng(0)
    values: dict[str, np.ndarray] = {}
    fitted = {name: trans for name, trans, _ in path.ct.transformers_}
    for name, cols, _ in path.blocks:
        trans = fitted.get(name)
        for j, col in enumerate(cols):
            cats = getattr(trans, "categories_", None)
            vocab = getattr(trans, "vocabulary_", None)
            if cats is not None:
                pool = cats[j].tolist()
                if trans.handle_unknown != "error" and isinstance(pool[0], str):
                    pool = [*pool, "__unknown__"]
                values[col] = np.array([pool[k % len(pool)] for k in range(PROBE_ROWS)],
                                       dtype=object if isinstance(pool[0], str) else None)
            elif vocab is not None:  # with capitals, punctuation, one-letter words
                words = [*sorted(vocab)[:50], "Zz", "x", "9"]
                values[col] = np.array([", ".join(rng.choice(words, 6)) + "! zz_unseen"
                                        for _ in range(PROBE_ROWS)], dtype=object)
    for col in path.columns:
        if col in values:
            continue
        kind = column_types.get(col)
        if kind in ("long", "integer"):
            values[col] = rng.integers(0, 5, PROBE_ROWS).astype(np.int64)
        elif kind == "string":
            values[col] = np.array([f"v{k}" for k in range(PROBE_ROWS)], dtype=object)
        else:
            values[col] = rng.normal(size=PROBE_ROWS).round(3)
    return values


def _frameless_agrees(path: FramelessPath, column_types, reference) -> bool:
    import pandas as pd
    from scipy import sparse

    arrays = _probe_arrays(path, column_types)
    frame = pd.DataFrame({c: arrays[c] for c in column_types if c in arrays}, copy=False)
    for c in column_types:  # columns the model does not use: any value
        if c not in frame:
            frame[c] = np.zeros(PROBE_ROWS)
    want_x = path.ct.transform(frame)
    # the probe is small: the TF-IDF blocks' large-chunk code (text.WordCounts) is
    # compared too, the path not being shared yet
    got = [path.transform(arrays, PROBE_ROWS)]
    text_blocks = [fn for _, _, fn in path.blocks if hasattr(fn, "vector_rows")]
    if text_blocks:
        saved = [fn.vector_rows for fn in text_blocks]
        try:
            for fn in text_blocks:
                fn.vector_rows = 0
            got.append(path.transform(arrays, PROBE_ROWS))
        finally:
            for fn, rows in zip(text_blocks, saved, strict=True):
                fn.vector_rows = rows
    for got_x in got:
        if sparse.issparse(want_x) != sparse.issparse(got_x) or want_x.shape != got_x.shape:
            return False
        if sparse.issparse(want_x):
            if (want_x != got_x).nnz:
                return False
        elif not np.array_equal(want_x, got_x):
            return False
    want_pred, want_proba = reference(frame, path.has_proba)
    pred, proba = path.predict(arrays, PROBE_ROWS, path.has_proba)
    pred, want_pred = np.asarray(pred), np.asarray(want_pred)
    if pred.dtype.kind == "f" and want_pred.dtype.kind == "f":
        if not np.allclose(pred, want_pred, rtol=1e-9, atol=1e-12):
            return False
    elif not np.array_equal(pred, want_pred):
        return False
    if want_proba is None:
        return proba is None or not path.has_proba
    return proba is not None and np.allclose(proba, want_proba, rtol=1e-9, atol=1e-12)

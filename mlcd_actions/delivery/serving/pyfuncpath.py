"""A ``python_function`` model (not scikit-learn) called without MLflow's per-call work.

``PyFuncModel.predict`` spends most of a single-row request on bookkeeping, not on the
user's model: schema enforcement (it rebuilds the DataFrame column by column and
checks every type: about 1.5 ms of 2 ms for a small numpy scorer), reading the model's
``predict`` signature with ``inspect`` on every call, and the DataFrame construction.
The serving API has already checked every value against the signature
(:mod:`.payload`), so for the dtypes where MLflow's enforcement is an identity the
enforced frame is the frame we built.

:class:`PyfuncPath` builds that frame (as enforcement returns it: one consolidated
block per dtype; one 2-D block filled directly when all columns share a numeric dtype)
and calls the model's own
``predict(context, frame)`` inside MLflow's prediction context, as ``PyFuncModel.predict``
does. It is built only when

* the model is a ``PythonModel`` wrapped by MLflow (``_PythonModelPyfuncWrapper``) with a
  signature of named columns, no params schema, no type-hint signature and no
  example-driven input conversion, and MLflow's private helpers it uses import;
* MLflow's input conversion leaves a DataFrame as it is (the model has no ``list[str]``
  / ``list[dict]`` / dataclass type hint);
* on probe rows (the model's saved input example, sent through the request parser, or
  rows made from the signature's types) MLflow's schema enforcement returns a frame
  equal to ours, with the same dtypes and the same blocks, and the model's answers
  through this path and through ``PyFuncModel.predict`` are equal (class labels
  exactly, numbers within 1e-9).

At call time a batch whose column dtypes differ from the probed ones (a whole-number
column holding a null, a string column holding a null) goes to ``PyFuncModel.predict``,
and so does any error: that path classifies it (bad values: 422; a failing model: 500).

The same probe tells whether the model answers a row the same alone and inside a batch
(:attr:`PyfuncPath.row_wise`); a model that does not (one that normalises by the batch)
is never given other requests' rows by the micro-batcher.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlcd_actions.delivery.serving.spec import Column
    from mlcd_actions.models.loading import LoadedModel

log = logging.getLogger("mlcd")

PROBE_ROWS = 8
_BLOCK_KINDS = "fiu"  # numeric dtypes pandas keeps in one 2-D block


class PyfuncPath:
    """``frame -> python_model.predict(context, frame)`` for validated request arrays."""

    def __init__(self, model: Any, call: Callable[[Any], Any],
                 dtypes: dict[str, np.dtype]) -> None:
        import pandas as pd

        self._model = model               # the PyFuncModel (prediction context)
        self._call = call                 # frame -> the python model's raw answer
        self.dtypes = dtypes              # column -> the dtype the probe verified
        self.names = list(dtypes)
        self._index = pd.Index(self.names)
        kinds = {d for d in dtypes.values()}
        self._block = (len(kinds) == 1 and next(iter(kinds)).kind in _BLOCK_KINDS)
        self.row_wise = True

    def accepts(self, arrays: dict[str, np.ndarray]) -> bool:
        """True when every column has the dtype the probe verified (nothing else)."""
        if len(arrays) != len(self.dtypes):
            return False
        for name, dtype in self.dtypes.items():
            a = arrays.get(name)
            if a is None or a.dtype != dtype:
                return False
            if dtype.kind == "O" and None in a.tolist():
                return False
        return True

    def frame(self, arrays: dict[str, np.ndarray], n_rows: int) -> pd.DataFrame:
        """The frame MLflow's schema enforcement hands the model: the columns in
        signature order, one consolidated block per dtype (built directly as one 2-D
        block when the columns share one numeric dtype: no per-column work)."""
        import pandas as pd

        if not self._block:
            return pd.DataFrame({n: arrays[n] for n in self.names})
        block = np.empty((len(self.names), n_rows), dtype=self.dtypes[self.names[0]])
        for j, name in enumerate(self.names):
            block[j] = arrays[name]
        return pd.DataFrame(block.T, columns=self._index, copy=False)

    def predict(self, arrays: dict[str, np.ndarray], n_rows: int) -> Any:
        from mlflow.pyfunc.context import Context, set_prediction_context
        from mlflow.tracing.utils import _try_get_prediction_context

        frame = self.frame(arrays, n_rows)
        context = _try_get_prediction_context() or Context()
        with set_prediction_context(context):
            model = self._model
            if model.model_id:
                context.update(model_id=model.model_id)
            return self._call(frame)


def build(model: LoadedModel, columns: list[Column], reference) -> PyfuncPath | None:
    """A verified :class:`PyfuncPath` for ``model``, or None when it does not apply.

    ``reference(frame, proba)`` is the DataFrame path (``PyFuncModel.predict``)."""
    pyfunc = getattr(model, "_impl", None)
    if model.flavor != "python_function" or pyfunc is None:
        return None
    try:
        call = _direct_call(pyfunc)
        if call is None:
            return None
        rows = _probe_rows(model, columns)
        from mlcd_actions.delivery.serving import payload
        from mlcd_actions.models.loading import check_predictions

        batch = payload.parse(json.dumps(rows).encode(), columns)
        path = PyfuncPath(pyfunc, call,
                          {n: a.dtype for n, a in batch.arrays.items()})
        if not path.accepts(batch.arrays) or not _enforcement_is_identity(
                pyfunc, path, batch):
            log.info("pyfunc direct path disabled for %s: schema enforcement changes the "
                     "input", model.display)
            return None
        want, _ = reference(path.frame(batch.arrays, batch.n_rows), False)
        got = check_predictions(path.predict(batch.arrays, batch.n_rows), batch.n_rows)
        if not same(got, want):
            log.info("pyfunc direct path disabled for %s: probe results differ",
                     model.display)
            return None
        path.row_wise = _row_wise(path, batch, got)
        return path
    except Exception as exc:  # noqa: BLE001 - the DataFrame path always works
        log.info("pyfunc direct path disabled for %s: %s: %s", model.display,
                 type(exc).__name__, exc)
        return None


def _direct_call(pyfunc) -> Callable[[Any], Any] | None:
    """``frame -> answer`` as ``PyFuncModel.predict`` would call the python model once
    the schema is enforced, or None when MLflow would do more than that."""
    import inspect

    from mlflow.pyfunc.model import (
        _is_context_in_predict_function_signature,
        _PythonModelPyfuncWrapper,
    )

    impl = pyfunc._model_impl
    meta = pyfunc.metadata
    if type(impl) is not _PythonModelPyfuncWrapper or meta.get_input_schema() is None \
            or meta.get_params_schema() is not None or meta._is_signature_from_type_hint() \
            or meta._is_type_hint_from_example() or meta.metadata and \
            meta.metadata.get("dependencies_schemas"):
        return None
    if getattr(pyfunc, "_predict_fn", None) != impl.predict:
        return None  # another predict function (predict_stream...): MLflow's path
    python_model = impl.python_model
    params = inspect.signature(python_model.predict).parameters
    kwargs = {"params": None} if "params" in params else {}
    if _is_context_in_predict_function_signature(parameters=params):
        context = impl.context
        return lambda frame: python_model.predict(context, frame, **kwargs)
    return lambda frame: python_model.predict(frame, **kwargs)


def _enforcement_is_identity(pyfunc, path: PyfuncPath, batch) -> bool:
    """MLflow's schema enforcement and input conversion leave the probe frame as it is."""
    import pandas as pd
    from mlflow.models.utils import _enforce_schema

    frame = path.frame(batch.arrays, batch.n_rows)
    reference = pd.DataFrame(batch.arrays, copy=False)
    pd.testing.assert_frame_equal(frame, reference, check_exact=True)
    enforced = _enforce_schema(reference, pyfunc.metadata.get_input_schema())
    if not isinstance(enforced, pd.DataFrame) or list(enforced.dtypes) != list(frame.dtypes):
        return False
    try:
        pd.testing.assert_frame_equal(enforced, frame, check_exact=True)
    except AssertionError:
        return False
    return _layout(enforced) == _layout(frame) and \
        pyfunc._model_impl._convert_input(frame) is frame


def _layout(frame: pd.DataFrame) -> list | None:
    """How pandas stores the frame: (dtype, column positions) per block; None where this
    pandas does not tell (then only values and dtypes are compared)."""
    try:
        return [(str(b.dtype), b.mgr_locs.as_array.tolist()) for b in frame._mgr.blocks]
    except AttributeError:
        return None


def _probe_rows(model: LoadedModel, columns: list[Column]) -> list[dict]:
    """JSON records: the model's saved input example, else rows from the column types."""
    example = None
    if model.local_path is not None:
        try:
            example = model._impl.metadata.load_input_example(model.local_path)
        except Exception:  # noqa: BLE001 - no example or unreadable: make rows
            example = None
    if example is not None and hasattr(example, "to_json") and len(example):
        rows = json.loads(example.to_json(orient="records"))
        if all(c.name in rows[0] for c in columns if c.required):
            while len(rows) < 2:
                rows.append(dict(rows[0]))
            return rows[:PROBE_ROWS]
    rng = np.random.default_rng(0)
    out = []
    for k in range(PROBE_ROWS):
        row: dict[str, Any] = {}
        for c in columns:
            if c.type in ("long", "integer"):
                row[c.name] = int(rng.integers(0, 5))
            elif c.type == "boolean":
                row[c.name] = bool(k % 2)
            elif c.type in ("double", "float", None):
                row[c.name] = round(float(rng.normal()), 3)
            elif c.type == "string":
                row[c.name] = f"v{k % 3}"
            else:
                raise TypeError(f"column {c.name!r}: no probe value for {c.type}")
        out.append(row)
    return out


def _row_wise(path: PyfuncPath, batch, together: np.ndarray) -> bool:
    """Each probe row answered alone equals its answer inside the batch."""
    from mlcd_actions.models.loading import check_predictions

    for i in range(batch.n_rows):
        one = {n: a[i:i + 1] for n, a in batch.arrays.items()}
        alone = check_predictions(path.predict(one, 1), 1)
        if not same(alone, together[i:i + 1]):
            return False
    return True


def same(got: np.ndarray, want: np.ndarray) -> bool:
    """Class labels equal, numbers within the batching tolerance."""
    from mlcd_actions.models.loading import BATCH_ATOL, BATCH_RTOL

    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype.kind == "f" and want.dtype.kind == "f":
        return bool(np.allclose(got, want, rtol=BATCH_RTOL, atol=BATCH_ATOL, equal_nan=True))
    return bool(np.array_equal(got, want))

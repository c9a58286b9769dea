"""``mlcd prepare``: transform a snapshot and split it into ``train.parquet`` / ``test.parquet``.

Order of work:

1. read ``DATA``; the label must exist (exit 2 naming it);
2. the user transform ``module:function(df) -> df`` on the whole frame, if given
   (importable from the current directory, like a module of the user's repository; a
   ``path/to/file.py:function`` works too). It raising fails the stage (exit 1) with the
   last lines of its traceback in the report;
3. rows without a label are dropped (counted in the report);
4. the split: seeded and, for classification labels, stratified by default; or by a
   hashed id (``--split-by-id COL``) so a row keeps its side across data versions;
5. declarative steps (``--step``, ``step:`` in mlcd.yaml), fitted on the training side
   only and applied to both sides (no test-set leakage):

   ``impute:<cols>=mean|median|most_frequent|constant:<value>``
   ``scale:<cols>[=standard|minmax|robust]``
   ``encode:<cols>[=onehot|ordinal]``
   ``derive:<new column>=<pandas expression>``
   ``drop:<cols>``

   ``<cols>`` is a comma-separated list of columns, or ``*`` (every numeric feature for
   impute mean/median and scale, every text/categorical feature for encode, every
   feature with missing values for the other impute strategies); the label is never
   touched by ``*``.
6. ``DIR/train.parquet``, ``DIR/test.parquet`` and ``DIR/prepare.json`` are written
   together, atomically: all of them or none.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, DataError, StageFailed
from mlcd_actions.core.results import FAILED, Finding, StageResult, Table

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STAGE = "prepare"
TRACEBACK_LINES = 12
log = logging.getLogger("mlcd")

# --------------------------------------------------------------------------- steps

STEP_KINDS = {
    "impute": ("mean", "median", "most_frequent", "constant"),
    "scale": ("standard", "minmax", "robust"),
    "encode": ("onehot", "ordinal"),
    "derive": (),
    "drop": (),
}
_DEFAULT_METHOD = {"scale": "standard", "encode": "onehot"}


@dataclass
class Step:
    kind: str
    columns: list[str]          # ["*"] for "every suitable column"
    method: str | None = None
    value: str | None = None    # impute constant, or the derive expression
    spec: str = ""
    fitted: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return self.spec


def parse_step(spec: Any) -> Step:
    """``'impute:age=median'`` (or ``{'impute': 'age=median'}``) -> :class:`Step`."""
    if isinstance(spec, dict):
        if len(spec) != 1:
            raise ConfigError(f"step {spec!r}: a mapping step has exactly one key, the kind "
                              f"({', '.join(STEP_KINDS)})")
        (kind, rest), = spec.items()
        spec = f"{kind}:{rest}"
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError(f"step {spec!r}: expected 'kind:columns[=method]' with kind one of "
                          f"{', '.join(STEP_KINDS)} (e.g. 'impute:age=median')")
    text = spec.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in STEP_KINDS:
        raise ConfigError(f"step {text!r}: unknown kind {kind!r}; use {', '.join(STEP_KINDS)}")
    cols_text, eq, arg = rest.partition("=")
    columns = [c.strip() for c in cols_text.split(",") if c.strip()]
    if not columns:
        raise ConfigError(f"step {text!r}: no column named")
    arg = arg.strip()
    if kind == "derive":
        if len(columns) != 1 or columns == ["*"] or not arg:
            raise ConfigError(f"step {text!r}: derive is 'derive:<new column>=<expression>'")
        return Step(kind, columns, None, arg, text)
    if kind == "drop":
        if eq:
            raise ConfigError(f"step {text!r}: drop takes no '=' part ('drop:col1,col2')")
        return Step(kind, columns, None, None, text)
    method, _, value = arg.partition(":")
    method = method.strip().lower().replace("-", "_") or _DEFAULT_METHOD.get(kind, "")
    method = {"mode": "most_frequent", "one_hot": "onehot", "min_max": "minmax"}.get(method,
                                                                                   method)
    if method not in STEP_KINDS[kind]:
        raise ConfigError(f"step {text!r}: unknown {kind} method {method or '(none)'!r}; "
                          f"use {', '.join(STEP_KINDS[kind])}")
    if method == "constant" and not value:
        raise ConfigError(f"step {text!r}: constant needs a value ('constant:0')")
    return Step(kind, columns, method, value if method == "constant" else None, text)


def _resolve_columns(step: Step, df: pd.DataFrame, label: str) -> list[str]:
    import pandas as pd

    features = [c for c in df.columns if c != label]
    if step.columns == ["*"]:
        if step.kind == "scale" or (step.kind == "impute" and step.method in ("mean", "median")):
            return [c for c in features if pd.api.types.is_numeric_dtype(df[c].dtype)
                    and not pd.api.types.is_bool_dtype(df[c].dtype)]
        if step.kind == "encode":
            return [c for c in features if not pd.api.types.is_numeric_dtype(df[c].dtype)
                    or isinstance(df[c].dtype, pd.CategoricalDtype)]
        if step.kind == "impute":
            return [c for c in features if df[c].isna().any()]
        raise ConfigError(f"step {step.spec!r}: '*' is not allowed for {step.kind}")
    for c in step.columns:
        if c == label:
            raise ConfigError(f"step {step.spec!r}: would change the label column {label!r}")
        if c not in df.columns:
            raise DataError(f"step {step.spec!r}: column {c!r} not found "
                            f"(columns: {', '.join(map(str, list(df.columns)[:20]))})")
    return list(step.columns)


def _check_finite(step: Step, df: pd.DataFrame, cols: list[str]) -> None:
    import numpy as np
    import pandas as pd

    for c in cols:
        if pd.api.types.is_float_dtype(df[c].dtype):
            bad = np.flatnonzero(np.isinf(df[c].to_numpy(dtype=float, na_value=np.nan)))
            if len(bad):
                raise DataError(f"step {step.spec!r}: column {c!r} has {len(bad)} infinite "
                                f"value(s) (first at training row {bad[0] + 1}); replace them "
                                "in the transform first")


def fit_apply(steps: list[Step], train: pd.DataFrame, test: pd.DataFrame,
              label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit each step on ``train``, apply it to both sides, in order."""
    for step in steps:
        if step.kind == "derive":
            train, test = _derive(step, train, test, label)
            continue
        cols = _resolve_columns(step, train, label)
        step.fitted["columns"] = cols
        if not cols:
            continue
        if step.kind == "drop":
            train, test = train.drop(columns=cols), test.drop(columns=cols)
        elif step.kind in _FITTERS:
            train, test = _FITTERS[step.kind](step, cols, train, test)
    return train, test


def _derive(step: Step, train: pd.DataFrame, test: pd.DataFrame,
            label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    name = step.columns[0]
    if name == label:
        raise ConfigError(f"step {step.spec!r}: would overwrite the label {label!r}")
    out = []
    for side in (train, test):
        try:
            value = side.eval(step.value, engine="python")
        except Exception as exc:  # noqa: BLE001 - any pandas eval error is the spec's
            raise ConfigError(f"step {step.spec!r}: cannot evaluate "
                              f"{step.value!r}: {type(exc).__name__}: {exc}") from exc
        side = side.copy()
        side[name] = value
        out.append(side)
    return out[0], out[1]


def _impute(step: Step, cols: list[str], train: pd.DataFrame,
            test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    import numpy as np
    import pandas as pd

    fills: dict[str, Any] = {}
    for c in cols:
        s = train[c]
        if step.method in ("mean", "median"):
            if not pd.api.types.is_numeric_dtype(s.dtype):
                raise DataError(f"step {step.spec!r}: column {c!r} is not numeric "
                                f"({s.dtype}); use most_frequent or constant")
            _check_finite(step, train, [c])
            v = s.mean() if step.method == "mean" else s.median()
            if pd.isna(v):
                raise DataError(f"step {step.spec!r}: column {c!r} is all null in "
                                "the training split; nothing to impute from")
            fills[c] = float(v)
        elif step.method == "most_frequent":
            mode = s.mode(dropna=True)
            if not len(mode):
                raise DataError(f"step {step.spec!r}: column {c!r} is all null in "
                                "the training split; nothing to impute from")
            fills[c] = mode.iloc[0]
        else:
            fills[c] = _constant(step.value, s)
    step.fitted["values"] = {c: v for c, v in fills.items()
                             if isinstance(v, (int, float, np.number))}
    return train.fillna(fills), test.fillna(fills)


def _scale(step: Step, cols: list[str], train: pd.DataFrame,
           test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pandas as pd
    from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

    for c in cols:
        if not pd.api.types.is_numeric_dtype(train[c].dtype):
            raise DataError(f"step {step.spec!r}: column {c!r} is not numeric "
                            f"({train[c].dtype})")
    _check_finite(step, train, cols)
    _check_finite(step, test, cols)
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler,
              "robust": RobustScaler}[step.method]()
    scaler.fit(train[cols].astype(float))
    train, test = train.copy(), test.copy()
    train[cols] = scaler.transform(train[cols].astype(float))
    test[cols] = scaler.transform(test[cols].astype(float))
    return train, test


def _encode(step: Step, cols: list[str], train: pd.DataFrame,
            test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    import numpy as np
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    as_text = train[cols].astype(object).where(train[cols].notna(), None)
    test_text = test[cols].astype(object).where(test[cols].notna(), None)
    as_text, test_text = as_text.map(_text), test_text.map(_text)
    if step.method == "onehot":
        enc = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.int8)
    else:
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    enc.fit(as_text)
    names = [str(n) for n in enc.get_feature_names_out(cols)]
    step.fitted["categories"] = {c: len(cats) for c, cats in zip(cols, enc.categories_, strict=True)}
    sides = []
    for side, text in ((train, as_text), (test, test_text)):
        encoded = pd.DataFrame(enc.transform(text), columns=names, index=side.index)
        side = side.drop(columns=cols)
        clash = [n for n in names if n in side.columns]
        if clash:
            raise DataError(f"step {step.spec!r}: encoded column {clash[0]!r} "
                            "already exists")
        sides.append(pd.concat([side, encoded], axis=1))
    return sides[0], sides[1]


# step kind -> fit on train, apply to both sides
_FITTERS = {"impute": _impute, "scale": _scale, "encode": _encode}


def _text(v: Any) -> str:
    return "(missing)" if v is None else str(v)


def _constant(value: str, s: pd.Series) -> Any:
    import pandas as pd

    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        try:
            number = float(value)
        except ValueError as exc:
            raise ConfigError(f"impute constant {value!r} is not a number, but column "
                              f"{s.name!r} is numeric") from exc
        return int(number) if number.is_integer() and pd.api.types.is_integer_dtype(s.dtype) \
            else number
    return value


# --------------------------------------------------------------------------- transform

def load_transform(spec: str):
    """``pkg.module:function`` or ``path/to/file.py:function`` -> the callable."""
    module_name, sep, func_name = str(spec).rpartition(":")
    if not sep or not module_name or not func_name:
        raise ConfigError(f"--transform {spec!r}: expected 'module:function'")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ConfigError(f"--transform {spec!r}: {path}: no such file")
            mod_spec = importlib.util.spec_from_file_location(
                f"mlcd_user_transform_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            _exec_user(lambda: mod_spec.loader.exec_module(module), spec, "importing")
        else:
            _forget_stale(module_name, cwd)
            try:
                if importlib.util.find_spec(module_name) is None:
                    raise ModuleNotFoundError(module_name)
            except ModuleNotFoundError as exc:
                raise ConfigError(f"--transform {spec!r}: module {module_name!r} not found "
                                  f"(searched the current directory and sys.path)") from exc
            module = _exec_user(lambda: importlib.import_module(module_name), spec, "importing")
    finally:
        if added:
            sys.path.remove(cwd)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"--transform {spec!r}: {module_name} has no function {func_name!r}")
    return func


def _forget_stale(module_name: str, cwd: str) -> None:
    """A module imported earlier in this process from another directory (the same name in
    two repositories) is dropped, so the one in the current directory is used."""
    cached = sys.modules.get(module_name)
    if cached is None or not getattr(cached, "__file__", None):
        return
    base = Path(cwd, *module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file() and candidate.resolve() != Path(cached.__file__).resolve():
            for name in [m for m in sys.modules
                         if m == module_name or m.startswith(module_name + ".")]:
                del sys.modules[name]
            importlib.invalidate_caches()
            return


class TransformRaised(Exception):
    def __init__(self, spec: str, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} {spec} raised {type(exc).__name__}: {exc}")
        self.spec, self.what, self.exc = spec, what, exc


def _exec_user(fn, spec: str, what: str):
    try:
        return fn()
    except (ConfigError, DataError):
        raise
    except Exception as exc:  # noqa: BLE001 - user code: anything it raises is a failure
        raise TransformRaised(spec, what, exc) from exc


def _traceback_tail(exc: BaseException) -> tuple[list[str], str | None, int | None]:
    """The last lines of the user's part of a traceback (mlcd's own frames left out), and
    the deepest frame in the user's files (for an annotation)."""
    here = Path(__file__).resolve().parent.parent
    frames = []
    for frame in traceback.extract_tb(exc.__traceback__):
        try:
            resolved = Path(frame.filename).resolve()
        except OSError:
            resolved = Path(frame.filename)
        if here in resolved.parents:
            continue
        frames.append((frame, resolved))
    lines = "".join(traceback.format_list([f for f, _ in frames])
                    + traceback.format_exception_only(type(exc), exc)).splitlines()
    tail = lines[-TRACEBACK_LINES:]
    where, line = None, None
    for frame, resolved in frames:
        if "site-packages" in resolved.parts or "importlib" in resolved.parts:
            continue
        try:
            where = os.path.relpath(resolved)
        except ValueError:
            where = str(resolved)
        line = frame.lineno
    return tail, where, line


def _failed_transform(err: TransformRaised) -> StageResult:
    from mlcd_actions.data.pii import mask_text

    exc = err.exc
    tail, where, line = _traceback_tail(exc)
    tail = [mask_text(t) for t in tail]   # a message quoting a data value shows it masked
    first = mask_text((str(exc).strip().splitlines() or [""])[0])
    reason = (f"transform {err.spec} raised {type(exc).__name__}"
              f"{': ' + first if first else ''}"
              + (" while importing" if err.what == "importing" else ""))
    log.error("mlcd prepare: %s\n%s", reason, "\n".join(tail))
    result = StageResult(STAGE, status=FAILED, reason=reason)
    result.details["traceback"] = tail
    result.markdown.append("**transform traceback (last lines)**\n\n```text\n"
                           + "\n".join(tail) + "\n```")
    result.findings.append(Finding(reason, title="mlcd prepare: transform raised",
                                   file=where, line=line, code="prepare.transform"))
    return result


# --------------------------------------------------------------------------- split

def stable_bucket(values: pd.Series, seed: int) -> Any:
    """A number in [0, 1) per id value, the same on every machine and every run: the first
    8 bytes of ``sha256(f"{seed}:{value}")``. Integral floats hash like integers
    (``7.0`` == ``7``), so a column read as float in one version and int in the next keeps
    its split."""
    import numpy as np

    out = np.empty(len(values), dtype=np.float64)
    prefix = f"{seed}:".encode()
    for i, v in enumerate(values.tolist()):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        digest = hashlib.sha256(prefix + str(v).encode("utf-8", "surrogatepass")).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0 ** 64
    return out


def _plain(value: Any) -> Any:
    """numpy scalars as plain Python values (for messages)."""
    return value.item() if hasattr(value, "item") else value


def _split(df: pd.DataFrame, label: str, *, test_size: float, seed: int,
           stratify: bool, split_by_id: str | None, data: str):
    import numpy as np
    from sklearn.model_selection import train_test_split

    n = len(df)
    if split_by_id is not None:
        ids = df[split_by_id]
        missing = np.flatnonzero(ids.isna().to_numpy())
        if len(missing):
            raise DataError(f"{data}: id column {split_by_id!r} has {len(missing)} null "
                            f"value(s) (first at row {missing[0] + 1}); every row needs an id")
        is_test = stable_bucket(ids, seed) < test_size
        test_idx, train_idx = np.flatnonzero(is_test), np.flatnonzero(~is_test)
    else:
        y = df[label] if stratify else None
        if stratify:
            counts = y.value_counts()
            if len(counts) < 2:
                only = _plain(counts.index[0]) if len(counts) else None
                raise DataError(f"{data}: label {label!r} has a single class ({only!r}); a "
                                "stratified split needs two or more (pass --no-stratify to "
                                "split anyway)")
            rare = counts[counts < 2]
            if len(rare):
                raise DataError(f"{data}: label {label!r} class {_plain(rare.index[0])!r} has only "
                                f"{int(rare.iloc[0])} row; a stratified split needs at least 2 "
                                "per class (pass --no-stratify)")
        try:
            train_idx, test_idx = train_test_split(np.arange(n), test_size=test_size,
                                                   random_state=seed, shuffle=True,
                                                   stratify=y)
        except ValueError as exc:
            raise DataError(f"{data}: cannot split {n} rows with --test-size {test_size}"
                            f"{' stratified by ' + repr(label) if stratify else ''}: "
                            f"{str(exc).splitlines()[0]}") from exc
        train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    if not len(train_idx) or not len(test_idx):
        side = "test" if not len(test_idx) else "train"
        raise DataError(f"{data}: the split left the {side} set empty ({n} rows, "
                        f"--test-size {test_size}); use more data or another --test-size")
    return (df.iloc[train_idx].reset_index(drop=True), df.iloc[test_idx].reset_index(drop=True))


# --------------------------------------------------------------------------- run

def run(data: str, *, label: str, out: str, transform: str | None = None,
        steps: Iterable[Any] = (), test_size: float = 0.2, seed: int = 42,
        stratify: bool | None = None, split_by_id: str | None = None) -> StageResult:
    from mlcd_actions.data.bias import label_kind
    from mlcd_actions.data.tables import read_table, require_columns

    parsed = _check_options(label=label, out=out, test_size=test_size, steps=steps,
                            stratify=stratify, split_by_id=split_by_id)
    out_dir = Path(out)
    try:
        func = load_transform(transform) if transform else None
        df = read_table(data)
        if len(df) == 0:
            raise DataError(f"{data}: dataset is empty (0 rows)")
        require_columns(df, [label], data, role="label column")
        rows_in = len(df)
        if func is not None:
            df = _apply_transform(func, df, transform, label)
    except TransformRaised as err:
        return _failed_transform(err)
    if split_by_id is not None:
        require_columns(df, [split_by_id], data, role="id column (--split-by-id)")

    result = StageResult(STAGE)
    df, dropped = _drop_unlabelled(df, label, data, result)
    kind = label_kind(df[label])
    if stratify is None:
        stratify = split_by_id is None and kind == "classification"
    train, test = _split(df, label, test_size=float(test_size), seed=int(seed),
                         stratify=bool(stratify), split_by_id=split_by_id, data=data)
    train, test = fit_apply(parsed, train, test, label)
    for side in (train, test):
        bad = [c for c in side.columns if not isinstance(c, str)]
        if bad:
            raise StageFailed(f"step output has a non-text column name {bad[0]!r}")

    from mlcd_actions.core.files import sha256_file

    manifest = {
        "data": str(data),
        "data_sha256": sha256_file(data) if Path(data).is_file() else None,
        "label": label, "label_kind": kind, "seed": int(seed), "test_size": float(test_size),
        "stratify": bool(stratify), "split_by_id": split_by_id, "transform": transform,
        "steps": [{"spec": s.spec, **s.fitted} for s in parsed],
        "rows": {"input": rows_in, "train": len(train), "test": len(test),
                 "dropped_unlabelled": dropped},
        "columns": [str(c) for c in train.columns],
    }
    _write(out_dir, train, test, manifest, out)
    _describe(result, out_dir, train, test, manifest, parsed,
              classes=kind == "classification" and df[label].nunique() <= 20)
    return result


def _check_options(*, label: str, out: str, test_size: float, steps: Iterable[Any],
                   stratify: bool | None, split_by_id: str | None) -> list[Step]:
    """Option errors before any data is read; returns the parsed steps."""
    if not label:
        raise ConfigError("--label is required (the label column)")
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(f"--test-size {test_size}: must be a fraction between 0 and 1")
    parsed = [s if isinstance(s, Step) else parse_step(s) for s in steps]
    if split_by_id is not None and stratify:
        raise ConfigError("--stratify and --split-by-id cannot be combined: a hashed-id split "
                          "keeps each id on its side whatever its label")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    return parsed


def _apply_transform(func: Callable, df: pd.DataFrame, transform: str, label: str) \
        -> pd.DataFrame:
    """Call the user's transform on a copy and check what it returns (raises
    :class:`TransformRaised` when the transform itself raises)."""
    import pandas as pd

    returned = _exec_user(lambda: func(df.copy()), transform, "calling")
    if not isinstance(returned, pd.DataFrame):
        raise StageFailed(f"transform {transform} returned {type(returned).__name__}, "
                          "not a pandas DataFrame")
    if label not in returned.columns:
        raise StageFailed(f"transform {transform} dropped the label column {label!r}")
    bad = [c for c in returned.columns if not isinstance(c, str)]
    if bad:
        raise StageFailed(f"transform {transform} returned a non-text column name "
                          f"{bad[0]!r}; Parquet needs string column names")
    dup = returned.columns[returned.columns.duplicated()].tolist()
    if dup:
        raise StageFailed(f"transform {transform} returned duplicate column {dup[0]!r}")
    if len(returned) == 0:
        raise StageFailed(f"transform {transform} returned an empty DataFrame")
    return returned.reset_index(drop=True)


def _drop_unlabelled(df: pd.DataFrame, label: str, data: str,
                     result: StageResult) -> tuple[pd.DataFrame, int]:
    """Rows without a label are dropped (with a warning); an infinite or all-null label is
    a :class:`DataError`."""
    import numpy as np
    import pandas as pd

    y = df[label]
    unlabelled = y.isna()
    if pd.api.types.is_float_dtype(y.dtype):
        inf = np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
        if inf.any():
            raise DataError(f"{data}: label {label!r} has {int(inf.sum())} infinite value(s) "
                            f"(first at row {int(np.flatnonzero(inf)[0]) + 1})")
    if unlabelled.all():
        raise DataError(f"{data}: label {label!r} is empty (every value is null)")
    if unlabelled.any():
        result.warnings.append(f"dropped {int(unlabelled.sum())} row(s) without a label "
                               f"{label!r} (first at row {int(np.flatnonzero(unlabelled)[0]) + 1})")
        df = df[~unlabelled].reset_index(drop=True)
    return df, int(unlabelled.sum())


def _write(out_dir: Path, train: pd.DataFrame, test: pd.DataFrame, manifest: dict,
           out: str) -> None:
    """train.parquet, test.parquet and prepare.json, swapped in together."""
    from mlcd_actions.core.files import atomic_dir, sha256_file, write_json

    try:
        with atomic_dir(out_dir) as tmp:
            train.to_parquet(tmp / "train.parquet", index=False)
            test.to_parquet(tmp / "test.parquet", index=False)
            manifest["sha256"] = {n: sha256_file(tmp / n) for n in ("train.parquet",
                                                                    "test.parquet")}
            write_json(tmp / "prepare.json", manifest)
    except (ValueError, TypeError) as exc:   # pyarrow cannot store a column as it is
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StageFailed(f"cannot write Parquet to {out}: {first}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot write to {out}: {exc.strerror or exc}") from exc


def _describe(result: StageResult, out_dir: Path, train: pd.DataFrame, test: pd.DataFrame,
              manifest: dict, parsed: list[Step], *, classes: bool) -> None:
    """Outputs, metrics, tables and the reason of a passed run."""
    label, seed, split_by_id = manifest["label"], manifest["seed"], manifest["split_by_id"]
    train_path, test_path = out_dir / "train.parquet", out_dir / "test.parquet"
    result.outputs.update({"train-path": str(train_path), "test-path": str(test_path),
                           "train-rows": len(train), "test-rows": len(test)})
    result.artifacts += [str(train_path), str(test_path), str(out_dir / "prepare.json")]
    result.metrics.update({"rows": manifest["rows"]["input"], "train_rows": len(train),
                           "test_rows": len(test), "columns": train.shape[1]})
    how = (f"by hashed id {split_by_id!r}" if split_by_id
           else ("stratified" if manifest["stratify"] else "random") + f", seed {seed}")
    result.details.update({k: manifest[k] for k in ("label_kind", "seed", "test_size",
                                                    "stratify", "split_by_id", "transform",
                                                    "steps")})
    if classes:
        tr, te = train[label].value_counts(), test[label].value_counts()
        names = sorted(set(tr.index) | set(te.index), key=str)
        result.tables.append(Table("label classes per split", ["class", "train", "test"],
                                   [[str(c), int(tr.get(c, 0)), int(te.get(c, 0))]
                                    for c in names]))
    if parsed:
        result.tables.append(Table("steps (fitted on train)", ["step", "columns"],
                                   [[s.spec, ", ".join(map(str, s.fitted.get("columns",
                                                                           s.columns)))]
                                    for s in parsed]))
    result.reason = (f"{len(train)} train / {len(test)} test rows ({how}, "
                     f"test-size {manifest['test_size']:g})")

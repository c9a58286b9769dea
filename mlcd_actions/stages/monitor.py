"""``mlcd monitor``: drift between a reference (training) set and current data or the
prediction log of ``mlcd serve``; accuracy decay when labels arrive; retraining dispatch.

* Features: every column the two sides share (minus prediction, label and id columns),
  compared by :func:`mlcd_actions.data.drift.compare` — PSI and KS for numeric columns,
  chi-square, Jensen–Shannon and L-infinity and new/missing categories for categorical.
* Gates: ``--threshold 'psi<=0.2'`` (global: every feature that has the metric) or
  ``'age.psi<=0.1'`` (one feature; replaces the global one for it). With no global
  threshold the **default gates are statistical tests whose threshold accounts for the
  sample sizes** (:func:`default_gates`), so a resample of the same distribution raises
  no alarm whether the batch has 36 rows or 1M: each feature is tested at level
  ``alpha / features`` (Bonferroni, ``--alpha`` 0.05 for the whole batch) — numeric
  features by the two-sample Kolmogorov–Smirnov statistic against its critical value for
  the two sizes (never below :data:`KS_MIN_EFFECT`, so a huge batch does not alarm on a
  negligible shift), categorical ones by the chi-square test of homogeneity (categories
  with an expected count under 5 pooled). PSI and JS are still computed and shown; PSI
  uses as many quantile bins as the smaller side fills with 5 rows each (at most
  ``--bins``).
  :data:`DEFAULT_NULL_THRESHOLD` (``null_fraction_delta<=0.1``) applies unless a global
  ``null_fraction_delta`` threshold is given, so a feature that turns (mostly) null, whose
  PSI/JS cannot be computed, is never reported stable.
  A feature whose gate fails has drifted; drift fails the stage (exit 1).
* Prediction drift: the current predictions (the log's ``prediction``, or a dataset's
  ``--prediction-column``) against reference predictions (that column in the reference,
  or ``--reference-predictions`` naming a column or a file), gated like a feature named
  ``prediction``.
* Accuracy decay: ``--labels`` (a labels file joined on ``request_id`` + ``row`` or on
  ``--id-column``, or a label column of the current dataset) gives current metrics, compared
  with the metrics recorded at training time (``--baseline-metrics`` JSON or the MLflow run
  behind ``--model-uri``) through ``--max-decay 'accuracy=0.05'`` gates (max-drop).
* ``retrain`` is true when features or predictions drifted or a decay gate failed; then
  ``--dispatch github|gitlab`` starts the retraining workflow and ``--open-issue`` files or
  updates one incident issue carrying this report.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.ci import forges as hosting
from mlcd_actions.core import gates as gates_mod
from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.gates import FAILED, GateRow, MaxDrop, Threshold
from mlcd_actions.core.results import (
    SEV_ERROR,
    SEV_NOTICE,
    SEV_WARNING,
    Finding,
    StageResult,
    Table,
)
from mlcd_actions.data import drift as drift_mod
from mlcd_actions.delivery import prediction_log as predlog

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STAGE = "monitor"
DEFAULT_ALPHA = 0.05          # false-alarm rate of the default gates, for the whole batch
KS_MIN_EFFECT = 0.05          # the default KS gate never alarms below this statistic
MIN_PER_BIN = 5               # rows of the smaller side per PSI bin (auto bins)
DEFAULT_NULL_THRESHOLD = "null_fraction_delta<=0.1"
DEFAULT_DECAY = "5%"
INCIDENT_MARKER = "<!-- mlcd-monitor-incident -->"
DEFAULT_ISSUE_TITLE = "mlcd monitor: data drift detected — retraining requested"
DEFAULT_EVENT = "mlcd-retrain"
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOG_KEYS = ("request_id", "row")


def run(reference: str | os.PathLike, current: str | os.PathLike, *,
        thresholds: Sequence[str] = (), columns: Sequence[str] | None = None,
        categorical: Sequence[str] = (), bins: int = 10,
        labels: str | None = None, label_column: str | None = None,
        id_column: str | None = None, prediction_column: str = predlog.PREDICTION,
        reference_predictions: str | None = None,
        baseline_metrics: str | os.PathLike | None = None, model_uri: str | None = None,
        tracking_uri: str | None = None, max_decay: Sequence[str] = (),
        dispatch: str | None = None, event_type: str = DEFAULT_EVENT,
        workflow: str | None = None, ref: str | None = None,
        dispatch_inputs: Sequence[str] = (), open_issue: bool = False,
        platform: str | None = None, issue_title: str = DEFAULT_ISSUE_TITLE,
        dry_run: bool = False, plots_dir: str | os.PathLike | None = None,
        max_plots: int = 12, echo: Callable[[str], None] = print,
        alpha: float = DEFAULT_ALPHA, engine: str = "pandas", spark: Any = None,
        _io: Any = None) -> StageResult:
    """``engine="spark"``: the inputs are Spark tables and the drift statistics Spark
    aggregations (:mod:`mlcd_actions.data.spark.monitor`; ``spark``: its session settings)."""
    options = {k: v for k, v in locals().items() if k not in ("engine", "spark", "_io")}
    result = StageResult(STAGE)
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha {alpha}: must be between 0 and 1")
    specs = [Threshold.parse(s) for s in thresholds]
    decay_specs = gates_mod.parse_max_drops(max_decay, option="--max-decay")
    if dispatch and dispatch not in hosting.PLATFORMS:
        raise ConfigError(f"--dispatch {dispatch!r}: use github or gitlab")
    if bins < 2:
        raise ConfigError(f"--bins {bins}: needs at least 2 bins")
    if decay_specs and not labels:
        raise ConfigError("--max-decay needs --labels (a labels file or column)")

    from mlcd_actions.core.engines import check_engine

    if check_engine(engine) == "spark" and _io is None:
        from mlcd_actions.data.spark.monitor import SparkInputs

        with SparkInputs.start(reference, current, spark,
                               current_is_log=predlog.is_prediction_log(current)) as io:
            return run(**options, _io=io)
    io = _io or _PandasInputs

    inp = _inputs(io, _io is not None, reference, current, labels, label_column, id_column,
                  prediction_column, columns, result)

    # feature and prediction drift, gated
    bins = auto_bins(bins, inp.ref_rows, inp.cur_rows)
    drifts = io.compare(inp.ref_data, inp.cur_data, columns=inp.features,
                        categorical=[c for c in categorical if c in inp.features], bins=bins)
    pred_drift = io.prediction_drift(inp.ref_data, inp.ref_cols, inp.cur_data, inp.cur_cols,
                                     prediction_column, reference_predictions, reference, bins,
                                     categorical)
    all_drifts = drifts + ([pred_drift] if pred_drift is not None else [])
    result.gates = drift_gates(all_drifts, specs, alpha=alpha)
    result.details["bins"] = bins
    result.details["engine"] = "spark" if _io is not None else "pandas"
    failed = {g.metric.rsplit(".", 1)[0] for g in result.gates if g.verdict == FAILED}
    drifted = _drift_findings(result, drifts, all_drifts, failed)
    prediction_drifted = pred_drift is not None and pred_drift.column in failed

    decay = None
    if labels:
        decay = _accuracy_decay(labels, inp.labels_is_column, label_column, id_column,
                                prediction_column, inp.cur_data, inp.cur_meta, current,
                                baseline_metrics, model_uri, tracking_uri, decay_specs)
        _record_decay(result, decay)
    decayed = bool(decay and any(g.verdict == FAILED for g in decay["gates"]))
    retrain = bool(drifted) or prediction_drifted or decayed
    result.outputs.update({
        "drift": bool(drifted) or prediction_drifted, "retrain": retrain,
        "drifted-features": ",".join(drifted), "prediction-drift": prediction_drifted,
        "accuracy-decay": decayed, "current-source": inp.source,
    })
    result.metrics.update({"reference_rows": inp.ref_rows, "current_rows": inp.cur_rows,
                           "features": len(drifts), "drifted_features": len(drifted)})
    _report_drift(result, all_drifts, failed, specs, alpha, plots_dir, max_plots)

    # failed rows first: 2 failed gates must not hide among 64 (stable: same order within)
    result.gates.sort(key=lambda g: g.verdict != FAILED)
    result.fail_unless_gates_pass()
    _reason(result, drifts, drifted, pred_drift, prediction_drifted, decay, decayed)

    if retrain and (dispatch or open_issue):
        _close_loop(result, dispatch=dispatch, event_type=event_type, workflow=workflow,
                    ref=ref, dispatch_inputs=dispatch_inputs, open_issue=open_issue,
                    platform=platform, issue_title=issue_title, dry_run=dry_run,
                    echo=echo)
    elif dispatch or open_issue:
        result.outputs["dispatched"] = False
    return result


@dataclass
class _Inputs:
    """Both sides, opened: data (a path or a frame), columns, rows, and what is compared."""

    ref_data: Any
    ref_cols: list[str]
    cur_data: Any
    cur_cols: list[str]
    cur_meta: Any
    source: str
    ref_rows: int
    cur_rows: int
    labels_is_column: bool
    features: list[str]


def _inputs(io, on_engine: bool, reference, current, labels, label_column, id_column,
            prediction_column, columns, result: StageResult) -> _Inputs:
    """Open both sides (through ``io``: the pandas or the Spark engine), check the options
    that name their columns, choose the features."""
    ref_data, ref_cols = io.open_table(reference, "reference")
    cur_meta = None
    if predlog.is_prediction_log(current):
        cur_data, cur_meta = predlog.read(current)
        cur_cols = [str(c) for c in cur_data.columns]
        source = "prediction-log"
        if on_engine:
            cur_data = io.from_pandas(cur_data, os.fspath(current))
    else:
        cur_data, cur_cols = io.open_table(current, "current")
        source = "dataset"
    ref_rows, cur_rows = io.rows(ref_data), io.rows(cur_data)
    if ref_rows == 0:
        raise DataError(f"{reference}: the reference dataset is empty")
    if cur_rows == 0:
        raise DataError(f"{current}: the current data is empty")
    labels_is_column = bool(labels) and not Path(labels).exists() and labels in cur_cols
    if labels and not labels_is_column and not Path(labels).exists():
        raise DataError(f"--labels {labels!r}: neither a file nor a column of {current}")
    if labels and prediction_column not in cur_cols:
        raise DataError(f"{current}: no prediction column {prediction_column!r}; accuracy decay "
                        f"(--labels) needs the model's predictions: name their column with "
                        f"--prediction-column")
    if labels and id_column and id_column not in cur_cols and not (
            cur_meta is not None and id_column in cur_meta.columns):
        raise DataError(f"{current}: --id-column {id_column!r} not found")
    excluded = {prediction_column, id_column, *(LOG_KEYS if cur_meta is not None else ())}
    if labels_is_column:
        excluded.add(labels)
    if label_column:
        excluded.add(label_column)
    features = _features(reference, current, ref_cols, cur_cols, columns, excluded, result)
    return _Inputs(ref_data, ref_cols, cur_data, cur_cols, cur_meta, source, ref_rows,
                   cur_rows, labels_is_column, features)


def _features(reference, current, ref_cols, cur_cols, columns, excluded,
              result: StageResult) -> list[str]:
    if columns:
        missing = [c for c in columns if c not in ref_cols or c not in cur_cols]
        if missing:
            side = reference if missing[0] not in ref_cols else current
            raise DataError(f"{side}: --columns {missing[0]!r} not found")
        features = list(columns)
    else:
        cur_set = set(cur_cols)
        features = [c for c in ref_cols if c in cur_set and c not in excluded]
    if not features:
        raise DataError(f"{reference} and {current} share no feature columns "
                        f"(reference: {', '.join(ref_cols[:10])}; current: "
                        f"{', '.join(cur_cols[:10])})")
    only_ref = [c for c in ref_cols if c not in set(cur_cols) and c not in excluded]
    if only_ref and not columns:
        result.findings.append(Finding(
            f"{len(only_ref)} reference column(s) absent from the current data: "
            f"{', '.join(only_ref[:10])}", SEV_WARNING, code="drift.missing-columns",
            count=len(only_ref)))
    return features


def _drift_findings(result: StageResult, drifts, all_drifts, failed: set[str]) -> list[str]:
    """Findings for columns not computed, new categories and drifted features; returns the
    drifted feature names."""
    drifted = [d.column for d in drifts if d.column in failed]
    for d in all_drifts:
        for note in d.notes:
            result.findings.append(Finding(f"{d.column}: {note}", SEV_WARNING, column=d.column,
                                           code="drift.not-computed"))
        if d.new_category_count:
            shown = ", ".join(_clip(_safe(v), 60) for v in d.new_categories[:10])
            result.findings.append(Finding(
                f"{d.column}: {d.new_category_count} new categor"
                f"{'y' if d.new_category_count == 1 else 'ies'} in the current data: {shown}",
                SEV_WARNING if d.column in failed else SEV_NOTICE, column=d.column,
                code="drift.new-category", count=d.new_category_count))
    for name in drifted:
        result.findings.append(Finding(f"feature {name!r} drifted ({_why(result.gates, name)})",
                                       SEV_ERROR, column=name, code="drift.feature",
                                       title="mlcd monitor: drift"))
    return drifted


def _record_decay(result: StageResult, decay: dict[str, Any]) -> None:
    result.gates.extend(decay["gates"])
    result.metrics.update({f"current_{k}": v for k, v in decay["metrics"].items()})
    result.metrics.update({f"baseline_{k}": v for k, v in decay["baseline"].items()})
    result.details["accuracy"] = {k: v for k, v in decay.items() if k != "gates"}
    result.warnings.extend(decay["warnings"])


def _report_drift(result: StageResult, all_drifts, failed: set[str], specs, alpha: float,
                  plots_dir, max_plots: int) -> None:
    """The per-feature table, details, the Mermaid chart and the histogram PNGs."""
    result.tables.append(drift_table(all_drifts, failed))
    result.details["drift"] = {d.column: _masked(d).to_dict() for d in all_drifts}
    result.details["thresholds"] = [t.spec for t in effective_thresholds(specs)]
    if uses_default_gates(specs):
        result.details["default_gates"] = (
            f"per feature: KS statistic <= its critical value (at least {KS_MIN_EFFECT}) or "
            f"chi-square p-value >= {alpha}/{len(all_drifts)} (Bonferroni over "
            f"{len(all_drifts)} compared column(s))")
    result.markdown.append(mermaid_chart(all_drifts))
    if plots_dir is not None and max_plots > 0:
        ranked = sorted(all_drifts, key=lambda d: (d.column not in failed, -d.score()))
        result.artifacts.extend(write_plots([_masked(d) for d in ranked[:max_plots]],
                                            Path(plots_dir)))


def _reason(result: StageResult, drifts, drifted, pred_drift, prediction_drifted, decay,
            decayed: bool) -> None:
    if result.status != FAILED:
        result.reason = (f"no drift in {len(drifts)} feature(s)"
                         + (" or predictions" if pred_drift is not None else "")
                         + (", accuracy within limits" if decay and decay["gates"] else ""))
        return
    parts = []
    if drifted:
        parts.append(f"drift in {len(drifted)}/{len(drifts)} feature(s): "
                     f"{', '.join(drifted[:8])}{' …' if len(drifted) > 8 else ''}")
    if prediction_drifted:
        parts.append("prediction drift")
    if decayed:
        parts.append(next(g.message for g in decay["gates"] if g.verdict == FAILED))
    if parts:
        result.reason = "; ".join(parts) + " — retraining requested"


# --------------------------------------------------------------------------- inputs

def _open_table(path: str | os.PathLike, role: str) -> tuple[Any, list[str]]:
    """A single Parquet file stays a path (read column by column); anything else is read."""
    from mlcd_actions.data import tables as tabular

    files = tabular.table_files(path)
    if len(files) == 1 and tabular.kind_of(files[0]) == "parquet":
        import pyarrow.parquet as pq

        try:
            schema = pq.read_schema(files[0])
        except Exception as exc:  # pyarrow's zoo
            raise DataError(f"{files[0]}: cannot read as parquet: "
                            f"{(str(exc).splitlines() or [''])[0]}") from exc
        return os.fspath(files[0]), list(schema.names)
    df = tabular.read_table(path, what=role)
    return df, [str(c) for c in df.columns]


def _rows(data: Any) -> int:
    if isinstance(data, (str, os.PathLike)):
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(data).metadata.num_rows)
    return len(data)


def _columns_frame(data: Any, cols: Sequence[str]) -> pd.DataFrame:
    if hasattr(data, "frame"):           # a Spark table: these columns on the driver
        return data.frame(cols)
    if isinstance(data, (str, os.PathLike)):
        from mlcd_actions.data import tables as tabular

        return tabular.read_table(data, columns=list(cols))
    return data[list(cols)]


def _prediction_drift(ref_data, ref_cols, cur_data, cur_cols, prediction_column,
                      reference_predictions, reference, bins, categorical):
    import pandas as pd

    if prediction_column not in cur_cols:
        return None
    ref_pred = None
    if reference_predictions:
        if reference_predictions in ref_cols:
            ref_pred = _columns_frame(ref_data, [reference_predictions])[reference_predictions]
        elif Path(reference_predictions).exists():
            from mlcd_actions.data import tables as tabular

            frame = tabular.read_table(reference_predictions)
            col = prediction_column if prediction_column in frame.columns else (
                frame.columns[0] if len(frame.columns) == 1 else None)
            if col is None:
                raise DataError(f"{reference_predictions}: no {prediction_column!r} column "
                                "(or a single column) holding the reference predictions")
            ref_pred = frame[col]
        else:
            raise DataError(f"--reference-predictions {reference_predictions!r}: neither a "
                            f"column of {reference} nor a file")
    elif prediction_column in ref_cols:
        ref_pred = _columns_frame(ref_data, [prediction_column])[prediction_column]
    if ref_pred is None:
        return None
    cur_pred = _columns_frame(cur_data, [prediction_column])[prediction_column]
    ref_df = pd.DataFrame({prediction_column: ref_pred.reset_index(drop=True)})
    cur_df = pd.DataFrame({prediction_column: cur_pred.reset_index(drop=True)})
    forced = [prediction_column] if (prediction_column in categorical
                                     or _looks_like_classes(ref_df[prediction_column])) else []
    if forced:
        ref_df[prediction_column] = ref_df[prediction_column].map(_class_text)
        cur_df[prediction_column] = cur_df[prediction_column].map(_class_text)
    return drift_mod.compare(ref_df, cur_df, columns=[prediction_column], categorical=forced,
                             bins=bins)[0]


class _PandasInputs:
    """The inputs read in process (the pandas engine)."""

    open_table = staticmethod(_open_table)
    rows = staticmethod(_rows)
    compare = staticmethod(drift_mod.compare)
    prediction_drift = staticmethod(_prediction_drift)


def _looks_like_classes(series: pd.Series, max_classes: int = 20) -> bool:
    """Integer, boolean or text predictions with few distinct values are class labels."""
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_float_dtype(series.dtype):
        if not len(values) or not bool((values == values.round()).all()):
            return False
    return values.nunique() <= max_classes


def _class_text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- gates

def _scope(metric: str) -> tuple[str | None, str]:
    """``'age.psi'`` -> ('age', 'psi'); ``'psi'`` -> (None, 'psi'). Column names may hold dots."""
    if "." in metric:
        col, base = metric.rsplit(".", 1)
        return col, base
    return None, metric


def uses_default_gates(specs: Sequence[Threshold]) -> bool:
    """True when no global threshold is given: the statistical default gates apply."""
    return not any(_scope(t.metric)[0] is None for t in specs)


def effective_thresholds(specs: Sequence[Threshold]) -> list[Threshold]:
    """The user's thresholds plus the null-fraction default unless a global
    ``null_fraction_delta`` threshold is given (the statistical default gates, which
    depend on each column's sample sizes, come from :func:`default_gates`)."""
    out = list(specs)
    if not any(t.metric == "null_fraction_delta" for t in specs):
        out = [Threshold.parse(DEFAULT_NULL_THRESHOLD)] + out
    return out


def auto_bins(max_bins: int, ref_rows: int, cur_rows: int) -> int:
    """PSI bins: as many as the smaller side fills with :data:`MIN_PER_BIN` rows each,
    between 2 and ``max_bins``."""
    return max(2, min(max_bins, min(ref_rows, cur_rows) // MIN_PER_BIN))


def ks_critical(alpha: float, n: int, m: int) -> float:
    """The two-sample KS statistic's critical value at level ``alpha`` for sizes n and m
    (Kolmogorov's limiting distribution: c(alpha) * sqrt((n + m) / (n m)), conservative
    for small samples)."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def default_gates(drifts: Sequence[drift_mod.ColumnDrift], alpha: float,
                  scoped: Iterable[tuple[str, str]] = ()) -> list[GateRow]:
    """The statistical default gate of every column (none for a (column, metric) pair
    the user scoped a threshold to): KS against its critical value for numeric
    columns, the chi-square p-value for categorical ones, each at ``alpha / columns``."""
    per_test = alpha / max(1, len(drifts))
    taken = {col for col, _ in scoped}
    rows = []
    for d in drifts:
        if d.column in taken:
            continue
        if d.kind == drift_mod.NUMERIC:
            if d.ref_count and d.cur_count:
                crit = ks_critical(per_test, d.ref_count, d.cur_count)
                limit = max(KS_MIN_EFFECT, crit)
            else:
                crit = limit = KS_MIN_EFFECT
            t = Threshold("ks", "<=", round(limit, 4), f"ks<={limit:.4g}")
            row = t.check(d.ks, metric=f"{d.column}.ks")
            basis = (f"critical value at alpha {alpha:g}/{len(drifts)}, n {d.ref_count} vs "
                     f"{d.cur_count}" if crit >= KS_MIN_EFFECT else
                     f"minimum effect {KS_MIN_EFFECT:g} (critical value {crit:.3g})")
        else:
            t = Threshold("chi2_pvalue", ">=", per_test, f"chi2_pvalue>={per_test:.3g}")
            row = t.check(d.chi2_pvalue, metric=f"{d.column}.chi2_pvalue")
            basis = f"alpha {alpha:g}/{len(drifts)} columns"
        row.message = f"{row.message} ({basis})"
        rows.append(row)
    return rows


def drift_gates(drifts: Sequence[drift_mod.ColumnDrift],
                specs: Sequence[Threshold], alpha: float = DEFAULT_ALPHA) -> list[GateRow]:
    """One gate row per (column, metric) that a threshold covers; a column-scoped
    threshold replaces the global one on the same metric for that column. With no global
    threshold, :func:`default_gates` give each column its statistical gate."""
    auto = uses_default_gates(specs)
    specs = effective_thresholds(specs)
    names = {d.column for d in drifts}
    global_: dict[str, list[Threshold]] = {}
    scoped: dict[tuple[str, str], list[Threshold]] = {}
    for t in specs:
        col, base = _scope(t.metric)
        if base not in drift_mod.ALL_METRICS:
            raise ConfigError(f"--threshold {t.spec!r}: unknown drift metric {base!r} "
                              f"(known: {', '.join(sorted(drift_mod.ALL_METRICS))})")
        if col is None:
            global_.setdefault(base, []).append(t)
        else:
            if col not in names:
                raise ConfigError(f"--threshold {t.spec!r}: no compared column {col!r} "
                                  f"(columns: {', '.join(sorted(names)[:20])})")
            scoped.setdefault((col, base), []).append(t)
    rows: list[GateRow] = default_gates(drifts, alpha, scoped) if auto else []
    for d in drifts:
        metrics = d.metrics()
        for base, value in metrics.items():
            chosen = scoped.get((d.column, base)) or global_.get(base) or []
            for t in chosen:
                rows.append(t.check(value, metric=f"{d.column}.{base}"))
        for (col, base), ts in scoped.items():
            if col == d.column and base not in metrics:
                raise ConfigError(f"--threshold {ts[0].spec!r}: {base} does not apply to "
                                  f"{d.kind} column {col!r}")
    return rows


def _why(rows: Iterable[GateRow], column: str) -> str:
    return "; ".join(g.message for g in rows
                     if g.verdict == FAILED and g.metric.rsplit(".", 1)[0] == column)


# --------------------------------------------------------------------------- decay

def load_baseline(path: str | os.PathLike | None, model_uri: str | None,
                  tracking_uri: str | None) -> tuple[dict[str, float], str]:
    """Training-time metrics: a JSON file (flat ``{metric: value}``, or a stage report /
    any object with a ``metrics`` mapping), else the MLflow run behind ``model_uri``."""
    if path:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DataError(f"{p}: no such file") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: cannot read: {exc}") from exc
        except ValueError as exc:
            raise DataError(f"{p}: not valid JSON: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("metrics"), dict):
            data = data["metrics"]
        if not isinstance(data, dict):
            raise DataError(f"{p}: expected an object of metric: number")
        out = {str(k): float(v) for k, v in data.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not out:
            raise DataError(f"{p}: holds no numeric metrics")
        return out, os.fspath(p)
    if model_uri:
        return _mlflow_metrics(model_uri, tracking_uri), model_uri
    return {}, ""


def _mlflow_metrics(model_uri: str, tracking_uri: str | None) -> dict[str, float]:
    from mlcd_actions.models import tracking

    tracking.configure(tracking_uri)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()

    def fetch() -> dict[str, float]:
        run_id = None
        if model_uri.startswith("runs:/"):
            run_id = model_uri[len("runs:/"):].split("/", 1)[0]
        elif model_uri.startswith("models:/"):
            rest = model_uri[len("models:/"):]
            if "@" in rest:
                name, alias = rest.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias.strip("/"))
            else:
                name, _, version = rest.rstrip("/").partition("/")
                if not version.isdigit():
                    raise ConfigError(f"--model-uri {model_uri!r}: use models:/<name>/<version>, "
                                      "models:/<name>@<alias> or runs:/<run-id>/<path>")
                mv = client.get_model_version(name, version)
            run_id = mv.run_id
        else:
            raise ConfigError(f"--model-uri {model_uri!r}: use models:/<name>/<version>, "
                              "models:/<name>@<alias> or runs:/<run-id>/<path>")
        if not run_id:
            raise ConfigError(f"--model-uri {model_uri!r}: the model version has no run")
        metrics = dict(client.get_run(run_id).data.metrics)
        # evaluate may log test_accuracy etc.: the bare name wins, a prefixed one fills in
        out = {k: float(v) for k, v in metrics.items()}
        for k, v in metrics.items():
            m = re.match(r"^(?:test|eval|evaluation|val)[_/](.+)$", k)
            if m and m.group(1) not in out:
                out[m.group(1)] = float(v)
        return out

    return tracking.with_retries(fetch, what=f"reading the metrics of {model_uri}")


def _accuracy_decay(labels, labels_is_column, label_column, id_column, prediction_column,
                    cur_data, cur_meta, current, baseline_path, model_uri, tracking_uri,
                    decay_specs) -> dict[str, Any]:
    import pandas as pd

    from mlcd_actions.data import tables as tabular

    warnings: list[str] = []
    if labels_is_column:
        cols = [labels, prediction_column]
        frame = _columns_frame(cur_data, [c for c in cols if c])
        if prediction_column not in frame.columns:
            raise DataError(f"{current}: prediction column {prediction_column!r} not found; "
                            "accuracy needs the model's predictions")
        y_true, y_pred = frame[labels], frame[prediction_column]
        label_name = labels
        joined = len(frame)
    else:
        lab = tabular.read_table(labels, what="labels")
        if len(lab) == 0:
            raise DataError(f"{labels}: the labels file is empty")
        if id_column:
            keys = [id_column]
            tabular.require_columns(lab, keys, labels, "id column")
            cur = _columns_frame(cur_data, [id_column, prediction_column]) if not (
                cur_meta is not None and id_column in cur_meta.columns) else pd.concat(
                [cur_meta[[id_column]], _columns_frame(cur_data, [prediction_column])], axis=1)
        else:
            if cur_meta is None:
                raise ConfigError("--labels file with a dataset needs --id-column to join on "
                                  "(a prediction log joins on request_id + row)")
            keys = list(LOG_KEYS)
            tabular.require_columns(lab, keys, labels, "key column")
            missing = [k for k in keys if k not in cur_meta.columns]
            if missing:
                raise DataError(f"{current}: prediction log lines have no {missing[0]!r}")
            cur = pd.concat([cur_meta[keys].reset_index(drop=True),
                             _columns_frame(cur_data, [prediction_column])
                             .reset_index(drop=True)], axis=1)
        if prediction_column not in cur.columns:
            raise DataError(f"{current}: prediction column {prediction_column!r} not found")
        candidates = [c for c in lab.columns if c not in keys]
        label_name = label_column or ("label" if "label" in candidates else (
            candidates[0] if len(candidates) == 1 else None))
        if label_name is None:
            raise ConfigError(f"{labels}: several label candidates ({', '.join(candidates)}); "
                              "name one with --label-column")
        tabular.require_columns(lab, [label_name], labels, "label column")
        lab = lab[[*keys, label_name]].rename(columns={label_name: "__label"})
        dup = lab.duplicated(keys)
        if dup.any():
            row = int(dup.to_numpy().nonzero()[0][0])
            raise DataError(f"{labels}: duplicate key {tuple(lab.iloc[row][keys])} at row {row}")
        for k in keys:
            lab[k] = lab[k].astype(str)
            cur[k] = cur[k].astype(str)
        merged = cur.merge(lab, on=keys, how="inner")
        joined = len(merged)
        if joined == 0:
            raise DataError(f"{labels}: no label matches a prediction on "
                            f"{' + '.join(keys)}")
        unmatched = len(lab) - joined
        if unmatched:
            warnings.append(f"{unmatched} label(s) in {labels} match no logged prediction")
        y_true, y_pred = merged["__label"], merged[prediction_column]
    keep = y_true.notna() & y_pred.notna()
    y_true, y_pred = y_true[keep], y_pred[keep]
    if len(y_true) == 0:
        raise DataError(f"{labels}: no row has both a label and a prediction")
    baseline, baseline_from = load_baseline(baseline_path, model_uri, tracking_uri)
    task = _task(y_true, baseline)
    metrics = score(y_true, y_pred, task)
    compared = {k: v for k, v in baseline.items() if k in metrics}
    if not baseline:
        warnings.append("no baseline metrics (--baseline-metrics or --model-uri): accuracy "
                        "decay is reported but not gated")
        specs: list[MaxDrop] = []
    elif decay_specs:
        specs = list(decay_specs)
    else:
        primary = "accuracy" if task == "classification" else "rmse"
        if primary not in compared:
            primary = next(iter(compared), None)
        specs = [MaxDrop.parse(f"{primary}={DEFAULT_DECAY}", option="--max-decay")] if primary \
            else []
        if not specs:
            warnings.append(f"baseline {baseline_from} shares no metric with "
                            f"{', '.join(metrics)}: accuracy decay is not gated")
    rows = gates_mod.evaluate_gates(metrics, (), specs, baseline) if specs else []
    return {"gates": rows, "metrics": metrics, "baseline": compared, "task": task,
            "labelled_rows": int(len(y_true)), "joined_rows": int(joined),
            "label": label_name, "baseline_from": baseline_from, "warnings": warnings,
            "max_decay": [s.spec for s in specs]}


def _task(y_true: pd.Series, baseline: Mapping[str, float]) -> str:
    import pandas as pd

    if any(k in baseline for k in CLASSIFICATION_METRICS):
        return "classification"
    if any(k in baseline for k in REGRESSION_METRICS):
        return "regression"
    if pd.api.types.is_float_dtype(y_true.dtype):
        values = y_true.dropna()
        if not bool((values == values.round()).all()) or values.nunique() > 20:
            return "regression"
    return "classification"


def score(y_true: pd.Series, y_pred: pd.Series, task: str) -> dict[str, float]:
    """Current metrics from labels and predictions."""
    import numpy as np
    from sklearn import metrics as skm

    if task == "regression":
        t = np.asarray(y_true, dtype=np.float64)
        p = np.asarray(y_pred, dtype=np.float64)
        return {"rmse": float(np.sqrt(skm.mean_squared_error(t, p))),
                "mae": float(skm.mean_absolute_error(t, p)),
                "r2": float(skm.r2_score(t, p)) if len(t) > 1 else float("nan")}
    t = y_true.map(_class_text).to_numpy(dtype=object)
    p = y_pred.map(_class_text).to_numpy(dtype=object)
    classes = sorted(set(t) | set(p))
    binary = len(classes) <= 2
    avg = "binary" if binary and len(classes) == 2 else "macro"
    kw: dict[str, Any] = {"average": avg, "zero_division": 0}
    if avg == "binary":
        kw["pos_label"] = classes[-1]
    return {"accuracy": float(skm.accuracy_score(t, p)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(t, p)),
            "f1": float(skm.f1_score(t, p, **kw)),
            "precision": float(skm.precision_score(t, p, **kw)),
            "recall": float(skm.recall_score(t, p, **kw))}


# --------------------------------------------------------------------------- report

def drift_table(drifts: Sequence[drift_mod.ColumnDrift], failed: set[str]) -> Table:
    rows = []
    for d in sorted(drifts, key=lambda x: (x.column not in failed, -x.score())):
        rows.append([
            d.column, d.kind, _r(d.psi), _r(d.ks), _r(d.ks_pvalue), _r(d.js), _r(d.chi2_pvalue),
            _r(d.linf), d.new_category_count if d.kind == drift_mod.CATEGORICAL else "",
            d.missing_category_count if d.kind == drift_mod.CATEGORICAL else "",
            _r(d.null_fraction), "❌ drifted" if d.column in failed else "✅ stable"])
    return Table("per-feature drift",
                 ["feature", "kind", "psi", "ks", "ks p", "js", "chi2 p", "linf", "new", "missing",
                  "null frac", "verdict"], rows,
                 note="drifted features first. psi: population stability index (quantile bins "
                      "of the reference); ks: Kolmogorov–Smirnov; js: Jensen–Shannon distance "
                      "(base 2); linf: largest change in a category's frequency.")


def _safe(value: Any) -> str:
    """A data value quoted in a report or issue: PII (:mod:`mlcd_actions.data.pii`) is masked."""
    from mlcd_actions.data import pii

    text = str(value)
    return pii.mask_value(text) if pii.find_all(text) else text


def _masked(d: drift_mod.ColumnDrift) -> drift_mod.ColumnDrift:
    """``d`` with the category values it quotes (new, missing, histogram labels) masked."""
    import dataclasses

    if d.kind != drift_mod.CATEGORICAL:
        return d
    return dataclasses.replace(d, new_categories=[_safe(v) for v in d.new_categories],
                               missing_categories=[_safe(v) for v in d.missing_categories],
                               bin_labels=[_safe(v) for v in d.bin_labels])


def _clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _r(value: float | None) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return float(f"{value:.4g}")


def mermaid_chart(drifts: Sequence[drift_mod.ColumnDrift], top: int = 20) -> str:
    """An inline bar chart of the drift score per feature (PSI or JS), highest first."""
    scored = sorted((d for d in drifts if d.score() >= 0), key=lambda d: -d.score())[:top]
    if not scored:
        return ""
    names = ", ".join(json.dumps(_label(d)) for d in scored)
    values = ", ".join(f"{d.score():.4f}" for d in scored)
    top_value = max(0.25, max(d.score() for d in scored) * 1.1)
    return ("**drift score per feature** (PSI for numeric, JS for categorical)\n\n"
            "```mermaid\nxychart-beta\n"
            f'  x-axis [{names}]\n  y-axis "drift" 0 --> {top_value:.3f}\n'
            f"  bar [{values}]\n```")


def _label(d: drift_mod.ColumnDrift) -> str:
    name = re.sub(r'["\[\],]', "_", d.column)[:24]
    return f"{name} ({'psi' if d.kind == drift_mod.NUMERIC else 'js'})"


def write_plots(drifts: Sequence[drift_mod.ColumnDrift], directory: Path) -> list[str]:
    """One PNG per column (reference vs current histogram), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from mlcd_actions.core.files import atomic_path
    from mlcd_actions.models import plots

    paths = []
    directory.mkdir(parents=True, exist_ok=True)
    for d in drifts:
        if not d.bin_labels:
            continue
        x = np.arange(len(d.bin_labels))
        fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(x) + 2), 3.6), dpi=90)
        try:
            ax.bar(x - 0.2, d.ref_hist, 0.4, label=f"reference (n={d.ref_count:,})")
            ax.bar(x + 0.2, d.cur_hist, 0.4, label=f"current (n={d.cur_count:,})")
            ax.set_xticks(x, [plots.short(b, 24) for b in d.bin_labels], rotation=45,
                          ha="right", fontsize=7)
            ax.set_ylabel("share of rows")
            stat = (f"psi={d.psi:.3g} ks={d.ks:.3g}" if d.kind == drift_mod.NUMERIC and d.psi
                    is not None else f"js={d.js:.3g}" if d.js is not None else "not computed")
            ax.set_title(f"{plots.short(d.column, 60)} — {stat}", fontsize=9)
            ax.legend(fontsize=7)
            fig.tight_layout()
            target = directory / f"{_safe_name(d.column)}.png"
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format="png")
            paths.append(os.fspath(target))
        finally:
            plt.close(fig)
    return paths


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)[:100] or "column"


# --------------------------------------------------------------------------- close the loop

def _close_loop(result: StageResult, *, dispatch, event_type, workflow, ref, dispatch_inputs,
                open_issue, platform, issue_title, dry_run, echo) -> None:
    if dispatch and platform and platform != dispatch:
        raise ConfigError(f"--dispatch {dispatch} and --platform {platform} disagree")
    forge = hosting.from_env(dispatch or platform, dry_run=dry_run)
    env = os.environ
    drifted = result.outputs.get("drifted-features", "")
    link = hosting.run_url()
    extra = _pairs(dispatch_inputs)
    if dispatch:
        if isinstance(forge, hosting.GitHub):
            hosting.require_token(forge)
            if workflow:
                branch = ref or env.get("GITHUB_REF_NAME") or "main"
                done = forge.workflow_dispatch(workflow, branch, extra)
            else:
                payload = {"reason": result.reason[:500], "drifted_features": drifted,
                           "accuracy_decay": bool(result.outputs.get("accuracy-decay")),
                           "run_url": link or "", **extra}
                done = forge.repository_dispatch(event_type, dict(list(payload.items())[:10]))
        else:
            branch = ref or env.get("CI_DEFAULT_BRANCH") or env.get("CI_COMMIT_REF_NAME") or "main"
            variables = {"MLCD_RETRAIN": "true", "MLCD_DRIFTED_FEATURES": drifted,
                         "MLCD_TRIGGER_REASON": result.reason[:500], **extra}
            done = forge.trigger_pipeline(branch, variables)
        result.outputs["dispatched"] = not dry_run
        result.details["dispatch"] = done
    if open_issue:
        from mlcd_actions.core import reporting as report_mod
        from mlcd_actions.core.reporting import fit_text

        body = fit_text(INCIDENT_MARKER + "\n" + report_mod.to_markdown(result, heading_level=2),
                        hosting.COMMENT_CAP - 1000, link)
        hosting.require_token(forge)
        done_issue = forge.upsert_issue(issue_title, body, INCIDENT_MARKER)
        result.outputs["issue-url"] = done_issue.get("url") or ""
        result.outputs["issue-number"] = done_issue.get("number") or ""
        result.details["issue"] = done_issue
    if dry_run:
        for req in forge.sent:
            if req.method != "GET":
                echo(f"mlcd monitor: dry run — would send {req.describe()}")
        result.details["dry_run_requests"] = [r.describe() for r in forge.sent]


def _pairs(values: Sequence[str]) -> dict[str, str]:
    out = {}
    for v in values or ():
        key, sep, value = str(v).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--dispatch-input {v!r}: use key=value")
        out[key.strip()] = value
    return out



"""``mlcd evaluate``: score a model on the test set and gate it.

Metrics (see :mod:`mlcd_actions.models.metrics` for their exact definitions and averaging),
per-slice metrics, and two kinds of gates (:mod:`mlcd_actions.core.gates`): absolute
thresholds (``accuracy>=0.8``) and the allowed drop against a baseline model
(``accuracy=0.01``). The baseline is ``--baseline URI`` or, with ``--name``, the
registry's ``models:/<name>@champion`` when that alias exists; it is scored on the
same test set. Plots go beside the report as PNG; a Mermaid chart goes into the
markdown. A run with no gate at all says so loudly (warning + reason) instead of
passing silently.

A naive baseline (:mod:`mlcd_actions.naive`: majority class and stratified guess, or the
mean) is scored on the same test set; ``--min-lift`` gates ask for a lift over the best of
them (default :data:`DEFAULT_MIN_LIFT`), so a model that learned nothing fails and its row
names the naive score.

With no champion reachable (none registered, no ``--name``, or the registry down) the
baseline is the **main snapshot** (:mod:`mlcd_actions.main_snapshot`, ``--main-snapshot``,
default ``.mlcd/main``): the model the main branch last produced, re-scored on this test
set. Whenever a snapshot exists the report has a "vs main" table, one row per metric
(value, main, delta), like ``dvc metrics diff``; without one it says "no model on main
yet". ``--save-main-snapshot`` (on the main branch) writes the candidate there when the
stage did not fail. A skipped gate says why in its own row.

A configured gate that cannot be checked (``roc_auc>=0.8`` for a model without
``predict_proba``, ``r2`` on a constant label) fails with the reason, unless
``allow_skipped_gates`` (``--allow-skipped-gates``) turns it into a skipped gate with a
warning. The one exception is ``--max-drop`` with no baseline at all (no champion and no
model on main yet: the first model): those gates are skipped with the reason, never failed.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core import gates as gatelib
from mlcd_actions.core.errors import DataError, MlcdError, ServiceError, StageFailed
from mlcd_actions.core.gates import FAILED, PASSED, SKIPPED, fmt
from mlcd_actions.core.reporting import DEFAULT_DIR
from mlcd_actions.core.results import StageResult, Table
from mlcd_actions.data.tables import read_table, require_columns
from mlcd_actions.delivery import overrides
from mlcd_actions.models import loading as models
from mlcd_actions.models import main_snapshot as snaplib
from mlcd_actions.models import metrics as metriclib
from mlcd_actions.models import naive, plots
from mlcd_actions.models.scoring import check_classes as _check_classes
from mlcd_actions.models.scoring import check_label as _check_label
from mlcd_actions.models.scoring import model_info as _model_info
from mlcd_actions.models.scoring import plain as _plain
from mlcd_actions.models.scoring import unique as _unique

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

STAGE = "evaluate"
CHAMPION = "champion"
NO_GATES = "no gates configured"
# the default --min-lift: a lift over the naive baseline that a model which learned
# nothing (constant, or random at the class frequencies) does not reach
DEFAULT_MIN_LIFT = {models.CLASSIFICATION: ("balanced_accuracy=0.1",),
                    models.REGRESSION: ("r2=0.1",)}


def run(model_uri: str, test: str | os.PathLike, label: str, *,
        thresholds: Iterable[str] = (), baseline: str | None = None,
        max_drops: Iterable[str] = (), slices: Iterable[str] = (), name: str | None = None,
        pos_label: str | None = None, tracking_uri: str | None = None,
        report_dir: str | os.PathLike = DEFAULT_DIR, max_slice_values: int = 20,
        plot: bool = True, log_metrics: bool = True,
        allow_skipped_gates: bool = False, min_lifts: Iterable[str] | None = None,
        main_snapshot: str | os.PathLike | None = snaplib.DEFAULT_DIR,
        save_main_snapshot: bool = False) -> StageResult:
    """Evaluate ``model_uri`` on ``test`` (label column ``label``); see the module doc.

    ``min_lifts`` None means :data:`DEFAULT_MIN_LIFT` for the task; ``()`` means none."""
    specs = _Specs(gatelib.parse_thresholds(thresholds),
                   None if min_lifts is None else gatelib.parse_min_lifts(min_lifts),
                   gatelib.parse_max_drops(max_drops))
    slice_cols = list(dict.fromkeys(slices or ()))
    result = StageResult(STAGE)

    df, model, task = _load(model_uri, test, label, slice_cols, tracking_uri)
    scored = score(model, df, label, task, test, pos_label=pos_label)
    result.metrics.update(scored["metrics"])
    if scored["unknown_labels"]:
        shown = ", ".join(map(str, scored["unknown_labels"][:10]))
        result.warnings.append(f"label values the model never learned: {shown}; they count as "
                               "errors, and roc_auc/log_loss are not computed")
    if specs.lifts is None:
        specs.lifts = gatelib.parse_min_lifts(DEFAULT_MIN_LIFT[task])
    naive_scores = naive.score(task, scored["y_true"], scored["classes"], scored["pos_label"])
    base = _baselines(baseline, name, main_snapshot, df, label, task, test, pos_label,
                      tracking_uri, result)

    result.gates = _gates(result, specs, naive_scores, base, model, scored,
                          allow_skipped_gates)
    _detail(result, df, task, label, model, scored, naive_scores, base, slice_cols,
            max_slice_values)
    if plot:
        result.artifacts.extend(_plots(report_dir, task, scored))
    result.lineage.update({**model.report_lineage(), "model_uri": model_uri})
    _verdict(result, task, base, specs, tracking_uri)
    _outputs(result, base)
    if save_main_snapshot and result.status != FAILED and main_snapshot:
        _save_snapshot(main_snapshot, model, model_uri, result, task, label, len(df))
    if log_metrics and model.run_id and model_uri.startswith(("runs:/", "models:/")):
        _log_to_run(model, result)
    return result


@dataclass
class _Specs:
    """The configured gates: thresholds, lifts over the naive baseline, max drops."""

    thresholds: list
    lifts: list | None
    drops: list

    def all(self) -> list:
        return [*self.thresholds, *(self.lifts or ()), *self.drops]


@dataclass
class _Baseline:
    """What the candidate is compared with: the registry/explicit baseline or, without one,
    the main snapshot; plus the snapshot's own scores for the "vs main" table."""

    model: models.LoadedModel | None = None
    scored: dict[str, Any] | None = None
    source: str = ""
    kind: str | None = None          # baseline | champion | main | None
    snapshot: snaplib.Snapshot | None = None
    main_scored: dict[str, Any] | None = None
    main_why: str = ""               # why there is no main comparison

    @property
    def metrics(self) -> dict[str, Any] | None:
        return None if self.scored is None else self.scored["metrics"]

    @property
    def display(self) -> str:
        if self.kind == "main" and self.snapshot is not None:
            return self.snapshot.label
        return self.model.display if self.model is not None else ""


def _load(model_uri: str, test, label: str, slice_cols: list[str], tracking_uri):
    """The test set (checked), the model and the task."""
    df = read_table(test, what="test set")
    require_columns(df, [label], test, role="label column")
    require_columns(df, slice_cols, test, role="slice column")
    if len(df) == 0:
        raise DataError(f"{test}: test set has no rows")
    _check_label(df[label], label, test)
    model = models.load(model_uri, tracking_uri)
    task = models.resolve_task(model, df[label])
    if task == models.CLASSIFICATION:
        _check_classes(df[label], label, test)
    return df, model, task


def _baselines(baseline, name, main_snapshot, df, label, task, test, pos_label, tracking_uri,
               result: StageResult) -> _Baseline:
    base = _Baseline()
    base.snapshot, no_snapshot = (snaplib.read(main_snapshot) if main_snapshot
                                  else (None, "no main snapshot (--main-snapshot is empty)"))
    base.main_scored, main_model, main_error = _score_main(base.snapshot, df, label, task, test,
                                                           pos_label, tracking_uri)
    base.main_why = main_error or no_snapshot
    base.model, base.source, base.kind = _baseline(baseline, name, tracking_uri, result)
    if base.model is not None:
        base.scored = score(base.model, df, label, task, test, pos_label=pos_label,
                            role="baseline")
    elif base.main_scored is not None:
        base.model, base.scored, base.kind = main_model, base.main_scored, "main"
        base.source = (f"{base.source}; compared with the model main last produced "
                       f"({base.snapshot.label})")
    else:
        base.source = f"{base.source}; {base.main_why}"
    return base


def _gates(result: StageResult, specs: _Specs, naive_scores, base: _Baseline, model, scored,
           allow_skipped: bool) -> list[gatelib.GateRow]:
    """Thresholds, lifts over the naive baseline, drops against champion/main; a gate that
    cannot be checked fails (or is skipped with --allow-skipped-gates) with its reason."""
    rows = [*gatelib.evaluate_gates(result.metrics, specs.thresholds, (), base.metrics),
            *_lift_gates(result.metrics, specs.lifts or (), naive_scores)]
    drops = gatelib.evaluate_gates(result.metrics, (), specs.drops, base.metrics)
    for row in drops:
        if row.verdict == SKIPPED and base.metrics is None:
            row.message = f"skipped: no baseline — {base.source}"
    rows += drops
    if specs.drops and base.metrics is None:
        result.warnings.append(f"{len(specs.drops)} max-drop gate(s) skipped: {base.source}")
    unchecked = []
    for row, spec in zip(rows, specs.all(), strict=True):
        if row.verdict != SKIPPED:
            continue
        if isinstance(spec, gatelib.MaxDrop) and base.metrics is None:
            continue  # no champion and no model on main yet (the first model): reason above
        unchecked.append((row, _unchecked_reason(spec, model, scored, base.model,
                                                 base.scored)))
    result.warnings.extend(gatelib.fail_unchecked(unchecked, allow=allow_skipped))
    return rows


def _detail(result: StageResult, df, task: str, label: str, model, scored, naive_scores,
            base: _Baseline, slice_cols, max_slice_values: int) -> None:
    """Tables (naive baselines, baseline diff, vs main, slices), chart and details."""
    names = metriclib.metric_names(task)
    result.tables.append(_naive_table(result.metrics, naive_scores, names))
    if base.model is not None and base.kind != "main":
        result.tables.append(_diff_table(result.metrics, base.metrics, names, model.display,
                                         base.model.display))
    result.tables.append(_main_table(result.metrics, base.main_scored, names, base.snapshot,
                                     base.main_why))
    slice_tables, slice_details = _slices(df, slice_cols, task, scored, max_slice_values)
    result.tables.extend(slice_tables)
    result.markdown.append(_chart(task, result.metrics, base.metrics,
                                  "main" if base.kind == "main" else "baseline"))
    snap = base.snapshot
    result.details.update({
        "task": task, "rows": int(len(df)), "label": label, "classes": scored["classes"],
        "pos_label": scored["pos_label"], "model": _model_info(model),
        "baseline": None if base.model is None else {
            **_model_info(base.model), "source": base.source, "kind": base.kind,
            "metrics": base.metrics},
        "naive_baselines": naive_scores,
        "main": None if snap is None else {
            "directory": os.fspath(snap.directory), "meta": snap.meta,
            "metrics": None if base.main_scored is None else base.main_scored["metrics"],
            "error": base.main_why or None},
        "slices": slice_details,
        "metric_definitions": _definitions(task, scored["classes"]),
    })


def _verdict(result: StageResult, task: str, base: _Baseline, specs: _Specs,
             tracking_uri: str | None = None) -> None:
    rows = result.gates
    checked = [g for g in rows if g.verdict in (PASSED, FAILED)]
    skipped = [g for g in rows if g.verdict == SKIPPED]
    headline = _headline(task, result.metrics)
    if not rows:
        first = metriclib.metric_names(task)[0]
        result.warnings.insert(0, f"{NO_GATES}: pass --threshold (e.g. '{first}>=0.8') or "
                                  "--max-drop; nothing was checked")
        result.reason = f"{NO_GATES}; {headline}"
    elif not checked:
        result.warnings.insert(0, "no gate could be checked; nothing was verified")
        result.reason = f"no gate checked ({len(rows)} skipped); {headline}"
    else:
        against = f" vs {base.display}" if base.model is not None else ""
        held = ""
        if skipped:
            why = ("no model on main yet" if base.metrics is None and specs.drops
                   else skipped[0].message)
            held = f", {len(skipped)} skipped ({why})"
        passed = sum(1 for g in checked if g.verdict == PASSED)
        result.reason = f"{passed} gate(s) passed{against}{held}; {headline}"
    result.fail_unless_gates_pass(override=overrides.honouring(tracking_uri))


def _outputs(result: StageResult, base: _Baseline) -> None:
    result.outputs["passed"] = result.status != FAILED
    for key, value in result.metrics.items():
        result.outputs[key.replace("_", "-")] = value
    result.outputs["baseline-source"] = base.kind or "none"
    if base.model is not None:
        result.outputs["baseline-uri"] = (
            os.fspath(base.snapshot.model_dir) if base.kind == "main" and base.snapshot
            else base.model.resolved_uri or base.model.uri)
    if base.snapshot is not None and base.snapshot.sha:
        result.outputs["main-sha"] = base.snapshot.sha


# --------------------------------------------------------------------------- scoring

def score(model: models.LoadedModel, df: pd.DataFrame, label: str, task: str,
          test: str | os.PathLike, *, pos_label: str | None = None,
          role: str = "model") -> dict[str, Any]:
    """Predict with ``model`` on ``df`` and compute every metric for ``task``."""
    import numpy as np

    features = models.prepare_features(df, label, model, path=test)
    y_pred = model.predict(features)
    y_true = df[label].to_numpy()
    proba = None
    classes = None
    pos = None
    if task == models.CLASSIFICATION:
        classes = list(model.classes) if model.classes else None
        proba = model.predict_proba(features) if classes else None
        y_true = metriclib.align_labels(y_true, classes)
        if classes is None:
            classes = sorted(set(_unique(y_true)) | set(_unique(y_pred)), key=str)
        if len(classes) == 2:
            pos = metriclib.positive_label(classes, pos_label)
        elif pos_label is not None:
            pos = metriclib.positive_label(classes, pos_label)
    else:
        try:
            y_true = y_true.astype(float)
            y_pred = np.asarray(y_pred, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{test}: regression label {label!r} or the {role}'s predictions "
                            f"are not numeric: {exc}") from exc
        bad = ~np.isfinite(y_pred)
        if bad.any():
            raise StageFailed(f"{role} {model.display} returned {int(bad.sum())} NaN/inf "
                              f"prediction(s), first at data row {int(np.flatnonzero(bad)[0]) + 1}")
    values = metriclib.compute(task, y_true, y_pred, proba, classes, pos)
    unknown = []
    if task == models.CLASSIFICATION and classes:
        known = set(classes)
        unknown = [_plain(v) for v in _unique(y_true) if v not in known]
    return {"metrics": values, "unknown_labels": unknown, "y_true": y_true, "y_pred": y_pred, "proba": proba,
            "classes": [_plain(c) for c in classes] if classes else None,
            "pos_label": _plain(pos) if pos is not None else None}


def _unchecked_reason(spec, model: models.LoadedModel, scored: dict[str, Any],
                      base_model: models.LoadedModel | None,
                      base_scored: dict[str, Any] | None) -> str:
    """Why the gate ``spec`` could not be checked, in one line."""
    metric = spec.metric
    if scored["metrics"].get(metric) is None:
        why = _why_undefined(metric, model, scored)
        where = ""
    else:  # a max-drop gate whose baseline value is undefined
        why = _why_undefined(metric, base_model, base_scored)
        where = "the baseline's "
    return f"{where}{metric} could not be computed ({why}); gate '{spec.spec}' cannot be checked"


def _why_undefined(metric: str, model: models.LoadedModel, scored: dict[str, Any]) -> str:
    if metric in ("roc_auc", "log_loss"):
        if scored["proba"] is None:
            return f"model {model.display} has no predict_proba"
        if scored["unknown_labels"]:
            return "the test set has label values the model never learned"
        return "the test set lacks positive or negative rows for it"
    if metric == "r2":
        return "the label is constant on the test set"
    return "undefined on this test set"


# --------------------------------------------------------------------------- baseline

def _baseline(baseline: str | None, name: str | None, tracking_uri: str | None,
              result: StageResult) -> tuple[models.LoadedModel | None, str, str | None]:
    """The registry baseline, a phrase saying where it came from (or why there is none),
    and its kind (``baseline``, ``champion`` or None)."""
    if baseline:
        return models.load(baseline, tracking_uri), f"--baseline {baseline}", "baseline"
    if not name:
        return None, "no champion (no --name to look one up)", None
    try:
        uri = models.resolve_alias(name, CHAMPION, tracking_uri)
    except ServiceError as exc:
        result.warnings.append(f"registry unreachable, champion not checked: {exc.one_line()}")
        return None, f"registry unreachable ({exc.one_line()})", None
    if uri is None:
        result.details["champion"] = None
        return None, f"no champion for model {name!r} (models:/{name}@{CHAMPION} not found)", None
    return models.load(uri, tracking_uri), f"models:/{name}@{CHAMPION}", "champion"


def _score_main(snapshot: snaplib.Snapshot | None, df, label: str, task: str, test,
                pos_label, tracking_uri) -> tuple[dict | None, models.LoadedModel | None,
                                                  str | None]:
    """Re-score the main snapshot's model on this test set; (scored, model, error)."""
    if snapshot is None:
        return None, None, None
    try:
        model = models.load(os.fspath(snapshot.model_dir), tracking_uri)
        scored = score(model, df, label, task, test, pos_label=pos_label, role="main model")
    except MlcdError as exc:
        return None, None, f"the model main last produced could not be scored: {exc.one_line()}"
    return scored, model, None


def _save_snapshot(directory, model: models.LoadedModel, model_uri: str, result: StageResult,
                   task: str, label: str, rows: int) -> None:
    from mlcd_actions.ci import gitinfo
    from mlcd_actions.core import reporting as report_mod

    if not model.local_path:
        result.warnings.append("main snapshot not written: the model has no local files")
        return
    ctx = gitinfo.context()
    meta = {"git_sha": ctx.sha, "branch": ctx.branch, "created_at": report_mod.now_iso(),
            "lineage_id": result.lineage.get("id") or result.lineage.get("lineage_id"),
            "model_uri": model_uri, "run_id": model.run_id, "test_rows": rows, "task": task,
            "label": label, "metrics": result.metrics}
    try:
        path = snaplib.save(directory, model.local_path, report_mod.to_dict(result), meta)
    except OSError as exc:
        result.warnings.append(f"main snapshot not written to {directory}: {exc}")
        return
    result.outputs["main-snapshot"] = os.fspath(path)
    result.details["main_snapshot_written"] = os.fspath(path)


def _lift_gates(values: dict, specs, naive_scores) -> list[gatelib.GateRow]:
    rows = []
    for spec in specs:
        if spec.metric not in values:
            from mlcd_actions.core.errors import ConfigError

            raise ConfigError(f"--min-lift {spec.spec!r}: unknown metric {spec.metric!r}; "
                              f"known: {', '.join(sorted(values))}")
        base, who = naive.best(naive_scores, spec.metric)
        rows.append(spec.check(values.get(spec.metric), base,
                               baseline_name=f"naive baseline ({who})" if who
                               else "naive baseline"))
    return rows


# --------------------------------------------------------------------------- report

def _diff_table(values: dict, base: dict, names, model_name: str, base_name: str) -> Table:
    """One row per metric: candidate, baseline, delta, which way is better, the change."""
    rows = []
    for m in names:
        v, b = values.get(m), base.get(m)
        direction = gatelib.direction_of(m) or ""
        delta = None if v is None or b is None else v - b
        if delta is None:
            change = "—"
        elif abs(delta) < 1e-12:
            change = "same"
        else:
            better = (delta > 0) == (direction == "higher")
            change = "better" if better else "worse"
        rows.append([m, v, b, None if delta is None else f"{delta:+.4g}", direction, change])
    return Table(f"metrics: {model_name} vs baseline {base_name}",
                 ["metric", "candidate", "baseline", "delta", "better", "change"], rows)


def _naive_table(values: dict, naive_scores, names) -> Table:
    """The candidate beside every naive baseline: what learning something must beat."""
    cols = ["metric", "candidate", *[b["name"] for b in naive_scores]]
    rows = [[m, values.get(m), *[b["metrics"].get(m) for b in naive_scores]] for m in names]
    note = "; ".join(f"{b['name']}: {b['detail']}" for b in naive_scores)
    return Table("metrics vs naive baselines (a model that learned nothing)", cols, rows, note)


def _main_table(values: dict, main_scored: dict | None, names,
                snapshot: snaplib.Snapshot | None, why: str) -> Table:
    """``dvc metrics diff`` against main: one row per metric (value, main, delta)."""
    cols = ["metric", "value", "main", "delta", "change"]
    if main_scored is None:
        return Table("metrics vs main", cols, [[why, None, None, None, "—"]])
    base = main_scored["metrics"]
    rows = []
    for m in names:
        v, b = values.get(m), base.get(m)
        delta = None if v is None or b is None else v - b
        rows.append([m, v, b, None if delta is None else f"{delta:+.4g}",
                     _change(m, delta)])
    return Table(f"metrics vs main ({snapshot.label}, re-scored on this test set)", cols, rows)


def _change(metric: str, delta: float | None) -> str:
    if delta is None:
        return "—"
    if abs(delta) < 1e-12:
        return "same"
    better = (delta > 0) == ((gatelib.direction_of(metric) or "higher") == "higher")
    return "better" if better else "worse"


def _slices(df, slice_cols, task, scored, max_values) -> tuple[list[Table], dict]:
    names = list(metriclib.metric_names(task))
    tables, details = [], {}
    for col in slice_cols:
        rows, left_out = metriclib.slice_metrics(
            task, df[col], scored["y_true"], scored["y_pred"], scored["proba"],
            scored["classes"], scored["pos_label"], max_values=max_values)
        details[col] = {"slices": rows, "left_out": left_out}
        note = (f"{left_out} smaller slice(s) not shown (--max-slice-values {max_values})"
                if left_out else None)
        tables.append(Table(f"slices by {col}", [col, "rows", *names],
                            [[r["value"], r["rows"], *[r[m] for m in names]] for r in rows],
                            note))
    return tables, details


def _chart(task: str, values: dict, base: dict | None, base_name: str = "baseline") -> str:
    if task == models.CLASSIFICATION:
        names = [m for m in ("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                             "roc_auc") if values.get(m) is not None]
        y_range = (0.0, 1.0)
        label = "score"
    else:
        names = [m for m in ("rmse", "mae") if values.get(m) is not None]
        top = max([values[m] for m in names] + [base[m] for m in names
                                                if base and base.get(m) is not None] + [0.0])
        y_range = (0.0, float(top) * 1.1 or 1.0)
        label = "error (label units)"
    title = f"candidate (bars) vs {base_name} (line)" if base else "candidate metrics"
    chart = plots.mermaid_bars(title, names, [values[m] for m in names],
                               [base.get(m) for m in names] if base else None,
                               y_label=label, y_range=y_range)
    return f"**metrics chart**\n\n{chart}"


def _plots(report_dir, task: str, scored: dict) -> list[str]:
    out_dir = Path(report_dir)
    written: list[Path | None] = []
    if task == models.CLASSIFICATION:
        classes = scored["classes"]
        written.append(plots.confusion_matrix(scored["y_true"], scored["y_pred"], classes,
                                              out_dir / f"{STAGE}-confusion-matrix.png"))
        if scored["proba"] is not None and (len(classes) > 2 or scored["pos_label"] is not None):
            pos = scored["pos_label"] if len(classes) == 2 else None
            written.append(plots.roc_curve(scored["y_true"], scored["proba"], classes, pos,
                                           out_dir / f"{STAGE}-roc.png"))
            written.append(plots.pr_curve(scored["y_true"], scored["proba"], classes, pos,
                                          out_dir / f"{STAGE}-pr.png"))
    else:
        written.append(plots.residuals(scored["y_true"], scored["y_pred"],
                                       out_dir / f"{STAGE}-residuals.png"))
    return [os.fspath(p) for p in written if p is not None]


def _headline(task: str, values: dict) -> str:
    keys = ("accuracy", "f1", "roc_auc") if task == models.CLASSIFICATION else ("rmse", "r2")
    parts = [f"{k} {fmt(values[k])}" for k in keys if values.get(k) is not None]
    return ", ".join(parts) or "metrics computed"


def _definitions(task: str, classes) -> dict[str, str]:
    if task != models.CLASSIFICATION:
        return {"rmse": "root mean squared error", "mae": "mean absolute error",
                "r2": "coefficient of determination (None for a constant label)"}
    if classes and len(classes) == 2:
        avg = "of the positive class (pos_label)"
    else:
        avg = "macro average over classes (unweighted)"
    return {"precision": avg, "recall": avg, "f1": avg,
            "roc_auc": "positive class" if classes and len(classes) == 2
            else "one-vs-rest macro average over classes present",
            "log_loss": "over the model's classes"}


def _log_to_run(model: models.LoadedModel, result: StageResult) -> None:
    """Best effort: record the metrics on the model's run as ``eval_<metric>``."""
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(f"eval_{k}", float(v), stamp, 0) for k, v in result.metrics.items()
                 if isinstance(v, (int, float)) and not math.isnan(float(v))]
        if batch:
            MlflowClient().log_batch(model.run_id, metrics=batch)
            result.details["logged_to_run"] = model.run_id
    except Exception as exc:  # noqa: BLE001 - best effort, never fails the stage
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        result.warnings.append(f"could not log eval_ metrics to run {model.run_id}: {first}")


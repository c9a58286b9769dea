"""``mlcd check-fairness``: per-group metrics of a model, gated on fairness thresholds.

For every ``--sensitive`` column the model's test-set predictions are split by group
(:mod:`mlcd_actions.models.fairness`, fairlearn's numbers computed with ``numpy.bincount``):
per-group accuracy, selection rate, TPR and FPR (regression: MAE, RMSE), and the
demographic parity and equalized odds differences and ratios. Thresholds gate them:
``demographic_parity_difference<=0.1`` applies to every sensitive feature (one gate
row each), ``sex:demographic_parity_difference<=0.1`` to ``sex`` only. Groups with
fewer than ``--min-group-size`` rows are reported but left out of the differences
and ratios the gates read.

A configured gate that cannot be checked (fewer than two groups reach
``--min-group-size``, a single group, a ratio of 0 to 0) fails with the reason
(``sex: only 1 group has >= 30 rows; demographic parity cannot be checked``), unless
``allow_skipped_gates`` (``--allow-skipped-gates``) skips it with a warning. A
classifier that predicts one class for every row is trivially equal across groups: its
gates cannot be checked either, and fail the same way, each row naming the constant.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from mlcd_actions.core.errors import ConfigError, DataError
from mlcd_actions.core.gates import FAILED, PASSED, SKIPPED, Threshold, fail_unchecked, fmt
from mlcd_actions.core.reporting import DEFAULT_DIR
from mlcd_actions.core.results import StageResult, Table
from mlcd_actions.data.tables import read_table, require_columns
from mlcd_actions.delivery import overrides
from mlcd_actions.models import fairness, plots
from mlcd_actions.models import loading as models
from mlcd_actions.models import metrics as metriclib
from mlcd_actions.models.scoring import check_classes as _check_classes
from mlcd_actions.models.scoring import check_label as _check_label
from mlcd_actions.models.scoring import model_info as _model_info
from mlcd_actions.models.scoring import plain as _plain
from mlcd_actions.models.scoring import unique as _unique

STAGE = "check-fairness"
NO_GATES = "no gates configured"
MAX_CHART_GROUPS = 30
MANY_GROUPS = 50


def parse_scoped(specs: Iterable[str], task: str | None = None,
                 features: Iterable[str] | None = None) -> list[tuple[str | None, str, Threshold]]:
    """``[(feature or None, metric, threshold)]``; ``feature:metric op value`` is scoped.

    With ``task``/``features`` given, unknown metrics and features are ConfigErrors.
    """
    out = []
    known_features = list(features) if features is not None else None
    for spec in specs or ():
        t = Threshold.parse(spec)
        scope, _, metric = t.metric.rpartition(":")
        scope = scope.strip() or None
        metric = metric.strip()
        if task is not None and metric not in fairness.summary_names(task):
            raise ConfigError(f"--threshold {t.spec!r}: unknown fairness metric {metric!r} for "
                              f"{task}; known: {', '.join(fairness.summary_names(task))}")
        if scope is not None and known_features is not None and scope not in known_features:
            raise ConfigError(f"--threshold {t.spec!r}: {scope!r} is not a --sensitive feature "
                              f"(sensitive: {', '.join(known_features)})")
        out.append((scope, metric, t))
    return out


def run(model_uri: str, test: str | os.PathLike, label: str, sensitive: Iterable[str], *,
        thresholds: Iterable[str] = (), min_group_size: int = 1, pos_label: str | None = None,
        tracking_uri: str | None = None, report_dir: str | os.PathLike = DEFAULT_DIR,
        plot: bool = True, allow_skipped_gates: bool = False) -> StageResult:
    """Assess ``model_uri`` on ``test`` for every sensitive column; see the module doc."""
    features = list(dict.fromkeys(sensitive or ()))
    thresholds = list(thresholds or ())
    if not features and not thresholds:
        # not configured: skipped with its reason, as `mlcd run` does, so a CI job that
        # runs every stage passes here and what needs it (register) still runs
        result = StageResult(STAGE)
        result.status = SKIPPED
        result.reason = ("not configured: no sensitive feature (set `sensitive:` in "
                         "mlcd.yaml or --sensitive COL to check fairness)")
        return result
    if not features:
        raise ConfigError("--sensitive is required: name at least one sensitive column "
                          "for the --threshold gates")
    if min_group_size < 1:
        raise ConfigError(f"--min-group-size {min_group_size}: must be at least 1")
    scoped = parse_scoped(thresholds, features=features)  # syntax and scope, before any work
    result = StageResult(STAGE)

    df = read_table(test, what="test set")
    require_columns(df, [label], test, role="label column")
    require_columns(df, features, test, role="sensitive feature")
    if len(df) == 0:
        raise DataError(f"{test}: test set has no rows")
    _check_label(df[label], label, test)

    model = models.load(model_uri, tracking_uri)
    task = models.resolve_task(model, df[label])
    scoped = parse_scoped(thresholds, task, features)
    if task == models.CLASSIFICATION:
        _check_classes(df[label], label, test)
    y_true, y_pred, pos = _predict(model, df, label, task, test, pos_label)

    assessed: dict[str, fairness.FeatureFairness] = {}
    for feature in features:
        assessed[feature] = fairness.assess(task, df[feature], y_true, y_pred, feature=feature,
                                            pos_label=pos, min_group_size=min_group_size)
    _record(result, assessed, min_group_size)
    result.gates = _gates(scoped, assessed, min_group_size)
    constant = _constant_prediction(task, y_pred)
    if constant is not None:
        # a model that gives everyone the same answer is trivially "fair": its fairness
        # gates cannot tell anything, so they count as unchecked (failed, like any other
        # gate that cannot be checked, unless --allow-skipped-gates)
        for row in result.gates:
            if row.verdict != PASSED:
                continue  # an undefined metric keeps its own, more precise reason
            row.verdict = SKIPPED
            row.message = (f"the model predicts {constant!r} for every row: a constant model "
                           f"is trivially equal across groups, so {row.metric} says nothing")
        result.details["constant_prediction"] = constant
    result.warnings.extend(fail_unchecked(
        [(row, row.message) for row in result.gates if row.verdict == SKIPPED],
        allow=allow_skipped_gates))

    # report detail
    result.tables.append(_summary_table(task, assessed))
    for ff in assessed.values():
        result.tables.append(_group_table(ff))
        result.markdown.append(_chart(ff))
    if plot:
        result.artifacts.extend(_plots(report_dir, assessed))
    result.details.update({
        "task": task, "rows": int(len(df)), "label": label,
        "pos_label": _plain(pos) if pos is not None else None,
        "min_group_size": min_group_size, "model": _model_info(model),
        "features": {f: {"groups": ff.groups, "summary": ff.summary,
                         "excluded": ff.excluded} for f, ff in assessed.items()},
    })
    result.lineage.update({**model.report_lineage(), "model_uri": model_uri})
    _verdict(result, task, assessed, tracking_uri)
    return result


def _predict(model: models.LoadedModel, df, label: str, task: str, test, pos_label):
    """(y_true, y_pred, positive label) on the test set: classes aligned with the model's,
    a multiclass label needs ``--pos-label``; a regression label must be numeric."""
    x = models.prepare_features(df, label, model, path=test)
    y_pred = model.predict(x)
    y_true = df[label].to_numpy()
    pos = None
    if task == models.CLASSIFICATION:
        classes = list(model.classes) if model.classes else sorted(
            set(_unique(y_true)) | set(_unique(y_pred)), key=str)
        y_true = metriclib.align_labels(y_true, classes)
        if len(classes) > 2 and pos_label is None:
            raise ConfigError(f"label {label!r} has {len(classes)} classes; pass --pos-label to "
                              "name the favourable outcome (assessed one-vs-rest)")
        pos = metriclib.positive_label(classes, pos_label)
    else:
        import numpy as np

        try:
            y_true = y_true.astype(float)
            y_pred = np.asarray(y_pred, dtype=float)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{test}: regression label {label!r} or the predictions are not "
                            f"numeric: {exc}") from exc
    return y_true, y_pred, pos


def _record(result: StageResult, assessed: dict[str, fairness.FeatureFairness],
            min_group_size: int) -> None:
    """Per-feature metrics, and warnings about groups left out or too many/few groups."""
    for feature, ff in assessed.items():
        for metric, value in ff.summary.items():
            result.metrics[f"{feature}:{metric}"] = value
        if ff.excluded:
            shown = ", ".join(map(str, ff.excluded[:10]))
            more = f" (+{len(ff.excluded) - 10} more)" if len(ff.excluded) > 10 else ""
            result.warnings.append(
                f"{feature}: {len(ff.excluded)} group(s) under --min-group-size {min_group_size} "
                f"reported but not gated: {shown}{more}")
        if len(ff.groups) > MANY_GROUPS:
            result.warnings.append(
                f"{feature}: {len(ff.groups)} groups; a continuous or id-like column should be "
                "binned before a fairness check")
        if ff.gated_groups < 2:
            result.warnings.append(
                f"{feature}: fewer than two groups with at least {min_group_size} row(s); "
                "differences and ratios are undefined")


def _verdict(result: StageResult, task: str, assessed: dict[str, fairness.FeatureFairness],
             tracking_uri: str | None = None) -> None:
    """The reason, the gate verdict, and the worst value of each metric as outputs."""
    checked = [g for g in result.gates if g.verdict in (PASSED, FAILED)]
    headline = _headline(task, assessed)
    if not result.gates:
        example = fairness.summary_names(task)[0]
        result.warnings.insert(0, f"{NO_GATES}: pass --threshold (e.g. '{example}<=0.1'); "
                                  "nothing was checked")
        result.reason = f"{NO_GATES}; {headline}"
    elif not checked:
        result.warnings.insert(0, "no fairness gate could be checked; nothing was verified")
        result.reason = f"no gate checked ({len(result.gates)} skipped); {headline}"
    else:
        result.reason = f"{len(checked)} fairness gate(s) passed; {headline}"
    result.fail_unless_gates_pass(override=overrides.honouring(tracking_uri))

    result.outputs["passed"] = result.status != FAILED
    for metric in fairness.summary_names(task):
        values = [ff.summary[metric] for ff in assessed.values() if ff.summary[metric] is not None]
        if values:  # the worst value over the sensitive features
            worst = min(values) if metric.endswith("_ratio") else max(values)
            result.outputs[metric.replace("_", "-")] = worst


def _constant_prediction(task: str, y_pred) -> object:
    """The one class a classifier predicts for every row, else None."""
    if task != models.CLASSIFICATION:
        return None
    values = _unique(y_pred)
    return _plain(values[0]) if len(values) == 1 else None


def _gates(scoped, assessed: dict[str, fairness.FeatureFairness], min_group_size: int):
    rows = []
    for scope, metric, t in scoped:
        for feature in ([scope] if scope else list(assessed)):
            value = assessed[feature].summary.get(metric)
            row = t.check(value, metric=f"{feature}:{metric}")
            if value is None:
                row.message = _undefined_reason(assessed[feature], metric, min_group_size)
            rows.append(row)
    return rows


def _undefined_reason(ff: fairness.FeatureFairness, metric: str, min_group_size: int) -> str:
    """Why ``metric`` of ``ff`` is undefined: ``sex: only 1 group has >= 30 rows; ...``."""
    what = metric.removesuffix("_difference").removesuffix("_ratio").replace("_", " ")
    total, gated = len(ff.groups), ff.gated_groups
    if total < 2:
        why = f"only {total} group in the test set"
    elif gated < 2:
        have = "no group has" if gated == 0 else "only 1 group has"
        why = f"{have} >= {min_group_size} rows"
    else:
        why = f"{metric} is a ratio of 0 to 0 (the rate is 0 in every gated group)"
    return f"{ff.feature}: {why}; {what} cannot be checked"


def _summary_table(task: str, assessed: dict[str, fairness.FeatureFairness]) -> Table:
    names = list(fairness.summary_names(task))
    rows = [[f, ff.gated_groups, *[ff.summary[m] for m in names]] for f, ff in assessed.items()]
    return Table("fairness summary (over gated groups)", ["feature", "groups", *names], rows)


def _group_table(ff: fairness.FeatureFairness) -> Table:
    names = list(fairness.group_names(ff.task))
    extra = ["positives"] if ff.task == models.CLASSIFICATION else []
    columns = [ff.feature, "rows", "gated", *extra, *names]
    rows = [[g["group"], g["count"], "yes" if g["gated"] else "no",
             *[g[c] for c in extra], *[g[m] for m in names]] for g in ff.groups]
    note = None
    if ff.excluded:
        note = (f"groups under {ff.min_group_size} rows are shown but left out of the "
                "differences and ratios")
    return Table(f"groups by {ff.feature}", columns, rows, note)


def _chart(ff: fairness.FeatureFairness) -> str:
    groups = ff.groups[:MAX_CHART_GROUPS]
    names = [str(g["group"]) for g in groups]
    if ff.task == models.CLASSIFICATION:
        chart = plots.mermaid_bars(f"{ff.feature}: selection rate (bars), TPR (line)", names,
                                   [g["selection_rate"] for g in groups],
                                   [g["tpr"] for g in groups], y_label="rate",
                                   y_range=(0.0, 1.0))
    else:
        top = max([g["mae"] or 0.0 for g in groups] + [0.0])
        chart = plots.mermaid_bars(f"{ff.feature}: MAE per group", names,
                                   [g["mae"] for g in groups], y_label="MAE",
                                   y_range=(0.0, top * 1.1 or 1.0))
    return f"**per-group chart: {ff.feature}**\n\n{chart}"


def _plots(report_dir, assessed: dict[str, fairness.FeatureFairness]) -> list[str]:
    out = []
    for feature, ff in assessed.items():
        groups = ff.groups[:MAX_CHART_GROUPS]
        names = ["accuracy", "selection_rate", "tpr", "fpr"] \
            if ff.task == models.CLASSIFICATION else ["mae", "rmse"]
        path = Path(report_dir) / f"{STAGE}-{plots.safe_name(feature)}.png"
        plots.group_bars(feature, [g["group"] for g in groups],
                         {m: [g[m] for g in groups] for m in names}, path)
        out.append(os.fspath(path))
    return out


def _headline(task: str, assessed: dict[str, fairness.FeatureFairness]) -> str:
    key = "demographic_parity_difference" if task == models.CLASSIFICATION else "mae_difference"
    parts = [f"{f} {key} {fmt(ff.summary[key])}" for f, ff in assessed.items()
             if ff.summary.get(key) is not None]
    return "; ".join(parts) or "per-group metrics computed"


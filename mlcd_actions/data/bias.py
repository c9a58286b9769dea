"""Data bias: group sizes and label-rate gaps per sensitive feature (``mlcd check-data``).

For each sensitive feature the rows are grouped by its value (missing values form their
own group, ``(missing)``; a numeric feature with more than :data:`MAX_NUMERIC_GROUPS`
distinct values is cut into quartiles). Per group: its size and, when a label is given,
the rate of each label class (fairlearn ``MetricFrame`` with ``selection_rate`` on the
class indicator). Metrics, each also scoped by feature as ``<feature>:<metric>``:

* ``min_group_size``: the smallest group;
* ``label_rate_gap``: the largest difference, over classes, between the highest and the
  lowest group rate of that class (for a binary label: the gap in positive rate);
* ``label_rate_ratio``: lowest / highest group rate of the positive class (binary labels;
  the "four-fifths rule" reads ``label_rate_ratio>=0.8``);
* ``label_mean_gap``: for a numeric (regression) label, highest minus lowest group mean.

Unscoped metrics take the worst feature: smallest size and ratio, largest gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

MISSING = "(missing)"
MAX_NUMERIC_GROUPS = 10
MAX_CLASSES = 50


def label_kind(y: pd.Series) -> str:
    """``classification`` or ``regression``: floats with non-integer values, or integers
    with many distinct values, are regression targets."""
    import numpy as np
    import pandas as pd

    values = y.dropna()
    if pd.api.types.is_bool_dtype(y.dtype) or not pd.api.types.is_numeric_dtype(y.dtype):
        return "classification"
    if not len(values):
        return "classification"
    nunique = values.nunique()
    if pd.api.types.is_float_dtype(y.dtype):
        finite = values[np.isfinite(values.to_numpy(dtype=float))]
        if len(finite) and not np.all(np.mod(finite.to_numpy(dtype=float), 1) == 0):
            return "regression"
    return "classification" if nunique <= 20 else "regression"


def positive_class(classes: list[Any], positive: Any = None) -> Any:
    """The class whose rate is compared for ``label_rate_ratio`` (binary labels)."""
    if positive is not None:
        for c in classes:
            if str(c) == str(positive):
                return c
        raise DataError(f"--pos-label {positive!r} is not a label value "
                        f"(values: {', '.join(map(str, classes[:20]))})")
    for c in classes:
        if c is True or (not isinstance(c, str) and c == 1):
            return c
    return sorted(classes, key=str)[-1]


@dataclass
class FeatureBias:
    feature: str
    groups: list[dict[str, Any]]
    metrics: dict[str, float | None] = field(default_factory=dict)
    note: str | None = None


def _groups(series: pd.Series) -> tuple[pd.Series, str | None]:
    import pandas as pd

    note = None
    if (pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
            and series.nunique() > MAX_NUMERIC_GROUPS):
        binned = pd.qcut(series, 4, duplicates="drop")
        note = "numeric feature with many values: grouped into quartiles"
        series = binned.astype(str).where(binned.notna(), MISSING)
        return series, note
    out = series.astype(object).where(series.notna(), MISSING).map(str)
    return out, note


def feature_bias(df: pd.DataFrame, feature: str, label: str | None,
                 positive: Any = None) -> FeatureBias:
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame, selection_rate

    groups, note = _groups(df[feature])
    sizes = groups.value_counts(sort=False)
    order = sorted(sizes.index, key=str)
    rows = [{"group": g, "size": int(sizes[g])} for g in order]
    metrics: dict[str, float | None] = {"min_group_size": float(sizes.min()),
                                        "groups": float(len(sizes))}
    if label is not None:
        y = df[label]
        known = y.notna()
        if pd.api.types.is_float_dtype(y.dtype):
            known &= np.isfinite(y.to_numpy(dtype=float, na_value=np.nan))
        y, g = y[known], groups[known]
        if not len(y):
            metrics.update(label_rate_gap=None)
            note = (note + "; " if note else "") + f"label {label!r} has no values"
        elif label_kind(y) == "regression":
            means = y.astype(float).groupby(g).mean()
            for r in rows:
                r["label mean"] = float(means[r["group"]]) if r["group"] in means else None
            metrics["label_mean_gap"] = float(means.max() - means.min()) if len(means) > 1 else 0.0
        else:
            classes = sorted(y.unique().tolist(), key=str)
            if len(classes) > MAX_CLASSES:
                raise DataError(f"label {label!r} has {len(classes)} classes; label rates per "
                                f"group need at most {MAX_CLASSES}")
            gaps, rates_by_class = [], {}
            for c in classes:
                indicator = (y == c).astype(int).to_numpy()
                mf = MetricFrame(metrics=selection_rate, y_true=indicator, y_pred=indicator,
                                 sensitive_features=g.to_numpy())
                by_group = mf.by_group
                rates_by_class[c] = {str(k): float(v) for k, v in by_group.items()}
                gaps.append(float(mf.difference(method="between_groups")))
            metrics["label_rate_gap"] = max(gaps) if gaps else 0.0
            if len(classes) == 2:
                pos = positive_class(classes, positive)
                rates = rates_by_class[pos]
                top = max(rates.values())
                metrics["label_rate_ratio"] = (min(rates.values()) / top) if top > 0 else 1.0
                for r in rows:
                    r[f"rate of {label}={pos}"] = rates.get(r["group"])
            else:
                for r in rows:
                    r["label rates"] = ", ".join(
                        f"{c}: {rates_by_class[c].get(r['group'], 0.0):.3g}" for c in classes)
        for r in rows:
            r["labelled"] = int((g == r["group"]).sum())
    return FeatureBias(feature, rows, metrics, note)


def combine(features: list[FeatureBias]) -> dict[str, float | None]:
    """Scoped metrics per feature plus the worst value over features, unscoped."""
    out: dict[str, float | None] = {}
    worst: dict[str, list[float]] = {}
    for fb in features:
        for name, value in fb.metrics.items():
            out[f"{fb.feature}:{name}"] = value
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                worst.setdefault(name, []).append(value)
    for name, values in worst.items():
        if name == "groups":
            continue
        pick = min if name in ("min_group_size", "label_rate_ratio") else max
        out[name] = pick(values)
    for fb in features:   # a metric no feature could compute is still known (as None)
        for name in fb.metrics:
            if name != "groups":
                out.setdefault(name, None)
    return out

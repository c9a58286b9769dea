"""Naive baselines: what a model that learned nothing scores on the same test set.

``evaluate`` scores them beside the candidate and its default gate (``--min-lift``) asks
for a lift over the best of them, so a constant or random model fails by default:

* classification: the **majority class** (always the most frequent label of the test
  set, with probability 1 for it) and a **stratified guess** (labels drawn at random with
  the test set's class frequencies, probabilities equal to those frequencies; the mean
  over :data:`STRATIFIED_DRAWS` seeded draws, so the figure does not depend on one draw);
* regression: the **mean** of the test set's label (R² exactly 0).

The labels are the test set's own, so the baselines are as strong as a constant can be on
that set (a majority class taken from the training set can only score lower).
numpy is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlcd_actions.core import gates as gatelib
from mlcd_actions.models import metrics as metriclib

MAJORITY = "majority class"
STRATIFIED = "stratified guess"
MEAN = "mean"
STRATIFIED_DRAWS = 10
SEED = 0


def score(task: str, y_true, classes: Sequence[Any] | None, pos_label: Any = None,
          ) -> list[dict[str, Any]]:
    """``[{"name", "detail", "metrics"}]``: every naive baseline scored on ``y_true``."""
    import numpy as np

    y = np.asarray(y_true)
    n = len(y)
    if task != "classification":
        mean = float(np.mean(y.astype(float)))
        pred = np.full(n, mean)
        return [{"name": MEAN, "detail": f"always {gatelib.fmt(mean)}",
                 "metrics": metriclib.compute(task, y.astype(float), pred)}]
    import pandas as pd

    counts = pd.Series(y).value_counts(sort=True)
    values = list(counts.index)
    freq = (counts / counts.sum()).to_numpy()
    top = values[0]
    cls = list(classes) if classes else None
    known = cls is not None and all(v in cls for v in values)

    def proba_of(p_by_value: dict) -> Any:
        if not known:
            return None
        return np.tile(np.asarray([p_by_value.get(c, 0.0) for c in cls], dtype=float), (n, 1))

    majority = metriclib.compute(task, y, np.asarray([top] * n, dtype=y.dtype),
                                 proba_of({top: 1.0}), cls, pos_label)
    rng = np.random.default_rng(SEED)
    draws = [metriclib.compute(task, y, rng.choice(np.asarray(values, dtype=y.dtype), size=n,
                                                   p=freq),
                               proba_of(dict(zip(values, freq, strict=True))), cls, pos_label)
             for _ in range(STRATIFIED_DRAWS if n <= 100_000 else 1)]
    stratified = {m: _mean([d.get(m) for d in draws]) for m in draws[0]}
    return [{"name": MAJORITY, "detail": f"always {top!r}"
             if not isinstance(top, np.generic) else f"always {top.item()!r}",
             "metrics": majority},
            {"name": STRATIFIED, "detail": "random labels at the test set's class frequencies",
             "metrics": stratified}]


def best(baselines: Sequence[dict[str, Any]], metric: str) -> tuple[float | None, str | None]:
    """The best naive score for ``metric`` (in its direction) and the baseline's name."""
    higher = (gatelib.direction_of(metric) or "higher") == "higher"
    scored = [(b["metrics"].get(metric), b["name"]) for b in baselines
              if b["metrics"].get(metric) is not None]
    if not scored:
        return None, None
    value, name = (max if higher else min)(scored, key=lambda t: t[0])
    return float(value), name


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None

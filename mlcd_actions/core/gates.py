"""Gates shared by validate, evaluate, check-fairness and monitor.

Two spellings, TFX/MLflow style:

* an absolute threshold ``'f1>=0.8'``, ``'psi<=0.2'``, ``'rmse<3'`` (``min``/``max``);
  a metric may be scoped, ``'age.psi<=0.1'`` or ``'sex:demographic_parity_difference<=0.1'``;
* an allowed change against a baseline ``'f1=0.01'`` (``max-drop``): the value may be
  at most 0.01 worse than the baseline, where "worse" follows the metric's direction.
  A relative drop is written with a percent sign: ``'f1=2%'``;
* a required lift over a naive baseline ``'balanced_accuracy=0.1'`` (``min-lift``): the
  value must be at least 0.1 better than what a model that learned nothing scores
  (majority class, stratified guess or the mean) on the same test set; ``'r2=10%'`` is
  relative to the naive score.

Every evaluated gate becomes a :class:`GateRow` that explains itself: metric, value,
threshold, baseline, delta, direction, verdict.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from mlcd_actions.core.errors import ConfigError

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"

# Direction of "better" for well-known metrics. Anything else must be given an
# explicit direction when used with max-drop; thresholds carry their own direction.
HIGHER_IS_BETTER = frozenset({
    "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc",
    "average_precision", "r2", "selection_rate", "tpr", "tnr", "specificity",
    "demographic_parity_ratio", "equalized_odds_ratio", "valid", "rows", "explained_variance",
})
LOWER_IS_BETTER = frozenset({
    "log_loss", "rmse", "mse", "mae", "mape", "median_absolute_error", "brier", "fpr", "fnr",
    "psi", "ks", "js", "jensen_shannon", "chi2", "linf", "l_infinity", "error",
    "demographic_parity_difference", "equalized_odds_difference", "label_rate_gap",
    "latency_ms", "p99_ms", "null_fraction", "new_categories", "missing_categories",
})

_OPS = {
    ">=": lambda v, t: v >= t,
    "<=": lambda v, t: v <= t,
    "==": lambda v, t: v == t,
    "!=": lambda v, t: v != t,
    ">": lambda v, t: v > t,
    "<": lambda v, t: v < t,
}
_THRESHOLD_RE = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w.:/\- ]*?)\s*(?P<op>>=|<=|==|!=|>|<)\s*"
                           r"(?P<value>[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")
_DROP_RE = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w.:/\- ]*?)\s*=\s*"
                      r"(?P<value>(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*(?P<pct>%?)\s*$")


def base_metric(metric: str) -> str:
    """``'sex:tpr'`` -> ``'tpr'``; ``'age.psi'`` -> ``'psi'``."""
    return re.split(r"[.:/]", metric)[-1].strip().lower()


def direction_of(metric: str) -> str | None:
    """``'higher'``, ``'lower'`` or None when the metric is unknown."""
    name = base_metric(metric)
    if name in HIGHER_IS_BETTER:
        return "higher"
    if name in LOWER_IS_BETTER or name.endswith(("_difference", "_error", "_loss", "_gap")):
        return "lower"
    if name.endswith(("_ratio", "_score", "_auc")):
        return "higher"
    return None


@dataclass(frozen=True)
class Threshold:
    """An absolute gate: ``metric op value``."""

    metric: str
    op: str
    value: float
    spec: str

    @classmethod
    def parse(cls, spec: str, *, option: str = "--threshold") -> Threshold:
        m = _THRESHOLD_RE.match(str(spec))
        if not m:
            raise ConfigError(f"{option} {spec!r} is not of the form 'metric>=number' "
                              "(operators: >= <= > < == !=)")
        return cls(m["metric"].strip(), m["op"], float(m["value"]), str(spec).strip())

    @property
    def direction(self) -> str:
        if self.op in (">=", ">"):
            return "higher"
        if self.op in ("<=", "<"):
            return "lower"
        return "equal"

    def check(self, value: float | None, baseline: float | None = None,
              metric: str | None = None) -> GateRow:
        name = metric or self.metric
        threshold = f"{self.op} {_fmt(self.value)}"
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return GateRow(name, None, threshold, baseline, None, self.direction, SKIPPED,
                           f"{name} could not be computed")
        ok = _OPS[self.op](float(value), self.value)
        delta = None if baseline is None else float(value) - float(baseline)
        return GateRow(name, float(value), threshold, baseline, delta, self.direction,
                       PASSED if ok else FAILED,
                       f"{name} = {_fmt(value)} {'meets' if ok else 'misses'} {threshold}")


@dataclass(frozen=True)
class _Change:
    """A gate on the change of a metric against a baseline: ``'f1=0.01'`` or ``'f1=2%'``
    (relative to the baseline's value). The metric's direction must be known."""

    metric: str
    value: float
    relative: bool
    spec: str

    OPTION = ""
    FORM = ""

    @classmethod
    def parse(cls, spec: str, *, option: str | None = None):
        option = option or cls.OPTION
        m = _DROP_RE.match(str(spec))
        if not m:
            raise ConfigError(f"{option} {spec!r} is not of the form {cls.FORM}")
        metric = m["metric"].strip()
        if direction_of(metric) is None:
            raise ConfigError(f"{option} {spec!r}: metric {metric!r} has no known direction; "
                              "use a threshold instead")
        return cls(metric, float(m["value"]), bool(m["pct"]), str(spec).strip())

    @property
    def direction(self) -> str:
        return direction_of(self.metric) or "higher"

    @property
    def shown(self) -> str:
        return f"{_fmt(self.value)}{'%' if self.relative else ''}"

    def amount(self, baseline: float) -> float:
        """The allowed drop / required lift in the metric's units."""
        return abs(float(baseline)) * self.value / 100.0 if self.relative else self.value


@dataclass(frozen=True)
class MaxDrop(_Change):
    """A gate against a baseline: the metric may get worse by at most ``value``."""

    OPTION = "--max-drop"
    FORM = "'metric=0.01' or 'metric=2%'"

    def check(self, value: float | None, baseline: float | None,
              metric: str | None = None) -> GateRow:
        name = metric or self.metric
        direction = self.direction
        threshold = f"max drop {self.shown}"
        if value is None or baseline is None:
            why = "no baseline" if baseline is None else f"{name} could not be computed"
            return GateRow(name, value, threshold, baseline, None, direction, SKIPPED, why)
        delta = float(value) - float(baseline)
        worse_by = -delta if direction == "higher" else delta
        ok = worse_by <= self.amount(baseline) + 1e-12
        verb = "dropped" if worse_by > 0 else "changed"
        return GateRow(name, float(value), threshold, float(baseline), delta, direction,
                       PASSED if ok else FAILED,
                       f"{name} {verb} by {_fmt(abs(delta))} vs baseline {_fmt(baseline)} "
                       f"({'within' if ok else 'over'} {self.shown})")


@dataclass(frozen=True)
class MinLift(_Change):
    """A gate against a naive baseline: the metric must be better by at least ``value``."""

    OPTION = "--min-lift"
    FORM = "'metric=0.1' or 'metric=5%'"

    def check(self, value: float | None, baseline: float | None, metric: str | None = None,
              baseline_name: str = "naive baseline") -> GateRow:
        name = metric or self.metric
        direction = self.direction
        threshold = f"lift >= {self.shown} over {baseline_name}"
        if value is None or baseline is None:
            why = (f"{baseline_name} has no {name}" if baseline is None
                   else f"{name} could not be computed")
            return GateRow(name, value, threshold, baseline, None, direction, SKIPPED, why)
        delta = float(value) - float(baseline)
        lift = delta if direction == "higher" else -delta
        ok = lift >= self.amount(baseline) - 1e-12
        return GateRow(name, float(value), threshold, float(baseline), delta, direction,
                       PASSED if ok else FAILED,
                       f"{name} = {_fmt(value)} vs {baseline_name} {_fmt(baseline)}: lift "
                       f"{_fmt(lift)} {'meets' if ok else 'misses'} >= {self.shown}")


@dataclass
class GateRow:
    """One gate, explained: the row that appears in summaries, comments, JUnit and outputs."""

    metric: str
    value: float | None
    threshold: str
    baseline: float | None
    delta: float | None
    direction: str
    verdict: str
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> GateRow:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


def parse_thresholds(specs: Iterable[str] | None, option: str = "--threshold") -> list[Threshold]:
    return [Threshold.parse(s, option=option) for s in (specs or ())]


def parse_min_lifts(specs: Iterable[str] | None, option: str = "--min-lift") -> list[MinLift]:
    return [MinLift.parse(s, option=option) for s in (specs or ())]


def parse_max_drops(specs: Iterable[str] | None, option: str = "--max-drop") -> list[MaxDrop]:
    return [MaxDrop.parse(s, option=option) for s in (specs or ())]


def evaluate_gates(metrics: Mapping[str, float], thresholds: Iterable[Threshold] = (),
                   max_drops: Iterable[MaxDrop] = (),
                   baseline: Mapping[str, float] | None = None) -> list[GateRow]:
    """Check every gate against ``metrics`` (and ``baseline`` for max-drop).

    A threshold naming a metric that is not in ``metrics`` is a configuration error:
    a typo must not turn into a silently skipped gate.
    """
    rows = []
    for t in thresholds:
        if t.metric not in metrics:
            raise ConfigError(f"--threshold {t.spec!r}: unknown metric {t.metric!r}; "
                              f"known: {', '.join(sorted(metrics)) or 'none'}")
        rows.append(t.check(metrics[t.metric], (baseline or {}).get(t.metric)))
    for d in max_drops:
        if d.metric not in metrics:
            raise ConfigError(f"--max-drop {d.spec!r}: unknown metric {d.metric!r}; "
                              f"known: {', '.join(sorted(metrics)) or 'none'}")
        rows.append(d.check(metrics[d.metric], (baseline or {}).get(d.metric)))
    return rows


def all_passed(rows: Iterable[GateRow]) -> bool:
    return all(r.verdict != FAILED for r in rows)


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


fmt = _fmt


ALLOW_SKIPPED_GATES = "--allow-skipped-gates"


def fail_unchecked(unchecked: Iterable[tuple[GateRow, str]], *, allow: bool = False) -> list[str]:
    """Configured gates that could not be checked fail, each with its ``reason``.

    A gate the user configured but whose value is undefined (a metric that could not be
    computed, too few groups) must not pass silently: its row becomes FAILED with the
    reason as its message. With ``allow`` (``--allow-skipped-gates``) it stays SKIPPED.
    Returns the warnings to add to the result.
    """
    pairs = list(unchecked)
    warnings: list[str] = []
    for row, reason in pairs:
        row.message = reason
        if allow:
            row.verdict = SKIPPED
            warnings.append(f"gate on {row.metric} skipped ({ALLOW_SKIPPED_GATES}): {reason}")
        else:
            row.verdict = FAILED
    if pairs and not allow:
        warnings.append(f"{len(pairs)} gate(s) could not be checked and count as failed; "
                        f"{ALLOW_SKIPPED_GATES} skips them instead")
    return warnings

"""Evaluation plots as PNG files beside the report, and Mermaid charts for the markdown.

PNGs are drawn with matplotlib's object API on the Agg canvas (no display, no pyplot
global state) and written atomically. Mermaid charts are text: they render inline in
a GitHub job summary, a pull-request comment and GitLab markdown.

matplotlib, numpy and scikit-learn are imported inside functions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlcd_actions.core.files import atomic_path

MAX_CURVE_CLASSES = 10  # one-vs-rest curves drawn for at most this many classes


def _figure(width: float = 5.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    return path


def confusion_matrix(y_true, y_pred, classes: Sequence[Any], path: str | os.PathLike,
                     title: str = "Confusion matrix") -> Path:
    import sklearn.metrics as skm

    labels = list(classes)
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    size = max(4.0, min(12.0, 1.0 + 0.6 * len(labels)))
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    names = [_short(c) for c in labels]
    ax.set_xticks(range(len(labels)), names, rotation=45 if len(labels) > 4 else 0, ha="right"
                  if len(labels) > 4 else "center")
    ax.set_yticks(range(len(labels)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    if len(labels) <= 20:
        top = cm.max() if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if top and cm[i, j] > top / 2 else "black")
    return _save(fig, Path(path))


def _curves(y_true, proba, classes: Sequence[Any], pos_label: Any):
    """``[(name, truth, score)]``: the positive class for binary, one-vs-rest otherwise."""
    import numpy as np

    y_true = np.asarray(y_true)
    labels = list(classes)
    if len(labels) == 2:
        i = labels.index(pos_label)
        return [(_short(pos_label), y_true == pos_label, proba[:, i])]
    out = []
    for i, c in enumerate(labels[:MAX_CURVE_CLASSES]):
        truth = y_true == c
        if truth.any() and not truth.all():
            out.append((_short(c), truth, proba[:, i]))
    return out


def roc_curve(y_true, proba, classes: Sequence[Any], pos_label: Any,
              path: str | os.PathLike) -> Path | None:
    import sklearn.metrics as skm

    curves = _curves(y_true, proba, classes, pos_label)
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for name, truth, score in curves:
        fpr, tpr, _ = skm.roc_curve(truth, score)
        auc = skm.auc(fpr, tpr)
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC curve")
    ax.legend(loc="lower right", fontsize="small")
    return _save(fig, Path(path))


def pr_curve(y_true, proba, classes: Sequence[Any], pos_label: Any,
             path: str | os.PathLike) -> Path | None:
    import sklearn.metrics as skm

    curves = _curves(y_true, proba, classes, pos_label)
    if not curves:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for name, truth, score in curves:
        precision, recall, _ = skm.precision_recall_curve(truth, score)
        ap = skm.average_precision_score(truth, score)
        ax.plot(recall, precision, label=f"{name} (AP {ap:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.05)
    ax.set_title("Precision-recall curve")
    ax.legend(loc="lower left", fontsize="small")
    return _save(fig, Path(path))


def residuals(y_true, y_pred, path: str | os.PathLike, max_points: int = 20000) -> Path:
    """Residuals against predictions, and their histogram."""
    import numpy as np

    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    res = y_true - y_pred
    idx = np.arange(len(res))
    if len(idx) > max_points:  # a deterministic sample keeps the PNG small
        idx = np.random.default_rng(0).choice(idx, max_points, replace=False)
    fig = _figure(10, 4)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.scatter(y_pred[idx], res[idx], s=6, alpha=0.5)
    ax1.axhline(0, color="grey", linewidth=0.8)
    ax1.set_xlabel("prediction")
    ax1.set_ylabel("residual (actual - prediction)")
    ax1.set_title("Residuals")
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.hist(res, bins=min(50, max(5, len(res) // 5 or 5)))
    ax2.set_xlabel("residual")
    ax2.set_ylabel("rows")
    ax2.set_title("Residual distribution")
    return _save(fig, Path(path))


def group_bars(feature: str, groups: Sequence[Any], values: dict[str, Sequence[float | None]],
               path: str | os.PathLike) -> Path:
    """Grouped bars: one group of bars per sensitive group, one bar per metric."""
    import numpy as np

    names = list(values)
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(names))
    fig = _figure(max(5.0, 1.2 * len(groups) + 2), 4)
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        ys = [np.nan if v is None else v for v in values[name]]
        ax.bar(x + i * width - 0.4 + width / 2, ys, width, label=name)
    ax.set_xticks(x, [_short(g) for g in groups], rotation=45 if len(groups) > 5 else 0)
    ax.set_ylabel("rate")
    ax.set_title(f"Per-group metrics by {feature}")
    ax.legend(fontsize="small")
    return _save(fig, Path(path))


# --------------------------------------------------------------------------- Mermaid

def mermaid_bars(title: str, names: Sequence[str], values: Sequence[float | None],
                 line: Sequence[float | None] | None = None, *, y_label: str = "value",
                 y_range: tuple[float, float] | None = None) -> str:
    """A Mermaid ``xychart-beta`` bar chart (bars = ``values``; optional ``line``).

    Missing values are drawn as 0 (Mermaid has no gaps); the table beside the chart
    holds the exact numbers.
    """
    def nums(vs):
        return ", ".join(f"{0.0 if v is None else float(v):.4g}" for v in vs)

    xs = ", ".join(_mermaid_label(n) for n in names)
    axis = f"y-axis \"{_mermaid_text(y_label)}\""
    if y_range is not None:
        axis += f" {y_range[0]:g} --> {y_range[1]:g}"
    lines = ["```mermaid", "xychart-beta", f"    title \"{_mermaid_text(title)}\"",
             f"    x-axis [{xs}]", f"    {axis}", f"    bar [{nums(values)}]"]
    if line is not None:
        lines.append(f"    line [{nums(line)}]")
    lines.append("```")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    return re.sub(r"[\"`\n\r]", "'", str(text))


def _mermaid_label(text: str) -> str:
    return f"\"{_mermaid_text(text)[:30]}\""


def _short(value: Any, limit: int = 20) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_name(text: str) -> str:
    """A file-name-safe form of a column name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("._") or "column"

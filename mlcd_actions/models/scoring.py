"""Checks and helpers shared by the stages that score a model on labelled data
(``evaluate``, ``check-fairness``): label checks, the model's identity for reports,
numpy scalars made plain. Imports pandas/numpy only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from mlcd_actions.models.loading import LoadedModel


def check_label(y: pd.Series, label: str, test) -> None:
    """A label column with missing values is a :class:`DataError` naming the first row."""
    import numpy as np

    missing = y.isna().to_numpy()
    if missing.any():
        raise DataError(f"{test}: label column {label!r} has {int(missing.sum())} missing "
                        f"value(s), first at data row {int(np.flatnonzero(missing)[0]) + 1}")


def check_classes(y_true, label: str, test) -> None:
    """A classifier needs at least two classes in the label column."""
    values = unique(y_true)
    if len(values) < 2:
        shown = values[0] if values else "none"
        raise DataError(f"{test}: label column {label!r} has only one class ({shown}); "
                        "evaluating a classifier needs at least two")


def unique(values) -> list:
    """Distinct values in order of first appearance."""
    import pandas as pd

    return list(pd.unique(pd.Series(values)))


def model_info(model: LoadedModel) -> dict[str, Any]:
    """The model's identity as the reports record it."""
    return {"uri": model.uri, "resolved_uri": model.resolved_uri, "name": model.name,
            "version": model.version, "run_id": model.run_id, "flavor": model.flavor}


def plain(value: Any) -> Any:
    """numpy scalars as plain Python values (for JSON and messages)."""
    return value.item() if hasattr(value, "item") else value

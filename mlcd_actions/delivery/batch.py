"""Batch prediction pieces both engines of ``mlcd predict`` use (pandas/Arrow in
:mod:`mlcd_actions.stages.predict`, Spark in :mod:`mlcd_actions.delivery.predict_spark`):
which columns to read, the id columns, and the output columns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlcd_actions.core.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from mlcd_actions.delivery.serving.spec import ModelSpec

RESERVED = ("prediction", "probability")


class Plan:
    """Which columns to read from which files, and their CSV types."""

    def __init__(self, files: list[Path], features: list[str] | None, ids: list[str],
                 label: str | None, csv_types: dict[str, str]) -> None:
        self.files = files
        self.features = features
        self.ids = ids
        self.label = label
        self.csv_types = csv_types

    def features_for(self, available: list[str]) -> list[str]:
        if self.features is None:  # no signature: the model gets every column but the label
            return [c for c in available if c != self.label]
        return list(self.features)

    def columns_for(self, available: list[str]) -> list[str]:
        wanted = self.features_for(available)
        return wanted + [c for c in self.ids if c not in wanted]


def show_cols(cols: list[str]) -> str:
    """At most 20 column names, for messages."""
    shown = ", ".join(cols[:20])
    return shown + (f", … (+{len(cols) - 20})" if len(cols) > 20 else "")


def result_columns(spec: ModelSpec, pred, proba) -> dict:
    """``prediction`` then ``probability`` (binary) or ``probability_<class>`` columns,
    the same for every engine."""
    from mlcd_actions.delivery.serving.spec import proba_values

    out = {"prediction": pred}
    if proba is not None:
        values = proba_values(proba)
        if values.ndim == 1:
            out["probability"] = values
        else:
            for j, name in enumerate(spec.proba_columns(proba)):
                out[name] = values[:, j]
    return out


def plan_columns(spec: ModelSpec, cols: list[str], id_columns: list[str] | None,
                 where: str) -> Plan:
    required = [c.name for c in spec.columns if c.required] if spec.columns else []
    missing = [c for c in required if c not in cols]
    if missing:
        raise DataError(f"{where}: feature column {missing[0]!r} that model "
                        f"{spec.model.display} needs is missing (columns: {show_cols(cols)})")
    for c in id_columns or ():
        if c not in cols:
            raise DataError(f"{where}: id column {c!r} not found (columns: {show_cols(cols)})")
    ids = list(dict.fromkeys(id_columns)) if id_columns else \
        [c for c in cols if c.lower() == "id" or c.lower().endswith("_id")]
    check_clash(ids)
    return Plan([], spec.input_names, ids, spec.model.label, {})


def check_clash(ids: list[str]) -> None:
    clash = [c for c in ids if c in RESERVED or c.startswith("probability_")]
    if clash:
        raise DataError(f"id column {clash[0]!r} would collide with an output column; "
                        "rename it or pick other --id-column values")

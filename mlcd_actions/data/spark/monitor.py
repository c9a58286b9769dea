"""``mlcd monitor --engine spark``: the inputs of ``monitor`` as Spark tables.

Feature and prediction drift are computed by :func:`mlcd_actions.data.spark.drift.compare`
(Spark aggregations; see there for what is exact and what is approximate); the gates,
verdicts, findings, plots and the retraining dispatch are ``monitor``'s own, unchanged.
A prediction log (``mlcd serve``'s JSON lines, a local file) is read as with pandas and
handed to Spark. Accuracy decay (``--labels``) scores the model on the driver: it
collects the prediction and label (and id) columns only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from mlcd_actions.core.errors import DataError


class SparkTable:
    """A monitor input on Spark: ``df``, ``names``, ``rows``, ``frame(columns)``."""

    def __init__(self, df: Any, name: str) -> None:
        self.df = df
        self.name = name
        self.names = [str(c) for c in df.columns]
        self._rows: int | None = None

    @property
    def rows(self) -> int:
        if self._rows is None:
            self._rows = int(self.df.count())
        return self._rows

    def frame(self, columns: Sequence[str]) -> Any:
        """These columns on the driver, as pandas (accuracy decay only)."""
        from pyspark.sql import functions as F

        return self.df.select(*[F.col(f"`{c}`") for c in columns]).toPandas()


class SparkInputs:
    """What ``monitor`` asks of an engine, on a Spark session."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    @classmethod
    @contextlib.contextmanager
    def start(cls, reference: Any, current: Any, settings: Any, *, current_is_log: bool):
        """``current_is_log``: ``current`` is a prediction log (read with pandas)."""
        from mlcd_actions.data.spark import session

        session.available()
        session.kind_of(reference)           # a missing local path: the pandas engine's line
        if not current_is_log:
            session.kind_of(current)
        with session.session(settings, "mlcd monitor") as spark:
            yield cls(spark)

    def open_table(self, path: Any, role: str) -> tuple[SparkTable, list[str]]:
        from mlcd_actions.data.spark import session

        table = session.open_table(self.spark, path, what=role)
        out = SparkTable(table.df, table.path)
        return out, out.names

    def from_pandas(self, frame: Any, name: str) -> SparkTable:
        """A prediction log (read on the driver) as a Spark table."""
        return SparkTable(self.spark.createDataFrame(frame), name)

    @staticmethod
    def rows(data: SparkTable) -> int:
        return data.rows

    @staticmethod
    def compare(ref: SparkTable, cur: SparkTable, **kwargs: Any) -> list:
        from mlcd_actions.data.spark import drift

        return drift.compare(ref.df, cur.df, names=(ref.name, cur.name), **kwargs)

    def prediction_drift(self, ref_data: SparkTable, ref_cols: list[str], cur_data: SparkTable,
                         cur_cols: list[str], prediction_column: str,
                         reference_predictions: str | None, reference: Any, bins: int,
                         categorical: Sequence[str]) -> Any:
        """Current predictions against the reference ones, as the pandas engine pairs them."""
        from pathlib import Path

        from pyspark.sql import functions as F

        from mlcd_actions.data.spark import drift, session

        if prediction_column not in cur_cols:
            return None
        ref_pred = None
        if reference_predictions:
            if reference_predictions in ref_cols:
                ref_pred = ref_data.df.select(F.col(f"`{reference_predictions}`")
                                              .alias(prediction_column))
            elif session.is_remote(reference_predictions) or Path(reference_predictions).exists():
                other = session.open_table(self.spark, reference_predictions, what="predictions")
                col = prediction_column if prediction_column in other.names else (
                    other.names[0] if len(other.names) == 1 else None)
                if col is None:
                    raise DataError(f"{reference_predictions}: no {prediction_column!r} column "
                                    "(or a single column) holding the reference predictions")
                ref_pred = other.df.select(F.col(f"`{col}`").alias(prediction_column))
            else:
                raise DataError(f"--reference-predictions {reference_predictions!r}: neither a "
                                f"column of {reference} nor a file")
        elif prediction_column in ref_cols:
            ref_pred = ref_data.df.select(F.col(f"`{prediction_column}`"))
        if ref_pred is None:
            return None
        cur_pred = cur_data.df.select(F.col(f"`{prediction_column}`"))
        forced = [prediction_column] if (prediction_column in categorical or
                                         drift.prediction_classes(ref_pred, prediction_column)) \
            else []
        if forced:
            ref_pred = ref_pred.select(_class_text(ref_pred, prediction_column))
            cur_pred = cur_pred.select(_class_text(cur_pred, prediction_column))
        return drift.compare(ref_pred, cur_pred, columns=[prediction_column], categorical=forced,
                             bins=bins, names=(ref_data.name, cur_data.name))[0]


def _class_text(df: Any, column: str) -> Any:
    """``monitor._class_text`` as a Spark column: 1.0 -> "1", NaN -> null, else str()."""
    from pyspark.sql import functions as F

    c = F.col(f"`{column}`")
    kind = df.schema[column].dataType.simpleString()
    if kind in ("float", "double"):
        text = F.when(F.isnan(c), F.lit(None)).when(c == F.floor(c), c.cast("long").cast("string")) \
                .otherwise(c.cast("string"))
    elif kind == "boolean":
        text = F.when(c, F.lit("True")).when(~c, F.lit("False"))
    else:
        text = c.cast("string")
    return text.alias(column)

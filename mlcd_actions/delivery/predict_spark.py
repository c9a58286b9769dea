"""``mlcd predict --engine spark``: the same predictions, computed by Spark.

The input (a Parquet or CSV file or directory, on any filesystem the Spark session can
read: a local path, ``hdfs://``, ``s3a://``...) becomes a Spark DataFrame; each
partition's Arrow batches go through ``mapInPandas`` to the model, loaded once per
Python worker from a copy shipped with ``SparkContext.addFile`` (so executors on other
hosts need no access to the tracking server), and predicted by the same
:class:`~mlcd_actions.delivery.serving.spec.ModelSpec` the pandas engine uses (numeric fast path
included). Output columns and their names are those of the pandas engine.

Spark writes a directory of part files: ``--output preds.parquet`` becomes a directory
``preds.parquet/`` (``part-*.parquet`` and ``_SUCCESS``), which pandas, pyarrow, Spark
and ``mlcd`` read as one table. It is written beside the target and swapped in at the
end, so a failure leaves the previous output as it was.

The session: an active one is reused (``spark-submit``, a notebook); otherwise one is
started with master ``--spark-master`` (default ``local[*]``) and stopped at the end.
The Python workers run this interpreter (``PYSPARK_PYTHON`` unless set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcd_actions.core.errors import ConfigError, DataError, MlcdError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from mlcd_actions.delivery.serving.spec import ModelSpec

_SPARK_TYPES = {"double": "double", "float": "float", "long": "bigint", "integer": "int",
                "boolean": "boolean", "string": "string"}
_PANDAS_WARNING = "PySpark does not yet fully support pandas"

_worker_specs: dict[str, Any] = {}  # model file name -> ModelSpec, per Python worker


def predict(spec: ModelSpec, input: str, output: str, out_kind: str, *,
            id_columns: list[str] | None, batch_rows: int,
            master: str | None = None,
            settings: Any = None) -> tuple[Counter, int, list[str], list[str]]:
    """Predict ``input`` into ``output``; ``(class counts, rows, id columns, columns)``.

    ``settings`` (:class:`mlcd_actions.data.spark.session.Settings`: master and Spark conf, as
    every Spark stage takes them); ``master`` overrides its master."""
    model_dir = spec.model.local_path
    if not model_dir or not Path(model_dir).is_dir():
        raise ConfigError(f"--engine spark: model {spec.model.display} has no local copy "
                          "to ship to the executors")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
        spark, started = _session(master, batch_rows, settings)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
            return _run(spark, spec, model_dir, input, output, out_kind, id_columns)
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - Py4J / Spark errors: one line, classified
        from mlcd_actions.data.spark.session import classify

        raise classify(exc, input) from exc
    finally:
        if started:
            from mlcd_actions.data.spark.session import stop

            stop(spark)     # a dead JVM must not replace the stage's own error


def _session(master: str | None, batch_rows: int, settings: Any = None):
    from mlcd_actions.data.spark import session

    settings = settings or session.Settings()
    if master:
        settings = session.Settings(master, dict(settings.conf))
    return session.start(settings, "mlcd predict", extra={
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows)})


def _read(spark, spec: ModelSpec, input: str):
    from pyspark.sql import functions as F

    from mlcd_actions.data import tables as tabular
    from mlcd_actions.data.spark.session import is_remote

    # a URI goes to Spark as it is; a local path (or file: URI) is made absolute: the JVM
    # resolves relative paths against its own start directory
    path = input if is_remote(input) else str(tabular.local_path(input))
    kind = _kind_of(path)
    if "://" not in path:
        path = str(Path(path).resolve())
    if kind == "parquet":
        df = spark.read.parquet(path)
    else:
        df = spark.read.option("header", "true").option("inferSchema", "true").csv(path)
        casts = {c.name: _SPARK_TYPES[c.type] for c in spec.columns or ()
                 if c.type in _SPARK_TYPES and c.name in df.columns}
        if casts:
            df = df.select(*[F.col(c).cast(casts[c]).alias(c) if c in casts else F.col(c)
                             for c in df.columns])
    return df


def _kind_of(path: str) -> str:
    """parquet or csv, from the name or (a local directory) from the files in it."""
    from mlcd_actions.data import tables as tabular

    names = [path]
    if "://" not in path:
        local = Path(path)
        if not local.exists():
            raise DataError(f"{path}: no such file")   # the pandas engine's line
        if local.is_dir():
            names = [p.name for p in local.iterdir() if not p.name.startswith((".", "_"))]
    kinds = set()
    for name in names:
        try:
            kinds.add(tabular.kind_of(name))
        except DataError:
            kinds.add(None)
    if len(kinds) != 1 or not kinds <= {"parquet", "csv"}:
        raise DataError(f"{path}: --engine spark reads a .parquet or .csv file or a directory "
                        "of one kind")
    return kinds.pop()


def _run(spark, spec: ModelSpec, model_dir: str, input: str, output: str, out_kind: str,
         id_columns: list[str] | None):
    from pyspark import SparkFiles

    from mlcd_actions.delivery.batch import plan_columns

    df = _read(spark, spec, input)
    cols = list(df.columns)
    plan = plan_columns(spec, cols, id_columns, input)
    ids, features = plan.ids, plan.features_for(cols)
    df = df.select(*dict.fromkeys(features + ids))

    # the output schema, from predicting a few rows on the driver
    sample = df.limit(8).toPandas()
    if sample.empty:
        raise DataError(f"{input}: no rows to predict")
    schema = spark.createDataFrame(_predict_frame(spec, sample, features, ids)).schema

    if type(spark).__module__.startswith("pyspark.sql.connect"):
        raise ConfigError("predict --engine spark ships the model to the executors with "
                          "SparkContext.addFile, which Spark Connect does not have: run "
                          "predict with spark.master (local, yarn, k8s, spark://) or under "
                          "spark-submit; validate, check-data and monitor run on Spark Connect")
    spark.sparkContext.addFile(str(Path(model_dir).resolve()), recursive=True)
    shipped = Path(model_dir).name

    def predict_batches(batches):
        local = _worker_spec(SparkFiles.get(shipped))
        for pdf in batches:
            yield _predict_frame(local, pdf, features, ids)

    out = df.mapInPandas(predict_batches, schema)
    target = Path(output).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        written = str(tmp / "out")
        writer = out.write.mode("error")
        if out_kind == "parquet":
            writer.parquet(written)
        else:
            writer.option("header", "true").csv(written)
        result = spark.read.parquet(written) if out_kind == "parquet" else \
            spark.read.option("header", "true").option("inferSchema", "true").csv(written)
        rows = result.count()
        counts: Counter = Counter()
        if spec.task == "classification" or "probability" in schema.names or any(
                n.startswith("probability_") for n in schema.names):
            for r in result.groupBy("prediction").count().collect():
                counts[r["prediction"]] += r["count"]
        _swap(Path(written), target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts, rows, ids, list(schema.names)


def _worker_spec(path: str):
    spec = _worker_specs.get(path)
    if spec is None:
        from mlcd_actions.delivery.serving.spec import ModelSpec
        from mlcd_actions.models import loading as models

        warnings.filterwarnings("ignore", message=_PANDAS_WARNING)
        spec = _worker_specs[path] = ModelSpec(models.load(path))
    return spec


def _predict_frame(spec: ModelSpec, pdf: pd.DataFrame, features: list[str],
                   ids: list[str]) -> pd.DataFrame:
    import pandas as pd

    from mlcd_actions.delivery.batch import result_columns
    from mlcd_actions.models import loading as models

    frame = models.prepare_features(pdf.loc[:, features], spec.model.label, spec.model)
    pred, proba = spec.predict(frame)
    return pd.DataFrame({**{c: pdf[c].to_numpy() for c in ids},
                         **result_columns(spec, pred, proba)})


def _swap(new: Path, target: Path) -> None:
    """Put ``new`` at ``target``; whatever was there is removed only once it is."""
    backup = None
    if target.exists() or target.is_symlink():
        backup = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, backup)
    try:
        os.replace(new, target)
    except OSError:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        if backup.is_dir():
            shutil.rmtree(backup, ignore_errors=True)
        else:
            backup.unlink(missing_ok=True)

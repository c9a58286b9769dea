"""The Spark session and tables for ``--engine spark``.

**One way to reach a cluster**, for every Spark stage (``predict``, ``validate``,
``check-data``, ``monitor``)::

    engine: spark
    spark:
      master: yarn                         # local[*] (default), spark://host:7077, yarn,
                                           # k8s://...
      remote: sc://host:15002              # instead of master: Spark Connect, Databricks
                                           # Connect (= the property spark.remote)
      conf:                                # any Spark property, passed to the builder
        spark.executor.memory: 8g
        spark.hadoop.fs.s3a.endpoint: ${S3_ENDPOINT}

(= ``--spark-master URL`` and ``--spark-conf KEY=VALUE``, ``MLCD_SPARK_MASTER``,
``MLCD_SPARK_CONF``). A session that is already active (``spark-submit`` on EMR or
Dataproc, a Databricks notebook, a test fixture) is used as it is and left running;
otherwise one is started from these settings and stopped at the end of the stage.

**Tables** (:func:`open_table`): a Parquet, CSV or JSON-lines file or directory on any
filesystem the session can read (a local path or ``file:`` URI, ``hdfs://``, ``s3a://``,
``abfss://``, ``gs://``, ``ftp://``). A local path goes through the same checks as the
pandas engine (so a missing file is the same line and exit code); another URI is handed
to Spark as it is, a remote directory as its table files from Hadoop's listing
(:func:`_listed`; on Spark Connect as it is: Parquet unless its name ends in
``.csv``/``.jsonl``). Rows are numbered as the pandas engine numbers them — files in name
order, rows in file order — from Spark's ``_metadata`` file path and block
start and a per-block position (:meth:`Table.indexed`), so a failure's "data row N" is the
same row with both engines.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcd_actions.core.errors import (
    ConfigError,
    DataError,
    MlcdError,
    ServiceError,
    StageFailed,
    first_line,
)

DEFAULT_MASTER = "local[*]"
ROW = "__mlcd_row"           # the global 0-based row number added by Table.indexed()
PANDAS_WARNING = "PySpark does not yet fully support pandas"
_ERROR_RE = re.compile(r"mlcd_actions\.(?:core\.)?errors\.(DataError|ConfigError|StageFailed): (.+)")
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# a filesystem's server out of reach, or refusing the login (the Java cause in Py4J's text)
_UNREACHABLE = re.compile(
    r"(?:Caused by: |^|: )(java\.net\.(?:Connect|UnknownHost|SocketTimeout|NoRouteToHost)"
    r"Exception(?::[^\n]*)?|Login failed on server[^\n]*)", re.M)


@dataclass
class Settings:
    """Where Spark runs: ``master`` (None: ``local[*]``) and extra Spark properties."""

    master: str | None = None
    conf: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, master: str | None = None,
           conf: Mapping[str, Any] | Iterable[str] | None = None) -> Settings:
        return cls(master or None, parse_conf(conf))


def parse_conf(conf: Mapping[str, Any] | Iterable[str] | str | None) -> dict[str, str]:
    """``{"k": v}`` or ``["k=v", ...]`` (the CLI; an env var: one per line) as a dict of
    strings; a malformed entry is a ConfigError."""
    if not conf:
        return {}
    if isinstance(conf, Mapping):
        items = list(conf.items())
    else:
        entries = [conf] if isinstance(conf, str) else list(conf)
        items = []
        for entry in entries:
            if isinstance(entry, Mapping):
                items.extend(entry.items())
                continue
            for part in str(entry).split("\n"):
                part = part.strip()
                if not part:
                    continue
                key, sep, value = part.partition("=")
                if not sep or not key.strip():
                    raise ConfigError(f"--spark-conf {part!r}: expected KEY=VALUE "
                                      "(e.g. spark.executor.memory=4g)")
                items.append((key.strip(), value.strip()))
    out = {}
    for key, value in items:
        if not str(key).startswith("spark."):
            raise ConfigError(f"spark conf {key!r}: Spark properties start with 'spark.'")
        out[str(key)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def available() -> None:
    """Raise the one-line ConfigError when pyspark is missing (before any work)."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise ConfigError("--engine spark needs pyspark, which is not installed "
                          "(pip install 'mlcd-actions[spark]', or use --engine pandas)")


def start(settings: Settings | None, app: str, *,
          extra: Mapping[str, str] | None = None) -> tuple[Any, bool]:
    """``(session, started)``: the active session, or a new one from ``settings``."""
    available()
    settings = settings or Settings()
    from pyspark.sql import SparkSession

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PANDAS_WARNING)
        active = SparkSession.getActiveSession()
        if active is not None:
            return active, False
        master = _master(settings)
        conf = {k: v for k, v in settings.conf.items() if k != "spark.remote"}
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        if master.startswith("sc://"):           # Spark Connect / Databricks Connect
            builder = SparkSession.builder.remote(master)
        else:
            # pyspark marks the whole process as Spark Connect once a Connect session was
            # made in it; a classic master asked for after that must not go to Connect
            os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
            ci = bool(os.environ.get("CI"))
            builder = (SparkSession.builder.master(master)
                       .config("spark.ui.enabled", "false")
                       .config("spark.ui.showConsoleProgress", "false" if ci else "true"))
            if master.startswith("local"):
                builder = builder.config("spark.driver.host", "127.0.0.1") \
                                 .config("spark.driver.bindAddress", "127.0.0.1")
        builder = builder.appName(app).config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # the driver's Python reads results over a local socket that Spark closes after
        # 15 s by default: too short on a busy CI runner (then "Connection reset by peer")
        connect = master.startswith("sc://")
        defaults = {} if connect else {"spark.python.authenticate.socketTimeout": "120s"}
        wanted = {**defaults, **(extra or {}), **conf}
        if not connect:        # (Spark Connect's builder drops a refused property silently)
            for key, value in wanted.items():
                builder = builder.config(key, value)
        try:
            spark = builder.getOrCreate()
        except Exception as exc:  # noqa: BLE001 - no Java, bad master URL, unreachable
            raise ConfigError(f"--engine spark: cannot start a Spark session on {master} "
                              f"(Spark needs Java 17 or newer on PATH or in JAVA_HOME): "
                              f"{first_line(exc)}") from exc
        if connect:
            _set_remote_conf(spark, wanted, master)
    with contextlib.suppress(Exception):   # not on Spark Connect
        spark.sparkContext.setLogLevel("ERROR")
    return spark, True


def _set_remote_conf(spark: Any, conf: Mapping[str, str], master: str) -> None:
    """Each property on the Spark Connect session; one it refuses (a bad value, a static
    property of a running cluster) is a ConfigError naming it, not ignored."""
    for key, value in conf.items():
        try:
            spark.conf.set(key, value)
        except Exception as exc:  # noqa: BLE001 - refused by the server
            with contextlib.suppress(Exception):
                spark.stop()
            raise ConfigError(f"spark.conf {key}={value}: the Spark Connect session on "
                              f"{master} refuses it: {first_line(exc)}") from exc


def _master(settings: Settings) -> str:
    """The master URL: ``spark.master``, or the Spark Connect URL of ``spark.remote`` (a
    conf entry, ``spark: {remote: ...}`` in mlcd.yaml, or pyspark's ``SPARK_REMOTE``)."""
    remote = settings.conf.get("spark.remote")
    if remote and settings.master and settings.master != remote:
        raise ConfigError(f"spark.master {settings.master!r} and spark.remote {remote!r}: "
                          "give one (spark.remote is Spark Connect's master)")
    remote = remote or (None if settings.master else os.environ.get("SPARK_REMOTE"))
    if remote is not None and not remote.startswith("sc://"):
        raise ConfigError(f"spark.remote {remote!r}: a Spark Connect URL is sc://host:port")
    return remote or settings.master or DEFAULT_MASTER


@contextlib.contextmanager
def session(settings: Settings | None, app: str) -> Iterator[Any]:
    """A session for one stage; Spark and Py4J failures leave it as one classified line."""
    spark, started = start(settings, app)
    try:
        with warnings.catch_warnings(), _py4j_to_log():
            warnings.filterwarnings("ignore", message=PANDAS_WARNING)
            yield spark
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - Py4J / Spark errors: one line, classified
        raise classify(exc) from exc
    finally:
        if started:
            stop(spark)


def stop(spark: Any) -> None:
    """Stop a session this stage started. A JVM that is already gone (killed, out of
    memory) has nothing left to stop: that must not replace the stage's own error."""
    try:
        with warnings.catch_warnings(), _py4j_to_log():
            warnings.simplefilter("ignore")   # pyspark: "Unable to cleanly shutdown ..."
            spark.stop()
    except Exception as exc:  # noqa: BLE001 - the JVM is gone
        logging.getLogger("mlcd").warning("stopping the Spark session: %s: %s",
                                          type(exc).__name__, first_line(exc))


@contextlib.contextmanager
def _py4j_to_log() -> Iterator[None]:
    """Py4J reports a lost JVM with ``logging.exception`` on the root logger, which (no
    handler on it) sets up a stderr handler and prints a traceback there. While a stage
    runs, such records go to mlcd's log file; other records reach stderr as Python's
    last-resort handler would print them."""
    root = logging.getLogger()
    if root.handlers:               # the application set up logging: leave it alone
        yield
        return
    handler = _Py4JRecords()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


class _Py4JRecords(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "py4j" in record.pathname or record.name.startswith("py4j"):
            for h in logging.getLogger("mlcd").handlers:    # the log file, if any
                if record.levelno >= h.level:
                    h.handle(record)
        elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


_ENGINE_LOST = ("Answer from Java side is empty", "Error while sending or receiving",
                "SparkContext was shut down", "Cannot call methods on a stopped SparkContext",
                "Python worker exited unexpectedly", "java.lang.OutOfMemoryError",
                "Java gateway process exited")


def engine_lost(exc: BaseException) -> bool:
    """The JVM or a Python worker died under the stage (killed, out of memory): Py4J
    cannot reach the JVM any more, or Spark says its context or a worker went away."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ConnectionError) or any(
                k.__name__ == "Py4JNetworkError" for k in type(e).__mro__):
            return True
        if any(marker in str(e) for marker in _ENGINE_LOST):
            return True
        e = e.__cause__ or e.__context__
    return False


def classify(exc: BaseException, input: str | None = None) -> MlcdError:
    """A Spark failure as one line: our own errors raised in a worker keep their class; a
    filesystem's server out of reach (or refusing the login) and a lost engine (its JVM or
    a Python worker died) are ServiceErrors (exit 3); a missing ``input`` is the pandas
    engine's line (exit 2)."""
    text = str(exc)
    m = _ERROR_RE.search(text)
    if m:
        kind, message = m.groups()
        cls = {"DataError": DataError, "ConfigError": ConfigError}.get(kind, StageFailed)
        return cls(message.strip())
    where = f"{input}: " if input is not None else "--engine spark: "
    m = _UNREACHABLE.search(text)
    if m:
        cause = m.group(1).strip()
        scheme = input.split("://", 1)[0] if input and "://" in input else ""
        hint = (f" (credentials: spark.hadoop.fs.{scheme}.user.HOST and "
                f"spark.hadoop.fs.{scheme}.password.HOST in spark.conf)"
                if cause.startswith("Login failed") and scheme == "ftp" else "")
        return ServiceError(f"{where}the filesystem's server cannot be reached or refused "
                            f"the login: {cause}{hint}")
    name = type(exc).__name__
    if engine_lost(exc):
        return ServiceError(f"--engine spark: the Spark engine stopped during the stage (its "
                            f"JVM or a Python worker died: killed or out of memory?): "
                            f"{name}: {first_line(exc)}")
    if input is not None and ("PATH_NOT_FOUND" in text or
                              "java.io.FileNotFoundException" in text):
        return DataError(f"{input}: no such file")
    if "Seek not supported" in text:
        return DataError(f"{where}Spark cannot read it: its filesystem cannot seek, which "
                         "Parquet and uncompressed text need (on ftp:// put compressed text: "
                         ".csv.gz, .jsonl.gz)")
    if input is not None and name == "AnalysisException":
        return DataError(f"{input}: Spark cannot read it: {first_line(exc)}")
    return StageFailed(f"--engine spark failed: {name}: {first_line(exc)}")


# --------------------------------------------------------------------------- tables

def is_remote(path: str | os.PathLike) -> bool:
    text = os.fspath(path)
    return bool(_REMOTE.match(text)) and not text.lower().startswith("file:")


def kind_of(path: str | os.PathLike) -> tuple[str, list[str]]:
    """``(kind, paths to hand to Spark)``: the pandas engine's file checks for a local path
    (same errors), the name's suffix for a remote one (a directory: Parquet)."""
    from mlcd_actions.data import tables as tabular

    text = os.fspath(path)
    if is_remote(text):                 # handed to Spark as it is
        name = text.rstrip("/").rsplit("/", 1)[-1]
        try:
            kind = tabular.kind_of(name) if "." in name else "parquet"
        except DataError:
            kind = "parquet"
        return kind, [text]
    files = tabular.table_files(text)
    kinds = {tabular.kind_of(f) for f in files}
    if len(kinds) != 1 or not kinds <= {"parquet", "csv", "jsonl"}:
        raise DataError(f"{text}: --engine spark reads .parquet, .csv or .jsonl files "
                        "(a directory of one kind)")
    return kinds.pop(), [str(f.resolve()) for f in files]


@dataclass
class Table:
    """A table for Spark: ``df`` (the data as it is), ``indexed()`` (plus the row number)."""

    spark: Any
    path: str
    kind: str
    paths: list[str]
    df: Any = None
    names: list[str] = field(default_factory=list)
    _rows: int | None = None
    _schema: Any = None

    def load(self) -> Any:
        """A fresh scan of the files (a DataFrame straight off the reader)."""
        reader = self.spark.read
        if self.kind == "parquet":
            return reader.parquet(*self.paths)
        if self._schema is None:        # inferred once (a pass over the text), then reused
            inferred = self._text_reader(reader).option("inferSchema", "true").load(self.paths)
            self._schema = _as_pandas_reads(inferred)
            if self.kind == "jsonl":
                self._schema = self._in_record_order(self._schema)
        return self._text_reader(reader).schema(self._schema).load(self.paths)

    def _in_record_order(self, schema: Any) -> Any:  # StructType -> StructType
        """Spark lists JSON keys alphabetically; pandas in the order of the records (the
        first file's first record: the column order of every table and finding)."""
        import json

        from pyspark.sql import types as T

        line = self.spark.read.text(self.paths[0]).first()
        try:
            keys = list(json.loads(line[0])) if line is not None else []
        except (ValueError, TypeError):
            return schema
        rank = {k: i for i, k in enumerate(keys)}
        fields = sorted(schema.fields, key=lambda f: rank.get(f.name, len(rank)))
        return T.StructType(fields)

    def _text_reader(self, reader: Any) -> Any:
        if self.kind == "csv":
            return reader.format("csv").option("header", "true").option("mode", "PERMISSIVE")
        return reader.format("json")

    @property
    def rows(self) -> int:
        if self._rows is None:
            self._rows = int(self.df.count())
        return self._rows

    def indexed(self) -> Any:
        """``df`` plus :data:`ROW`, the 0-based row number the pandas engine gives each row
        (files in name order, then row order), from one small aggregation over the blocks."""
        from pyspark.sql import functions as F

        raw = self.load()
        base = raw.select(*[F.col(f"`{c}`") for c in raw.columns],
                          F.col("_metadata.file_path").alias("__f"),
                          F.col("_metadata.file_block_start").alias("__b"),
                          F.monotonically_increasing_id().alias("__m"))
        blocks = sorted((r["__f"], r["__b"], r["n"], r["first"]) for r in
                        base.groupBy("__f", "__b").agg(F.count(F.lit(1)).alias("n"),
                                                       F.min("__m").alias("first")).collect())
        offsets, total = [], 0
        for f, b, n, first in blocks:
            offsets.append((f, b, total - first))
            total += n
        shift = self.spark.createDataFrame(offsets, "__f string, __b long, __s long")
        return (base.join(F.broadcast(shift), ["__f", "__b"])
                .select(*[F.col(f"`{c}`") for c in raw.columns],
                        (F.col("__m") + F.col("__s")).alias(ROW)))


def _as_pandas_reads(df: Any) -> Any:  # -> StructType
    """The types a text file gets from pandas, from Spark's inferred ones: integers are
    int64 and decimals float64 (Spark infers ``int`` for small numbers), and dates or
    times stay text (pandas parses no dates unless asked)."""
    from pyspark.sql import types as T

    casts = {"int": T.LongType(), "smallint": T.LongType(), "tinyint": T.LongType(),
             "float": T.DoubleType(), "date": T.StringType(), "timestamp": T.StringType(),
             "timestamp_ntz": T.StringType()}
    fields = [T.StructField(f.name, casts.get(f.dataType.simpleString(), f.dataType), True)
              for f in df.schema.fields]
    return T.StructType(fields)


def _listed(spark: Any, uri: str) -> tuple[str, list[str]] | None:
    """A remote directory as a local one is read: its .parquet, .csv or .jsonl files (one
    kind; others and ``_``/``.`` names skipped) in name order, from Hadoop's listing on the
    driver. None for a file, or without a JVM in this process (Spark Connect: the
    directory goes to Spark as it is, Parquet unless its name ends in .csv/.jsonl)."""
    from mlcd_actions.data import tables as tabular

    try:
        jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
    except Exception:  # noqa: BLE001 - Spark Connect has neither
        return None
    if jvm is None:
        return None
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(conf)
    if not fs.getFileStatus(path).isDirectory():
        return None
    files = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if status.isFile() and not name.startswith((".", "_")) and any(
                s.lower() in tabular.PARQUET + tabular.CSV + tabular.JSONL
                for s in Path(name).suffixes):
            files.append((name, status.getPath().toString()))
    if not files:
        raise DataError(f"{uri}: directory holds no .parquet, .csv or .jsonl files")
    kinds = {tabular.kind_of(name) for name, _ in files}
    if len(kinds) != 1 or not kinds <= {"parquet", "csv", "jsonl"}:
        raise DataError(f"{uri}: --engine spark reads .parquet, .csv or .jsonl files "
                        "(a directory of one kind)")
    return kinds.pop(), [full for _, full in sorted(files)]


def open_table(spark: Any, path: str | os.PathLike, *, what: str = "data") -> Table:
    """Open ``path`` for Spark (its schema read, no data yet)."""
    text = os.fspath(path)
    kind, paths = kind_of(text)
    table = Table(spark, text, kind, paths)
    try:
        if is_remote(text):
            listed = _listed(spark, text)
            if listed is not None:
                table.kind, table.paths = kind, paths = listed
        table.df = table.load()
    except MlcdError:
        raise
    except Exception as exc:  # noqa: BLE001 - AnalysisException & co
        error = classify(exc, text)
        if isinstance(error, StageFailed):
            error = DataError(f"{text}: Spark cannot read it as {kind}: {first_line(exc)}")
        raise error from exc
    table.names = [str(c) for c in table.df.columns]
    return table

"""What every ``mlcd <stage>`` command shares: ``--report-dir``, running the stage library,
writing reports, emitting to CI, the verdict line and the exit code.

A stage command is ~30 lines: options, then a call into ``mlcd_actions.stages``::

    @stage_command("ingest")
    @click.argument("source_uri")
    @click.option("--out", required=True, help="...")
    def cmd(source_uri, out):
        from mlcd_actions.stages import ingest   # heavy imports inside, never at module top
        return ingest.run(source_uri, out=out)
"""

from __future__ import annotations

import functools
import logging
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from mlcd_actions.core import secrets
from mlcd_actions.core.errors import EXIT_FAILED, MlcdError, failure
from mlcd_actions.core.reporting import DEFAULT_DIR, now_iso
from mlcd_actions.core.results import ERROR, FAILED, Finding, StageResult

log = logging.getLogger("mlcd")


def log_path(report_dir: str | os.PathLike) -> Path:
    explicit = os.environ.get("MLCD_LOG_FILE")
    if explicit:
        return Path(explicit)
    return Path(report_dir).parent / "logs" / "mlcd.log"


def _open_log(report_dir: str | os.PathLike) -> Path | None:
    path = log_path(report_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    for h in list(log.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve():
            return path
        if isinstance(h, logging.FileHandler):
            log.removeHandler(h)
            h.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return path


def report_dir_option(f: Callable) -> Callable:
    return click.option("--report-dir", default=DEFAULT_DIR, show_default=True,
                        type=click.Path(file_okay=False),
                        help="Where <stage>.json, <stage>.md and the JUnit report go.")(f)


def execute(stage: str, fn: Callable[[], StageResult], report_dir: str | os.PathLike,
            *, echo: Callable[[str], None] = click.echo) -> int:
    """Run ``fn``, turn what happens into a StageResult, report it, print the verdict.

    Returns the exit code. Known errors become one line; the traceback goes to the log.
    """
    from mlcd_actions.ci import emit as ci
    from mlcd_actions.core import reporting as report

    started = now_iso()
    t0 = time.monotonic()
    logfile = _open_log(report_dir)
    log.info("mlcd %s: start", stage)
    report.remove_stale_plots(stage, report_dir)
    try:
        result = fn()
        if not isinstance(result, StageResult):
            raise TypeError(f"stage {stage} returned {type(result).__name__}, not StageResult")
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        code, line = failure(exc, logfile=logfile)
        known = isinstance(exc, MlcdError)
        log.error("mlcd %s: %s\n%s", stage, secrets.mask(line) if known else "unexpected error",
                  secrets.mask(traceback.format_exc()))
        result = StageResult(stage, status=FAILED if known and code == EXIT_FAILED else ERROR,
                             reason=line, exit_code=code)
        if known and exc.file:
            result.findings.append(Finding(line, file=exc.file, line=exc.line,
                                           title=f"mlcd {stage}"))
    duration = time.monotonic() - t0
    result.details.setdefault("duration_s", round(duration, 3))
    try:
        report.write(result, report_dir, started_at=started, duration_s=duration)
        ci.emit(result, report_dir, duration_s=duration, echo=echo)
    except OSError as exc:
        log.error("mlcd %s: cannot write report: %s", stage, exc)
        echo(f"mlcd {stage}: warning — cannot write the report to {report_dir}: {exc}")
    log.info("%s (%.2fs)", secrets.mask(result.verdict()), duration)
    echo(secrets.mask(result.verdict()))
    return result.code()


def stage_command(name: str, *, report_name: str | None = None, **command_kwargs):
    """Decorator: a click command whose callback returns a StageResult.

    Adds ``--report-dir``; the wrapped callback's heavy imports happen inside ``execute``
    so that their failures are reported like any other.
    """

    def decorate(f: Callable[..., StageResult]) -> click.Command:
        @functools.wraps(f)
        def callback(report_dir: str, **kwargs) -> int:
            return execute(report_name or name, lambda: f(**kwargs), report_dir)

        cmd = click.command(name, **command_kwargs)(report_dir_option(callback))
        return cmd

    return decorate


def split_multi(values) -> list[str]:
    """Options given many times may also come as one comma/space separated value."""
    out: list[str] = []
    for v in values or ():
        if isinstance(v, (list, tuple)):
            out.extend(split_multi(v))
        else:
            out.extend(p for p in str(v).replace(",", " ").split() if p)
    return out


class GateSpec(click.ParamType):
    """A gate spec like 'accuracy >= 0.8'. From an env var, many are split on newlines
    (and then on commas by :func:`split_thresholds`), never on spaces, so
    ``MLCD_THRESHOLD='label_rate_gap <= 0.5'`` is one spec."""

    name = "spec"
    envvar_list_splitter = "\n"

    def convert(self, value, param, ctx):
        return value


GATE = GateSpec()


def split_thresholds(values) -> list[str]:
    """Gate specs given many times, or as one comma/newline separated value (env, yaml)."""
    out: list[str] = []
    for v in values or ():
        if isinstance(v, (list, tuple)):
            out.extend(split_thresholds(v))
        else:
            out.extend(p.strip() for p in str(v).replace("\n", ",").split(",") if p.strip())
    return out


class SparkConf(click.ParamType):
    """A Spark property ``KEY=VALUE``; from ``MLCD_SPARK_CONF``, one per line."""

    name = "key=value"
    envvar_list_splitter = "\n"

    def convert(self, value, param, ctx):
        return value


def engine_options(f: Callable) -> Callable:
    """``--engine``, ``--spark-master`` and ``--spark-conf``, the same on every stage that
    can run on Spark (``engine:`` and ``spark: {master, conf}`` in ``mlcd.yaml``)."""
    f = click.option("--spark-conf", "spark_conf", multiple=True, type=SparkConf(),
                     metavar="KEY=VALUE",
                     help="Spark property for a session mlcd starts, repeatable (e.g. "
                          "spark.executor.memory=8g); mlcd.yaml: spark.conf.")(f)
    f = click.option("--spark-master", default=None, metavar="URL",
                     help="Spark master when no session is active: local[*] (default), "
                          "spark://host:7077, yarn, k8s://..., sc://host:15002 (Spark "
                          "Connect); mlcd.yaml: spark.master.")(f)
    f = click.option("--engine", default="pandas", show_default=True,
                     type=click.Choice(["pandas", "spark"]),
                     help="pandas: in process. spark: Spark jobs (needs pyspark and Java).")(f)
    return f


def spark_settings(master: str | None, conf) -> object:
    """The session settings the stage library takes (no pyspark import)."""
    from mlcd_actions.data.spark.session import Settings

    return Settings.of(master, list(conf or ()))

"""Faults in the middle of a run: Spark's JVM dies under ``mlcd monitor --engine spark``.

A real ``mlcd`` process (its own local Spark session) runs monitor on two Parquet files;
when the drift statistics start their grid aggregation, the session's JVM is SIGKILLed
(as the kernel's OOM killer or a node going away would). The stage must exit 3 (an
outside failure) with one line saying so, print no traceback, and write nothing but its
own report. Before, the error of stopping the dead session replaced the stage's own
error: ``internal error: ConnectionRefusedError`` (exit 1, "gate failed"), with Py4J's
traceback on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcd_actions.core.errors import EXIT_FAILED, EXIT_SERVICE

REPO = Path(__file__).resolve().parents[2]

# the CLI, with the JVM killed (and gone) when the grid aggregation is about to run
# (monitor: at the grid aggregation; predict: when the prediction job is about to run)
KILLER = """
import importlib, signal, sys
import psutil
module, name = sys.argv.pop(1).split(":")
module = importlib.import_module(module)
real = getattr(module, name)
def killing(*args, **kwargs):
    for p in psutil.Process().children(recursive=True):
        if p.name() == "java":
            p.send_signal(signal.SIGKILL)
            p.wait(60)
    return real(*args, **kwargs)
setattr(module, name, killing)
from mlcd_actions.cli import main
sys.argv = ["mlcd", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_monitor_jvm_killed_mid_stage_exits_3_with_one_line():
    pytest.importorskip("pyspark")
    work = Path.cwd()                    # a fresh folder per test (tests/conftest.py)
    rng = np.random.default_rng(4)
    for name, shift in (("ref", 0.0), ("cur", 0.2)):
        pd.DataFrame({"x": rng.normal(shift, 1, 5000)}).to_parquet(f"{name}.parquet")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_PROGRESS": "0", "CI": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, "mlcd_actions.data.spark.drift:_histograms", "monitor", "--reference", "ref.parquet", "--current",
         "cur.parquet", "--engine", "spark", "--spark-master", "local[1]",
         "--spark-conf", "spark.sql.shuffle.partitions=1"],
        cwd=work, capture_output=True, text=True, env=env, timeout=600)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == EXIT_SERVICE, (out, err)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert lines[0].startswith("mlcd monitor: failed — --engine spark: the Spark engine "
                               "stopped during the stage"), out
    assert "Traceback" not in out + err, err
    # nothing but the stage's own report (and log): no plots, no outputs, no temp files
    assert sorted(p.name for p in work.iterdir()) == [".mlcd", "cur.parquet", "ref.parquet"]
    reports = work / ".mlcd" / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["monitor.json", "monitor.junit.xml",
                                                         "monitor.md"]
    report = json.loads((reports / "monitor.json").read_text())
    assert report["status"] == "error" and report["exit_code"] == EXIT_SERVICE
    assert report["outputs"] == {} and report["gates"] == []
    assert "Py4J" in (work / ".mlcd" / "logs" / "mlcd.log").read_text()


@pytest.mark.slow
def test_predict_jvm_killed_mid_stage_exits_3_and_keeps_the_old_output():
    pytest.importorskip("pyspark")
    from tests.delivery.serving import fixtures

    work = Path.cwd()
    model = fixtures.binary_model(work / "model")
    fixtures.frame(200, seed=3).drop(columns=["y"]).to_parquet("in.parquet")
    Path("out.csv").write_text("old predictions\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_PROGRESS": "0", "CI": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, "mlcd_actions.delivery.predict_spark:_run", "predict",
         "--model-uri", str(model), "--input", "in.parquet", "--output", "out.csv",
         "--engine", "spark", "--spark-master", "local[1]"],
        cwd=work, capture_output=True, text=True, env=env, timeout=600)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == EXIT_SERVICE, (out, err)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlcd predict: failed — "), out
    assert "stopped" in lines[0] and "internal error" not in lines[0], out
    assert "Traceback" not in out + err, err
    assert Path("out.csv").read_text() == "old predictions\n"      # not replaced, not lost
    assert sorted(p.name for p in work.iterdir()) == [".mlcd", "in.parquet", "model",
                                                      "out.csv"]


def test_a_lost_engine_is_exit_3_other_spark_failures_stay_exit_1():
    pytest.importorskip("py4j")
    from py4j.protocol import Py4JNetworkError

    from mlcd_actions.core.errors import DataError, ServiceError, StageFailed
    from mlcd_actions.data.spark.session import classify

    lost = [Py4JNetworkError("Answer from Java side is empty"),
            ConnectionRefusedError(111, "Connection refused"),
            RuntimeError("Job aborted: SparkContext was shut down"),
            RuntimeError("org.apache.spark.SparkException: Python worker exited unexpectedly "
                         "(crashed)"),
            RuntimeError("java.lang.OutOfMemoryError: Java heap space")]
    wrapped = RuntimeError("An error occurred while calling o42.collectToPython")
    wrapped.__cause__ = Py4JNetworkError("Error while sending or receiving")
    for exc in [*lost, wrapped]:
        got = classify(exc)
        assert isinstance(got, ServiceError) and got.exit_code == EXIT_SERVICE, exc
        assert "\n" not in got.one_line()
    other = classify(ValueError("[DIVIDE_BY_ZERO] Division by zero"))
    assert isinstance(other, StageFailed) and other.exit_code == EXIT_FAILED
    own = classify(RuntimeError("mlcd_actions.core.errors.DataError: x.csv: bad"))
    assert isinstance(own, DataError) and own.one_line() == "x.csv: bad"

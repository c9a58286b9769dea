"""A built-in estimator is fitted in a fork of ``mlcd train`` (no second interpreter, no
second read of the data, no second import of pandas and scikit-learn): the same model,
requirements, metrics and golden predictions as in a child started afresh; a forked child's
output, exit code and timeout behave as a started child's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlcd_actions.stages import train as stage
from mlcd_actions.training import runner

DATA = Path(__file__).resolve().parents[1] / "data" / "train"
ROOT = Path(__file__).resolve().parents[2]


def _report(path: Path) -> dict:
    return json.loads((path / ".mlcd" / "reports" / "train.json").read_text())


@pytest.mark.slow  # two trainings and two mlflow stores: 74 s at load 10, so it starts early
def test_forked_and_started_training_log_the_same_model(isolated, monkeypatch):
    import mlflow

    args = ["--train", str(DATA / "clf_train.parquet"), "--test", str(DATA / "clf_test.parquet"),
            "--label", "approved", "--estimator", "random_forest_classifier"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLCD_PROGRESS": "0"}
    # the CLI, as CI runs it: one thread, Linux -> forked
    proc = subprocess.run([sys.executable, "-m", "mlcd_actions", "train", *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    forked = _report(isolated)
    assert forked["details"]["training_process"] == "fork"
    assert "mlcd train: fitting built-in random_forest_classifier" in proc.stderr  # streamed

    monkeypatch.setattr(runner, "can_fork", lambda: False)
    res = stage.run(str(DATA / "clf_train.parquet"), test=str(DATA / "clf_test.parquet"),
                    label="approved", estimator="random_forest_classifier", echo_log=False)
    assert res.status == "passed", res.reason
    started = {"details": res.details, "metrics": res.metrics, "outputs": res.outputs}
    assert started["details"]["training_process"] == "spawn"

    for key in ("pip_requirements", "classes", "features", "flavor"):
        assert forked["details"][key] == started["details"][key], key
    assert forked["details"]["pip_requirements"][0].startswith("cloudpickle==")
    for key, value in forked["metrics"].items():
        if not key.endswith("_seconds"):
            assert started["metrics"][key] == pytest.approx(value, rel=1e-12), key
    golden = []
    for rep in (forked, started):
        local = mlflow.artifacts.download_artifacts(rep["outputs"]["golden-samples"],
                                                    tracking_uri=rep["details"]["tracking_uri"])
        golden.append(json.loads(Path(local).read_text()))
    assert golden[0]["predictions"] == golden[1]["predictions"]
    assert golden[0]["probabilities"] == golden[1]["probabilities"]
    model = mlflow.pyfunc.load_model(forked["outputs"]["model-uri"])
    import pandas as pd

    inputs = pd.DataFrame(golden[0]["inputs"])
    assert model.predict(inputs).tolist() == golden[0]["predictions"]


def _say_and_exit() -> int:
    print("hello from the fork")
    return 3


def _raise() -> int:
    raise ValueError("bad fit")


def _sleep() -> int:
    time.sleep(120)
    return 0


def test_a_forked_child_streams_returns_its_code_and_stops_at_the_timeout(tmp_path):
    log = tmp_path / "train.log"
    child = runner.Child.fork(_say_and_exit, log_path=log, echo=False)
    out = child.wait(timeout=60)
    assert (out.returncode, out.timed_out) == (3, False)
    assert "hello from the fork" in log.read_text()

    log2 = tmp_path / "raise.log"
    out = runner.Child.fork(_raise, log_path=log2, echo=False).wait(timeout=60)
    assert out.returncode == 1 and "ValueError: bad fit" in log2.read_text()

    child = runner.Child.fork(_sleep, log_path=tmp_path / "sleep.log", echo=False)
    out = child.wait(timeout=0.5)
    assert out.timed_out and out.returncode == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):  # its process group is gone too
        os.killpg(child.proc.pid, 0)


def test_no_fork_from_a_process_with_other_threads():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        assert not runner.can_fork()
    finally:
        stop.set()
        thread.join(5)

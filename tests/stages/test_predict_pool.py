"""``mlcd predict`` over worker processes: pooled answers equal single-process answers
for every model of the benchmark matrix (``benchmarks/matrix.py``: values,
probabilities, ids in input order, and the error a bad row raises), each worker runs its
native thread pools at one thread, small inputs start no pool, and Ctrl-C stops the
workers with the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks import matrix
from mlcd_actions.core.errors import DataError
from mlcd_actions.delivery import batch
from mlcd_actions.stages import predict
from tests.faults import slow_model
from tests.floats import assert_batch_frame_equal
from tests.stages import thread_probe

REPO = Path(__file__).resolve().parents[2]
ROWS = 3000
# a numeric input column of each model, for the bad-value test
NUMERIC = {"logreg": "f0", "hgb": "income", "rf": "income", "tfidf": "stars", "pyfunc": "f0"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    root = tmp_path_factory.mktemp("pool-matrix")
    out = {}
    for name in matrix.MODELS:
        frame = matrix.inputs(name, ROWS, seed=7)
        frame.insert(0, "row_id", np.arange(ROWS, dtype=np.int64) * 3)
        frame.to_parquet(root / f"{name}.parquet")
        out[name] = (matrix.build(name, root / name, rows=400), root / f"{name}.parquet")
    return out


@pytest.fixture
def low_threshold(monkeypatch):
    monkeypatch.setattr(batch, "POOL_MIN_ROWS", 1000)


def _run(model, data, out, workers, chunk_rows=250):
    res = predict.run(str(model), str(data), str(out), chunk_rows=chunk_rows, workers=workers,
                      progress=False)
    return res, pd.read_parquet(out)


@pytest.mark.parametrize("name", matrix.MODELS)
def test_pooled_answers_equal_single_process(models, name, tmp_path, low_threshold):
    model, data = models[name]
    one, single = _run(model, data, tmp_path / "one.parquet", workers=1)
    two, pooled = _run(model, data, tmp_path / "two.parquet", workers=2)
    assert one.details["workers"] == 0 and two.details["workers"] == 2
    assert ("probability" in pooled.columns) == (name != "pyfunc") and len(pooled) == ROWS
    assert pooled["row_id"].tolist() == list(range(0, 3 * ROWS, 3))
    assert_batch_frame_equal(pooled, single)
    assert two.tables[0].rows == one.tables[0].rows  # class counts summed from the workers


@pytest.mark.parametrize("name", matrix.MODELS)
def test_a_bad_row_raises_the_same_error_in_a_worker(models, name, tmp_path, low_threshold):
    model, data = models[name]
    tmp_path = tmp_path / "d"
    tmp_path.mkdir()
    frame = pd.read_parquet(data)
    col = NUMERIC[name]
    frame[col] = frame[col].astype(str)
    frame.loc[2345, col] = "n/a"
    frame.to_parquet(tmp_path / "bad.parquet")
    (tmp_path / "out.parquet").write_bytes(b"earlier")
    messages = []
    for workers in (1, 2):
        with pytest.raises(DataError) as err:
            _run(model, tmp_path / "bad.parquet", tmp_path / "out.parquet", workers=workers)
        messages.append(err.value.one_line())
    assert messages[0] == messages[1]
    assert f"feature column '{col}'" in messages[0]
    if name != "pyfunc":  # mlflow's schema check answers for a python_function model
        assert "must be a number" in messages[0]
        assert "data row 2346 holds 'n/a'" in messages[0]  # the file's row, not the chunk's
    assert (tmp_path / "out.parquet").read_bytes() == b"earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.parquet", "out.parquet"]


def test_each_worker_runs_one_thread_per_native_pool(tmp_path, low_threshold, monkeypatch):
    model = thread_probe.save(tmp_path / "probe")
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("MLCD_TEST_PIDS", str(pids))
    pd.DataFrame({"a": np.arange(4000.0), "b": 1.0}).to_parquet(tmp_path / "in.parquet")
    res, out = _run(model, tmp_path / "in.parquet", tmp_path / "out.parquet", workers=2)
    workers = {int(p.name) for p in pids.iterdir()}
    assert res.details["workers"] == 2
    assert len(workers) == 2 and os.getpid() not in workers
    assert set(out["prediction"]) == {1.0}  # every chunk saw its pools capped at 1 thread


def test_no_pool_below_the_threshold_and_one_above(models, tmp_path):
    model, data = models["logreg"]
    small, _ = _run(model, data, tmp_path / "small.parquet", workers=2)  # 3,000 rows
    assert small.details["workers"] == 0
    big = matrix.inputs("logreg", batch.POOL_MIN_ROWS, seed=3)
    big.to_parquet(tmp_path / "big.parquet")
    res, _ = _run(model, tmp_path / "big.parquet", tmp_path / "o.parquet", workers=2,
                  chunk_rows=10_000)
    assert res.details["workers"] == 2
    res, _ = _run(model, tmp_path / "big.parquet", tmp_path / "o.parquet", workers=2,
                  chunk_rows=batch.POOL_MIN_ROWS)  # one chunk: nothing to spread
    assert res.details["workers"] == 0


def test_cli_workers_option(models, mlcd, tmp_path):
    model, data = models["rf"]
    r = mlcd("predict", "--model-uri", model, "--input", data, "--output",
             tmp_path / "o.parquet", "--workers", "0")
    assert r.exit_code == 2 and "--workers" in r.stderr + r.stdout
    assert not (tmp_path / "o.parquet").exists()
    r = mlcd("predict", "--model-uri", model, "--input", data, "--output",
             tmp_path / "o.parquet", "--workers", "2", "--chunk-rows", "500")
    assert r.exit_code == 0, r
    assert len(pd.read_parquet(tmp_path / "o.parquet")) == ROWS


def test_ctrl_c_stops_the_workers_and_keeps_the_old_output(tmp_path):
    model = slow_model.save(tmp_path / "slow", seconds=0.3)
    rows = batch.POOL_MIN_ROWS + 10_000
    pd.DataFrame({"a": np.arange(rows, dtype=float), "b": 1.0}).to_parquet(tmp_path / "in.parquet")
    (tmp_path / "preds.parquet").write_bytes(b"earlier")
    marker = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_TEST_STARTED": str(marker),
           "MLCD_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "mlcd_actions", "predict", "--model-uri", str(model),
           "--input", str(tmp_path / "in.parquet"), "--output", str(tmp_path / "preds.parquet"),
           "--chunk-rows", "1000", "--workers", "2", "--report-dir", str(tmp_path / "rep")]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, cwd=tmp_path) as proc:
        try:
            _started(marker, proc)
            time.sleep(0.5)  # the marker is touched by a worker: the pool is running
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        except BaseException:
            proc.kill()
            raise
    assert proc.returncode == 130, (out, err)
    assert "interrupted (SIGINT)" in out and "Traceback" not in out + err, (out, err)
    assert (tmp_path / "preds.parquet").read_bytes() == b"earlier"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".preds")]
    assert _processes_running(str(tmp_path / "in.parquet")) == []


def _started(marker: Path, proc: subprocess.Popen) -> None:
    for _ in range(1200):  # 60 s
        if marker.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert marker.exists(), f"the model never ran (exit {proc.poll()})"


def _processes_running(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_csv_blocks_cut_into_chunks_equal_single_process(models, tmp_path, low_threshold):
    model, data = models["tfidf"]
    pd.read_parquet(data).to_csv(tmp_path / "in.csv", index=False)
    one, single = _run(model, tmp_path / "in.csv", tmp_path / "one.parquet", workers=1)
    two, pooled = _run(model, tmp_path / "in.csv", tmp_path / "two.parquet", workers=2)
    assert (one.details["workers"], two.details["workers"]) == (0, 2)
    assert_batch_frame_equal(pooled, single)


def test_a_chunk_sends_its_own_rows_only():
    import pickle

    import pyarrow as pa

    block = pa.record_batch({"x": np.arange(100_000.0), "s": [str(i) for i in range(100_000)]})
    part = block.slice(40_000, 1000)
    sent = pickle.loads(pickle.dumps(batch.Chunk(part)))
    assert sent.batch.equals(part)
    assert len(pickle.dumps(batch.Chunk(part))) < len(pickle.dumps(part)) / 20

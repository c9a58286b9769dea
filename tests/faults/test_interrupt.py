"""Faults in the middle of a run: Ctrl-C (SIGINT) to a real ``mlcd predict`` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.faults import slow_model

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # a predict process on a deliberately slow model


def test_predict_interrupted_prints_its_verdict_and_keeps_the_old_output(mlcd, tmp_path):
    """Issue 15 defect 6: SIGINT during predict -> the verdict line, exit 130, the earlier
    predictions file byte for byte, no temporary file left, no traceback."""
    model = slow_model.save(tmp_path / "slow", seconds=0.4)
    pd.DataFrame({"a": [0.5, 1.5], "b": [2.0, 3.0]}).to_parquet("small.parquet")
    r = mlcd("predict", "--model-uri", model, "--input", "small.parquet", "--output",
             "preds.parquet")
    assert r.exit_code == 0, r
    before = Path("preds.parquet").read_bytes()
    pd.DataFrame({"a": [float(i) for i in range(400)],
                  "b": [1.0] * 400}).to_parquet("big.parquet")
    marker = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_TEST_STARTED": str(marker),
           "MLCD_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlcd_actions", "predict", "--model-uri", str(model),
         "--input", "big.parquet", "--output", "preds.parquet", "--chunk-rows", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=30)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, (out, err)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("mlcd predict: failed — interrupted (SIGINT) after "), \
        (out, err)
    assert "Traceback" not in out + err, err
    assert Path("preds.parquet").read_bytes() == before
    assert sorted(p.name for p in Path.cwd().iterdir()) == [".mlcd", "big.parquet",
                                                              "preds.parquet", "small.parquet"]
    report = json.loads(Path(".mlcd/reports/predict.json").read_text())
    assert report["status"] == "error" and report["exit_code"] == 130

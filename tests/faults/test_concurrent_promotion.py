"""Faults in the middle of a run: two pipelines promote to one environment at the same time
(two real ``mlcd deploy`` processes, the ``local`` target, a SQLite registry).

Before the environment lock, both started a server, both moved the alias and the last to
save the state won it: the alias could name one version while the state (and what
``rollback`` restores) named the other, and the loser's server kept running, orphaned.
Now the second fails at once with a clear line; alias, state and the serving process
agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("stop_deployments")


def _deploy(version: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlcd_actions", "deploy", "--environment", "production",
         "--target", "local", "--model-uri", f"models:/demo/{version}",
         "--health-timeout", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_two_promotions_at_once_one_wins_and_everything_agrees(registered):
    from mlflow import MlflowClient

    env = {**os.environ, "PYTHONPATH": str(REPO), "MLCD_PROGRESS": "0"}
    procs = {"1": _deploy("1", env)}
    time.sleep(0.3)  # both are inside deploy at once: starting a server takes seconds
    procs["2"] = _deploy("2", env)
    outs = {}
    try:
        for v, p in procs.items():
            outs[v] = (*p.communicate(timeout=240), p.returncode)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)
    codes = {v: o[2] for v, o in outs.items()}
    assert sorted(codes.values()) == [0, 1], outs
    winner = next(v for v, c in codes.items() if c == 0)
    loser = next(v for v, c in codes.items() if c == 1)
    verdict = outs[loser][0].strip().splitlines()[-1]
    assert verdict.startswith("mlcd deploy: failed — production is being deployed by mlcd pid "), \
        outs[loser]
    assert "nothing was changed" in verdict
    assert "Traceback" not in outs[loser][0] + outs[loser][1]

    state = json.loads(Path(".mlcd/deployments/production.json").read_text())
    assert state["current"]["model_version"] == winner
    assert [h["model_version"] for h in state["history"]] == [winner]
    client = MlflowClient(registered["tracking_uri"], registry_uri=registered["tracking_uri"])
    assert str(client.get_model_version_by_alias("demo", "champion").version) == winner
    with urllib.request.urlopen(state["current"]["url"] + "/metadata", timeout=10) as resp:
        assert json.load(resp)["model_version"] == winner
    assert Path(".mlcd/deployments/production.lock").read_text() == ""  # released

    # the next promotion (the loser again, now alone) goes through normally
    again = _deploy(loser, env)
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, (out, err)
    assert str(client.get_model_version_by_alias("demo", "champion").version) == loser

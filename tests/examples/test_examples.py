"""The examples are what a newcomer meets first: deterministic data, valid configs, and
training code that honours the contract."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DATA = {"credit-approval": ["applications.csv", "new_applications.csv"],
        "house-prices": ["houses.csv"]}


@pytest.mark.parametrize("name", sorted(DATA))
def test_generator_reproduces_the_committed_data(name, tmp_path):
    subprocess.run([sys.executable, str(EXAMPLES / name / "generate_data.py"), "--out",
                    str(tmp_path)], check=True, capture_output=True)
    for f in DATA[name]:
        committed = EXAMPLES / name / "data" / f
        assert (tmp_path / f).read_bytes() == committed.read_bytes(), f
        assert committed.stat().st_size < 1_000_000


@pytest.mark.parametrize("name", sorted(DATA))
def test_config_is_accepted_by_the_cli(name):
    from mlcd_actions.cli import commands
    from mlcd_actions.run import pipeline

    path, cfg, default_map = pipeline.load_config(EXAMPLES / name / "mlcd.yaml", commands())
    assert default_map["prepare"]["label"] == cfg.get("label")
    assert (EXAMPLES / name / default_map["validate"]["schema"]).is_file()
    assert cfg.section("run")["source"].startswith("data/")


def test_credit_data_has_sensitive_attributes_and_planted_pii():
    import pandas as pd

    df = pd.read_csv(EXAMPLES / "credit-approval/data/applications.csv")
    assert {"sex", "age_band", "email", "approved"} <= set(df.columns)
    assert df["email"].str.contains("@").all()
    assert 0.5 < df["approved"].mean() < 0.9


def test_credit_training_entrypoint_returns_a_pipeline_with_column_transformer(monkeypatch):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no __pycache__ in examples/
    monkeypatch.syspath_prepend(str(EXAMPLES / "credit-approval"))
    for mod in [m for m in sys.modules if m == "credit" or m.startswith("credit.")]:
        monkeypatch.delitem(sys.modules, mod)
    features = importlib.import_module("credit.features")
    train = importlib.import_module("credit.train")
    df = features.prepare(pd.read_csv(EXAMPLES / "credit-approval/data/applications.csv"))
    assert df["email"].str.fullmatch(r"[0-9a-f]{64}").all()
    model = train.train(df.head(600), {"label": "approved", "C": 1.0})
    assert isinstance(model, Pipeline)
    assert any(isinstance(step, ColumnTransformer) for _, step in model.steps)
    # the model takes every column but the label, raw new applications included
    new = pd.read_csv(EXAMPLES / "credit-approval/data/new_applications.csv")
    proba = model.predict_proba(new)
    assert proba.shape == (len(new), 2)


def test_run_example_script_is_executable():
    script = EXAMPLES / "run-example.sh"
    assert script.stat().st_mode & 0o111
    out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr

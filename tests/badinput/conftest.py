"""The bad-input suite's workspace: one directory per module where every stage ran once
successfully (reports, a snapshot, a schema, prepared sets, a DVC version, a trained and
registered model, predictions), and the bad inputs of DESIGN §6 beside it.

Each bad case then runs in that workspace, in process (click's CliRunner), and must end
with the documented exit code, one verdict line naming the file, column, row or service,
no traceback on the terminal, and every earlier output — files, reports of other stages,
registry versions, tags and aliases — byte for byte as it was.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

DATA = Path(__file__).resolve().parents[1] / "data"
MODEL_NAME = "badinput-model"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def verdict(self) -> str:
        lines = [ln for ln in self.stdout.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def __repr__(self) -> str:
        return f"<exit {self.code}>\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def cli(*args, env: dict[str, str] | None = None) -> Run:
    """``mlcd ARGS`` in process (the terminal is CliRunner's)."""
    from mlcd_actions.cli import main
    from mlcd_actions.core import secrets

    holder = {}
    with CliRunner().isolation(env=env) as (out, err, *_):
        holder["code"] = main([str(a) for a in args])
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode() if err else ""
    secrets.clear()
    return Run(holder["code"], stdout, stderr)


def files(root: Path, skip_stage: str | None = None) -> dict[str, bytes]:
    """Every file under ``root`` (bytes), without the logs and the failing stage's own
    report (which reports the failure)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or rel.startswith(".dvc/tmp/") or rel.endswith("logs/mlcd.log"):
            continue
        if rel.startswith(".mlcd/deployments/") and rel.endswith(".lock") and \
                not path.stat().st_size:  # deploy's environment lock, released (empty)
            continue
        if skip_stage and "reports/" in rel and path.name.startswith(
                (f"{skip_stage}.", f"{skip_stage}-")):
            continue
        out[rel] = path.read_bytes()
    return out


def registry(uri: str) -> list:
    """Versions of the workspace's model with their tags, and its aliases."""
    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    versions = sorted((str(v.version), sorted(v.tags.items()), v.run_id)
                      for v in client.search_model_versions(f"name = '{MODEL_NAME}'"))
    return [versions, sorted(client.get_registered_model(MODEL_NAME).aliases.items())]


def write_bad_inputs(root: Path) -> None:
    import numpy as np
    import pandas as pd

    good = pd.read_csv(DATA / "evaluate" / "train.csv").head(60)
    (root / "malformed.csv").write_text("income,debt,sex,age_band,approved\n"
                                        "1.0,2.0,M,mid,1\n3.0,4.0,F,young,0,extra,fields\n")
    (root / "malformed.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    good.head(0).to_csv(root / "empty.csv", index=False)
    good.head(0).to_parquet(root / "empty.parquet")
    wrong = good.astype({"income": object})
    wrong.loc[7, "income"] = "lots"
    wrong.to_csv(root / "wrongtype.csv", index=False)
    good.assign(debt=np.nan).to_csv(root / "allnull.csv", index=False)
    good.drop(columns=["approved"]).to_csv(root / "nolabel.csv", index=False)
    good.drop(columns=["approved"]).to_parquet(root / "nolabel.parquet")
    good.assign(approved=1).to_csv(root / "oneclass.csv", index=False)
    good.assign(approved=1).to_parquet(root / "oneclass.parquet")
    uni = good.copy()
    uni["sex"] = np.where(uni.index % 2 == 0, "Ž🙂" * 3, "女性")
    uni["age_band"] = ["ü" * 10_000 if i == 3 else v for i, v in enumerate(uni["age_band"])]
    uni.to_csv(root / "unicode.csv", index=False)
    inf = good.copy()
    inf.loc[4, "income"] = np.inf
    inf.loc[9, "debt"] = np.nan
    inf.to_parquet(root / "naninf.parquet")
    (root / "broken-reports").mkdir()
    (root / "broken-reports" / "evaluate.json").write_text('{"schema": "mlcd.report/v1", '
                                                           '"stage": "evaluate", "status": ')
    (root / "bad_model.py").write_text(
        "def broken(train_df, params):\n"
        "    raise ValueError('cannot train: column income looks wrong')\n\n"
        "class Short:\n"
        "    def predict(self, X):\n"
        "        return [0] * (len(X) - 1)\n\n"
        "def short(train_df, params):\n"
        "    return Short()\n")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, mlflow_server):
    """(root, tracking uri, model uri): every stage once, successfully."""
    root = tmp_path_factory.mktemp("badinput-ws")
    old = os.getcwd()
    os.chdir(root)
    try:
        shutil.copy(DATA / "evaluate" / "train.csv", "good.csv")
        shutil.copy(DATA / "evaluate" / "test.csv", "test.csv")
        write_bad_inputs(root)
        s = ("--tracking-uri", mlflow_server)
        steps = [
            ("ingest", "good.csv", "--out", "snap"),
            ("schema", "infer", "snap/data.parquet", "--out", "schema.yaml"),
            ("validate", "snap/data.parquet", "--schema", "schema.yaml"),
            ("prepare", "snap/data.parquet", "--label", "approved", "--out", "prepared"),
            ("check-data", "snap/data.parquet", "--label", "approved", "--sensitive", "sex"),
            ("version-data", "prepared/train.parquet", "--remote", str(root.parent / "dvc-remote")),
            ("train", "--train", "prepared/train.parquet", "--label", "approved",
             "--experiment", "badinput", *s),
        ]
        for step in steps:
            r = cli(*step)
            assert r.code == 0, (step, r)
        import json

        model_uri = json.loads(Path(".mlcd/reports/train.json").read_text())["outputs"][
            "model-uri"]
        for step in [
            ("evaluate", "--model-uri", model_uri, "--test", "prepared/test.parquet",
             "--label", "approved", "--threshold", "accuracy>=0.0", *s),
            ("check-fairness", "--model-uri", model_uri, "--test", "prepared/test.parquet",
             "--label", "approved", "--sensitive", "sex",
             "--threshold", "demographic_parity_difference<=1.0", *s),
            ("register", "--model-uri", model_uri, "--name", MODEL_NAME, *s),
            ("predict", "--model-uri", model_uri, "--input", "test.csv", "--output",
             "preds.parquet", *s),
            ("monitor", "--reference", "prepared/train.parquet", "--current",
             "prepared/test.parquet", "--threshold", "psi<=10", "--threshold", "js<=1", "--max-plots", "0"),
        ]:
            r = cli(*step)
            assert r.code == 0, (step, r)
        import mlflow

        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri,
                                                    dst_path=str(root / "model"),
                                                    tracking_uri=mlflow_server)
        yield root, mlflow_server, model_uri, local
    finally:
        os.chdir(old)

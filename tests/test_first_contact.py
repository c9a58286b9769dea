"""First contact (issue 13): a user's own git repository, their own tree-ensemble training
module, `mlcd init` then `mlcd run`, green on the first try.

Each dataset is one that scikit-learn ships (binary, multiclass, regression), plus one
table with a personal-data column. Every repository is a real `git init` with a commit,
DVC with the local remote `mlcd init` sets up, the embedded MLflow store, and `mlcd` run
as a user runs it (a subprocess in the repository). One repository per dataset
(module-scoped); the binary one runs the whole pipeline (deploys and smoke tests on the
`local` target included), twice, then a branch whose model learned nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

TRAIN_PY = """\
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import {estimator}
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def train(train_df, params):
    y = train_df[params["label"]]
    X = train_df.drop(columns=[params["label"]])
    categorical = list(X.select_dtypes(exclude="number").columns)
    features = ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore"), categorical)],
        remainder="passthrough")
    model = Pipeline([("features", features),
                      ("model", {estimator}(n_estimators=30, random_state=0))])
    return model.fit(X, y)
"""

CONSTANT_PY = """\
from sklearn.dummy import DummyClassifier


def train(train_df, params):
    y = train_df[params["label"]]
    return DummyClassifier(strategy="most_frequent").fit(train_df.drop(columns=[params["label"]]), y)
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "GITLAB_", "CI_", "MLCD_", "MLFLOW_"))
           and k != "CI"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(home), MLCD_PROGRESS="0",
               GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@example.com",
               GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@example.com")
    return env


class Repo:
    """A user's repository: git, their data, their train.py."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env = _env(path.parent / "home")
        (path.parent / "home").mkdir(exist_ok=True)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=self.env, check=True,
                              capture_output=True, text=True, timeout=60).stdout

    def mlcd(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mlcd_actions", *args], cwd=self.path,
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def report(self, name: str) -> dict:
        return json.loads((self.path / ".mlcd" / "reports" / f"{name}.json").read_text())

    def use_entrypoint(self) -> None:
        """What the getting-started page tells the user: point train at their function."""
        cfg = self.path / "mlcd.yaml"
        text = cfg.read_text()
        lines = [ln for ln in text.splitlines() if not ln.strip().startswith("estimator:")]
        text = "\n".join(lines).replace("  # entrypoint: mypackage.train:train",
                                        "  entrypoint: train:train")
        cfg.write_text(text + "\n")
        assert yaml.safe_load(cfg.read_text())["train"]["entrypoint"] == "train:train"


def _new_repo(base: Path, name: str, frame, estimator: str) -> Repo:
    repo = Repo(base / name)
    repo.path.mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    (repo.path / "data").mkdir()
    frame.to_csv(repo.path / "data" / f"{name}.csv", index=False)
    (repo.path / "train.py").write_text(TRAIN_PY.format(estimator=estimator))
    return repo


def _verdict(done: subprocess.CompletedProcess) -> str:
    lines = done.stdout.strip().splitlines()
    return lines[-1] if lines else ""


def _init_and_run(repo: Repo, *run_args: str) -> subprocess.CompletedProcess:
    done = repo.mlcd("init")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "FutureWarning" not in done.stderr, done.stderr
    repo.use_entrypoint()
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "mlcd init")
    return repo.mlcd("run", *run_args)


# --------------------------------------------------------------------------- datasets

def _breast_cancer():
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer(as_frame=True).frame
    df = d[["mean radius", "mean texture", "mean smoothness", "mean compactness",
            "mean concavity", "worst area", "target"]].copy()
    df.columns = [c.replace(" ", "_") for c in df.columns]
    df.insert(0, "size_band", pd.cut(df["mean_radius"], [0, 12, 16, 100],
                                     labels=["small", "medium", "large"]).astype(str))
    return df


def _wine():
    import pandas as pd
    from sklearn.datasets import load_wine

    d = load_wine(as_frame=True).frame
    df = d[["alcohol", "malic_acid", "flavanoids", "color_intensity", "proline",
            "target"]].copy()
    df.insert(0, "hue_band", pd.qcut(d["hue"], 3, labels=["low", "mid", "high"]).astype(str))
    return df.rename(columns={"target": "cultivar"})


def _diabetes():
    from sklearn.datasets import load_diabetes

    d = load_diabetes(as_frame=True, scaled=False).frame
    d["sex"] = d["sex"].map({1.0: "F", 2.0: "M"})
    return d.rename(columns={"target": "progression"})


def _customers():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 300
    income = rng.normal(50, 15, n).round(1)
    return pd.DataFrame({
        "email": [f"customer{i}@example.com" for i in range(n)],
        "income": income,
        "tenure": rng.integers(0, 20, n),
        "plan": rng.choice(["basic", "plus", "pro"], n),
        "churn": (income + rng.normal(0, 10, n) < 45).astype(int),
    })


# --------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> tuple[Repo, subprocess.CompletedProcess]:
    repo = _new_repo(tmp_path_factory.mktemp("first-contact"), "cancer", _breast_cancer(),
                     "RandomForestClassifier")
    return repo, _init_and_run(repo)


def test_binary_repo_is_green_on_the_first_run(binary):
    repo, done = binary
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _verdict(done).startswith("mlcd run: passed"), _verdict(done)
    steps = {s["step"]: s for s in repo.report("run")["details"]["steps"]}
    for step in ("version-data", "train", "evaluate", "register", "deploy-production",
                 "smoke-test-production", "monitor"):
        assert steps[step]["status"] == "passed", (step, steps[step])
    # the servers were stopped at the end of the run: their URLs are not shown as live
    for step in ("deploy-staging", "smoke-test-production"):
        assert "http://" not in steps[step]["cell"], steps[step]
    assert "stopped after the run" in steps["deploy-staging"]["cell"]
    # the DVC files that version the data are committed like in any DVC project
    status = repo.git("status", "--porcelain", "--untracked-files=all")
    assert ".mlcd/data/raw.dvc" in status and ".mlcd/reports" not in status
    assert "FutureWarning" not in done.stderr
    # first run on main: nothing to compare with yet, said in its own row; the snapshot
    # for later pull requests is written
    ev = repo.report("evaluate")
    drop = [g for g in ev["gates"] if g["threshold"].startswith("max drop")]
    assert drop and drop[0]["verdict"] == "skipped"
    assert "no model on main yet" in drop[0]["message"]
    assert "gate(s) passed, 1 skipped (no model on main yet)" in ev["reason"]
    assert (repo.path / ".mlcd" / "main" / "model" / "MLmodel").is_file()
    # the summary names deploy/smoke-test with their environment, not init
    summary = (repo.path / ".mlcd" / "reports" / "summary.md").read_text()
    assert "`deploy (staging)`" in summary and "`smoke-test (production)`" in summary
    assert "`init`" not in summary


def test_second_unchanged_run_skips_every_stage(binary):
    repo, _ = binary
    done = repo.mlcd("run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    steps = repo.report("run")["details"]["steps"]
    ran = [s["step"] for s in steps if s["status"] not in ("cached", "not run", "skipped")
           and s["step"] != "report"]
    assert ran == [], ran


def test_branch_with_a_constant_model_fails_at_evaluate_naming_the_baseline(binary):
    repo, _ = binary
    repo.git("checkout", "-q", "-b", "constant-model")
    (repo.path / "train.py").write_text(CONSTANT_PY)
    repo.git("commit", "-q", "-am", "a model that learned nothing")
    done = repo.mlcd("run", "--until", "evaluate")
    assert done.returncode == 1, done.stdout[-3000:]
    verdict = _verdict(done)
    assert verdict.startswith("mlcd run: failed — evaluate failed: balanced_accuracy = 0.5 vs "
                              "naive baseline (majority class) 0.5"), verdict
    ev = repo.report("evaluate")
    lift = next(g for g in ev["gates"] if g["threshold"].startswith("lift"))
    assert lift["verdict"] == "failed" and lift["baseline"] == 0.5
    # the local registry has a champion (production was deployed on main): max-drop uses
    # it; the model main last produced is re-scored beside it, a diff for every metric
    assert ev["outputs"]["baseline-source"] == "champion"
    assert ev["outputs"]["main-sha"] == repo.git("rev-parse", "main").strip()
    main = next(t for t in ev["tables"] if t["title"].startswith("metrics vs main"))
    assert [r[0] for r in main["rows"]][:2] == ["accuracy", "balanced_accuracy"]
    assert all(r[2] is not None for r in main["rows"][:2])
    md = (repo.path / ".mlcd" / "reports" / "evaluate.md").read_text()
    assert "metrics vs main (main@" in md


@pytest.mark.parametrize("name, frame, estimator, label", [
    ("wine", _wine, "GradientBoostingClassifier", "cultivar"),
    ("diabetes", _diabetes, "RandomForestRegressor", "progression"),
])
def test_multiclass_and_regression_repos_are_green(tmp_path_factory, name, frame, estimator,
                                                   label):
    repo = _new_repo(tmp_path_factory.mktemp("first-contact"), name, frame(), estimator)
    done = _init_and_run(repo, "--until", "register")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert yaml.safe_load((repo.path / "mlcd.yaml").read_text())["label"] == label
    ev = repo.report("evaluate")
    assert ev["status"] == "passed"
    assert any(g["threshold"].startswith("lift") and g["verdict"] == "passed"
               for g in ev["gates"])
    assert repo.report("version-data")["status"] == "passed"


def test_personal_data_fails_at_check_data_naming_the_column(tmp_path_factory):
    repo = _new_repo(tmp_path_factory.mktemp("first-contact"), "customers", _customers(),
                     "RandomForestClassifier")
    done = _init_and_run(repo, "--until", "check-data")
    assert done.returncode == 1, done.stdout[-3000:]
    verdict = _verdict(done)
    assert verdict.startswith("mlcd run: failed — check-data failed:"), verdict
    assert "email" in verdict and "\n" not in verdict
    assert "Traceback" not in done.stdout + done.stderr


def test_init_refuses_duplicate_column_names(tmp_path_factory):
    repo = Repo(tmp_path_factory.mktemp("first-contact") / "dups")
    repo.path.mkdir()
    (repo.path / "data.csv").write_text(textwrap.dedent("""\
        a,b,a,label
        1,2,3,0
        4,5,6,1
        """))
    done = repo.mlcd("init", "--no-dvc")
    assert done.returncode == 2
    assert _verdict(done).startswith("mlcd init: failed —")
    assert "duplicate column" in _verdict(done) and "'a'" in _verdict(done)
    assert not (repo.path / "mlcd.yaml").exists()

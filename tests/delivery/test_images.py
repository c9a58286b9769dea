"""The slim serving image: what it installs, and that serving imports nothing else."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlcd_actions.delivery import images
from tests.delivery.serving import fixtures

REPO = Path(__file__).resolve().parents[2]
# what the serving image leaves out (mlcd-actions is installed there without them)
LEFT_OUT = ("mlflow", "pandera", "fairlearn", "dvc", "sqlalchemy", "requests", "fsspec",
            "pyarrow", "docker", "boto3", "sqlparse", "pathspec")


def _names(reqs):
    return {images._name(r) for r in reqs}


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory):
    return fixtures.binary_model(tmp_path_factory.mktemp("img") / "model")


def test_a_scikit_learn_model_gets_the_serving_runtime_without_mlflow(sklearn_model):
    assert not images.needs_mlflow(sklearn_model)
    assert images.needs_sklearn(sklearn_model)
    reqs = images.requirements(sklearn_model)
    names = _names(reqs)
    assert not names & {"mlflow", "mlflow-skinny"}
    assert _names(images.SERVE_RUNTIME + images.SKLEARN_RUNTIME) <= names
    assert not names & set(LEFT_OUT)
    assert images.no_deps_requirements(sklearn_model) == []


def _pyfunc(path, pip_requirements):
    import mlflow.pyfunc

    from mlcd_actions.training import pyfunc as wrappers

    mlflow.pyfunc.save_model(str(path), python_model=wrappers.PredictWrapper(object()),
                             pip_requirements=pip_requirements)
    return path


def test_a_python_function_model_gets_mlflow_skinny_without_its_dependencies(tmp_path):
    from importlib.metadata import version

    path = _pyfunc(tmp_path / "pyfunc", ["numpy", "pandas"])
    assert images.needs_mlflow(path) and not images.needs_sklearn(path)
    reqs = images.requirements(path)
    names = _names(reqs)
    # mlflow-skinny at the model's pin, installed with --no-deps, with databricks-sdk
    assert images.no_deps_requirements(path) == [f"mlflow-skinny=={version('mlflow')}",
                                                 "databricks-sdk<1,>=0.20.0"]
    assert not names & {"mlflow", "mlflow-skinny"}
    # what serving imports of mlflow's dependencies, with mlflow-skinny's own bounds
    assert set(images.MLFLOW_RUNTIME) - {"click", "cloudpickle", "pyyaml", "starlette",
                                         "uvicorn", "importlib-metadata"} <= names
    assert "importlib_metadata!=4.7.0,<10,>=3.7.0" in reqs and "sqlparse<1,>=0.4.0" in reqs
    # not what serving never imports: scikit-learn and SciPy (the model does not name
    # them), git, dotenv, databricks-sdk's google-auth stack
    assert not names & {"scikit-learn", "scipy", "gitpython", "python-dotenv",
                        "databricks-sdk", "google-auth", "pyarrow"}


def test_a_python_function_model_naming_scikit_learn_gets_it(tmp_path):
    path = _pyfunc(tmp_path / "wraps", ["scikit-learn==1.4.2", "numpy"])
    reqs = images.requirements(path)
    assert "scikit-learn==1.4.2" in reqs and "scikit-learn>=1.4" not in reqs
    assert "scipy" not in _names(reqs)  # pip brings the SciPy scikit-learn needs
    (path / "requirements.txt").unlink()  # nothing says what it needs: both, as before
    assert images.needs_sklearn(path)
    assert _names(images.SKLEARN_RUNTIME) <= _names(images.requirements(path))


def test_mlflow_bounds_come_only_from_the_pinned_version(tmp_path):
    path = _pyfunc(tmp_path / "old", ["mlflow==2.16.0", "numpy"])
    assert images.no_deps_requirements(path) == ["mlflow-skinny==2.16.0", "databricks-sdk"]
    assert "sqlparse" in images.requirements(path)  # the host's bounds are 3.x's: none


def test_runtime_bounds_are_those_of_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    for req in images.SERVE_RUNTIME + images.SKLEARN_RUNTIME:
        name = images._name(req)
        if name in ("cloudpickle",):  # a model requirement mlflow records, not ours
            continue
        found = re.findall(rf'"({re.escape(name)}[<>=!~][^";]*)', text, flags=re.I)
        assert req in found, (req, found)


BLOCKED_SERVE = """
import importlib.abc, importlib.util, json, sys
def blocked(name):
    return any(name == p or name.startswith(p + ".") for p in {left_out})
class Block(importlib.abc.MetaPathFinder):  # an import fails as for a missing module
    def find_spec(self, name, path, target=None):
        if blocked(name):
            raise ModuleNotFoundError("not in the serving image: " + name, name=name)
sys.meta_path.insert(0, Block())
find_spec = importlib.util.find_spec  # and a probe finds nothing
importlib.util.find_spec = lambda name, package=None: (
    None if blocked(importlib.util.resolve_name(name, package)) else find_spec(name, package))
import asyncio
from mlcd_actions.cli import serve as cli_serve  # the command module
from mlcd_actions.delivery.serving import app as serving_app
holder = serving_app.ServingApp(serving_app.Settings(model_uri=sys.argv[1]))
body = json.dumps({rows}).encode()
sent = []
async def main():
    async with holder._lifespan(holder.app):
        q = [{{"type": "http.request", "body": body, "more_body": False}}]
        async def receive():
            return q.pop(0)
        async def send(m):
            sent.append(m)
        scope = {{"type": "http", "method": "POST", "path": "/predict", "raw_path": b"/predict",
                 "query_string": b"", "headers": [], "http_version": "1.1",
                 "asgi": {{"version": "3.0"}}, "scheme": "http", "root_path": ""}}
        await holder.app(scope, receive, send)
asyncio.run(main())
print(sent[0]["status"], json.loads(sent[1]["body"])["predictions"])
"""


def _serve_blocked(model, rows, left_out):
    code = BLOCKED_SERVE.format(left_out=set(left_out), rows=rows)
    proc = subprocess.run([sys.executable, "-c", code, str(model)],
                          capture_output=True, text=True, timeout=120,
                          env=fixtures.env_for_subprocess(
                              MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    status, preds = proc.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "200"
    return json.loads(preds)


def test_serving_imports_none_of_what_the_image_leaves_out(sklearn_model):
    rows = fixtures.frame(2)[fixtures.FEATURES].to_dict(orient="records")
    assert len(_serve_blocked(sklearn_model, rows, LEFT_OUT)) == 2


# what the image of a python_function model that is not scikit-learn leaves out: mlflow-
# skinny's dependencies serving does not import, databricks-sdk's own (only the
# ``databricks`` package is probed), and scikit-learn with SciPy
PYFUNC_LEFT_OUT = ("sklearn", "scipy", "git", "dotenv", "databricks.sdk", "google.auth",
                   "cryptography", "pyarrow", "sqlalchemy", "flask", "boto3", "fsspec")


def test_a_python_function_model_is_served_without_what_its_image_leaves_out(tmp_path):
    from benchmarks import matrix

    model = matrix.build("pyfunc", tmp_path / "pyfunc", rows=300)
    rows = matrix.inputs("pyfunc", 5)
    got = _serve_blocked(model, json.loads(rows.to_json(orient="records")), PYFUNC_LEFT_OUT)
    import mlflow.pyfunc

    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    assert got == mlflow.pyfunc.load_model(str(model)).predict(rows).tolist()


def test_the_dockerfile_installs_slim_and_warms_up(sklearn_model, capsys):
    from mlcd_actions.delivery.serving import warmup

    text = images.dockerfile(base_image="base", labels={"a": "b"},
                             requirements_file="requirements.txt")
    assert "--no-compile" in text and "--no-deps mlcd-actions" in text
    assert "uninstall --yes --quiet pip setuptools" in text and "--no-deps -r" not in text
    text = images.dockerfile(base_image="base", labels={}, requirements_file="r.txt",
                             no_deps_file="n.txt", keep=["setuptools<70", "numpy"])
    assert "--no-deps -r /tmp/wheelhouse/n.txt" in text
    assert "uninstall --yes --quiet pip \\\n" in text  # a requirement names setuptools
    assert f"python -m mlcd_actions.delivery.serving.warmup {images.MODEL_DIR}" in text
    assert warmup.main([str(sklearn_model)]) == 0  # what the build runs
    assert "loaded" in capsys.readouterr().out
    assert warmup.main([]) == 2

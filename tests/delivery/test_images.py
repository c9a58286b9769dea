"""The slim serving image: what it installs, and that serving imports nothing else."""

from __future__ import annotations

import json
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
    reqs = images.requirements(sklearn_model)
    names = _names(reqs)
    assert not names & {"mlflow", "mlflow-skinny"}
    assert _names(images.SERVE_RUNTIME) <= names
    assert not names & set(LEFT_OUT)


def test_a_python_function_model_gets_mlflow_skinny(tmp_path):
    import mlflow.pyfunc

    from mlcd_actions.training import pyfunc as wrappers

    path = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(str(path), python_model=wrappers.PredictWrapper(object()),
                             pip_requirements=["numpy"])
    assert images.needs_mlflow(path)
    assert "mlflow-skinny" in _names(images.requirements(path))


def test_runtime_bounds_are_those_of_pyproject():
    text = (REPO / "pyproject.toml").read_text()
    for req in images.SERVE_RUNTIME:
        name = images._name(req)
        if name in ("cloudpickle",):  # a model requirement mlflow records, not ours
            continue
        found = re.findall(rf'"({re.escape(name)}[<>=!~][^";]*)', text, flags=re.I)
        assert req in found, (req, found)


BLOCKED_SERVE = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {left_out}:
            raise ImportError("not in the serving image: " + name)
sys.meta_path.insert(0, Block())
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


def test_serving_imports_none_of_what_the_image_leaves_out(sklearn_model):
    rows = fixtures.frame(2)[fixtures.FEATURES].to_dict(orient="records")
    code = BLOCKED_SERVE.format(left_out=set(LEFT_OUT), rows=rows)
    proc = subprocess.run([sys.executable, "-c", code, str(sklearn_model)],
                          capture_output=True, text=True, timeout=120,
                          env=fixtures.env_for_subprocess())
    assert proc.returncode == 0, proc.stderr[-3000:]
    status, preds = proc.stdout.split(" ", 1)
    assert status == "200" and len(json.loads(preds)) == 2


def test_the_dockerfile_installs_slim_and_warms_up(sklearn_model, capsys):
    from mlcd_actions.delivery.serving import warmup

    text = images.dockerfile(base_image="base", labels={"a": "b"},
                             requirements_file="requirements.txt")
    assert "--no-compile" in text and "--no-deps mlcd-actions" in text
    assert f"python -m mlcd_actions.delivery.serving.warmup {images.MODEL_DIR}" in text
    assert warmup.main([str(sklearn_model)]) == 0  # what the build runs
    assert "loaded" in capsys.readouterr().out
    assert warmup.main([]) == 2

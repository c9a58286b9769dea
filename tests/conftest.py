"""Shared fixtures. Service fixtures (S3, HTTP, MLflow) live in tests/services.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest_plugins = ["tests.services"]

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test runs in its own empty directory, with HOME there too (never the real one),
    outside any CI (tests that want CI behaviour set the variables themselves)."""
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MLCD_PROGRESS", "0")
    # an unreachable tracking server exits 3 after ~3 s here (60 s for users): tests of a
    # server that comes back set their own window
    monkeypatch.setenv("MLCD_TRACKING_WAIT", "3")
    for var in list(os.environ):
        if var.startswith(("GITHUB_", "GITLAB_", "CI_", "MLCD_")) and var not in (
                "MLCD_PROGRESS", "MLCD_TRACKING_WAIT"):
            monkeypatch.delenv(var, raising=False)
    for var in ("CI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    from mlcd_actions.core import secrets

    secrets.clear()
    _reset_mlflow_uris()
    yield work
    secrets.clear()
    _reset_mlflow_uris()


def _reset_mlflow_uris() -> None:
    """mlflow keeps the tracking and registry URIs in module globals: a test that points
    them at a server must not leak that server to the next test."""
    import sys

    if "mlflow" not in sys.modules:
        return
    import mlflow.tracking._model_registry.utils as registry
    import mlflow.tracking._tracking_service.utils as tracking

    tracking._tracking_uri = None
    registry._registry_uri = None
    import mlflow
    import mlflow.tracking.fluent as fluent

    while mlflow.active_run() is not None:  # a run left open by a failed test
        mlflow.end_run()
    fluent._active_experiment_id = None  # set_experiment() of another store's experiment


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.exit_code = code
        self.stdout = stdout
        self.stderr = stderr
        self.output = stdout + stderr

    @property
    def verdict(self) -> str:
        lines = [line for line in self.stdout.splitlines() if line.strip()]
        return lines[-1] if lines else ""

    def __repr__(self) -> str:  # shown by pytest when an assert fails
        return f"<exit {self.exit_code}>\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@pytest.fixture
def mlcd():
    """Run ``mlcd ARGS...`` in-process; returns exit code, stdout, stderr and the verdict."""
    from mlcd_actions.cli import main

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        runner = CliRunner()
        code_holder = {}

        def invoke():
            code_holder["code"] = main([str(a) for a in args])

        with runner.isolation(input=input, env=env) as (out, err, *_):
            invoke()
            stdout = out.getvalue().decode()
            stderr = err.getvalue().decode() if err is not None else ""
        return Result(code_holder["code"], stdout, stderr)

    return run


@pytest.fixture
def data_dir() -> Path:
    return DATA


# ------------------------------------------------------------------ pytest-xdist

# a test that uses one of these talks to a real mlflow server, deploys a registered model as
# a served process or drives a Docker engine: seconds per test, even when not marked slow
SERVER_FIXTURES = frozenset({"mlflow_server", "registered", "docker_host"})


def schedule_rank(item) -> int:
    """0 for a test marked slow, 1 for one that uses a :data:`SERVER_FIXTURES` fixture, else
    2: the order in which pytest-xdist hands out the files (see below)."""
    if item.get_closest_marker("slow") is not None:
        return 0
    return 1 if SERVER_FIXTURES.intersection(item.fixturenames) else 2


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``./run test``: ``--dist loadfile --no-loadscope-reorder``) the
    slow tests come first, then the tests on a server, so the long files start early instead
    of ending the run on one worker while the other idles; the quick files fill the end.
    A file is handed out where its first test is. ``loadfile`` keeps each file on one worker,
    in order: a module-scoped fixture is set up once, the GitLab pipeline tests run in
    sequence on their project, the act tests reuse the setup action's virtualenvs one after
    the other instead of waiting on its lock, and only one worker starts a dockerd
    (tests/deploy/test_docker_flow.py; a second engine would fight over the docker0 bridge)."""
    if hasattr(config, "workerinput"):  # an xdist worker
        items.sort(key=schedule_rank)  # stable: collection order within a rank

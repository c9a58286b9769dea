"""Faults in the middle of a run: the MLflow server restarts during ``register`` and during
``deploy``'s alias move.

A private ``mlflow server`` (its own SQLite store and port, shared by this module) is
killed by :class:`~tests.faults.restart.RestartingProxy` at a chosen request and started
again on the same store and port; clients see 502s meanwhile. mlcd retries an unreachable
server with backoff for ``MLCD_TRACKING_WAIT`` seconds, so a restart inside that window
finishes the command: one version for the run (the create whose answer was lost is found,
not made twice), its tags, then the alias. What happens when the server stays down
(exit 3, no alias on a half-tagged version, a rerun converges) is covered by
``tests/cli/test_register.py`` and ``test_registry_outage.py``.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.cli.test_register import _train
from tests.faults.restart import Restartable, RestartingProxy
from tests.faults.test_registry_outage import _log_two_versions, _serving

pytestmark = [pytest.mark.slow, pytest.mark.service]
# long enough for a restart on a loaded CI machine (12 s idle here); the default is 60 s
WINDOW = {"MLCD_TRACKING_WAIT": "150", "MLCD_PROGRESS": "0"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Restartable(tmp_path_factory.mktemp("restartable-mlflow"))
    try:
        yield srv
    finally:
        srv.close()


def test_restart_after_the_version_is_created_registers_it_once(mlcd, server, tmp_path):
    """The server applies ``model-versions/create`` and dies before answering, then comes
    back: register finds that version (no second one), tags it, then sets the alias."""
    from mlflow import MlflowClient

    outputs = _train(server.uri, tmp_path)
    name = f"restart-{uuid.uuid4().hex[:8]}"
    proxy = RestartingProxy(server, "model-versions/create", after=True)
    try:
        r = mlcd("register", "--model-uri", outputs["model-uri"], "--name", name,
                 "--tracking-uri", proxy.url, env=WINDOW)
    finally:
        proxy.close()
    assert server.error is None, server.error
    assert server.restarts >= 1 and proxy.outage_answers() >= 1, proxy.seen
    assert r.exit_code == 0, r
    assert r.verdict.startswith(f"mlcd register: passed — {outputs['model-uri']} registered as "
                                f"models:/{name}/1, alias @candidate"), r
    assert "Traceback" not in r.output
    creates = [p for m, p, _ in proxy.seen if "model-versions/create" in p]
    assert len(creates) == 1, proxy.seen  # the retry searched and found it

    client = MlflowClient(server.uri, registry_uri=server.uri)
    versions = client.search_model_versions(f"name = '{name}'")
    assert [str(v.version) for v in versions] == ["1"]
    mv = client.get_model_version_by_alias(name, "candidate")
    assert str(mv.version) == "1"
    assert mv.tags["mlcd.run_id"] == outputs["model-uri"].split("/")[1]
    assert mv.tags["mlcd.lineage_id"] == outputs["lineage-id"]
    assert client.get_registered_model(name).tags["mlcd.latest_lineage_id"] == \
        outputs["lineage-id"]

    r = mlcd("register", "--model-uri", outputs["model-uri"], "--name", name,
             "--tracking-uri", server.uri)  # converged: nothing left to do
    assert r.exit_code == 0 and f"already registered as models:/{name}/1" in r.verdict, r
    assert len(client.search_model_versions(f"name = '{name}'")) == 1


@pytest.mark.usefixtures("stop_deployments")
def test_restart_during_the_alias_move_of_deploy_promotes(mlcd, server):
    """deploy v2 over a serving v1; the server restarts at the first alias request: the
    deploy finishes once it is back, with v2 serving and @champion on v2."""
    from mlflow import MlflowClient

    name = f"restart-{uuid.uuid4().hex[:8]}"
    _log_two_versions(server.uri, name)
    client = MlflowClient(server.uri, registry_uri=server.uri)
    r = mlcd("deploy", "--environment", "production", "--target", "local",
             "--model-uri", f"models:/{name}/1", "--tracking-uri", server.uri)
    assert r.exit_code == 0, r

    proxy = RestartingProxy(server, "registered-models/alias")
    try:
        r = mlcd("deploy", "--environment", "production", "--target", "local",
                 "--model-uri", f"models:/{name}/2", "--tracking-uri", proxy.url, env=WINDOW)
    finally:
        proxy.close()
    assert server.error is None, server.error
    assert proxy.outage_answers() >= 1, proxy.seen
    assert r.exit_code == 0, r
    assert "Traceback" not in r.output
    state = json.loads(Path(".mlcd/deployments/production.json").read_text())
    with urllib.request.urlopen(state["current"]["url"] + "/metadata", timeout=10) as resp:
        assert json.load(resp)["model_version"] == "2"
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    assert _serving(name, "1") == []  # the old version was stopped after the move

"""Faults in the middle of a run: ``dockerd`` stops during ``build-app``.

A private engine (tests/faults/dockerd.py: its own folders and socket, no bridge) builds
the serving image of ``models:/demo/1`` from the offline wheelhouse; once the build runs
its first ``RUN`` step (a build container exists), the engine is stopped as
``systemctl stop docker`` would. ``build-app`` must exit 3 with one line naming the
engine, leave no image under the tag or its extra tags and report nothing as built; with
the engine started again on the same folders, a rerun builds and tags the image.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.deploy.test_docker_flow import wheelhouse  # noqa: F401 - a fixture
from tests.faults.dockerd import PrivateDockerd
from tests.services import build_base_image

pytestmark = [pytest.mark.slow, pytest.mark.service]
TAG = "mlcd-fault-app:1"


@pytest.fixture
def engine():
    import docker

    d = PrivateDockerd()
    try:
        d.start()
        client = docker.DockerClient(base_url=d.url, timeout=300)
        build_base_image(client)
        client.close()
        yield d
    finally:
        d.remove()


def _stop_when_a_step_runs(d: PrivateDockerd, seen: dict) -> None:
    """Stop the engine 1 s after a build container appears (bounded: 300 s)."""
    import docker

    client = docker.DockerClient(base_url=d.url, timeout=10)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            running = client.containers.list()
            if running:
                seen["container"] = running[0].short_id
                time.sleep(1)
                seen["stopped_at"] = time.monotonic()
                d.stop()
                return
            time.sleep(0.2)
    except Exception as exc:  # noqa: BLE001 - reported by the test
        seen["error"] = repr(exc)
    finally:
        client.close()


def _images(d: PrivateDockerd) -> list[str]:
    import docker

    client = docker.DockerClient(base_url=d.url, timeout=30)
    try:
        return sorted(t for image in client.images.list() for t in image.tags)
    finally:
        client.close()


def test_engine_stopped_mid_build_exits_3_and_a_rerun_builds(mlcd, registered, wheelhouse,  # noqa: F811
                                                              engine):
    args = ("build-app", "--model-uri", "models:/demo/1", "--tag", TAG, "--base-image",
            "mlcd-base:bookworm", "--wheelhouse", wheelhouse, "--docker-host", engine.url)
    seen: dict = {}
    watcher = threading.Thread(target=_stop_when_a_step_runs, args=(engine, seen), daemon=True)
    watcher.start()
    r = mlcd(*args)
    watcher.join(330)
    assert "error" not in seen and "stopped_at" in seen, seen
    assert r.exit_code == 3, r
    assert r.verdict.startswith("mlcd build-app: failed — "), r
    assert f"Docker engine {engine.url} stopped answering while building {TAG}" in r.verdict, r
    assert len(r.verdict.splitlines()) == 1 and "Traceback" not in r.output, r
    report = json.loads(Path(".mlcd/reports/build-app.json").read_text())
    assert report["status"] == "error" and not report.get("outputs", {}).get("built"), report

    engine.start()  # the engine is back, with what it had committed
    assert _images(engine) == ["mlcd-base:bookworm"]  # no half-tagged app image
    r = mlcd(*args)
    assert r.exit_code == 0, r
    assert r.verdict.startswith(f"mlcd build-app: passed — built {TAG} "), r
    assert _images(engine) == ["mlcd-base:bookworm", "mlcd-fault-app:1",
                               "mlcd-fault-app:model-1"]

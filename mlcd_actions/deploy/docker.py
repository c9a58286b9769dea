"""``docker``: the app image as a container on a Docker host.

The new container starts beside the old one on its own loopback port (published on
``--host``, 127.0.0.1 by default); only when its ``/health`` answers is the previous
container stopped and removed. The image is also tagged ``<repository>:<environment>``:
promotion retags the same digest, it never rebuilds.
"""

from __future__ import annotations

import contextlib
import re

from mlcd_actions.core.errors import ConfigError, ServiceError, StageFailed
from mlcd_actions.delivery import images
from mlcd_actions.deploy.base import (
    Deployment,
    DeploySpec,
    Target,
    free_port,
    now_iso,
    parse_prediction_log,
    wait_healthy,
)

PREDICTION_LOG = "/var/log/mlcd/predictions.jsonl"  # where the app image's CMD writes it


class DockerTarget(Target):
    name = "docker"
    needs = "image"

    def _client(self):
        return images.client(self.options.get("docker_host"))

    def start(self, spec: DeploySpec) -> Deployment:
        import docker

        if not spec.image:
            raise ConfigError("--target docker needs --image")
        client = self._client()
        image = images.find_image(client, spec.image)
        if image is None:
            raise ConfigError(f"image {spec.image} not found on the Docker host "
                              "(build it with mlcd build-app, or pull it)")
        repo = spec.image.rsplit(":", 1)[0] if ":" in spec.image.rsplit("/", 1)[-1] else spec.image
        with contextlib.suppress(docker.errors.APIError):
            image.tag(repo, tag=spec.environment)
        port = spec.port or free_port(spec.host)
        labels = image.labels or {}
        name = re.sub(r"[^a-zA-Z0-9_.-]", "-",
                      f"mlcd-{spec.environment}-{labels.get('mlcd.model.version', 'x')}-{port}")
        try:
            container = client.containers.run(
                image.id, detach=True, name=name,
                ports={"8080/tcp": (spec.host, port)},
                labels={"mlcd.environment": spec.environment, "mlcd.image": spec.image},
                restart_policy={"Name": "unless-stopped"})
        except docker.errors.APIError as exc:
            raise ServiceError(f"Docker engine refused to start {spec.image}: "
                               f"{str(exc).splitlines()[0]}") from exc
        url = f"http://{spec.host}:{port}"
        dep = Deployment(spec.environment, self.name, url, image=spec.image,
                         model_uri=labels.get("mlcd.model.uri") or spec.model_uri,
                         model_name=spec.model_name or labels.get("mlcd.model.name"),
                         model_version=spec.model_version or labels.get("mlcd.model.version"),
                         lineage_id=spec.lineage_id or labels.get("mlcd.lineage_id"),
                         handle={"container": container.id, "name": name,
                                 "image_id": image.id, "docker_host": self.options.get(
                                     "docker_host")},
                         deployed_at=now_iso())

        def alive() -> bool:
            container.reload()
            restarts = container.attrs.get("RestartCount", 0)
            return container.status in ("created", "running") and not restarts

        try:
            wait_healthy(url, spec.health_timeout, alive=alive, what=f"container {name}")
        except StageFailed as exc:
            logs = ""
            with contextlib.suppress(Exception):
                logs = container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
            self.stop(dep)
            raise StageFailed(f"{exc.message}{'; last log: ' + logs if logs else ''}") from exc
        except BaseException:
            self.stop(dep)
            raise
        return dep

    def prediction_log(self, deployment: Deployment) -> list[dict]:
        """The container's prediction log (``PREDICTION_LOG`` inside the image)."""
        import io
        import tarfile

        import docker

        cid = deployment.handle.get("container")
        if not cid:
            return []
        client = images.client(deployment.handle.get("docker_host")
                               or self.options.get("docker_host"))
        try:
            stream, _ = client.containers.get(cid).get_archive(PREDICTION_LOG)
            data = io.BytesIO(b"".join(stream))
        except docker.errors.APIError:  # NotFound included: nothing predicted yet, or gone
            return []
        with tarfile.open(fileobj=data) as tar:
            member = next((m for m in tar.getmembers() if m.isfile()), None)
            text = tar.extractfile(member).read().decode(errors="replace") if member else ""
        return parse_prediction_log(text, deployment.model_version)

    def stop(self, deployment: Deployment) -> None:
        import docker

        cid = deployment.handle.get("container")
        if not cid:
            return
        client = images.client(deployment.handle.get("docker_host")
                               or self.options.get("docker_host"))
        try:
            container = client.containers.get(cid)
        except docker.errors.NotFound:
            return
        with contextlib.suppress(docker.errors.APIError):
            container.stop(timeout=10)
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)

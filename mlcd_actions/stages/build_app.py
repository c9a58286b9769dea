"""``mlcd build-app``: an OCI image with the model baked in, built with the docker SDK.

Build once, promote the same digest everywhere: when ``--tag`` already names an image
built from the same model version and lineage, nothing is rebuilt (the stage passes
with the existing digest); later environments retag that image (``deploy``).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from mlcd_actions.ci import gitinfo
from mlcd_actions.ci.lineage import Lineage
from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.files import write_text
from mlcd_actions.core.results import StageResult
from mlcd_actions.delivery import images

log = logging.getLogger("mlcd")
STAGE = "build-app"
NO_DEPS_FILE = "requirements-no-deps.txt"  # installed with pip --no-deps


def _model_source(uri: str, tracking_uri: str | None):
    """Load the model (proves it loads) and return (LoadedModel, local directory)."""
    from mlcd_actions.models import loading as models

    model = models.load(uri, tracking_uri)
    local = model.local_path
    if local is None or not (Path(local) / "MLmodel").is_file():
        raise ConfigError(f"model {uri}: no local copy with an MLmodel file to bake in")
    return model, Path(local)


def _lineage(model, tracking_uri: str | None) -> Lineage:
    if not model.run_id:
        return Lineage(model_uri=model.uri, model_name=model.name, model_version=model.version)
    from mlflow import MlflowClient

    from mlcd_actions.models import tracking

    tracking.configure(tracking_uri)
    run = tracking.with_retries(lambda: MlflowClient().get_run(model.run_id),
                                what=f"reading run {model.run_id}")
    lin = Lineage.from_tags(run.data.tags)
    return lin.replace(run_id=model.run_id, model_uri=model.uri, model_name=model.name,
                       model_version=model.version)


CONTEXT_MARKER = ".mlcd-build-context"


def _claim_context_dir(work: Path) -> None:
    """Empty ``work`` for a new build context; never a directory mlcd did not create."""
    if work.exists():
        if not work.is_dir():
            raise ConfigError(f"--context-dir {work}: exists and is not a directory")
        if any(work.iterdir()) and not (work / CONTEXT_MARKER).exists():
            raise ConfigError(f"--context-dir {work}: not empty and not an mlcd build context; "
                              "name a new or empty directory")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / CONTEXT_MARKER).write_text("created by mlcd build-app; emptied on each build\n")


def extra_tags(tag: str, model_version: str | None, git_sha: str | None) -> list[str]:
    """``repo:model-<version>`` and ``repo:git-<sha7>`` beside ``--tag``."""
    last = tag.rsplit("/", 1)[-1]
    repo = tag.rsplit(":", 1)[0] if ":" in last else tag
    out = []
    if model_version:
        out.append(f"{repo}:model-{model_version}")
    if git_sha:
        out.append(f"{repo}:git-{git_sha[:7]}")
    return [t for t in out if t != tag]


def labels_for(model, lin: Lineage, git_sha: str | None) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": f"mlcd serving app: {model.name or 'model'}",
        "org.opencontainers.image.version": str(model.version or ""),
        "org.opencontainers.image.revision": git_sha or "",
        "mlcd.model.name": model.name or "",
        "mlcd.model.version": str(model.version or ""),
        "mlcd.model.uri": model.resolved_uri or model.uri,
        "mlcd.run_id": model.run_id or "",
        "mlcd.lineage_id": lin.id,
        "mlcd.git_sha": git_sha or "",
        "mlcd.version": images.__version__,
    }
    return {k: v for k, v in labels.items() if v}


def run(*, model_uri: str, tag: str, base_image: str = images.DEFAULT_BASE_IMAGE,
        push: bool = False, wheelhouse: str | None = None, context_dir: str | None = None,
        docker_host: str | None = None, tracking_uri: str | None = None,
        rebuild: bool = False) -> StageResult:
    if not tag or tag.startswith(":"):
        raise ConfigError(f"--tag {tag!r} is not an image name (e.g. registry/app:1.2.3)")
    model, model_dir = _model_source(model_uri, tracking_uri)
    lin = _lineage(model, tracking_uri)
    git_sha = gitinfo.context().sha or lin.git_sha
    labels = labels_for(model, lin, git_sha)
    client = images.client(docker_host)
    result = StageResult(STAGE)

    existing = images.find_image(client, tag)
    same = existing is not None and all(
        (existing.labels or {}).get(k) == labels.get(k)
        for k in ("mlcd.model.uri", "mlcd.lineage_id", "mlcd.model.version"))
    if same and not rebuild:
        image = existing
        result.reason = f"{tag} already holds this model ({image.id[:19]}); not rebuilt"
        built = False
    else:
        work = Path(context_dir) if context_dir else Path(tempfile.mkdtemp(prefix="mlcd-app-"))
        try:
            if context_dir:
                _claim_context_dir(work)
            images.copy_tree(model_dir, work / "model")
            reqs = images.requirements(model_dir)
            no_deps = images.no_deps_requirements(model_dir)
            wheels = work / "wheelhouse"
            if wheelhouse:
                src = Path(wheelhouse)
                if not src.is_dir() or not any(src.glob("*.whl")):
                    raise ConfigError(f"--wheelhouse {wheelhouse}: no .whl files there")
                images.copy_tree(src, wheels)
            else:
                images.build_wheelhouse(wheels, reqs, no_deps=no_deps)
            write_text(wheels / "requirements.txt", "\n".join(reqs) + "\n")
            if no_deps:
                write_text(wheels / NO_DEPS_FILE, "\n".join(no_deps) + "\n")
            text = images.dockerfile(
                base_image=base_image, labels=labels, requirements_file="requirements.txt",
                no_deps_file=NO_DEPS_FILE if no_deps else None, keep=reqs,
                env={"MLCD_MODEL_NAME": model.name or "", "MLCD_MODEL_VERSION":
                     str(model.version or ""), "MLCD_LINEAGE_ID": lin.id})
            write_text(work / "Dockerfile", text)
            image = images.build(client, work, tag, log=lambda line: log.info("build: %s", line))
            result.artifacts.append(str(work / "Dockerfile") if context_dir else "")
            result.reason = f"built {tag} ({image.id[:19]}) with {model.display}"
            built = True
            result.markdown.append(f"<details><summary>Dockerfile</summary>\n\n```dockerfile\n"
                                   f"{text}```\n\n</details>")
        finally:
            if not context_dir:
                shutil.rmtree(work, ignore_errors=True)
    result.artifacts = [a for a in result.artifacts if a]
    digest = image.id
    tags = [tag]
    for extra in extra_tags(tag, model.version, git_sha):
        images.add_tag(client, image, extra)
        tags.append(extra)
    repo_digest = None
    if push:
        for extra in tags[1:]:
            images.push(client, extra)
        repo_digest = images.push(client, tag)
        result.reason += f"; pushed {repo_digest}"
    lin = lin.replace(image=tag, image_digest=repo_digest or digest)
    result.outputs = {"image": tag, "tags": " ".join(tags), "digest": repo_digest or digest,
                      "image-id": digest,
                      "built": built, "lineage-id": lin.id,
                      "model-version": model.version or ""}
    result.lineage = lin.to_dict()
    result.details = {"labels": labels, "base_image": base_image}
    return result

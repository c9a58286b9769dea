"""``mlcd build-app --model-uri URI --tag IMAGE [--base-image IMAGE] [--push]``."""

from __future__ import annotations

import click

from mlcd_actions.cli.common import stage_command


@stage_command("build-app", short_help="Build the serving image with the model baked in.")
@click.option("--model-uri", required=True, metavar="URI",
              help="MLflow model to bake in (runs:/, models:/name/3, models:/name@alias, path).")
@click.option("--tag", required=True, metavar="IMAGE", help="Image name, e.g. ghcr.io/org/app:1.4.0.")
@click.option("--base-image", default="python:3.11-slim", show_default=True,
              help="Base image with python3 (a locally built one works air-gapped).")
@click.option("--push/--no-push", default=False, show_default=True,
              help="Push the image to its registry after the build.")
@click.option("--wheelhouse", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Install every dependency from these wheels (offline); default: build "
                   "the wheelhouse on this host with pip.")
@click.option("--context-dir", default=None, type=click.Path(file_okay=False), metavar="DIR",
              help="Keep the build context (Dockerfile, model, wheelhouse) here.")
@click.option("--docker-host", default=None, metavar="URL",
              help="Docker engine (default: $DOCKER_HOST).")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or the local store).")
@click.option("--rebuild/--no-rebuild", default=False, show_default=True,
              help="Build even when --tag already holds this model version.")
def cmd(model_uri, tag, base_image, push, wheelhouse, context_dir, docker_host, tracking_uri,
        rebuild):
    """Build an OCI image that serves the model at --model-uri, with the docker SDK.

    The generated Dockerfile runs `mlcd serve` as a non-root user with a health check;
    labels carry the model name and version, git SHA and lineage id. An image already
    built from the same model is reused, never rebuilt: promote it by retagging.
    Outputs: image, digest, image-id, built, lineage-id.
    """
    from mlcd_actions.stages import build_app

    return build_app.run(model_uri=model_uri, tag=tag, base_image=base_image, push=push,
                         wheelhouse=wheelhouse, context_dir=context_dir,
                         docker_host=docker_host, tracking_uri=tracking_uri, rebuild=rebuild)

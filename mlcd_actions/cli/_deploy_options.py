"""Options shared by ``mlcd deploy`` and ``mlcd rollback`` (defined once)."""

from __future__ import annotations

import click

TARGETS = ["local", "docker", "kubernetes", "command"]


def target_options(f):
    for decorator in reversed([
        click.option("--name", default=None, help="Registered model name (for the alias)."),
        click.option("--move-alias/--no-move-alias", default=True, show_default=True,
                     help="Move the environment's MLflow alias to the deployed version."),
        click.option("--alias", default=None,
                     help="Alias to move (default: champion for production, else the "
                          "environment name)."),
        click.option("--host", default="127.0.0.1", show_default=True,
                     help="Address the app listens on / is published on."),
        click.option("--port", default=None, type=int,
                     help="Port for the new version (default: a free port)."),
        click.option("--health-timeout", default=120.0, show_default=True, type=float,
                     help="Seconds to wait for the new version's /health."),
        click.option("--tracking-uri", default=None, metavar="URI",
                     help="MLflow tracking server (default: $MLFLOW_TRACKING_URI or local)."),
        click.option("--state-dir", default=".mlcd/deployments", show_default=True,
                     type=click.Path(file_okay=False),
                     help="Where the per-environment deployment records live."),
        click.option("--docker-host", default=None, metavar="URL",
                     help="docker target: the engine (default: $DOCKER_HOST)."),
        click.option("--namespace", default=None,
                     help="kubernetes target: namespace (default: default)."),
        click.option("--kube-context", default=None, help="kubernetes target: kubectl context."),
        click.option("--replicas", default=None, type=int,
                     help="kubernetes target: replicas (default 2)."),
        click.option("--deploy-command", default=None,
                     help="command target: the deploy hook (run by the shell)."),
        click.option("--stop-command", default=None,
                     help="command target: the hook that stops a replaced version."),
        click.option("--service-url", default=None,
                     help="command/kubernetes targets: the URL clients use."),
    ]):
        f = decorator(f)
    return f


def target_kwargs(kw: dict) -> dict:
    """Split the shared options into the stage's keyword arguments and target options."""
    options = {
        "docker_host": kw.pop("docker_host", None), "namespace": kw.pop("namespace", None),
        "context": kw.pop("kube_context", None), "replicas": kw.pop("replicas", None),
        "command": kw.pop("deploy_command", None), "stop_command": kw.pop("stop_command", None),
        "url": kw.pop("service_url", None),
    }
    kw["options"] = options
    return kw

"""Options shared by ``mlcd deploy``, ``mlcd rollback`` and ``mlcd promote`` (defined once)."""

from __future__ import annotations

import click

TARGETS = ["local", "docker", "kubernetes", "command"]


def _options(f, decorators):
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


router_options = [
    click.option("--nginx", default=None, metavar="PATH",
                 help="local/docker targets: the nginx that routes shadow and canary "
                      "traffic (default: nginx on PATH)."),
    click.option("--gateway", default=None, metavar="NAMESPACE/NAME",
                 help="kubernetes target: the Gateway API Gateway the HTTPRoute attaches to "
                      "(default: mlcd-gateway in the namespace)."),
]
# what every command that reaches deployments and the registry needs
reach_options = [
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
]


def with_router_options(f):
    """The options ``mlcd promote`` needs to reach the deployments and their router."""
    return _options(f, [*reach_options, *router_options])


def target_options(f):
    return _options(f, [
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
        *reach_options,
        click.option("--replicas", default=None, type=int,
                     help="kubernetes target: replicas (default 2)."),
        click.option("--deploy-command", default=None,
                     help="command target: the deploy hook (run by the shell)."),
        click.option("--stop-command", default=None,
                     help="command target: the hook that stops a replaced version."),
        click.option("--service-url", default=None,
                     help="command/kubernetes targets: the URL clients use."),
        *router_options,
    ])


def target_kwargs(kw: dict) -> dict:
    """Split the shared options into the stage's keyword arguments and target options."""
    options = {
        "docker_host": kw.pop("docker_host", None), "namespace": kw.pop("namespace", None),
        "context": kw.pop("kube_context", None), "replicas": kw.pop("replicas", None),
        "command": kw.pop("deploy_command", None), "stop_command": kw.pop("stop_command", None),
        "url": kw.pop("service_url", None), "nginx": kw.pop("nginx", None),
        "gateway": kw.pop("gateway", None),
    }
    kw["options"] = options
    return kw

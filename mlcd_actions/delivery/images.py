"""The serving image: a generated, readable Dockerfile, a wheelhouse, and the docker SDK.

The image carries the model (``/opt/mlcd/model``), a virtual environment with
mlcd-actions and only what serving imports (:data:`SERVE_RUNTIME`: no mlflow, DVC,
pandera, fairlearn, pyarrow...; scikit-learn and SciPy only for a model that needs them,
:func:`needs_sklearn`), the model's own requirements, and ``mlflow-skinny`` only when the
model cannot be loaded without mlflow (:func:`needs_mlflow`: a scikit-learn model in
pickle, cloudpickle or skops format is read by :mod:`mlcd_actions.models.mlmodel` without
it), installed without its dependencies beside the few that serving imports
(:data:`MLFLOW_RUNTIME`), and runs ``mlcd serve`` as a non-root user with a health check.
pip, setuptools and the test folders of the installed packages are removed, and only
the modules serving imports are compiled to bytecode
(:mod:`mlcd_actions.delivery.serving.warmup`, run at build time, which also proves the
image loads its model). Labels carry the model name and version, git SHA and lineage id
(OCI ``org.opencontainers.image.*`` plus ``mlcd.*``).

Offline (air-gapped) builds install every dependency from a wheelhouse built on the
host (``pip wheel``) with ``pip install --no-index``: the build needs no network.
docker is imported only inside functions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlcd_actions import __version__
from mlcd_actions.core.errors import ConfigError, ServiceError, StageFailed

DEFAULT_BASE_IMAGE = "python:3.11-slim"
APP_UID = 10001
PORT = 8080
MODEL_DIR = "/opt/mlcd/model"
VENV = "/opt/mlcd/venv"
LABEL_PREFIX = "mlcd."
BUILD_STAGE_LABEL = "mlcd.stage"  # on the build stage, pruned once the image is built
# what ``mlcd serve`` imports for every model: the serving runtime installed beside
# mlcd-actions (which is installed without its own dependencies); bounds as in pyproject.toml
SERVE_RUNTIME = ("click>=8.1", "pyyaml>=6", "numpy>=1.26", "pandas>=2.2",
                 "threadpoolctl>=3.1", "starlette>=0.37", "uvicorn>=0.29", "orjson>=3.9",
                 "httptools>=0.6", "uvloop>=0.19", "cloudpickle>=2.2")
# what serving a scikit-learn model adds (:func:`needs_sklearn`); a python_function model
# gets them only when its own requirements name them
SKLEARN_RUNTIME = ("scipy>=1.11", "scikit-learn>=1.4")
# the dependencies of mlflow-skinny that loading and calling a python_function model
# imports (mlflow-skinny 3.17, measured: the model loaded and predicted through ``mlcd
# serve`` in an environment holding only these). mlflow-skinny itself is installed without
# its dependencies, so gitpython and python-dotenv (imported by tracking and projects
# code, not by serving) are not in the image.
MLFLOW_RUNTIME = ("anyio", "cachetools", "click", "cloudpickle", "fastapi",
                  "importlib-metadata", "opentelemetry-api", "opentelemetry-proto",
                  "opentelemetry-sdk", "packaging", "protobuf", "pydantic", "pyyaml",
                  "requests", "sqlparse", "starlette", "typing-extensions", "uvicorn")
# installed without their dependencies beside mlflow-skinny: mlflow probes
# ``find_spec("databricks.agents")`` at import, which raises without a ``databricks``
# package; serving never imports ``databricks.sdk``, so its google-auth and cryptography
# are left out
MLFLOW_NO_DEPS = ("databricks-sdk",)


def project_root() -> Path | None:
    """The source tree mlcd_actions was installed from (editable/dev installs), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else None


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _flavors(model_dir: Path) -> dict | None:
    """The flavors of the model's MLmodel file; None when it cannot be read."""
    import yaml

    try:
        doc = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    flavors = doc.get("flavors") if isinstance(doc, dict) else None
    return flavors if isinstance(flavors, dict) else None


def needs_mlflow(model_dir: Path) -> bool:
    """False when ``mlcd serve`` loads the model without mlflow (see
    :meth:`mlcd_actions.models.mlmodel.Light.load_sklearn`): a scikit-learn flavor, no code
    paths, a serialization format read without mlflow, a column signature."""
    from mlcd_actions.models import mlmodel

    try:
        light = mlmodel.read(model_dir)
    except (OSError, ValueError):
        return True
    if light is None:
        return True
    conf = light.flavors.get("sklearn")
    return not (isinstance(conf, dict) and not conf.get("code")
                and conf.get("serialization_format", "pickle") in mlmodel.SERIALIZATION_FORMATS
                and isinstance(conf.get("pickled_model"), str))


def needs_sklearn(model_dir: Path) -> bool:
    """Does serving the model need scikit-learn and SciPy beyond what its requirements name?

    True for a model with a ``sklearn`` flavor (serving's fast paths and task inference
    import them), and for a model without a ``requirements.txt`` or whose MLmodel cannot be
    read (nothing says it can do without). A ``python_function`` model that is not
    scikit-learn is served without them; one that wraps scikit-learn names it in its
    requirements, which the image installs."""
    flavors = _flavors(model_dir)
    return flavors is None or "sklearn" in flavors \
        or not (model_dir / "requirements.txt").is_file()


def model_requirements(model_dir: Path) -> list[str]:
    """The model's pip requirements as MLflow recorded them, ``mlflow`` made ``mlflow-skinny``."""
    req = model_dir / "requirements.txt"
    if not req.is_file():
        return []
    out = []
    for line in req.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower()
        if name == "mlflow":
            line = "mlflow-skinny" + line[len(name):]
        out.append(line)
    return out


def mlflow_requirement() -> str:
    try:
        from importlib.metadata import version

        return f"mlflow-skinny=={version('mlflow')}"
    except Exception:  # noqa: BLE001 - mlflow absent: any skinny release loads models
        return "mlflow-skinny"


def flavor_requirements(model_dir: Path) -> list[str]:
    """What loading the model needs beyond its requirements file (skops-serialised
    scikit-learn models need ``skops``)."""
    flavors = _flavors(model_dir) or {}
    conf = flavors.get("sklearn")
    fmt = conf.get("serialization_format") if isinstance(conf, dict) else None
    return ["skops"] if fmt == "skops" else []


def _skinny_bounds(skinny: str) -> dict[str, str]:
    """mlflow-skinny's own requirements by name (markers and extras dropped), read from
    the host's installed metadata when it is the version ``skinny`` pins; else ``{}``."""
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        installed = version("mlflow-skinny")
        reqs = requires("mlflow-skinny") or []
    except PackageNotFoundError:
        return {}
    pinned = skinny.partition("==")[2].strip()
    if pinned and pinned != installed:
        return {}
    return {_name(r): r.split(";", 1)[0].strip() for r in reqs
            if "extra" not in r.partition(";")[2]}


def _split(model_dir: Path) -> tuple[list[str], list[str]]:
    mlflow = needs_mlflow(model_dir)
    reqs = model_requirements(model_dir)
    skinny = next((r for r in reqs if _name(r) in ("mlflow", "mlflow-skinny")), None)
    reqs = [r for r in reqs if _name(r) not in ("mlflow", "mlflow-skinny")]
    names = {_name(r) for r in reqs}
    reqs.extend(r for r in flavor_requirements(model_dir) if _name(r) not in names)
    runtime = SERVE_RUNTIME + (SKLEARN_RUNTIME if needs_sklearn(model_dir) else ())
    reqs.extend(r for r in runtime if _name(r) not in names)
    if not mlflow:
        return reqs, []
    skinny = skinny or mlflow_requirement()
    bounds = _skinny_bounds(skinny)
    names = {_name(r) for r in reqs}
    reqs.extend(bounds.get(n, n) for n in MLFLOW_RUNTIME if n not in names)
    return reqs, [skinny, *(bounds.get(n, n) for n in MLFLOW_NO_DEPS if n not in names)]


def requirements(model_dir: Path) -> list[str]:
    """What the image installs with their dependencies beside mlcd-actions, the model's
    pins first: the serving runtime (:data:`SKLEARN_RUNTIME` only when
    :func:`needs_sklearn`), and, when the model needs mlflow to load
    (:func:`needs_mlflow`), the dependencies of mlflow-skinny serving imports
    (:data:`MLFLOW_RUNTIME`, with mlflow-skinny's own bounds)."""
    return _split(model_dir)[0]


def no_deps_requirements(model_dir: Path) -> list[str]:
    """What the image installs without dependencies: ``mlflow-skinny`` (the model's pin, or
    the host's mlflow version) and :data:`MLFLOW_NO_DEPS` when the model needs mlflow to
    load; else nothing."""
    return _split(model_dir)[1]


def build_wheelhouse(dst: Path, reqs: Iterable[str], *, package: str | None = None,
                     no_deps: Iterable[str] = ()) -> Path:
    """``pip wheel`` mlcd-actions and ``no_deps`` without their dependencies, and ``reqs``
    with theirs, into ``dst`` on the host.

    ``package`` is a path or requirement for mlcd-actions itself (default: this source tree
    when installed from one, else ``mlcd-actions==<version>``). Uses the host's pip
    configuration and cache; fails with exit 3 when the index cannot be reached.
    """
    dst.mkdir(parents=True, exist_ok=True)
    root = project_root()
    pkg = package or (str(root) if root else f"mlcd-actions=={__version__}")
    base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dst)]
    for cmd in (base + ["--no-deps", pkg, *no_deps], base + list(reqs)):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = " ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
            raise ServiceError(f"building the wheelhouse failed (pip wheel): {tail}")
    return dst


def dockerfile(*, base_image: str, labels: Mapping[str, str], requirements_file: str,
               env: Mapping[str, str] | None = None, offline: bool = True,
               no_deps_file: str | None = None, keep: Iterable[str] = ()) -> str:
    """The Dockerfile, written to be read by a person. ``no_deps_file`` names the
    requirements installed without their dependencies (mlflow-skinny); ``keep`` the
    requirements that name setuptools or pip, which are then not removed."""
    label_lines = " \\\n      ".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(labels.items()))
    env_lines = " \\\n    ".join(f"{k}={json.dumps(str(v))}" for k, v in sorted((env or {}).items()))
    pip = (f"{VENV}/bin/pip install --no-cache-dir --no-compile --disable-pip-version-check "
           + ("--no-index " if offline else "") + "--find-links /tmp/wheelhouse")
    kept = {_name(r) for r in keep}
    tools = [t for t in ("pip", "setuptools") if t not in kept]
    install = (f"{pip} -r /tmp/wheelhouse/{requirements_file} \\\n"
               f" && {pip} --no-deps mlcd-actions \\\n"
               + (f" && {pip} --no-deps -r /tmp/wheelhouse/{no_deps_file} \\\n"
                  if no_deps_file else "")
               + (f" && {VENV}/bin/pip uninstall --yes --quiet {' '.join(tools)} \\\n"
                  if tools else "")
               + f" && find {VENV} -depth -type d -name tests -path '*/site-packages/*' "
               "-exec rm -rf {} +")
    extra_env = (" \\\n    " + env_lines) if env_lines else ""
    health = ("import sys, urllib.request; "
              f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/health', "
              "timeout=2).status == 200 else 1)")
    return f"""\
# Generated by mlcd build-app {__version__}. Rebuild with the same command; do not edit.
# The model is baked in at {MODEL_DIR}; dependencies come from the wheelhouse
# ({'offline: no index is contacted' if offline else 'index allowed for what is missing'}).
# 1. a build stage: a virtual environment with the serving runtime and the model's
#    requirements, then mlcd-actions (and mlflow-skinny, for a model that needs it)
#    without their other dependencies (serving imports none of them), not compiled to
#    bytecode (step 3 compiles what serving uses); pip, setuptools and the packages'
#    test folders are removed. Only the environment is copied on, so the wheelhouse is
#    no layer of the image.
FROM {base_image} AS build
LABEL {BUILD_STAGE_LABEL}="build"
COPY wheelhouse/ /tmp/wheelhouse/
RUN python3 -m venv {VENV} \\
 && {install}

# 2. the image: the base, the environment, directories the app user writes
FROM {base_image}

LABEL {label_lines}

COPY --from=build {VENV} {VENV}
RUN mkdir -p /var/log/mlcd /var/lib/mlcd \\
 && chown {APP_UID}:{APP_UID} /var/log/mlcd /var/lib/mlcd

# 3. the model itself, read-only for the app user; loading it once compiles the bytecode
#    of exactly the modules serving imports (and proves the image can load it)
COPY model/ {MODEL_DIR}/
RUN {VENV}/bin/python -m mlcd_actions.delivery.serving.warmup {MODEL_DIR}

ENV PATH="{VENV}/bin:$PATH" \\
    PYTHONUNBUFFERED=1 \\
    MLCD_MODEL_URI={MODEL_DIR}{extra_env}

# 4. run as a non-root user, in a directory it may write (reports, logs)
WORKDIR /var/lib/mlcd
USER {APP_UID}:{APP_UID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \\
  CMD ["python3", "-c", {json.dumps(health)}]
CMD ["mlcd", "serve", "--model-uri", "{MODEL_DIR}", "--host", "0.0.0.0", "--port", "{PORT}", \\
     "--prediction-log", "/var/log/mlcd/predictions.jsonl"]
"""


def client(docker_host: str | None = None):
    """A docker SDK client for ``docker_host`` (default ``$DOCKER_HOST``); exit 3 when down."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - the docker extra is missing
        raise ConfigError("the docker SDK is not installed: pip install 'mlcd-actions[docker]'") \
            from exc
    url = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        c = docker.DockerClient(base_url=url, timeout=900)
        c.ping()
        c.mlcd_engine_url = url  # named in the errors below
        return c
    except Exception as exc:  # noqa: BLE001 - any failure to reach the engine
        raise ServiceError(f"Docker engine {url} unreachable: {_first(exc)}") from exc


def engine_lost(c, exc: BaseException | None = None) -> bool:
    """Did the engine go away (stopped, crashed, socket gone), rather than refuse a request?

    A broken or refused connection says so by itself; after any other error (an API error,
    a build stream that ends without an image) the engine is asked with a ping."""
    import requests
    import urllib3

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError,
                        urllib3.exceptions.HTTPError, ConnectionError)):
        return True
    try:
        c.ping()
    except Exception:  # noqa: BLE001 - no answer: gone
        return True
    return False


def lost_engine_error(c, doing: str, exc: BaseException | None = None) -> ServiceError:
    """The exit-3 error for an engine that went away while ``doing``."""
    url = getattr(c, "mlcd_engine_url", None) or "(DOCKER_HOST)"
    why = ""
    if exc is not None:  # urllib3 puts the words first: ('Connection broken: ...', ...)
        first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else _first(exc)
        why = f" ({first.strip().splitlines()[0][:160] if first.strip() else type(exc).__name__})"
    return ServiceError(f"Docker engine {url} stopped answering while {doing}{why}; "
                        "rerun once it is back")


def add_tag(c, image, target: str) -> None:
    """Tag ``image`` as ``target`` (``repo:version``); exit 3 when the engine went away."""
    import docker

    repo, _, version = target.rpartition(":")
    try:
        image.tag(repo, tag=version)
    except Exception as exc:  # noqa: BLE001 - classified
        if engine_lost(c, exc):
            raise lost_engine_error(c, f"tagging {target}", exc) from exc
        if isinstance(exc, docker.errors.APIError):
            raise StageFailed(f"cannot tag {target}: {_first(exc)}") from exc
        raise


def find_image(c, tag: str):
    import docker

    try:
        return c.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    except Exception as exc:  # noqa: BLE001 - classified
        if engine_lost(c, exc):
            raise lost_engine_error(c, f"reading image {tag}", exc) from exc
        if isinstance(exc, docker.errors.APIError):
            raise ServiceError(f"Docker engine error reading image {tag}: {_first(exc)}") \
                from exc
        raise


def build(c, context: Path, tag: str, *, log=None) -> Any:
    """Build ``context`` (Dockerfile inside) as ``tag``; returns the image. Exit 1 on a
    failed build, with the last lines of the build log; exit 3 when the engine goes away
    during the build (the engine tags only a finished image: no half-built image is
    tagged, and a rerun builds again, from the layers it kept)."""
    try:
        return _build(c, context, tag, log=log)
    except StageFailed as exc:
        if engine_lost(c) or (_step_killed(exc) and _goes_away(c)):
            raise lost_engine_error(c, f"building {tag}") from exc
        raise
    except Exception as exc:  # noqa: BLE001 - classified
        if engine_lost(c, exc):
            raise lost_engine_error(c, f"building {tag}", exc) from exc
        raise


# a step killed by a signal (SIGKILL 137, SIGTERM 143), or a stream cut short: what an
# engine that is shutting down does to a build before it stops answering
_KILLED = re.compile(r"returned a non-zero code: (137|143)\b|returned no image id")


def _step_killed(exc: BaseException) -> bool:
    return bool(_KILLED.search(str(exc)))


def _goes_away(c, seconds: float = 5.0) -> bool:
    """Does the engine stop answering within ``seconds``? (An engine being stopped kills
    the running step, answers that, then goes; a step killed for another reason, such as
    the kernel's OOM killer, leaves it answering.)"""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if engine_lost(c):
            return True
        time.sleep(0.2)
    return False


def _build(c, context: Path, tag: str, *, log=None) -> Any:
    import docker

    lines: list[str] = []
    try:
        stream = c.api.build(path=str(context), tag=tag, rm=True, forcerm=True, decode=True,
                             pull=False)
        image_id = None
        for chunk in stream:
            if "stream" in chunk:
                text = chunk["stream"].rstrip()
                if text:
                    lines.append(text)
                    if log:
                        log(text)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
            if "error" in chunk:
                lines.append(chunk["error"].strip())
                raise StageFailed(f"image build failed: {chunk['error'].strip()}")
        if image_id is None:
            raise StageFailed("image build failed: the engine returned no image id; last: "
                              + " | ".join(lines[-3:]))
        _prune_build_stages(c)
        return c.images.get(image_id)
    except docker.errors.APIError as exc:
        raise StageFailed(f"image build failed: {_first(exc)}") from exc


def _prune_build_stages(c) -> None:
    """Remove the untagged build-stage images (the wheelhouse layer) a build leaves."""
    import docker
    import requests

    try:
        c.images.prune(filters={"dangling": True, "label": f"{BUILD_STAGE_LABEL}=build"})
    except (docker.errors.APIError, requests.exceptions.ConnectionError):  # another prune
        pass  # running, or the engine just went: left for the next build


def push(c, tag: str) -> str:
    """Push ``tag``; returns the registry digest. Exit 3 when the registry refuses."""
    import docker

    repo, _, version = tag.rpartition(":") if ":" in tag.rsplit("/", 1)[-1] else (tag, "", "latest")
    try:
        digest = None
        for chunk in c.api.push(repo, tag=version, stream=True, decode=True):
            if "error" in chunk:
                raise ServiceError(f"push of {tag} failed: {chunk['error'].strip()}")
            aux = chunk.get("aux") or {}
            digest = aux.get("Digest", digest)
        if digest is None:
            raise ServiceError(f"push of {tag} failed: the registry returned no digest")
        return digest
    except docker.errors.APIError as exc:
        raise ServiceError(f"push of {tag} failed: {_first(exc)}") from exc


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

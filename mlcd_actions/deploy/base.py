"""Deploy targets: the interface, the deployment record, and the per-environment state.

A target starts the new version, waits until it is healthy, and only then stops the
previous one; when the new one never gets healthy it is removed and the previous one
keeps serving. What is deployed where is kept per environment in
``.mlcd/deployments/<environment>.json`` (current, previous, history) and, when the
model is registered, in the MLflow registry (the environment's alias and a
``mlcd.previous.<alias>`` tag), so ``rollback`` works from either.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlcd_actions.core.errors import ConfigError, StageFailed
from mlcd_actions.core.files import write_json

STATE_DIR = ".mlcd/deployments"
HISTORY = 20


@dataclass
class DeploySpec:
    """What to deploy, where. ``image`` for container targets, ``model_uri`` for ``local``."""

    environment: str
    image: str | None = None
    model_uri: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    lineage_id: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    health_timeout: float = 120.0
    options: dict[str, Any] = field(default_factory=dict)
    #: the registry the model URI is read from (``deploy --tracking-uri``), handed to a
    #: target that loads the model itself (``local``), else its environment decides
    tracking_uri: str | None = None


@dataclass
class Deployment:
    """One deployed version: enough to reach it, stop it and redeploy it."""

    environment: str
    target: str
    url: str
    image: str | None = None
    model_uri: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    lineage_id: str | None = None
    handle: dict[str, Any] = field(default_factory=dict)  # pid, container id, ...
    deployed_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Deployment | None:
        if not data:
            return None
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})

    def spec(self) -> DeploySpec:
        return DeploySpec(self.environment, image=self.image, model_uri=self.model_uri,
                          model_name=self.model_name, model_version=self.model_version,
                          lineage_id=self.lineage_id)


class Target:
    """A deploy target adapter. Subclasses set ``name`` and implement ``start``/``stop``."""

    name: ClassVar[str] = ""
    needs: ClassVar[str] = "image"  # "image" or "model_uri"

    def __init__(self, **options: Any) -> None:
        self.options = options

    def start(self, spec: DeploySpec) -> Deployment:
        """Start ``spec`` beside whatever runs now; return once it is healthy."""
        raise NotImplementedError

    def stop(self, deployment: Deployment) -> None:
        """Stop a deployment; a deployment that is already gone is not an error."""
        raise NotImplementedError

    def is_running(self, deployment: Deployment) -> bool:
        return probe(deployment.url + "/health", 2.0)

    def same(self, a: Deployment, b: Deployment) -> bool:
        """Whether two records are one running deployment (then there is nothing to stop)."""
        return a.handle == b.handle

    def prediction_log(self, deployment: Deployment) -> list[dict[str, Any]]:
        """The lines of the deployment's prediction log that this version wrote."""
        path = deployment.handle.get("prediction_log")
        if not path:
            return []
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        return parse_prediction_log(text, deployment.model_version)


def parse_prediction_log(text: str, model_version: str | None) -> list[dict[str, Any]]:
    rows = []
    for raw in text.splitlines():
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict) and (model_version is None
                                      or str(row.get("model_version")) == str(model_version)):
            rows.append(row)
    return rows


# --------------------------------------------------------------------------- health

def probe(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - our own URL
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_healthy(url: str, timeout: float, *, alive=lambda: True, what: str = "app") -> None:
    """Poll ``url/health`` until 200; StageFailed after ``timeout`` or when ``alive()`` fails."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        if probe(url + "/health", 2.0):
            return
        if not alive():
            raise StageFailed(f"{what} exited before it became healthy at {url}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    raise StageFailed(f"{what} not healthy at {url}/health after {timeout:.0f}s")


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- state

def state_path(environment: str, state_dir: str | Path = STATE_DIR) -> Path:
    if not environment or "/" in environment or environment.startswith("."):
        raise ConfigError(f"--environment {environment!r} is not a valid environment name")
    return Path(state_dir) / f"{environment}.json"


_HELD: dict[str, tuple[Any, int]] = {}  # lock path -> (open file, depth): re-entrant


@contextlib.contextmanager
def environment_lock(environment: str, state_dir: str | Path = STATE_DIR):
    """One deploy or rollback of ``environment`` at a time (per state directory).

    An exclusive ``flock`` on ``<state_dir>/<environment>.lock``, taken without waiting:
    a second ``mlcd deploy``/``rollback`` of the same environment while one runs fails at
    once (exit 1) naming the holder, before it starts anything or moves an alias, so the
    alias, the state file and what serves stay those of the one that ran. Re-entrant in one
    process (``rollback`` deploys under its own lock).
    """
    import fcntl
    import os

    path = state_path(environment, state_dir).with_suffix(".lock")
    key = str(path.absolute())
    if key in _HELD:
        fh, depth = _HELD[key]
        _HELD[key] = (fh, depth + 1)
        try:
            yield
        finally:
            fh, depth = _HELD[key]
            _HELD[key] = (fh, depth - 1)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed in finally
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise StageFailed(f"{environment} is being deployed by {holder}; nothing was "
                              "changed: run again when it has finished") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"mlcd pid {os.getpid()} since {now_iso()}")
        fh.flush()
        _HELD[key] = (fh, 1)
        try:
            yield
        finally:
            del _HELD[key]
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()


def locked(fn):
    """Run a stage's ``run(*, environment=..., state_dir=...)`` under
    :func:`environment_lock`."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with environment_lock(kwargs["environment"], kwargs.get("state_dir", STATE_DIR)):
            return fn(*args, **kwargs)

    return wrapper


def load_state(environment: str, state_dir: str | Path = STATE_DIR) -> dict[str, Any]:
    path = state_path(environment, state_dir)
    if not path.exists():
        return {"environment": environment, "current": None, "previous": None, "history": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable deployment state: {exc}") from exc
    data.setdefault("history", [])
    return data


def save_state(environment: str, current: Deployment, previous: Deployment | None,
               state: dict[str, Any], state_dir: str | Path = STATE_DIR, *,
               candidate: Deployment | None = None, rollout: dict[str, Any] | None = None,
               router: dict[str, Any] | None = None) -> Path:
    """Write the environment's record. ``router`` (the environment's nginx) is kept from
    ``state`` unless given; ``candidate``/``rollout`` (a running shadow or canary) are
    cleared unless given."""
    history = state.get("history", [])
    if not history or (history[0] or {}).get("handle") != current.handle:
        history = [current.to_dict(), *history]
    return write_json(state_path(environment, state_dir), {
        "environment": environment,
        "current": current.to_dict(),
        "previous": previous.to_dict() if previous else None,
        "history": history[:HISTORY],
        "candidate": candidate.to_dict() if candidate else None,
        "rollout": rollout,
        "router": router if router is not None else state.get("router"),
    })


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def cleanup_on_error(target: Target, deployment: Deployment):
    """Remove a just-started deployment when what follows it fails."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            target.stop(deployment)
        raise

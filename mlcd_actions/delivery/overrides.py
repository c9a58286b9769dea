"""Audited gate overrides: a person lets one failed gate of one model version pass.

``mlcd override --stage STAGE --reason TEXT`` records, for the model version named by
``--model-uri`` (``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or the ``runs:/`` URI
the gate stages score) or ``--name``/``--model-version``:

* the version tag ``mlcd.override.<stage>`` (and the same tag on the version's source run,
  so a gate that scores ``runs:/…`` before ``register`` sees it; ``register`` copies run
  overrides onto the version it creates);
* the registered-model tag ``mlcd.override.last`` (which version and gate it was for);

each a JSON record: stage, model name and version, run id, approver (the CI user:
``GITHUB_ACTOR``, ``GITLAB_USER_LOGIN``, else ``$USER``), reason, time and run URL.

A gate stage hands :func:`honouring` to ``StageResult.fail_unless_gates_pass`` (the shared
gate verdict), which calls :func:`honour` once the verdict is known. A failed stage passes only
when an override exists for *its* stage and *its* model version (or run); the failed
gate rows stay failed in the report, the verdict names the approver and the reason, and
the override is in the report's details (and so in the PR/MR comment). An override of
another gate of this version, or of this gate for another version, is ignored with a
warning saying so.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.gates import FAILED
from mlcd_actions.core.results import PASSED, SEV_WARNING, Finding, StageResult, Table
from mlcd_actions.delivery import history
from mlcd_actions.models import tracking

STAGES = ("evaluate", "check-fairness", "promote")
LAST_TAG = "mlcd.override.last"
_VERSION_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)/?$")
_ALIAS_RE = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/]+)/?$")
_RUN_RE = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)(/.*)?$")


def tag(stage: str) -> str:
    return f"mlcd.override.{stage}"


@dataclass
class Override:
    stage: str
    reason: str
    approver: str
    time: str
    run_url: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | None) -> Override | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})
        except (ValueError, TypeError):
            return None

    def subject(self) -> str:
        if self.model_name and self.model_version:
            return f"{self.model_name} v{self.model_version}"
        return f"run {self.run_id}"


def _client(tracking_uri: str | None):
    from mlflow import MlflowClient

    tracking.configure(tracking_uri)
    return MlflowClient()


def identify(model_uri: str | None, name: str | None, version: str | None,
             tracking_uri: str | None = None) -> tuple[str | None, str | None, str | None]:
    """(model name, version, run id) of what the override is for."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    run_id = None
    if model_uri:
        if m := _VERSION_RE.match(model_uri):
            name, version = m["name"], m["version"]
        elif m := _ALIAS_RE.match(model_uri):
            try:
                mv = tracking.with_retries(
                    lambda: client.get_model_version_by_alias(m["name"], m["alias"]),
                    what=f"resolving {model_uri}")
            except MlflowException as exc:
                raise ConfigError(f"--model-uri {model_uri}: {history._first(exc)}") from exc
            name, version = m["name"], str(mv.version)
        elif m := _RUN_RE.match(model_uri):
            run_id = m["run"]
        else:
            raise ConfigError(f"--model-uri {model_uri!r}: an override is recorded in the "
                              "registry; use models:/NAME/VERSION, models:/NAME@ALIAS or runs:/")
    if name and version:
        try:
            mv = tracking.with_retries(lambda: client.get_model_version(name, str(version)),
                                       what=f"reading version {version} of model {name!r}")
        except MlflowException as exc:
            raise ConfigError(f"model {name!r} version {version}: {history._first(exc)}") \
                from exc
        run_id = run_id or mv.run_id
    elif run_id:
        try:
            tracking.with_retries(lambda: client.get_run(run_id), what=f"reading run {run_id}")
        except MlflowException as exc:
            raise ConfigError(f"--model-uri {model_uri}: {history._first(exc)}") from exc
    else:
        raise ConfigError("which model version? pass --model-uri models:/NAME/VERSION (or "
                          "runs:/RUN/model), or --name and --model-version")
    return name, (str(version) if version else None), run_id


def record(stage: str, reason: str | None, *, model_uri: str | None = None,
           name: str | None = None, version: str | None = None,
           tracking_uri: str | None = None) -> Override:
    if stage not in STAGES:
        raise ConfigError(f"--stage {stage!r}: gates that can be overridden: "
                          f"{', '.join(STAGES)}")
    if not reason or not reason.strip():
        raise ConfigError("--reason is required: say why this gate may be passed")
    name, version, run_id = identify(model_uri, name, version, tracking_uri)
    from mlcd_actions.ci import forges as hosting

    ov = Override(stage, " ".join(reason.split()), history.actor(), history.now_iso(),
                  hosting.run_url(), name, version, run_id)
    client = _client(tracking_uri)

    def write() -> None:
        if name and version:
            client.set_model_version_tag(name, version, tag(stage), ov.to_json())
            client.set_registered_model_tag(name, LAST_TAG, ov.to_json())
        if run_id:
            client.set_tag(run_id, tag(stage), ov.to_json())

    tracking.with_retries(write, what=f"recording the override of {stage}")
    return ov


def copy_to_version(run_tags: dict[str, str], name: str, version: str,
                    tracking_uri: str | None = None, client=None) -> list[Override]:
    """``register``: overrides recorded on the run hold for the version made from it.
    ``client``: the caller's registry client (else an ``MlflowClient``, made only when
    the run has an override: importing mlflow costs a CI step 1.5-2 s)."""
    copied = []
    for stage in STAGES:
        ov = Override.from_json(run_tags.get(tag(stage)))
        if ov is None:
            continue
        client = client or _client(tracking_uri)
        ov.model_name, ov.model_version = name, str(version)
        tracking.with_retries(lambda o=ov, s=stage, c=client: c.set_model_version_tag(
            name, str(version), tag(s), o.to_json()), what="copying overrides")
        copied.append(ov)
    return copied


def for_version(name: str, version: str, tracking_uri: str | None = None) -> list[Override]:
    """Every override recorded on a version (for the promotion history)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        mv = tracking.with_retries(lambda: client.get_model_version(name, str(version)),
                                   what=f"reading version {version} of model {name!r}")
    except MlflowException:
        return []
    return [ov for s in STAGES if (ov := Override.from_json((mv.tags or {}).get(tag(s))))]


def _lookup(stage: str, name: str | None, version: str | None, run_id: str | None,
            tracking_uri: str | None) -> tuple[Override | None, list[str]]:
    """The override for (stage, version or run), and why others do not count."""
    client = _client(tracking_uri)
    tags: dict[str, str] = {}
    last = None
    if name and version:
        mv = tracking.with_retries(lambda: client.get_model_version(name, str(version)),
                                   what=f"reading overrides of {name} v{version}")
        tags = dict(mv.tags or {})
        with contextlib.suppress(Exception):
            rm = client.get_registered_model(name)
            last = Override.from_json((rm.tags or {}).get(LAST_TAG))
    elif run_id:
        run = tracking.with_retries(lambda: client.get_run(run_id),
                                    what=f"reading overrides of run {run_id}")
        tags = dict(run.data.tags or {})
    found = Override.from_json(tags.get(tag(stage)))
    ignored = []
    if found is not None and ((version and str(found.model_version) != str(version))
                              or (not version and found.run_id != run_id)):
        ignored.append(found)  # a copied tag that names another version
        found = None
    for other in STAGES:
        ov = Override.from_json(tags.get(tag(other)))
        if other != stage and ov is not None:
            ignored.append(ov)
    if last is not None and found is None and str(last.model_version) != str(version) \
            and last.stage == stage:
        ignored.append(last)
    this = f"{name} v{version}" if name and version else f"run {run_id}"
    warnings = [f"override of {ov.stage} for {ov.subject()} by {ov.approver} ignored: "
                f"{stage} of {this} honours only its own gate and version" for ov in ignored]
    return found, warnings


def honouring(tracking_uri: str | None = None):
    """The hook a gate stage gives ``StageResult.fail_unless_gates_pass(override=...)``."""
    return lambda result: honour(result, tracking_uri=tracking_uri)


def honour(result: StageResult, *, tracking_uri: str | None = None) -> Override | None:
    """Let a failed gate stage pass when an override covers its stage and model version.

    The model is read from ``result.lineage`` (``model_name``, ``model_version``,
    ``run_id``). Does nothing for a stage that passed or could not run.
    """
    if result.status != FAILED:
        return None
    lin = result.lineage or {}
    name, version, run_id = lin.get("model_name"), lin.get("model_version"), lin.get("run_id")
    if not ((name and version) or run_id):
        return None
    from mlcd_actions.core.errors import MlcdError

    try:
        found, warnings = _lookup(result.stage, name, version, run_id, tracking_uri)
    except (MlcdError, Exception) as exc:  # noqa: BLE001 - the gate's verdict stands
        result.warnings.append(f"overrides not checked: {history._first(exc)}")
        return None
    result.warnings.extend(warnings)
    if found is None:
        return None
    failed = [g for g in result.gates if g.verdict == FAILED]
    for g in failed:
        g.message = f"{g.message} (overridden by {found.approver})"
    original = result.reason
    result.status = PASSED
    result.reason = (f"gate overridden by {found.approver}: {found.reason} — was: {original}")
    result.details["override"] = {**found.to_dict(), "failed_gates": [g.metric for g in failed],
                                  "original_reason": original}
    result.outputs["overridden"] = True
    result.outputs["override-approver"] = found.approver
    result.findings.append(Finding(
        f"{len(failed)} failed gate(s) of {result.stage} passed by an override of "
        f"{found.approver} ({found.time}): {found.reason}", severity=SEV_WARNING,
        title=f"mlcd {result.stage}: gate overridden", code="gate.override"))
    result.tables.append(Table("gate override", ["stage", "model", "approver", "time",
                                                 "reason", "run"],
                               [[found.stage, found.subject(), found.approver, found.time,
                                 found.reason, found.run_url or ""]]))
    return found

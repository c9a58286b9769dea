"""``mlcd override``: record that a failed gate of one model version may be passed.

See :mod:`mlcd_actions.delivery.overrides`: the record (approver, reason, time, run URL) goes into
the version's registry tags; the gate stage honours it only for that stage and version.
Meant to run only in a job bound to a protected environment (GitHub ``environment:``
with required reviewers, GitLab protected environment with ``when: manual``).
"""

from __future__ import annotations

from mlcd_actions.core.results import StageResult, Table
from mlcd_actions.delivery import overrides

STAGE = "override"


def run(*, stage: str, reason: str | None, model_uri: str | None = None,
        name: str | None = None, model_version: str | None = None,
        tracking_uri: str | None = None) -> StageResult:
    ov = overrides.record(stage, reason, model_uri=model_uri, name=name,
                          version=model_version, tracking_uri=tracking_uri)
    result = StageResult(STAGE)
    result.reason = (f"{stage} gate of {ov.subject()} may pass: approved by {ov.approver} "
                     f"— {ov.reason}")
    result.details["override"] = ov.to_dict()
    result.outputs.update({"stage": stage, "approver": ov.approver,
                           "model-version": ov.model_version or "", "name": ov.model_name or ""})
    result.lineage = {k: v for k, v in {"model_name": ov.model_name,
                                        "model_version": ov.model_version,
                                        "run_id": ov.run_id}.items() if v}
    result.tables.append(Table("audited override", ["stage", "model", "approver", "time",
                                                    "reason", "run"],
                               [[stage, ov.subject(), ov.approver, ov.time, ov.reason,
                                 ov.run_url or ""]]))
    return result

"""``mlcd promote``: finish a shadow or canary — the candidate takes over when its gates pass.

The candidate is judged on the live traffic the environment's router saw since ``deploy
--strategy shadow|canary`` (:mod:`mlcd_actions.deploy.traffic`): at least
``--min-requests`` answers from the candidate (waiting up to ``--wait`` seconds for them),
then the gates (``--threshold``, default per strategy: error rate, p95 latency against the
serving version, and for a shadow the agreement of the predictions). When they pass, the
history entry and the alias move first (check-and-set), then the route, then the old
version stops. When they fail, the rollout is aborted (unless ``--keep-candidate``): the
serving version gets all the traffic again and the candidate stops; exit 1. An audited
override of the ``promote`` gate for the candidate's version lets a failed judgement pass.
"""

from __future__ import annotations

from typing import Any

from mlcd_actions.core.errors import ConfigError
from mlcd_actions.core.gates import FAILED, Threshold, fmt, parse_thresholds
from mlcd_actions.core.results import PASSED, StageResult, Table
from mlcd_actions.delivery import overrides, promotion
from mlcd_actions.deploy import rollout
from mlcd_actions.deploy.base import STATE_DIR, load_state, locked
from mlcd_actions.deploy.traffic import DEFAULT_GATES, METRICS

STAGE = "promote"


@locked
def run(*, environment: str, thresholds: list[str] | None = None, min_requests: int = 20,
        wait: float = 60.0, tolerance: float = 1e-6, keep_candidate: bool = False,
        alias: str | None = None, reason: str = "", tracking_uri: str | None = None,
        state_dir: str = STATE_DIR, options: dict[str, Any] | None = None) -> StageResult:
    options = {k: v for k, v in (options or {}).items() if v is not None}
    options.setdefault("state_dir", state_dir)
    state = load_state(environment, state_dir)
    serving, candidate = rollout.require_rollout(environment, state)
    info = state["rollout"]
    strategy = info.get("strategy")
    gates = parse_thresholds(list(thresholds or DEFAULT_GATES[strategy]))
    for gate in gates:  # before waiting for traffic: a typo is a usage error at once
        if gate.metric not in METRICS:
            raise ConfigError(f"--threshold {gate.spec!r}: unknown metric {gate.metric!r}; "
                              f"known: {', '.join(METRICS)}")
    metrics = rollout.observe(environment, state, options, min_requests=min_requests,
                              wait=wait, tolerance=tolerance)
    result = StageResult(STAGE, metrics=metrics)
    result.lineage = {k: v for k, v in {"model_name": candidate.model_name,
                                        "model_version": candidate.model_version,
                                        "image": candidate.image,
                                        "id": candidate.lineage_id}.items() if v}
    result.gates = _gate_rows(metrics, gates, min_requests)
    what = f"v{candidate.model_version}" if candidate.model_version else candidate.url
    result.reason = (f"{strategy} of {what}: {len(result.gates)} gate(s) passed on "
                     f"{metrics['requests']} requests")
    result.fail_unless_gates_pass(override=overrides.honouring(tracking_uri))
    result.tables.append(Table("live traffic", ["metric", "value"],
                               [[k, fmt(v)] for k, v in metrics.items()]))
    result.outputs.update({"environment": environment, "deploy-strategy": strategy,
                           "model-version": candidate.model_version or "",
                           "previous-version": serving.model_version or "",
                           "url": (state.get("router") or {}).get("url", "")})
    alias = alias or info.get("alias") or promotion.alias_for(environment)
    if result.status == FAILED:
        result.outputs["promoted"] = False
        if not keep_candidate:
            rollout.abort(environment, state, state_dir, options, tracking_uri=tracking_uri,
                          reason=f"promote gate failed: {result.reason}",
                          warnings=result.warnings)
            result.reason += f"; aborted, v{serving.model_version} keeps serving"
        return result
    new, old, _ = rollout.promote(environment, state, state_dir, options, alias=alias,
                                  tracking_uri=tracking_uri,
                                  reason=reason or result.reason, warnings=result.warnings)
    result.reason = (f"{what} promoted in {environment} after {strategy} "
                     f"({metrics['requests']} requests, gates passed)"
                     + (f"; v{old.model_version} stopped" if old.model_version else ""))
    if result.details.get("override"):
        result.reason = f"{what} promoted in {environment} by override: " \
                        f"{result.details['override']['reason']}"
    result.outputs["promoted"] = True
    result.outputs["url"] = (load_state(environment, state_dir).get("router") or {}).get(
        "url", new.url)
    return result


def _gate_rows(metrics: dict[str, Any], gates: list[Threshold], min_requests: int) -> list:
    """The volume gate, then each threshold; a metric the traffic could not measure (no
    answers from one side, nothing to compare) fails its gate."""
    volume = Threshold.parse(f"candidate_requests>={min_requests}").check(
        metrics["candidate_requests"])
    volume.message = (f"the candidate answered {metrics['candidate_requests']} requests "
                      f"({'enough' if volume.verdict == PASSED else 'need'} {min_requests})")
    rows = [volume]
    for gate in gates:
        row = gate.check(metrics.get(gate.metric))
        if row.verdict != PASSED and metrics.get(gate.metric) is None:
            row.verdict = FAILED
            row.message = f"{gate.metric} could not be measured (no comparable traffic)"
        rows.append(row)
    return rows

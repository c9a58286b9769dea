"""``mlcd deploy``: put a version into an environment through a deploy target adapter.

Order, so that nothing half-done is left behind: start the new version beside the old
one and wait for its health check; move the environment's MLflow alias (``staging``,
``champion`` for production) recording the previous version; save the deployment
state; only then stop the previous version. If anything before the last step fails,
the new version is removed and the old one keeps serving.

Every outcome goes into the model's promotion history (:mod:`mlcd_actions.delivery.history`): the
alias moves only after its history entry won the check-and-set against the entry number
read before the new version started, so of two deploys racing for one environment the
second fails with one line and its new version is removed.

``--strategy shadow|canary`` moves nothing: the candidate starts beside the serving
version behind the environment's router (:mod:`mlcd_actions.deploy.rollout`), and ``mlcd
promote`` or ``mlcd rollback`` finishes it. When an environment has a router, a direct
deploy switches the router too (a graceful nginx reload), so clients keep one URL.
"""

from __future__ import annotations

from typing import Any

from mlcd_actions.core.results import StageResult
from mlcd_actions.deploy import rollout
from mlcd_actions.deploy.base import locked


@locked
def run(**kwargs: Any) -> StageResult:
    """``mlcd deploy``: see :func:`mlcd_actions.deploy.rollout.deploy` for the options."""
    return rollout.deploy(**kwargs)

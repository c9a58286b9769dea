"""Deploy target adapters (``local``, ``docker``, ``kubernetes``, ``command``), loaded through
the entry-point group ``mlcd_actions.deploy_targets`` so plugins add more the same way::

    [project.entry-points."mlcd_actions.deploy_targets"]
    nomad = "mlcd_nomad:NomadTarget"
"""

from __future__ import annotations

from mlcd_actions.core.plugins import Registry
from mlcd_actions.deploy.base import Deployment, DeploySpec, Target

TARGETS: Registry[Target] = Registry("mlcd_actions.deploy_targets", base=Target,
                                     what="deploy target")


def get_target(name: str, **options) -> Target:
    return TARGETS.get(name)(**options)


__all__ = ["TARGETS", "Deployment", "DeploySpec", "Target", "get_target"]

"""The Deployment controller, split by concern as Kubernetes' ``pkg/controller/deployment``.

* :mod:`.controller` - informer wiring and the per-Deployment dispatch;
* :mod:`.sync` - revisions, the new/old ReplicaSets, scaling, cleanup, status writes;
* :mod:`.rolling` / :mod:`.recreate` - the two strategies;
* :mod:`.progress` - status, conditions and the progress deadline;
* :mod:`.replicas`, :mod:`.annotations`, :mod:`.template` - the pure arithmetic, annotation
  bookkeeping and pod-template hashing/equality they rest on.
"""

from shoal.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]

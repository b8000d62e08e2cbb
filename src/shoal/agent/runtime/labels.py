"""Label keys the drivers put on (and look for on) everything they create.

The agent passes ``shoal.pod.*`` and ``shoal.container.*`` labels in the specs; the drivers
add :data:`MANAGED` (``shoal.managed=true``) and the container name, and find their objects
again by these labels after a restart.
"""

from __future__ import annotations

MANAGED = "shoal.managed"
POD_UID = "shoal.pod.uid"
POD_NAME = "shoal.pod.name"
POD_NAMESPACE = "shoal.pod.namespace"
CONTAINER_NAME = "shoal.container.name"
CONTAINER_ATTEMPT = "shoal.container.attempt"

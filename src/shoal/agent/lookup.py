"""Finding a pod's container in the runtime for ``kubectl logs`` and ``kubectl exec``.

:func:`make_pod_lookup` turns a driver into the agent server's
:class:`~shoal.agent.server.PodLookup`: containers are found by the labels every driver
keeps on them (pod namespace and name, container name, attempt).  The current container is
the highest attempt; ``previous`` is the one before it (``kubectl logs --previous``).
"""

from __future__ import annotations

from shoal.agent.runtime import labels
from shoal.agent.runtime.driver import ContainerStatus, RuntimeDriver
from shoal.agent.server import PodLookup, previous_not_found, waiting_to_start


def _attempt(status: ContainerStatus) -> int:
    try:
        return int(status.labels.get(labels.CONTAINER_ATTEMPT, "0"))
    except ValueError:
        return 0


def make_pod_lookup(driver: RuntimeDriver) -> PodLookup:
    async def lookup(namespace: str, pod: str, container: str, previous: bool) -> str:
        found = [c for c in await driver.list_containers()
                 if c.labels.get(labels.POD_NAMESPACE) == namespace and c.labels.get(labels.POD_NAME) == pod
                 and c.labels.get(labels.CONTAINER_NAME, c.name) == container]
        found.sort(key=_attempt, reverse=True)
        if previous:
            if len(found) < 2:
                raise previous_not_found(container, pod)
            return found[1].id
        if not found:
            raise waiting_to_start(container, pod, "ContainerCreating")
        return found[0].id

    return lookup

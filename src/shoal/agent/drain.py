"""Drain before kill: a pod that is a Service endpoint gets SIGTERM only once every node's proxy
has stopped sending it new requests.

Kubernetes sends SIGTERM at once and lets kube-proxies catch up on their own, so connections
still reach a pod that is exiting (hence ``preStop: sleep`` hacks).  Shoal's agent waits first:

1. until every EndpointSlice that lists the pod (by ``targetRef.uid``) shows it not ready
   (``terminating``, or gone from the slice): the EndpointSlice controller's reaction to the
   pod's ``deletionTimestamp``;
2. until every live service proxy has applied those slices: its Lease's synced revision
   (:mod:`shoal.client.proxystatus`) has reached the slices' highest resourceVersion.

Contract and invariants
-----------------------
* A pod that no EndpointSlice lists is not waited for at all (no delay for pods without
  Services).
* The wait is bounded by ``budget`` seconds (:data:`MAX_DRAIN` by default): a stuck controller
  or a lost node never keeps a pod from being stopped.  :meth:`EndpointDrain.wait` returns the
  seconds it waited and whether the drain completed.
* The waits are driven by informer events (no polling); the informers here run for the
  agent's life (:meth:`EndpointDrain.run`).  Before they have synced, nothing is waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from shoal.client import proxystatus, resources
from shoal.client.informer import EventHandler, Informer, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.kube import objects
from shoal.kube.objects import Obj

__all__ = ["MAX_DRAIN", "EndpointDrain", "pending_slices"]

#: The longest the agent delays a pod's SIGTERM for its endpoints to drain, in seconds.
MAX_DRAIN = 3.0


def _uid_of(endpoint: Obj) -> str:
    return str((endpoint.get("targetRef") or {}).get("uid") or "")


def pending_slices(slices: list[Obj], uid: str) -> tuple[bool, int]:
    """Whether some slice still lists pod ``uid`` as ready, and the highest resourceVersion
    among the slices that list it or listed it (all given slices are ones that did)."""
    ready, revision = False, 0
    for piece in slices:
        revision = max(revision, objects.revision(piece))
        for endpoint in piece.get("endpoints") or []:
            if _uid_of(endpoint) == uid and (endpoint.get("conditions") or {}).get("ready") is not False:
                ready = True
    return ready, revision


class EndpointDrain:
    def __init__(self, client: ApiClient, *, now: Callable[[], float] = time.time) -> None:
        self.now = now
        self.slices = Informer(client, resources.ENDPOINTSLICES)
        self.slices.add_index("pod", lambda s: [u for e in s.get("endpoints") or [] if (u := _uid_of(e))])
        self.leases = Informer(client, resources.LEASES, namespace=proxystatus.PROXY_LEASE_NAMESPACE,
                               label_selector=f"{proxystatus.PROXY_LEASE_LABEL}={proxystatus.PROXY_LEASE_LABEL_VALUE}")
        self._changed = asyncio.Event()
        handler = EventHandler(on_add=self._poke, on_update=lambda _o, _n: self._poke(_n), on_delete=self._poke)
        self.slices.add_event_handler(handler)
        self.leases.add_event_handler(handler)
        self.drained = 0

    def _poke(self, _obj: Obj) -> None:
        self._changed.set()

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.slices.run(stop), name="drain-slices")
            group.create_task(self.leases.run(stop), name="drain-leases")
            await wait_for_sync([self.slices, self.leases], stop)

    def listed(self, uid: str) -> bool:
        return bool(self.slices.by_index("pod", uid))

    async def wait(self, uid: str, budget: float = MAX_DRAIN) -> tuple[float, bool]:
        """Steps 1 and 2 of the module docstring for pod ``uid``, within ``budget`` seconds."""
        began = time.monotonic()
        if not (self.slices.has_synced and self.leases.has_synced):
            return 0.0, False
        keys = {f"{(s.get('metadata') or {}).get('namespace')}/{(s.get('metadata') or {}).get('name')}"
                for s in self.slices.by_index("pod", uid)}
        if not keys:
            return 0.0, True
        deadline = began + budget
        while True:
            self._changed.clear()
            current = [s for k in keys if (s := self.slices.get(k)) is not None]
            ready, revision = pending_slices(current, uid)
            if not ready:
                proxies = proxystatus.live_proxy_revisions(self.leases.list(), self.now())
                if all(r >= revision for r in proxies.values()):
                    self.drained += 1
                    return time.monotonic() - began, True
            left = deadline - time.monotonic()
            if left <= 0:
                return time.monotonic() - began, False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

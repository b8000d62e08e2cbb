"""The node's heartbeat Lease (kubelet ``nodelease`` controller).

:class:`LeaseRenewer` keeps ``kube-node-lease/<node>`` (coordination.k8s.io/v1) with
``holderIdentity`` = the node name, ``leaseDurationSeconds`` and ``renewTime`` (RFC 3339 with
microseconds), owned by the Node (an ownerReference with the Node's uid, so deleting the Node
deletes its Lease).  It renews every ``duration / 4`` seconds on the injected clock.  A failed
renewal is logged and retried after a short backoff (0.2 s doubling, at most the renew interval),
as kubelet does; a conflict (someone else wrote the Lease) re-reads it first.  The node
lifecycle controller declares the node lost when ``renewTime + leaseDurationSeconds`` passes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable

from shoal.client import resources
from shoal.client.errors import AlreadyExistsError, ApiClientError, ConflictError, NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock, race_sleep
from shoal.kube.objects import Obj
from shoal.kube.times import format_micro

__all__ = ["NODE_LEASE_NAMESPACE", "LeaseRenewer"]

log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"


class LeaseRenewer:
    def __init__(self, client: ApiClient, node_name: str, *, duration: int, clock: Clock,
                 node_uid: Callable[[], str]) -> None:
        self.client = client
        self.node_name = node_name
        self.duration = duration
        self.clock = clock
        self.node_uid = node_uid
        self.renew_interval = duration / 4
        self._lease: Obj | None = None
        #: Renewals that failed (each was logged and retried).
        self.failures = 0
        #: Successful renewals.
        self.renewals = 0

    def _desired(self, base: Obj | None) -> Obj:
        lease: Obj = copy.deepcopy(base) if base is not None else {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": NODE_LEASE_NAMESPACE}, "spec": {}}
        meta: Obj = lease.setdefault("metadata", {})
        spec: Obj = lease.setdefault("spec", {})
        uid = self.node_uid()
        if uid:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.node_name, "uid": uid}]
        spec.update({"holderIdentity": self.node_name, "leaseDurationSeconds": self.duration,
                              "renewTime": format_micro(self.clock.now())})
        return lease

    async def renew(self) -> Obj:
        """Create or renew the Lease once; returns it as stored."""
        if self._lease is None:
            try:
                self._lease = await self.client.get(resources.LEASES, self.node_name, NODE_LEASE_NAMESPACE)
            except NotFoundError:
                try:
                    self._lease = await self.client.create(resources.LEASES, self._desired(None))
                    self.renewals += 1
                    return self._lease
                except AlreadyExistsError:
                    self._lease = await self.client.get(resources.LEASES, self.node_name, NODE_LEASE_NAMESPACE)
        try:
            self._lease = await self.client.update(resources.LEASES, self._desired(self._lease))
        except (ConflictError, NotFoundError):
            self._lease = None
            raise
        self.renewals += 1
        return self._lease

    async def run(self, stop: asyncio.Event) -> None:
        """Renew every ``duration / 4`` seconds until ``stop``."""
        retry = 0.2
        while not stop.is_set():
            try:
                await self.renew()
                delay, retry = self.renew_interval, 0.2
            except ApiClientError as exc:
                self.failures += 1
                delay, retry = min(retry, self.renew_interval), min(retry * 2, self.renew_interval)
                log.warning("node %s: lease renewal failed (%s); retrying in %.1fs", self.node_name, exc, delay)
            await race_sleep(self.clock, delay, stop.wait())

"""The controller manager: builds every enabled controller and runs them together.

``ControllerManager(client, clock).run(stop)`` runs until ``stop`` is set.  Each *term* (one
period of leadership) gets a fresh :class:`~shoal.client.informer.InformerFactory` and fresh
controllers, started in one ``asyncio.TaskGroup``: the shared informers and every controller's
workers.  A controller that crashes (an exception escaping ``run``, which only a bug causes:
reconcile errors are requeued) cancels its siblings and the exception propagates, so the
process stops cleanly rather than running half a control plane.

Seams:

* **Leader election** - :class:`Leadership` decides when a term runs.  :class:`AlwaysLeader`
  runs one term for as long as ``stop`` is unset.  The Lease-based elector
  (:class:`~shoal.client.leaderelection.LeaseLeadership`) acquires the Lease, calls
  ``term(leading)`` with an event it sets when ``stop`` is set *or* the lease is lost, and
  loops.  Without an explicit ``leadership``, a manager of the standard :data:`CONTROLLERS`
  (``shoal server``) competes for the Lease ``kube-system/shoal-controller-manager`` (so
  several servers on one store run one set of controllers) under
  :func:`~shoal.client.leaderelection.server_identity` (a restarted server takes its
  own Lease back at once), while a manager given its own ``controllers`` table (tests,
  tools) is always the leader.
* **Which controllers** - :data:`CONTROLLERS` maps a name to a factory taking a
  :class:`ControllerContext`; ``disabled`` names are skipped (``--disable=<name>``).  A new
  controller adds itself to that table.
* **Unelected controllers** - :data:`UNELECTED` (the system-namespaces controller) run in every
  manager, for as long as ``stop`` is unset, outside leader election and its terms, on their own
  informers: they repair what the election itself needs (``kube-system`` holds the Lease), as
  kube-apiserver runs its system-namespaces controller in every API server.  A standard manager
  runs them; one given its own ``controllers`` table runs only the ``unelected`` it is given.
  ``disabled`` applies to both tables.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from shoal.client import leaderelection
from shoal.client.controller import Controller
from shoal.client.informer import InformerFactory
from shoal.client.resources import ResourceRef
from shoal.client.rest import ApiClient
from shoal.controllers import (
    endpoints,
    endpointslice,
    garbage_collector,
    kubernetes_service,
    loadbalancer,
    namespace,
    nodeipam,
    replicaset,
    serviceaccounts,
    system_namespaces,
)
from shoal.controllers.deployment import DeploymentController
from shoal.kube.clock import Clock, MonotonicClock

__all__ = [
    "CONTROLLERS",
    "LEASE_NAME",
    "UNELECTED",
    "AlwaysLeader",
    "ControllerContext",
    "ControllerManager",
    "Leadership",
]

log = logging.getLogger(__name__)

Term = Callable[[asyncio.Event], Awaitable[None]]

#: The Lease (in kube-system) that controller managers elect their leader with.
LEASE_NAME = "shoal-controller-manager"


class Leadership(Protocol):
    async def lead(self, stop: asyncio.Event, term: Term) -> None:
        """Run ``term(leading)`` whenever this process leads, until ``stop`` is set.

        ``leading`` must be set when leadership ends (or ``stop`` is set); ``term`` then
        returns.  ``lead`` returns once ``stop`` is set and no term runs."""
        ...


class AlwaysLeader:
    """No election: a single process is always the leader."""

    async def lead(self, stop: asyncio.Event, term: Term) -> None:
        await term(stop)


@dataclass(frozen=True, slots=True)
class ControllerContext:
    """What a controller factory gets: shared client, informers, clock and options."""

    client: ApiClient
    informers: InformerFactory
    clock: Clock
    namespaced_resources: Sequence[ResourceRef]
    gc_resources: Sequence[ResourceRef]
    cluster_cidr: str = nodeipam.DEFAULT_CLUSTER_CIDR


ControllerFactory = Callable[[ControllerContext], Controller]

CONTROLLERS: dict[str, ControllerFactory] = {
    "garbage-collector": lambda ctx: garbage_collector.GarbageCollector(
        ctx.client, ctx.informers, ctx.gc_resources, clock=ctx.clock),
    "namespace": lambda ctx: namespace.NamespaceController(
        ctx.client, ctx.informers, ctx.namespaced_resources, clock=ctx.clock),
    "replicaset": lambda ctx: replicaset.ReplicaSetController(ctx.client, ctx.informers, clock=ctx.clock),
    "deployment": lambda ctx: DeploymentController(ctx.client, ctx.informers, clock=ctx.clock),
    "nodeipam": lambda ctx: nodeipam.NodeIpamController(
        ctx.client, ctx.informers, cluster_cidr=ctx.cluster_cidr, clock=ctx.clock),
    "serviceaccount": lambda ctx: serviceaccounts.ServiceAccountController(ctx.client, ctx.informers, clock=ctx.clock),
    "endpoints": lambda ctx: endpoints.EndpointsController(ctx.client, ctx.informers, clock=ctx.clock),
    "endpointslice": lambda ctx: endpointslice.EndpointSliceController(ctx.client, ctx.informers, clock=ctx.clock),
    "kubernetes-service": lambda ctx: kubernetes_service.KubernetesServiceController(
        ctx.client, ctx.informers, clock=ctx.clock),
    "service-lb": lambda ctx: loadbalancer.LoadBalancerController(ctx.client, ctx.informers, clock=ctx.clock),
}

UNELECTED: dict[str, ControllerFactory] = {
    "system-namespaces": lambda ctx: system_namespaces.SystemNamespacesController(
        ctx.client, ctx.informers, clock=ctx.clock),
}


class ControllerManager:
    """Runs the enabled controllers of :data:`CONTROLLERS` against one API server."""

    def __init__(self, client: ApiClient, clock: Clock | None = None, *, workers: int = 2,
                 disabled: Iterable[str] = (), leadership: Leadership | None = None,
                 namespaced_resources: Sequence[ResourceRef] = namespace.DEFAULT_RESOURCES,
                 gc_resources: Sequence[ResourceRef] = garbage_collector.DEFAULT_RESOURCES,
                 controllers: dict[str, ControllerFactory] | None = None,
                 unelected: dict[str, ControllerFactory] | None = None,
                 cluster_cidr: str = nodeipam.DEFAULT_CLUSTER_CIDR, identity: str | None = None) -> None:
        self.client = client
        self.clock: Clock = clock or MonotonicClock()
        self.workers = workers
        if leadership is None:
            leadership = AlwaysLeader() if controllers is not None else leaderelection.LeaseLeadership(
                client, LEASE_NAME, identity or leaderelection.server_identity(client), self.clock)
        self.leadership: Leadership = leadership
        self.cluster_cidr = cluster_cidr
        self.namespaced_resources = namespaced_resources
        self.gc_resources = gc_resources
        self._factories = dict(controllers if controllers is not None else CONTROLLERS)
        if unelected is None:
            unelected = UNELECTED if controllers is None else {}
        self._unelected_factories = dict(unelected)
        unknown = set(disabled) - set(self._factories) - set(self._unelected_factories)
        if unknown:
            raise ValueError(f"unknown controllers to disable: {sorted(unknown)}")
        self.disabled = frozenset(disabled)
        #: The controllers of the current term (empty when not leading).
        self.controllers: list[Controller] = []
        #: The unelected controllers (empty before ``run`` and after it).
        self.unelected: list[Controller] = []

    def build(self, informers: InformerFactory,
              factories: dict[str, ControllerFactory] | None = None) -> list[Controller]:
        ctx = ControllerContext(self.client, informers, self.clock, self.namespaced_resources,
                                self.gc_resources, self.cluster_cidr)
        chosen = self._factories if factories is None else factories
        return [factory(ctx) for name, factory in chosen.items() if name not in self.disabled]

    async def run(self, stop: asyncio.Event) -> None:
        if not set(self._unelected_factories) - self.disabled:
            await self.leadership.lead(stop, self._term)
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self._run_unelected(stop), name="unelected-controllers")
            group.create_task(self.leadership.lead(stop, self._term), name="elected-controllers")

    async def _run_unelected(self, stop: asyncio.Event) -> None:
        informers = InformerFactory(self.client, sleep=self.clock.sleep)
        self.unelected = self.build(informers, self._unelected_factories)
        log.info("controller manager: starting %s (outside leader election)",
                 ", ".join(c.name for c in self.unelected))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(informers.run(stop), name="unelected-informers")
                for controller in self.unelected:
                    group.create_task(controller.run(stop, 1), name=controller.name)
        finally:
            self.unelected = []

    async def _term(self, leading: asyncio.Event) -> None:
        informers = InformerFactory(self.client, sleep=self.clock.sleep)
        self.controllers = self.build(informers)
        log.info("controller manager: starting %s", ", ".join(c.name for c in self.controllers))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(informers.run(leading), name="informers")
                for controller in self.controllers:
                    group.create_task(controller.run(leading, self.workers), name=controller.name)
        finally:
            self.controllers = []
        log.info("controller manager: stopped")

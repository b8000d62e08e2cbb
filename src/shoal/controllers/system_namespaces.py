"""The system-namespaces controller: ``default``, ``kube-system``, ``kube-public`` and
``kube-node-lease`` exist again soon after they go missing (kube-apiserver's
``pkg/controlplane/controller/systemnamespaces``).

The API refuses deleting the first three (:class:`shoal.api.admission.NamespaceLifecycle`, 403);
``kube-node-lease`` may be deleted, as in Kubernetes, and any of them may be lost outside the
API (a store restored from an old backup, a hand-edited etcd).  Everything else needs them: the
Lease elections in ``kube-system`` (controller manager, scheduler), the nodes' heartbeat Leases
in ``kube-node-lease``, every create in ``default``.

Contract and invariants
-----------------------
* Level-triggered, through the API only.  The keys are the names of :data:`SYSTEM_NAMESPACES`;
  ``reconcile(name)`` creates the namespace when the namespace informer's cache does not hold
  it (an ``AlreadyExists`` answer means someone else was first: done).  A namespace still in
  the cache - even one being deleted - is left alone: once the namespace controller has emptied
  and removed it, the informer's delete event brings the key back and it is created then.
* Triggers: every add, update or delete of a system namespace enqueues its name, and every
  reconcile ends with :class:`~shoal.client.controller.RequeueAfter` ``resync`` seconds
  (:data:`RESYNC_SECONDS`), so each name is checked again periodically even if an event was
  missed.  Every name is enqueued at construction: one missing when the controller starts has
  no event to announce it.  A failed create is retried with the queue's backoff, capped at
  ``resync``.
* It runs in every server outside leader election (the controller manager's *unelected*
  controllers, :data:`shoal.controllers.manager.UNELECTED`), as kube-apiserver runs it: it must
  work while ``kube-system``, and so the controller manager's own Lease, is gone.  Several
  servers creating the same namespace is harmless (one wins, the others see AlreadyExists).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.errors import AlreadyExistsError
from shoal.client.informer import EventHandler, InformerFactory, object_key
from shoal.client.rest import ApiClient
from shoal.client.workqueue import ItemExponentialRateLimiter
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj

__all__ = ["RESYNC_SECONDS", "SYSTEM_NAMESPACES", "SystemNamespacesController"]

log = logging.getLogger(__name__)

#: The namespaces every cluster has (kube-apiserver's ``systemNamespaces``).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

#: Seconds between two periodic checks of one system namespace (kube-apiserver: 60).  The
#: informer's delete event is what makes recovery take well under a second; this is the net
#: below it.
RESYNC_SECONDS = 10.0


class SystemNamespacesController(Controller):
    """Creates the missing ones of :data:`SYSTEM_NAMESPACES` (see the module docstring)."""

    def __init__(self, client: ApiClient, informers: InformerFactory,
                 names: Iterable[str] = SYSTEM_NAMESPACES, *, clock: Clock | None = None,
                 resync: float = RESYNC_SECONDS) -> None:
        if resync <= 0:
            raise ValueError(f"resync must be positive, not {resync}")
        super().__init__("system-namespaces", clock=clock,
                         rate_limiter=ItemExponentialRateLimiter(maximum=resync))
        self.client = client
        self.names = tuple(dict.fromkeys(names))
        self.resync = resync
        #: Namespaces this controller created (each one was missing).
        self.created = 0
        self.namespaces = informers.informer(resources.NAMESPACES)
        self.namespaces.add_event_handler(EventHandler(
            on_add=self._on_namespace, on_update=lambda _old, new: self._on_namespace(new),
            on_delete=self._on_namespace))
        self.informers.append(self.namespaces)
        for name in self.names:
            self.enqueue(name)

    def _on_namespace(self, ns: Obj) -> None:
        name = object_key(ns)
        if name in self.names:
            self.enqueue(name)

    async def reconcile(self, key: str) -> None:
        if key not in self.names:
            return
        if self.namespaces.get(key) is None:
            await self._create(key)
        raise RequeueAfter(self.resync, "periodic check")

    async def _create(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            await self.client.create(resources.NAMESPACES, body)
        except AlreadyExistsError:
            log.debug("system namespace %s: already created by someone else", name)
            return
        self.created += 1
        log.warning("system namespace %s was missing: created it again", name)

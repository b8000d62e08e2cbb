"""The ServiceAccount controller: every active namespace has a ``default`` ServiceAccount
(kube-controller-manager's ``serviceaccount`` controller, ``pkg/controller/serviceaccount``).

Contract and invariants
-----------------------
* Level-triggered, through the API only.  Keys are namespace names.  ``reconcile(namespace)``
  reads the namespace and its ServiceAccounts from the informers' caches and creates each of
  :data:`DEFAULT_SERVICE_ACCOUNTS` the cache does not hold, with Kubernetes' body: only
  ``metadata.name`` and ``metadata.namespace`` (no token Secret, as since Kubernetes 1.24).
* Nothing is created in a namespace that is gone or not ``Active`` (being deleted: it has a
  ``deletionTimestamp`` or ``status.phase: Terminating``), so it never races the namespace
  controller emptying it.  The answers that mean the same thing arriving late - 404 (the
  namespace went away meanwhile), 403 with the ``NamespaceTerminating`` cause - end the pass
  quietly, as Kubernetes does; ``AlreadyExists`` means someone else was first.  Any other
  failure raises and is retried with the queue's backoff.
* Triggers, as in Kubernetes: a namespace added or updated (which includes every namespace at
  start, through the informer's initial list) and a ServiceAccount deleted enqueue the
  namespace, so a deleted ``default`` ServiceAccount is created again at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shoal.client import resources
from shoal.client.controller import Controller
from shoal.client.errors import AlreadyExistsError, ForbiddenError, NotFoundError
from shoal.client.informer import EventHandler, InformerFactory, object_key
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj

__all__ = ["DEFAULT_SERVICE_ACCOUNTS", "ServiceAccountController"]

log = logging.getLogger(__name__)

#: The ServiceAccounts every namespace gets (Kubernetes' ``serviceAccountsToEnsure``).
DEFAULT_SERVICE_ACCOUNTS = ("default",)


def _active(ns: Obj) -> bool:
    meta, status = ns.get("metadata") or {}, ns.get("status") or {}
    return not meta.get("deletionTimestamp") and (status.get("phase") or "Active") == "Active"


def _terminating_refusal(exc: ForbiddenError) -> bool:
    causes = exc.details.get("causes") or []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


class ServiceAccountController(Controller):
    """Creates the missing ``default`` ServiceAccount of every active namespace."""

    def __init__(self, client: ApiClient, informers: InformerFactory,
                 names: Iterable[str] = DEFAULT_SERVICE_ACCOUNTS, *, clock: Clock | None = None) -> None:
        super().__init__("serviceaccount", clock=clock)
        self.client = client
        self.names = tuple(dict.fromkeys(names))
        #: ServiceAccounts this controller created.
        self.created = 0
        self.namespaces = informers.informer(resources.NAMESPACES)
        self.namespaces.add_event_handler(EventHandler(
            on_add=lambda ns: self.enqueue(object_key(ns)),
            on_update=lambda _old, new: self.enqueue(object_key(new))))
        self.accounts = informers.informer(resources.SERVICEACCOUNTS)
        self.accounts.add_event_handler(EventHandler(on_delete=self._on_account_deleted))
        self.informers += [self.namespaces, self.accounts]

    def _on_account_deleted(self, account: Obj) -> None:
        namespace = (account.get("metadata") or {}).get("namespace")
        if isinstance(namespace, str) and namespace:
            self.enqueue(namespace)

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not _active(ns):
            return
        for name in self.names:
            if self.accounts.get(f"{key}/{name}") is not None:
                continue
            if not await self._create(key, name):
                return

    async def _create(self, namespace: str, name: str) -> bool:
        """Create ``namespace/name``; False if the namespace turned out to be gone or terminating."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}
        try:
            await self.client.create(resources.SERVICEACCOUNTS, body, namespace)
        except AlreadyExistsError:
            return True
        except NotFoundError:
            log.debug("serviceaccount %s/%s: the namespace is gone", namespace, name)
            return False
        except ForbiddenError as exc:
            if not _terminating_refusal(exc):
                raise
            log.debug("serviceaccount %s/%s: the namespace is being deleted", namespace, name)
            return False
        self.created += 1
        log.info("serviceaccount %s/%s: created", namespace, name)
        return True

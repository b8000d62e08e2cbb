"""Admission: the checks and claims a write must pass before it is stored.

Called by the write path (:mod:`shoal.api.writes`, :mod:`shoal.api.deletion`) at three fixed
points of every write, in this order::

    admit  ->  the kind's defaults and validation  ->  reserve  ->  store write
                                                          (undone if the write fails)
            ->  release_unused  (after a stored update or a removal)

Contract and invariants
-----------------------
* :class:`AdmissionRequest` is Kubernetes' ``admission.Attributes``: the operation (CREATE,
  UPDATE or DELETE of the stored object; a subresource write such as ``status``, ``scale``
  or ``binding`` is an UPDATE naming its subresource), the kind, namespace, name, the new and
  the old object, the user (:class:`~shoal.security.user.UserInfo`, from
  :attr:`shoal.api.writes.WriteContext.user`) and ``dry_run``.
* An :class:`AdmissionPlugin` has three hooks:

  - :meth:`~AdmissionPlugin.admit` before the kind's defaults and validation (Kubernetes'
    mutating admission): it refuses with an :class:`~shoal.kube.errors.ApiError` or changes
    ``request.object`` in place;
  - :meth:`~AdmissionPlugin.reserve` after validation, just before the store write: it claims
    what the object needs (and may write the claimed values into the object) and returns a
    :data:`Release` that gives the claims back; the writer calls it when the store write
    fails.  Under ``dry_run`` nothing is claimed;
  - :meth:`~AdmissionPlugin.release_unused` after a stored update (``new``) or a removal
    (``new`` None): it frees what ``old`` held and ``new`` does not.

* :class:`AdmissionChain` runs plugins in order and is itself a plugin; a failed ``reserve``
  gives back the claims of the plugins before it, in reverse order, then re-raises.
* Today's plugins, in :func:`default_admission` order (Kubernetes' order):

  - :class:`NamespaceLifecycle`: a namespaced object is created only in an existing namespace
    that is not terminating (404 ``namespaces "x" not found``, or 403 ``unable to create new
    content in namespace x because it is being terminated``), and the namespaces of
    :data:`IMMORTAL_NAMESPACES` (``default``, ``kube-system``, ``kube-public``) are never
    deleted (403 ``namespaces "default" is forbidden: this namespace may not be deleted``,
    dry run included).  ``kube-node-lease`` may be deleted, as in Kubernetes; the
    system-namespaces controller (:mod:`shoal.controllers.system_namespaces`) creates it again;
  - :class:`DefaultTolerationSeconds`: a pod (create or update of the pod itself, not of a
    subresource) that does not tolerate ``node.kubernetes.io/not-ready:NoExecute`` or
    ``node.kubernetes.io/unreachable:NoExecute`` gets ``{key, operator: Exists, effect:
    NoExecute, tolerationSeconds: DEFAULT_TOLERATION_SECONDS}`` for each one it lacks.  A
    toleration with an empty key or an empty effect counts, as in Kubernetes; a malformed
    ``spec`` or ``spec.tolerations`` is left to validation, which names the field;
  - :class:`ServiceAllocation` (Service ClusterIPs and NodePorts, :mod:`shoal.api.allocators`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shoal.api.allocators import Release, ServiceAllocator
from shoal.api.storage import ObjectStorage
from shoal.kube import errors
from shoal.kube.objects import Obj
from shoal.resources.registry import Registry, ResourceKind
from shoal.security.user import UserInfo

#: Namespaces that may never be deleted (Kubernetes' ``immortalNamespaces``).
IMMORTAL_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})

#: Seconds a pod stays bound to a node that turned not-ready or unreachable before the node
#: lifecycle controller may evict it: the ``tolerationSeconds`` of the two NoExecute tolerations
#: :class:`DefaultTolerationSeconds` adds.  Kubernetes' default is 300
#: (``--default-not-ready-toleration-seconds``, ``--default-unreachable-toleration-seconds``);
#: Shoal fails over in seconds (DESIGN.md, "Failure handling": the node's Lease expires after
#: 10 s, then pods are evicted after this short toleration).  The one place this number lives.
DEFAULT_TOLERATION_SECONDS = 5

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


class Operation(enum.Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class AdmissionRequest:
    """One write, as admission sees it (Kubernetes' ``admission.Attributes``)."""

    operation: Operation
    kind: ResourceKind
    namespace: str
    name: str
    object: Obj | None
    old_object: Obj | None
    user: UserInfo
    dry_run: bool = False
    subresource: str = ""


class AdmissionPlugin(Protocol):
    """One admission controller; see the module docstring for when each hook runs."""

    async def admit(self, request: AdmissionRequest) -> None:
        """Refuse (raise ApiError) or change ``request.object`` in place; before defaults and validation."""
        ...

    async def reserve(self, request: AdmissionRequest) -> Release:
        """Claim what ``request.object`` needs; the result undoes the claims."""
        ...

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        """Free what ``old`` held and ``new`` (None: removed) does not."""
        ...


async def _nothing() -> None:
    return None


class AdmissionChain:
    """Several plugins, run in order, as one."""

    def __init__(self, plugins: Sequence[AdmissionPlugin]) -> None:
        self.plugins = tuple(plugins)

    async def admit(self, request: AdmissionRequest) -> None:
        for plugin in self.plugins:
            await plugin.admit(request)

    async def reserve(self, request: AdmissionRequest) -> Release:
        releases: list[Release] = []
        try:
            for plugin in self.plugins:
                releases.append(await plugin.reserve(request))
        except BaseException:
            await _release_all(releases)
            raise

        async def release() -> None:
            await _release_all(releases)

        return release

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        for plugin in self.plugins:
            await plugin.release_unused(kind, new, old)


async def _release_all(releases: list[Release]) -> None:
    for release in reversed(releases):
        await release()


class NamespaceLifecycle:
    """Namespaced objects are created only in namespaces that exist and are not terminating."""

    def __init__(self, storage: ObjectStorage, registry: Registry) -> None:
        namespaces = registry.lookup("", "v1", "namespaces")
        if namespaces is None:
            raise ValueError("the registry has no core/v1 namespaces")
        self.storage = storage
        self.namespaces = namespaces

    async def admit(self, request: AdmissionRequest) -> None:
        kind = request.kind
        if (request.operation is Operation.DELETE and kind.group == "" and kind.plural == "namespaces"
                and request.name in IMMORTAL_NAMESPACES):
            raise errors.ApiError(
                403, "Forbidden", f'namespaces "{request.name}" is forbidden: this namespace may not be deleted',
                {"name": request.name, "kind": "namespaces"})
        if request.operation is not Operation.CREATE or not kind.namespaced:
            return
        try:
            namespace = await self.storage.get(self.namespaces, "", request.namespace)
        except errors.ApiError as exc:
            if exc.code == 404:
                raise errors.not_found("namespaces", "", request.namespace) from exc
            raise
        if namespace.get("metadata", {}).get("deletionTimestamp"):
            raise errors.ApiError(
                403, "Forbidden",
                f'{kind.plural} "{request.name}" is forbidden: unable to create new content in '
                f'namespace {request.namespace} because it is being terminated',
                {"name": request.name, "kind": kind.plural,
                 "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]},
            )

    async def reserve(self, request: AdmissionRequest) -> Release:
        return _nothing

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        return None


def _tolerates(toleration: dict[str, Any], key: str) -> bool:
    """Whether ``toleration`` already covers ``key:NoExecute`` (an empty key or effect matches all)."""
    return toleration.get("key") in (key, "", None) and toleration.get("effect") in ("NoExecute", "", None)


class DefaultTolerationSeconds:
    """Pods tolerate not-ready and unreachable nodes for :data:`DEFAULT_TOLERATION_SECONDS`."""

    def __init__(self, seconds: int = DEFAULT_TOLERATION_SECONDS) -> None:
        self.defaults: dict[str, Obj] = {
            key: {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            for key in (NOT_READY_TAINT, UNREACHABLE_TAINT)}

    async def admit(self, request: AdmissionRequest) -> None:
        kind, pod = request.kind, request.object
        if (kind.group != "" or kind.plural != "pods" or request.subresource
                or request.operation is Operation.DELETE or not isinstance(pod, dict)):
            return
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return  # validation names the field
        tolerations = spec.get("tolerations")
        if tolerations is None:
            tolerations = []
        if not isinstance(tolerations, list):
            return  # validation names the field
        present = [t for t in tolerations if isinstance(t, dict)]
        missing = [dict(default) for key, default in self.defaults.items()
                   if not any(_tolerates(t, key) for t in present)]
        if missing:
            spec["tolerations"] = [*tolerations, *missing]

    async def reserve(self, request: AdmissionRequest) -> Release:
        return _nothing

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        return None


class ServiceAllocation:
    """Service ClusterIPs and NodePorts (:class:`~shoal.api.allocators.ServiceAllocator`)."""

    def __init__(self, allocator: ServiceAllocator) -> None:
        self.allocator = allocator

    async def admit(self, request: AdmissionRequest) -> None:
        return None

    async def reserve(self, request: AdmissionRequest) -> Release:
        if request.object is None:
            return _nothing
        return await self.allocator.allocate(request.kind, request.object, request.old_object,
                                             request.dry_run)

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        await self.allocator.release_unused(kind, new, old)


def default_admission(storage: ObjectStorage, registry: Registry) -> AdmissionChain:
    """Today's admission: namespace lifecycle, default tolerations, Service IP and port allocation."""
    return AdmissionChain([NamespaceLifecycle(storage, registry), DefaultTolerationSeconds(),
                           ServiceAllocation(ServiceAllocator(storage.store))])

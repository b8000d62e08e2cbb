"""How the client addresses a resource type, and the built-in types it knows.

A :class:`ResourceRef` is the client-side twin of the server's ``ResourceKind``: just enough
to build URLs (``/api/v1/namespaces/{ns}/pods/{name}``,
``/apis/apps/v1/namespaces/{ns}/deployments/{name}``) and to map an ``ownerReference``'s
``apiVersion`` + ``kind`` back to a resource.  The constants below cover the kinds Shoal
serves; :func:`ref_for_kind` looks one up.  Invariant: a ref is immutable and hashable, so it
can key dicts (informers, graphs).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "BUILTIN",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "ENDPOINTSLICES",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "REPLICASETS",
    "SECRETS",
    "SERVICEACCOUNTS",
    "SERVICES",
    "ResourceRef",
    "ref_for_kind",
    "ref_for_resource",
]


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """One resource type: ``group`` is ``""`` for the core group."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """``plural.group`` (``pods``, ``deployments.apps``), as kubectl and RBAC name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self, namespace: str | None = None) -> str:
        """The list/create URL path.  ``namespace=None`` on a namespaced type lists all namespaces."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{prefix}/{self.plural}"

    def object_path(self, name: str, namespace: str | None = None, subresource: str | None = None) -> str:
        """The URL path of one object, or of one of its subresources (``status``, ``scale``...)."""
        if self.namespaced and not namespace:
            raise ValueError(f"{self.resource} is namespaced: a namespace is required for {name!r}")
        if not name:
            raise ValueError(f"{self.resource}: an object name is required")
        path = f"{self.collection_path(namespace)}/{quote(name, safe='')}"
        return f"{path}/{subresource}" if subresource else path


NAMESPACES = ResourceRef("", "v1", "namespaces", False, "Namespace")
NODES = ResourceRef("", "v1", "nodes", False, "Node")
PODS = ResourceRef("", "v1", "pods", True, "Pod")
SERVICES = ResourceRef("", "v1", "services", True, "Service")
ENDPOINTS = ResourceRef("", "v1", "endpoints", True, "Endpoints")
CONFIGMAPS = ResourceRef("", "v1", "configmaps", True, "ConfigMap")
SECRETS = ResourceRef("", "v1", "secrets", True, "Secret")
SERVICEACCOUNTS = ResourceRef("", "v1", "serviceaccounts", True, "ServiceAccount")
EVENTS = ResourceRef("", "v1", "events", True, "Event")
DEPLOYMENTS = ResourceRef("apps", "v1", "deployments", True, "Deployment")
REPLICASETS = ResourceRef("apps", "v1", "replicasets", True, "ReplicaSet")
LEASES = ResourceRef("coordination.k8s.io", "v1", "leases", True, "Lease")
ENDPOINTSLICES = ResourceRef("discovery.k8s.io", "v1", "endpointslices", True, "EndpointSlice")

#: Every built-in type, in discovery order.
BUILTIN: tuple[ResourceRef, ...] = (
    NAMESPACES, NODES, PODS, SERVICES, ENDPOINTS, CONFIGMAPS, SECRETS, SERVICEACCOUNTS, EVENTS,
    DEPLOYMENTS, REPLICASETS, LEASES, ENDPOINTSLICES,
)

_BY_KIND = {(ref.api_version, ref.kind): ref for ref in BUILTIN}
_BY_RESOURCE = {ref.resource: ref for ref in BUILTIN}


def ref_for_kind(api_version: str, kind: str) -> ResourceRef | None:
    """The built-in ref for ``apiVersion`` + ``kind`` (as in an ownerReference), or ``None``."""
    return _BY_KIND.get((api_version, kind))


def ref_for_resource(resource: str) -> ResourceRef | None:
    """The built-in ref for ``plural.group`` (``pods``, ``deployments.apps``), or ``None``."""
    return _BY_RESOURCE.get(resource)

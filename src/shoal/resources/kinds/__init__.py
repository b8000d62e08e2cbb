"""The kinds Shoal serves, one :class:`~shoal.resources.registry.ResourceKind` each.

:func:`build_registry` registers them in discovery order: core/v1 alphabetically by resource
(as ``/api/v1`` lists them), then apps/v1, coordination.k8s.io/v1 and discovery.k8s.io/v1
(the order of ``/apis``).  Each call returns a new :class:`Registry`.

Modules: :mod:`.pod`, :mod:`.service`, :mod:`.workloads` (Deployment, ReplicaSet),
:mod:`.config` (ConfigMap, Secret, ServiceAccount), :mod:`.cluster` (Namespace, Node),
:mod:`.event` (Event, Lease), :mod:`.endpoints` (Endpoints, EndpointSlice); shared parts in
:mod:`.meta`, :mod:`.podspec` and :mod:`.container`.
"""

from __future__ import annotations

from shoal.resources.kinds.cluster import NAMESPACE, NODE
from shoal.resources.kinds.config import CONFIGMAP, SECRET, SERVICEACCOUNT
from shoal.resources.kinds.endpoints import ENDPOINTS, ENDPOINTSLICE
from shoal.resources.kinds.event import EVENT, LEASE
from shoal.resources.kinds.pod import POD
from shoal.resources.kinds.service import SERVICE
from shoal.resources.kinds.workloads import DEPLOYMENT, REPLICASET
from shoal.resources.registry import Registry, ResourceKind

#: Every kind, in discovery order.
ALL_KINDS: tuple[ResourceKind, ...] = (
    CONFIGMAP, ENDPOINTS, EVENT, NAMESPACE, NODE, POD, SECRET, SERVICEACCOUNT, SERVICE,
    DEPLOYMENT, REPLICASET,
    LEASE,
    ENDPOINTSLICE,
)

__all__ = ["ALL_KINDS", "build_registry"]


def build_registry() -> Registry:
    """A registry of all kinds Shoal serves, in discovery order."""
    return Registry(ALL_KINDS)

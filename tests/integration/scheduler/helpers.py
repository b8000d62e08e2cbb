"""Helpers for the scheduler tests against a live API server: Node objects and registering them."""

from __future__ import annotations

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", labels: dict[str, str] | None = None,
         taints: list[Obj] | None = None, ready: str = "True") -> Obj:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []},
            "status": {"capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                       "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]}}


#: n1 has an SSD; n3 is dedicated to GPU work (NoSchedule taint); all have 4 cpu / 8Gi / 110 pods.
NODES = (
    node("n1", labels={"disk": "ssd"}),
    node("n2"),
    node("n3", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
)


async def register(client: ApiClient, obj: Obj) -> Obj:
    """Create a Node through the API, then make sure its status is what we asked for."""
    created = await client.create(resources.NODES, obj)
    if created.get("status", {}).get("conditions") != obj["status"]["conditions"]:
        created = await client.update_status(resources.NODES, {**created, "status": obj["status"]})
    return created

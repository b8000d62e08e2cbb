"""Small builders of Node and Pod dicts (and their scheduler views) for the scheduler tests."""

from __future__ import annotations

from typing import Any

from shoal.kube.objects import Obj
from shoal.scheduler.nodeinfo import NodeInfo
from shoal.scheduler.podinfo import PodInfo


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", labels: Obj | None = None,
         taints: list[Obj] | None = None, ready: str | None = "True", unschedulable: bool = False) -> Obj:
    obj: Obj = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                "spec": {},
                "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}, "conditions": []}}
    if taints:
        obj["spec"]["taints"] = taints
    if unschedulable:
        obj["spec"]["unschedulable"] = True
    if ready is not None:
        obj["status"]["conditions"].append({"type": "Ready", "status": ready})
    return obj


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, namespace: str = "default",
        owner: str = "", spec: Obj | None = None, node_name: str = "") -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    meta: Obj = {"name": name, "namespace": namespace, "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                    "uid": owner, "controller": True}]
    body: Obj = {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": requests}}]}
    body.update(spec or {})
    if node_name:
        body["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def node_info(name: str = "n1", *, placed: list[Obj] | None = None, **kwargs: Any) -> NodeInfo:
    info = NodeInfo(node(name, **kwargs))
    for obj in placed or ():
        info.add_pod(PodInfo.of(obj))
    return info


def pod_info(name: str = "p", **kwargs: Any) -> PodInfo:
    return PodInfo.of(pod(name, **kwargs))

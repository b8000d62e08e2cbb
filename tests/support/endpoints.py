"""Objects for the endpoints controllers' tests: Services, Nodes, and pods a test plays the kubelet for."""

from __future__ import annotations

from typing import Any

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj

__all__ = ["create_node", "create_pod", "service_body", "set_pod_status"]


def service_body(name: str = "web", namespace: str = "default", *, selector: dict[str, str] | None = None,
                 ports: list[Obj] | None = None, labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    if ports is None:
        ports = [{"name": "http", "port": 80, "targetPort": 8080}]
    body: Obj = {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                 "spec": {"ports": ports, **spec}}
    if selector is not None:
        body["spec"]["selector"] = selector
    return body


async def create_node(client: ApiClient, name: str = "node-1", zone: str | None = None) -> Obj:
    labels = {"topology.kubernetes.io/zone": zone} if zone else {}
    return await client.create(resources.NODES, {"apiVersion": "v1", "kind": "Node",
                                                 "metadata": {"name": name, "labels": labels}})


async def set_pod_status(client: ApiClient, pod: Obj, *, ip: str, ready: bool,
                         since: str = "2030-01-01T12:00:00Z") -> Obj:
    """What a kubelet writes for a running pod with an address."""
    flag = "True" if ready else "False"
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": since},
                             {"type": "ContainersReady", "status": flag, "lastTransitionTime": since}]}
    meta = pod["metadata"]
    return await client.patch(resources.PODS, meta["name"], {"status": status}, meta["namespace"],
                              subresource="status")


async def create_pod(client: ApiClient, name: str, *, ip: str | None = None, ready: bool = True,
                     namespace: str = "default", labels: dict[str, str] | None = None, node: str = "node-1",
                     ports: list[Obj] | None = None, **spec: Any) -> Obj:
    """A pod bound to ``node`` (so its deletion is graceful), with a status when ``ip`` is given."""
    container: Obj = {"name": "main", "image": "busybox:1"}
    if ports is not None:
        container["ports"] = ports
    body = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "web"}},
            "spec": {"nodeName": node, "containers": [container], **spec}}
    pod = await client.create(resources.PODS, body)
    if ip is not None:
        pod = await set_pod_status(client, pod, ip=ip, ready=ready)
    return pod

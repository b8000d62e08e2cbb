"""The scheduler's writes to the API: bindings, the PodScheduled condition, and Events.

* :meth:`Binder.bind` POSTs ``pods/{name}/binding`` with a ``Binding`` whose ``target`` is the
  Node, then posts ``Scheduled`` (Normal) "Successfully assigned ns/pod to node" to the
  :class:`~shoal.scheduler.events.EventQueue` (written in the background).  The
  server sets ``spec.nodeName`` and ``PodScheduled=True``.  Errors propagate (typed
  :class:`~shoal.client.errors.ApiClientError`): the caller decides between forgetting the
  pod and retrying.
* :meth:`Binder.report_unschedulable` posts ``FailedScheduling`` (Warning) with the
  message and sets ``PodScheduled`` to ``False``/``Unschedulable``/message through
  ``pods/{name}/status`` with a strategic merge patch (conditions merge on ``type``), only when
  the pod's current condition differs.  ``lastTransitionTime`` changes only when the status
  does, as Kubernetes' ``UpdatePodCondition`` does.  A pod deleted meanwhile is not an error.

Events are best effort (queued, and the recorder logs its own failures); condition and
binding writes are not.
"""

from __future__ import annotations

import logging

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.events import NORMAL, WARNING
from shoal.client.rest import STRATEGIC_MERGE_PATCH, ApiClient
from shoal.kube.clock import WallTime, utcnow
from shoal.kube.objects import Obj
from shoal.kube.times import format_time
from shoal.scheduler.events import EventQueue

__all__ = ["Binder", "binding_body", "pod_scheduled_condition", "unschedulable_condition"]

log = logging.getLogger(__name__)

def binding_body(namespace: str, name: str, node: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node}}


def pod_scheduled_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(condition, dict) and condition.get("type") == "PodScheduled":
            return condition
    return None


def unschedulable_condition(pod: Obj, message: str, now: str) -> Obj | None:
    """The PodScheduled condition to write, or ``None`` when the pod already says so."""
    current = pod_scheduled_condition(pod) or {}
    if (current.get("status"), current.get("reason"), current.get("message")) == ("False", "Unschedulable",
                                                                                  message):
        return None
    transition = current.get("lastTransitionTime") if current.get("status") == "False" else None
    return {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
            "lastProbeTime": None, "lastTransitionTime": transition or now}


class Binder:
    def __init__(self, client: ApiClient, events: EventQueue,
                 clock: WallTime = utcnow) -> None:
        self.client = client
        self.events = events
        self.clock = clock

    async def bind(self, pod: Obj, node: str) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        path = resources.PODS.object_path(name, namespace, "binding")
        await self.client.request("POST", path, body=binding_body(namespace, name, node))
        self.events.post(pod, NORMAL, "Scheduled", f"Successfully assigned {namespace}/{name} to {node}")

    async def report_unschedulable(self, pod: Obj, message: str, *, event: bool = True) -> None:
        meta = pod.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name", ""))
        if event:
            self.events.post(pod, WARNING, "FailedScheduling", message)
        condition = unschedulable_condition(pod, message, format_time(self.clock()))
        if condition is None:
            return
        patch = {"status": {"conditions": [condition]}}
        try:
            await self.client.patch(resources.PODS, name, patch, namespace, content_type=STRATEGIC_MERGE_PATCH,
                                    subresource="status")
        except NotFoundError:
            log.debug("pod %s/%s deleted before its PodScheduled condition was set", namespace, name)

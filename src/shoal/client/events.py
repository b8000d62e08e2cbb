"""Recording Kubernetes Events (core/v1) for the objects a component acts on.

``EventRecorder(client, component, host).record(obj, type_, reason, message)`` creates an
Event about ``obj`` (``involvedObject`` from its kind, name, namespace, uid, apiVersion and
resourceVersion), or bumps ``count`` and ``lastTimestamp`` of the previous identical event
(same object, reason and message) as client-go's correlator does, so a crash loop makes one
Event with a growing count rather than thousands.  Recording is best effort for the caller's
*work* — a failed event write never fails a reconcile — but every failure is logged.
"""

from __future__ import annotations

import logging
import secrets

from shoal.client import resources
from shoal.client.errors import ApiClientError, NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.clock import WallTime, utcnow
from shoal.kube.objects import Obj
from shoal.kube.times import format_time

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


class EventRecorder:
    def __init__(self, client: ApiClient, component: str, host: str = "",
                 clock: WallTime = utcnow) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.clock = clock
        #: (uid, reason, message) -> (namespace, event name, count)
        self._seen: dict[tuple[str, str, str], tuple[str, str, int]] = {}

    async def record(self, obj: Obj, type_: str, reason: str, message: str,
                     field_path: str = "") -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (str(meta.get("uid", "")), reason, message)
        now = format_time(self.clock())
        try:
            if key in self._seen:
                ns, name, count = self._seen[key]
                patch = {"count": count + 1, "lastTimestamp": now}
                try:
                    await self.client.patch(resources.EVENTS, name, patch, ns)
                    self._seen[key] = (ns, name, count + 1)
                    return
                except NotFoundError:
                    del self._seen[key]
            source: Obj = {"component": self.component}
            if self.host:
                source["host"] = self.host
            involved: Obj = {"kind": obj.get("kind", ""), "name": meta.get("name", ""),
                             "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
                             "apiVersion": obj.get("apiVersion", ""),
                             "resourceVersion": meta.get("resourceVersion", "")}
            if field_path:
                involved["fieldPath"] = field_path
            name = f"{meta.get('name', 'object')}.{secrets.token_hex(8)}"
            event = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": name, "namespace": namespace},
                     "involvedObject": involved, "reason": reason, "message": message,
                     "type": type_, "count": 1, "firstTimestamp": now, "lastTimestamp": now,
                     "source": source, "reportingComponent": self.component,
                     "reportingInstance": self.host}
            await self.client.create(resources.EVENTS, event, namespace)
            self._seen[key] = (namespace, name, 1)
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except ApiClientError as exc:
            log.warning("could not record event %s %s for %s/%s: %s", type_, reason, namespace,
                        meta.get("name"), exc)

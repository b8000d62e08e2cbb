"""The Deployment controller: wiring (informers → keys) and the per-Deployment dispatch.

Handlers only enqueue the Deployment a change concerns: a Deployment event its own key; a
ReplicaSet event its controlling Deployment's (or, for an orphan, every Deployment of the
namespace whose selector matches it, so it can be adopted); the deletion of a pod whose RS
belongs to a Recreate Deployment that Deployment (Recreate waits for old pods to be gone).

``reconcile("ns/name")`` (``syncDeployment``), on a deep copy of the cached Deployment:

1. an empty selector (``{}``) selects every pod: refuse (Warning ``SelectingAll``);
2. claim ReplicaSets (:class:`~shoal.controllers.ownership.Claimer`: adopt matching orphans,
   release owned RSes that stopped matching), and map each owned RS's uid to its pods;
3. a Deployment being deleted only gets its status synced;
4. record the ``DeploymentPaused``/``DeploymentResumed`` condition; a paused Deployment, or a
   scaling event (some active RS annotated for another ``replicas``), is only resized
   (:meth:`~shoal.controllers.deployment.sync.Executor.sync`);
5. otherwise roll out with the strategy (:mod:`.rolling` or :mod:`.recreate`).  A stalled
   rollout is requeued at its progress deadline (:class:`~shoal.client.controller.RequeueAfter`).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.events import WARNING, EventRecorder
from shoal.client.informer import EventHandler, InformerFactory, object_key, split_key
from shoal.client.rest import ApiClient
from shoal.controllers import ownership
from shoal.controllers.deployment.recreate import rollout_recreate
from shoal.controllers.deployment.rolling import rollout_rolling
from shoal.controllers.deployment.sync import Executor
from shoal.kube import objects, selectors
from shoal.kube.clock import Clock, WallTime, utcnow
from shoal.kube.objects import Obj, OwnerReference
from shoal.kube.objects import meta as _meta
from shoal.kube.objects import spec as _spec

__all__ = ["DeploymentController"]

log = logging.getLogger(__name__)

class DeploymentController(Controller):
    """See the module docstring."""

    def __init__(self, client: ApiClient, informers: InformerFactory, *, clock: Clock | None = None,
                 wall: WallTime = utcnow) -> None:
        super().__init__("deployment", clock=clock)
        self.client = client
        self.executor = Executor(client, EventRecorder(client, "deployment-controller", clock=wall), wall)
        self.d_informer = informers.informer(resources.DEPLOYMENTS)
        self.rs_informer = informers.informer(resources.REPLICASETS)
        self.pod_informer = informers.informer(resources.PODS)
        self.rs_informer.add_index(ownership.CONTROLLER_UID_INDEX, ownership.index_controller_uid)
        self.pod_informer.add_index(ownership.CONTROLLER_UID_INDEX, ownership.index_controller_uid)
        self.d_informer.add_event_handler(EventHandler(
            lambda d: self.enqueue(object_key(d)), lambda old, new: self.enqueue(object_key(new)),
            lambda d: self.enqueue(object_key(d))))
        self.rs_informer.add_event_handler(EventHandler(self._on_rs_add, self._on_rs_update, self._on_rs_delete))
        self.pod_informer.add_event_handler(EventHandler(on_delete=self._on_pod_delete))
        self.informers += [self.d_informer, self.rs_informer, self.pod_informer]

    # -- handlers ------------------------------------------------------------------------

    def _deployment_key(self, namespace: Any, ref: OwnerReference | None) -> str | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        key = f"{namespace}/{ref.get('name')}"
        d = self.d_informer.get(key)
        return key if d is not None and _meta(d).get("uid") == ref.get("uid") else None

    def _enqueue_owner(self, rs: Obj) -> bool:
        key = self._deployment_key(_meta(rs).get("namespace"), objects.controller_of(rs))
        if key is not None:
            self.enqueue(key)
        return key is not None

    def _enqueue_matching(self, rs: Obj) -> None:
        labels = objects.labels(rs)
        for d in self.d_informer.list(_meta(rs).get("namespace")):
            selector = _spec(d).get("selector")
            if not selectors.is_empty_spec(selector) and selectors.matches(selector, labels):
                self.enqueue(object_key(d))

    def _on_rs_add(self, rs: Obj) -> None:
        if objects.controller_of(rs) is not None:
            self._enqueue_owner(rs)
        else:
            self._enqueue_matching(rs)

    def _on_rs_update(self, old: Obj, new: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(new).get("resourceVersion"):
            return
        old_ref, new_ref = objects.controller_of(old), objects.controller_of(new)
        ref_changed = (old_ref or {}).get("uid") != (new_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            self._enqueue_owner(old)
        if new_ref is not None:
            self._enqueue_owner(new)
        elif ref_changed or objects.labels(old) != objects.labels(new):
            self._enqueue_matching(new)

    def _on_rs_delete(self, rs: Obj) -> None:
        self._enqueue_owner(rs)

    def _on_pod_delete(self, pod: Obj) -> None:
        ref = objects.controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(f"{_meta(pod).get('namespace')}/{ref.get('name')}")
        if rs is None or _meta(rs).get("uid") != ref.get("uid"):
            return
        key = self._deployment_key(_meta(rs).get("namespace"), objects.controller_of(rs))
        d = self.d_informer.get(key) if key is not None else None
        if key is not None and d is not None and (_spec(d).get("strategy") or {}).get("type") == "Recreate":
            self.enqueue(key)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        cached = self.d_informer.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        namespace, _ = split_key(key)
        ex = self.executor
        selector = _spec(d).get("selector")
        if selectors.is_empty_spec(selector):
            await ex.event(d, WARNING, "SelectingAll",
                           "This deployment is selecting all pods. A non-empty selector is required.")
            generation = int(_meta(d).get("generation") or 0)
            status = d.setdefault("status", {})
            if int(status.get("observedGeneration") or 0) < generation:
                status["observedGeneration"] = generation
                await ex.update_status(d)
            return
        claimer = ownership.Claimer(self.client, resources.REPLICASETS, d, resources.DEPLOYMENTS, selector,
                                    lambda: self._can_adopt(d))
        rs_list = [copy.deepcopy(rs) for rs in await claimer.claim(self.rs_informer.list(namespace))]
        if _meta(d).get("deletionTimestamp"):
            await ex.sync_status_only(d, rs_list)
            return
        await ex.check_paused_conditions(d)
        if _spec(d).get("paused") or await ex.is_scaling_event(d, rs_list):
            await ex.sync(d, rs_list)
            return
        if (_spec(d).get("strategy") or {}).get("type") == "Recreate":
            pod_map = {uid: self.pod_informer.by_index(ownership.CONTROLLER_UID_INDEX, uid)
                       for rs in rs_list if (uid := _meta(rs).get("uid"))}
            after = await rollout_recreate(ex, d, rs_list, pod_map)
        else:
            after = await rollout_rolling(ex, d, rs_list)
        if after is not None:
            raise RequeueAfter(after, "progress deadline")

    async def _can_adopt(self, d: Obj) -> None:
        await ownership.recheck_owner(self.client, resources.DEPLOYMENTS, d)

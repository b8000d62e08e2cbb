"""Deployment sync: revisions, the new and old ReplicaSets, scaling, cleanup and status writes.

:class:`Executor` performs every write of the Deployment controller (Kubernetes ``sync.go``):

* :meth:`Executor.replica_sets` finds the new RS (template equal to the Deployment's) and the
  old ones, syncs revisions (new RS = max old revision + 1; the Deployment carries the new RS's
  revision) and, if asked, creates the new RS ``<deployment>-<hash>`` with the hash label on
  its name, selector and template.  A name collision with a foreign template bumps
  ``status.collisionCount`` (so the next hash differs) and retries.
* :meth:`Executor.scale` handles scaling events and paused Deployments: one active RS takes
  the new size; a saturated new RS zeroes the old ones; otherwise the change is spread
  proportionally (:func:`~shoal.controllers.deployment.replicas.proportion`).
* :meth:`Executor.cleanup` deletes the oldest old RSes beyond ``revisionHistoryLimit`` that have
  no pods, no desired pods and a status that caught up with their spec.

Objects are the caller's deep copies; every write stores the server's answer back into the
same dict, so later steps of one reconcile see fresh resourceVersions.  The Deployment's
revision annotation is written next to its status (a status write ignores metadata), with a
JSON-patch resourceVersion test.  Writes raise typed client errors; the controller requeues.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

from shoal.client import resources
from shoal.client.errors import (
    AlreadyExistsError,
    ApiClientError,
    ConflictError,
    InvalidError,
    NotFoundError,
    make_status,
)
from shoal.client.events import NORMAL, WARNING, EventRecorder
from shoal.client.rest import JSON_PATCH, ApiClient
from shoal.controllers import ownership
from shoal.controllers.conditions import get_condition, new_condition, set_condition
from shoal.controllers.deployment import annotations as ann
from shoal.controllers.deployment import progress
from shoal.controllers.deployment import replicas as r
from shoal.controllers.deployment.template import HASH_LABEL, compute_hash, equal_ignore_hash
from shoal.kube import objects
from shoal.kube.clock import WallTime
from shoal.kube.objects import Obj

__all__ = ["Executor"]

log = logging.getLogger(__name__)

def _replace(target: Obj, answer: Obj) -> None:
    target.clear()
    target.update(answer)


class Executor:
    """The writes of one Deployment controller (see the module docstring)."""

    def __init__(self, client: ApiClient, recorder: EventRecorder, wall: WallTime) -> None:
        self.client = client
        self.recorder = recorder
        self.wall = wall

    # -- primitive writes ----------------------------------------------------------------

    async def event(self, d: Obj, type_: str, reason: str, message: str) -> None:
        involved = {**d, "apiVersion": resources.DEPLOYMENTS.api_version, "kind": "Deployment"}
        await self.recorder.record(involved, type_, reason, message)

    async def update_status(self, d: Obj) -> None:
        """PUT ``d``'s status (resourceVersion-checked), then its revision annotation if needed."""
        revision = (objects.meta(d).get("annotations") or {}).get(r.REVISION)
        stored = await self.client.update_status(resources.DEPLOYMENTS, d)
        stored_annotations = dict((stored.get("metadata") or {}).get("annotations") or {})
        if revision is not None and stored_annotations.get(r.REVISION) != revision:
            meta = stored["metadata"]
            patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                     {"op": "add", "path": "/metadata/annotations",
                      "value": {**stored_annotations, r.REVISION: revision}}]
            try:
                stored = await self.client.patch(resources.DEPLOYMENTS, meta["name"], patch,
                                                 meta.get("namespace"), content_type=JSON_PATCH)
            except InvalidError as exc:
                raise ConflictError(make_status(409, "Conflict", f"deployment changed: {exc}")) from exc
        _replace(d, stored)

    async def update_rs(self, rs: Obj) -> None:
        _replace(rs, await self.client.update(resources.REPLICASETS, rs))

    # -- the new and old ReplicaSets -------------------------------------------------------

    async def replica_sets(self, d: Obj, rs_list: Sequence[Obj], create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new RS or None, all old RSes), revisions synced; the new RS is created if ``create``."""
        _, old = r.find_old(d, rs_list)
        return await self._new_replica_set(d, rs_list, old, create), old

    async def _new_replica_set(self, d: Obj, rs_list: Sequence[Obj], old: list[Obj], create: bool) -> Obj | None:
        now = self.wall()
        new_revision = max((r.revision(rs) for rs in old), default=0) + 1
        existing = r.find_new(d, rs_list)
        min_ready = int(objects.spec(d).get("minReadySeconds") or 0)
        if existing is not None:
            changed = ann.set_new_rs_annotations(d, existing, new_revision, exists=True)
            if changed or int(objects.spec(existing).get("minReadySeconds") or 0) != min_ready:
                objects.spec(existing)["minReadySeconds"] = min_ready
                await self.update_rs(existing)
                return existing
            revision = str((objects.meta(existing).get("annotations") or {}).get(r.REVISION, ""))
            needs_update = bool(revision) and ann.set_deployment_revision(d, revision)
            status = objects.ensure(d, "status")
            if progress.has_progress_deadline(d) and get_condition(status, progress.PROGRESSING) is None:
                found = f'Found new replica set "{objects.name(existing)}"'
                set_condition(status, new_condition(progress.PROGRESSING, "True", progress.FOUND_NEW_RS, found, now))
                needs_update = True
            if needs_update:
                await self.update_status(d)
            return existing
        if not create:
            return None
        return await self._create_new(d, old, new_revision, min_ready)

    async def _create_new(self, d: Obj, old: list[Obj], new_revision: int, min_ready: int) -> Obj:
        meta, status = objects.meta(d), objects.ensure(d, "status")
        template = copy.deepcopy(objects.spec(d).get("template") or {})
        pod_hash = compute_hash(template, status.get("collisionCount"))
        template.setdefault("metadata", {})["labels"] = {**(template["metadata"].get("labels") or {}),
                                                        HASH_LABEL: pod_hash}
        selector = copy.deepcopy(objects.spec(d).get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        name = f"{meta['name']}-{pod_hash}"
        new: Obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": name, "namespace": meta.get("namespace"),
                                 "labels": dict(template["metadata"]["labels"]),
                                 "ownerReferences": [ownership.controller_ref(d, resources.DEPLOYMENTS)]},
                    "spec": {"replicas": 0, "minReadySeconds": min_ready, "selector": selector,
                             "template": template}}
        new["spec"]["replicas"] = r.new_rs_new_replicas(d, [*old, new], new)
        ann.set_new_rs_annotations(d, new, new_revision, exists=False)
        already = False
        try:
            created = await self.client.create(resources.REPLICASETS, new, meta.get("namespace"))
        except AlreadyExistsError:
            created = await self.client.get(resources.REPLICASETS, name, meta.get("namespace"))
            owner = objects.controller_of(created)
            if owner is None or owner.get("uid") != meta.get("uid") or not equal_ignore_hash(
                    objects.spec(d).get("template"), objects.spec(created).get("template")):
                status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
                log.info("deployment %s/%s: hash collision on %s; collisionCount %d", meta.get("namespace"),
                         meta["name"], name, status["collisionCount"])
                await self.update_status(d)
                raise
            already = True
        except ApiClientError as exc:
            if not any(c.get("reason") == "NamespaceTerminating" for c in exc.details.get("causes") or []):
                message = f'Failed to create new replica set "{name}": {exc}'
                if progress.has_progress_deadline(d):
                    set_condition(status, new_condition(progress.PROGRESSING, "False", progress.FAILED_RS_CREATE,
                                                        message, self.wall()))
                    await self.update_status(d)
                await self.event(d, WARNING, progress.FAILED_RS_CREATE, message)
            raise
        created_replicas = r.replicas(created)
        if not already and created_replicas > 0:
            await self.event(d, NORMAL, "ScalingReplicaSet",
                             f"Scaled up replica set {name} to {created_replicas} from 0")
        needs_update = ann.set_deployment_revision(d, str(new_revision))
        if not already and progress.has_progress_deadline(d):
            set_condition(objects.ensure(d, "status"), new_condition(
                progress.PROGRESSING, "True", progress.NEW_RS_CREATED, f'Created new replica set "{name}"',
                self.wall()))
            needs_update = True
        if needs_update:
            await self.update_status(d)
        return created

    # -- scaling -----------------------------------------------------------------------------

    async def scale_rs(self, rs: Obj, new_scale: int, d: Obj, operation: str) -> bool:
        """Set the RS's size and replica annotations; True if the size changed."""
        desired, most = r.replicas(d), r.replicas(d) + r.max_surge(d)
        old_scale = r.replicas(rs)
        resize = old_scale != new_scale
        if not resize and not ann.replicas_annotations_need_update(rs, desired, most):
            return False
        objects.spec(rs)["replicas"] = new_scale
        ann.set_replicas_annotations(rs, desired, most)
        await self.update_rs(rs)
        if resize:
            await self.event(d, NORMAL, "ScalingReplicaSet",
                             f"Scaled {operation} replica set {objects.name(rs)} to {new_scale} from {old_scale}")
        return resize

    async def scale_and_record(self, rs: Obj, new_scale: int, d: Obj) -> bool:
        if r.replicas(rs) == new_scale:
            return False
        return await self.scale_rs(rs, new_scale, d, "up" if r.replicas(rs) < new_scale else "down")

    async def scale(self, d: Obj, new: Obj | None, old: list[Obj]) -> None:
        """Scaling events and paused Deployments (``scale``; see the module docstring)."""
        active_or_latest = r.find_active_or_latest(new, old)
        if active_or_latest is not None:
            if r.replicas(active_or_latest) != r.replicas(d):
                await self.scale_and_record(active_or_latest, r.replicas(d), d)
            return
        if r.is_saturated(d, new):
            for rs in r.filter_active(old):
                await self.scale_and_record(rs, 0, d)
            return
        if not r.is_rolling_update(d):
            return
        active = r.filter_active([*old, new])
        allowed = r.replicas(d) + r.max_surge(d) if r.replicas(d) > 0 else 0
        to_add = allowed - r.replica_count(active)
        operation = "up" if to_add > 0 else "down"
        if to_add != 0:
            active = r.by_size(active, newer_first=to_add > 0)
        added, sizes = 0, []
        for rs in active:
            share = r.proportion(rs, d, to_add, added) if to_add else 0
            sizes.append(r.replicas(rs) + share)
            added += share
        for index, rs in enumerate(active):
            size = sizes[index]
            if index == 0 and to_add != 0:
                size = max(size + to_add - added, 0)
            await self.scale_rs(rs, size, d, operation)

    # -- cleanup, status, and the paths that do not roll -----------------------------------

    async def cleanup(self, old: list[Obj], d: Obj) -> None:
        limit = objects.spec(d).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old if not objects.meta(rs).get("deletionTimestamp")]
        excess = len(alive) - int(limit)
        for rs in r.by_revision(alive)[:max(excess, 0)]:
            meta, status = objects.meta(rs), objects.ensure(rs, "status")
            if int(status.get("replicas") or 0) != 0 or r.replicas(rs) != 0 or \
                    int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
                continue
            log.info("deployment %s: cleaning up old replica set %s", objects.meta(d).get("name"), meta["name"])
            try:
                await self.client.delete(resources.REPLICASETS, meta["name"], meta.get("namespace"),
                                         uid=meta.get("uid"))
            except NotFoundError:
                continue

    async def sync_status(self, all_rss: Sequence[Obj | None], new: Obj | None, d: Obj) -> None:
        status = progress.calculate_status(all_rss, new, d, self.wall())
        if not progress.same_status(objects.ensure(d, "status"), status):
            d["status"] = status
            await self.update_status(d)

    async def sync_status_only(self, d: Obj, rs_list: Sequence[Obj]) -> None:
        new, old = await self.replica_sets(d, rs_list, False)
        await self.sync_status([*old, new], new, d)

    async def sync(self, d: Obj, rs_list: Sequence[Obj]) -> None:
        """Scaling events and paused Deployments: resize, no rollout."""
        new, old = await self.replica_sets(d, rs_list, False)
        await self.scale(d, new, old)
        if objects.spec(d).get("paused"):
            await self.cleanup(old, d)
        await self.sync_status([*old, new], new, d)

    async def is_scaling_event(self, d: Obj, rs_list: Sequence[Obj]) -> bool:
        new, old = await self.replica_sets(d, rs_list, False)
        for rs in r.filter_active([*old, new]):
            desired = r.int_annotation(rs, r.DESIRED_REPLICAS)
            if desired is not None and desired != r.replicas(d):
                return True
        return False

    async def check_paused_conditions(self, d: Obj) -> None:
        if not progress.has_progress_deadline(d):
            return
        current = get_condition(objects.ensure(d, "status"), progress.PROGRESSING)
        if current is not None and current.get("reason") == progress.TIMED_OUT:
            return
        paused_recorded = current is not None and current.get("reason") == progress.PAUSED
        if objects.spec(d).get("paused") and not paused_recorded:
            condition = new_condition(progress.PROGRESSING, "Unknown", progress.PAUSED, "Deployment is paused",
                                      self.wall())
        elif not objects.spec(d).get("paused") and paused_recorded:
            condition = new_condition(progress.PROGRESSING, "Unknown", progress.RESUMED, "Deployment is resumed",
                                      self.wall())
        else:
            return
        set_condition(objects.ensure(d, "status"), condition)
        await self.update_status(d)

"""Helpers for the controller tests against a live API server: run chosen controllers for
the duration of a test, poll until a condition holds, build owned ConfigMaps."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.controllers.manager import CONTROLLERS, ControllerManager
from shoal.kube.objects import Obj
from tests.support import wait


@asynccontextmanager
async def running(client: ApiClient, *names: str) -> AsyncIterator[ControllerManager]:
    """Run the named controllers (keys of CONTROLLERS) until the block ends; caches synced first."""
    manager = ControllerManager(client, workers=2, controllers={name: CONTROLLERS[name] for name in names})
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await eventually(lambda: _synced(manager, len(names)), what="controller caches to sync")
        yield manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


async def _synced(manager: ControllerManager, count: int) -> bool:
    controllers = manager.controllers
    return len(controllers) == count and all(i.has_synced for c in controllers for i in c.informers)


eventually = functools.partial(wait.eventually, within=15.0)


async def gone(client: ApiClient, ref: resources.ResourceRef, name: str, namespace: str | None) -> bool:
    try:
        await client.get(ref, name, namespace)
    except NotFoundError:
        return True
    return False


def deleted(client: ApiClient, name: str, namespace: str,
            ref: resources.ResourceRef = resources.CONFIGMAPS) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`eventually`: the object is gone."""
    return lambda: gone(client, ref, name, namespace)


def configmap(name: str, namespace: str, *owners: Obj, finalizers: tuple[str, ...] = ()) -> Obj:
    """A ConfigMap owned by ``owners`` (objects as returned by the server)."""
    meta: Obj = {"name": name, "namespace": namespace}
    if owners:
        meta["ownerReferences"] = [owner_ref(owner) for owner in owners]
    if finalizers:
        meta["finalizers"] = list(finalizers)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": name}}


def owner_ref(owner: Obj, *, block: bool = True) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion", "v1"), "kind": owner.get("kind", "ConfigMap"),
            "name": meta["name"], "uid": meta["uid"], "blockOwnerDeletion": block}

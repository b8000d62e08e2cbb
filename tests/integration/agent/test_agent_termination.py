"""Graceful pod deletion as kubelet does it: the final status is written before the pod goes.

With the process runtime driver against a real API server: a watch on the pod, started before
the ``DELETE``, must show the containers ``terminated``, Ready/ContainersReady False and a
terminal phase in a MODIFIED event before the DELETED event.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shoal.agent.runtime.process import ProcessDriver
from shoal.client import resources
from shoal.client.rest import ApiClient, WatchEvent
from shoal.kube.objects import Obj
from tests.integration.agent.helpers import (
    condition,
    container_status,
    create_bound,
    eventually,
    pod_check,
    pod_manifest,
    running_agent,
    shell,
)

pytestmark = pytest.mark.integration

#: Exits 0 on SIGTERM (a well-behaved server).
POLITE = "trap 'exit 0' TERM; while :; do sleep 0.1; done"


async def _events_until_deleted(client: ApiClient, namespace: str, name: str, since: str) -> list[WatchEvent]:
    seen: list[WatchEvent] = []
    async for event in client.watch(resources.PODS, namespace, resource_version=since,
                                    field_selector=f"metadata.name={name}", timeout_seconds=60):
        if event.type == "BOOKMARK":
            continue
        seen.append(event)
        if event.type == "DELETED":
            break
    return seen


async def _delete_and_watch(client: ApiClient, namespace: str, pod: Obj) -> tuple[list[WatchEvent], Obj]:
    name, rv = pod["metadata"]["name"], pod["metadata"]["resourceVersion"]
    watching = asyncio.create_task(_events_until_deleted(client, namespace, name, rv))
    await asyncio.sleep(0.2)  # the watch is open before the DELETE
    await client.delete(resources.PODS, name, namespace)
    events = await asyncio.wait_for(watching, 40)
    assert events and events[-1].type == "DELETED", [e.type for e in events]
    stopped = [e.object for e in events[:-1] if e.type == "MODIFIED"
               and all("terminated" in (s.get("state") or {})
                       for s in (e.object.get("status") or {}).get("containerStatuses") or [{}])]
    assert stopped, "no MODIFIED event showed the stopped containers before DELETED: " + repr(
        [(e.type, (e.object.get("status") or {}).get("phase")) for e in events])
    return events, stopped[0]


async def test_graceful_delete_writes_the_terminated_status_first(client: ApiClient, driver: ProcessDriver,
                                                                 namespace: str, node_name: str,
                                                                 tmp_path: Path) -> None:
    """Issue 8 item 16: the agent writes the terminated status (Ready False, containers
    terminated, phase Failed since one container died of SIGTERM) before the final delete."""
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest(
            "stopping", shell("polite", POLITE), shell("stubborn", "sleep 600")))
        pod = await eventually(pod_check(client, namespace, "stopping", lambda p: condition(p, "Ready") == "True"))
        events, final = await _delete_and_watch(client, namespace, pod)
    assert final["metadata"].get("deletionTimestamp")
    assert final["status"]["phase"] == "Failed"
    assert condition(final, "Ready") == "False"
    assert condition(final, "ContainersReady") == "False"
    polite = container_status(final, "polite")
    stubborn = container_status(final, "stubborn")
    assert (polite["ready"], stubborn["ready"]) == (False, False)
    assert polite["state"]["terminated"]["exitCode"] == 0
    assert polite["state"]["terminated"]["reason"] == "Completed"
    assert stubborn["state"]["terminated"]["exitCode"] == 143  # 128 + SIGTERM
    assert stubborn["state"]["terminated"]["reason"] == "Error"
    assert polite["state"]["terminated"]["finishedAt"]
    # The DELETED event carries that final status too.
    assert container_status(events[-1].object, "stubborn")["state"].get("terminated")


async def test_graceful_delete_of_a_clean_exit_is_succeeded(client: ApiClient, driver: ProcessDriver,
                                                           namespace: str, node_name: str, tmp_path: Path) -> None:
    """Issue 8 item 16: every container exiting 0 on SIGTERM gives phase Succeeded, even under
    restartPolicy Always (a pod being deleted is never restarted)."""
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest("clean", shell("polite", POLITE)))
        pod = await eventually(pod_check(client, namespace, "clean", lambda p: condition(p, "Ready") == "True"))
        _, final = await _delete_and_watch(client, namespace, pod)
    assert final["status"]["phase"] == "Succeeded"
    assert condition(final, "Ready") == "False"
    assert condition(final, "PodReadyToStartContainers") == "False"
    assert container_status(final, "polite")["state"]["terminated"]["reason"] == "Completed"

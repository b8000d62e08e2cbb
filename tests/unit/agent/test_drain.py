"""Drain before kill, its pure parts: when a pod's endpoints count as drained."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from shoal.agent.drain import EndpointDrain, pending_slices
from shoal.client import resources
from shoal.client.proxystatus import PROXY_LEASE_LABEL, PROXY_LEASE_LABEL_VALUE, SYNCED_REVISION, live_proxy_revisions
from shoal.kube.times import format_micro
from tests.support.api_harness import ApiHarness
from tests.support.wait import eventually


def piece(rv: int, *endpoints: tuple[str, bool]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(rv)},
            "endpoints": [{"targetRef": {"uid": uid}, "conditions": {"ready": ready}} for uid, ready in endpoints]}


def test_a_pod_is_pending_while_some_slice_lists_it_ready() -> None:
    assert pending_slices([piece(7, ("a", True)), piece(9, ("b", True))], "a") == (True, 9)
    assert pending_slices([piece(12, ("a", False))], "a") == (False, 12)
    assert pending_slices([piece(15, ("b", True))], "a") == (False, 15)  # gone from the slice
    assert pending_slices([], "a") == (False, 0)


def lease(node: str, revision: str, renewed: float, duration: int = 30) -> dict[str, Any]:
    return {"metadata": {"name": f"shoal-proxy-{node}", "labels": {PROXY_LEASE_LABEL: PROXY_LEASE_LABEL_VALUE},
                         "annotations": {SYNCED_REVISION: revision}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": format_micro(renewed)}}


def test_only_live_proxies_are_waited_for() -> None:
    now = time.time()
    leases: list[dict[str, Any]] = [lease("n1", "40", now - 1), lease("n2", "12", now - 100), lease("n3", "bad", now),
              {"metadata": {"name": "n4"}, "spec": {}}]
    assert live_proxy_revisions(leases, now) == {"n1": 40}


async def test_drain_waits_for_terminating_slices_and_every_live_proxy(harness: ApiHarness) -> None:
    """EndpointDrain.wait returns only once the slice shows the pod not ready AND the live
    proxy's Lease has applied that slice's resourceVersion; a pod in no slice waits not at all."""
    client = await harness.client()
    drain = EndpointDrain(client)
    stop = asyncio.Event()
    runner = asyncio.create_task(drain.run(stop))
    try:
        endpoint = {"addresses": ["10.42.0.5"], "targetRef": {"kind": "Pod", "name": "p", "uid": "uid-1"},
                    "conditions": {"ready": True, "serving": True, "terminating": False}}
        piece = await client.create(resources.ENDPOINTSLICES, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": "http", "port": 8080}], "endpoints": [endpoint]}, "default")
        lease = await client.create(resources.LEASES, {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "shoal-proxy-n1", "labels": {PROXY_LEASE_LABEL: PROXY_LEASE_LABEL_VALUE},
                         "annotations": {SYNCED_REVISION: piece["metadata"]["resourceVersion"]}},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 30, "renewTime": format_micro(time.time())}},
            "kube-node-lease")
        await eventually(lambda: drain.listed("uid-1"), what="the drain's caches")
        assert await drain.wait("uid-other", budget=1) == (0.0, True), "no slice lists it: no wait"
        waiting = asyncio.create_task(drain.wait("uid-1", budget=5))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "still ready in its slice"
        endpoint["conditions"] = {"ready": False, "serving": True, "terminating": True}
        changed = await client.patch(resources.ENDPOINTSLICES, "web-1", {"endpoints": [endpoint]}, "default")
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the proxy has not applied the terminating slice yet"
        lease["metadata"]["annotations"][SYNCED_REVISION] = changed["metadata"]["resourceVersion"]
        await client.update(resources.LEASES, lease)
        waited, complete = await asyncio.wait_for(waiting, 3)
        assert complete and 0.5 < waited < 3
        assert drain.drained == 1
        again, done = await drain.wait("uid-1", budget=0.2)
        assert done and again < 0.05
    finally:
        stop.set()
        await runner

"""How the scheduler's informer handlers route pods and nodes (memory only, no API calls)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shoal.client.rest import ApiClient
from shoal.kube.clock import FakeClock
from shoal.scheduler import Scheduler
from shoal.scheduler.podinfo import PodInfo
from tests.unit.scheduler.builders import node, pod


@pytest.fixture
async def scheduler() -> AsyncIterator[Scheduler]:
    client = ApiClient("http://127.0.0.1:9")  # never contacted: handlers only touch memory
    try:
        yield Scheduler(client, clock=FakeClock())
    finally:
        await client.close()


def requested_cpu(scheduler: Scheduler, name: str) -> int:
    info = scheduler.cache.node(name)
    assert info is not None
    return info.requested_cpu


async def test_only_our_pending_pods_are_queued(scheduler: Scheduler) -> None:
    scheduler._on_pod_add(pod("mine", cpu="1"))
    scheduler._on_pod_add(pod("explicit", spec={"schedulerName": "default-scheduler"}))
    scheduler._on_pod_add(pod("theirs", spec={"schedulerName": "other-scheduler"}))
    leaving = pod("leaving")
    leaving["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    scheduler._on_pod_add(leaving)
    done = pod("done")
    done["status"] = {"phase": "Succeeded"}
    scheduler._on_pod_add(done)
    assert [key for key in ("default/mine", "default/explicit", "default/theirs", "default/leaving",
                            "default/done") if key in scheduler.queue] == ["default/mine", "default/explicit"]


async def test_bound_pods_fill_the_cache_and_their_exit_retries_pending_pods(scheduler: Scheduler) -> None:
    scheduler._on_node_add(node("n1"))
    running = pod("running", cpu="3", node_name="n1")
    scheduler._on_pod_add(running)
    assert requested_cpu(scheduler, "n1") == 3000
    scheduler._on_pod_add(pod("waiting", cpu="2"))
    key = await scheduler.queue.pop()
    scheduler.queue.failed(key)
    assert scheduler.queue.backing_off == 1
    finished = {**running, "status": {"phase": "Succeeded"}}
    scheduler._on_pod_update(running, finished)
    assert requested_cpu(scheduler, "n1") == 0
    assert (scheduler.queue.backing_off, scheduler.queue.active) == (0, 1)


async def test_only_meaningful_node_changes_retry_pending_pods(scheduler: Scheduler) -> None:
    scheduler._on_node_add(node("n1"))
    scheduler._on_pod_add(pod("waiting", cpu="8"))
    scheduler.queue.failed(await scheduler.queue.pop())
    heartbeat = node("n1")
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2025-01-01T00:00:10Z"
    scheduler._on_node_update(node("n1"), heartbeat)
    assert scheduler.queue.backing_off == 1
    scheduler._on_node_update(heartbeat, node("n1", cpu="16"))
    assert scheduler.queue.active == 1


async def test_a_stale_copy_of_an_assumed_pod_is_not_requeued(scheduler: Scheduler) -> None:
    scheduler._on_node_add(node("n1"))
    pending = pod("p", cpu="1")
    scheduler._on_pod_add(pending)
    key = await scheduler.queue.pop()
    scheduler.cache.assume(PodInfo.of(pending), "n1")
    scheduler.queue.done(key)
    scheduler._on_pod_update(pending, {**pending, "metadata": {**pending["metadata"], "labels": {"x": "y"}}})
    assert key not in scheduler.queue
    bound = {**pending, "spec": {**pending["spec"], "nodeName": "n1"}}
    scheduler._on_pod_update(pending, bound)
    assert not scheduler.cache.is_assumed(key) and requested_cpu(scheduler, "n1") == 1000
    scheduler._on_pod_delete(bound)
    assert requested_cpu(scheduler, "n1") == 0


async def test_a_changed_spec_skips_the_backoff(scheduler: Scheduler) -> None:
    pending = pod("p", spec={"nodeSelector": {"disk": "ssd"}})
    scheduler._on_pod_add(pending)
    scheduler.queue.failed(await scheduler.queue.pop())
    status_only = {**pending, "status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}
    scheduler._on_pod_update(pending, status_only)
    assert scheduler.queue.backing_off == 1
    relaxed = {**status_only, "spec": {**pending["spec"], "nodeSelector": {}}}
    scheduler._on_pod_update(status_only, relaxed)
    assert scheduler.queue.active == 1


async def test_a_node_with_garbage_allocatable_is_ignored(scheduler: Scheduler) -> None:
    bad = node("bad", cpu="lots")
    scheduler._on_node_add(bad)
    assert scheduler.cache.nodes() == []

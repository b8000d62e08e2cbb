"""The agent's restart rules: restartPolicy x exit code, init containers, and CrashLoopBackOff.

Two levels:

* the pure decisions: ``shoal.agent.sync._should_restart`` (restart an exited container?) and
  :func:`shoal.agent.status.pod_phase` (the pod phase that results), for Always / OnFailure /
  Never x exit 0 / non-zero;
* the real :class:`~shoal.agent.sync.PodSyncer` (with the real container starter, probe and
  volume managers, and :class:`~shoal.agent.backoff.Backoff`) syncing pods of the in-process API
  (:mod:`tests.support.api_harness`) on an in-memory runtime (:mod:`tests.support.memory_runtime`)
  whose containers exit when the test says, on a fake clock.  Checked: which exits start a new
  attempt, the pod status written through the API (phase, restartCount, states), init
  containers (restarted on failure unless the policy is Never), and the CrashLoopBackOff
  sequence: the first crash restarts at once, then back-off 10 s, 20 s, 40 s ... capped at the
  maximum, the waiting reason and message, the BackOff event, the requested resync, and the
  reset after a container ran for ``2 * maximum``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shoal.agent import containers as ct
from shoal.agent.backoff import Backoff
from shoal.agent.podworker import SyncResult
from shoal.agent.probes import ProbeManager
from shoal.agent.status import pod_phase
from shoal.agent.sync import PodSyncer, _should_restart
from shoal.agent.volumes import VolumeManager
from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.clock import FakeClock
from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness
from tests.support.memory_runtime import MemoryRuntime

NS = "default"
START = 1_900_000_000.0
INITIAL, MAXIMUM = 10.0, 80.0
RESYNC = 600.0  # longer than any back-off here, so a pass's resync is the back-off itself

POLICIES = ("Always", "OnFailure", "Never")


# -- the pure decisions ------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("Always", 137, True),
    ("OnFailure", 0, False), ("OnFailure", 1, True), ("OnFailure", 137, True),
    ("Never", 0, False), ("Never", 1, False), ("Never", 137, False),
])
def test_should_restart(policy: str, code: int, restart: bool) -> None:
    assert _should_restart(policy, code) is restart


def _terminated(code: int) -> Obj:
    return {"name": "main", "containerID": "memory://c1", "state": {"terminated": {"exitCode": code}},
            "lastState": {}}


def _backing_off(code: int) -> Obj:
    return {"name": "main", "containerID": "memory://c1", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": code}}}


@pytest.mark.parametrize(("policy", "code", "phase"), [
    ("Always", 0, "Running"), ("Always", 1, "Running"),
    ("OnFailure", 0, "Succeeded"), ("OnFailure", 1, "Running"),
    ("Never", 0, "Succeeded"), ("Never", 1, "Failed"),
])
def test_the_phase_after_every_container_exited(policy: str, code: int, phase: str) -> None:
    assert pod_phase({"restartPolicy": policy}, [], [_terminated(code)]) == phase


@pytest.mark.parametrize("policy", ["Always", "OnFailure"])
def test_a_container_waiting_to_restart_keeps_the_pod_running(policy: str) -> None:
    assert pod_phase({"restartPolicy": policy}, [], [_backing_off(1)]) == "Running"


def test_a_failed_init_container_fails_the_pod_only_under_never() -> None:
    init = [{"name": "setup", "containerID": "memory://i1", "state": {"terminated": {"exitCode": 2}}}]
    app = [{"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}]
    assert pod_phase({"restartPolicy": "Never"}, init, app) == "Failed"
    assert pod_phase({"restartPolicy": "OnFailure"}, init, app) == "Pending"
    assert pod_phase({"restartPolicy": "Always"}, init, app) == "Pending"


# -- the pod sync --------------------------------------------------------------------------------


@dataclass
class Node:
    """One agent's pod sync on the in-memory runtime, against the in-process API."""

    client: ApiClient
    clock: FakeClock
    runtime: MemoryRuntime
    syncer: PodSyncer
    probes: ProbeManager
    events: list[tuple[str, str, str]] = field(default_factory=list)
    pods: dict[str, Obj] = field(default_factory=dict)

    async def create(self, name: str, policy: str, *, init: bool = False) -> str:
        spec: Obj = {"nodeName": "node-1", "restartPolicy": policy,
                     "containers": [{"name": "main", "image": "busybox:1"}]}
        if init:
            spec["initContainers"] = [{"name": "setup", "image": "busybox:1"}]
        pod = await self.client.create(resources.PODS, {"apiVersion": "v1", "kind": "Pod",
                                                        "metadata": {"name": name, "namespace": NS}, "spec": spec})
        uid = str(pod["metadata"]["uid"])
        self.pods[uid] = pod
        return uid

    async def sync(self, uid: str) -> SyncResult:
        """One pass on the pod as the API has it now (an informer that caught up)."""
        name = self.pods[uid]["metadata"]["name"]
        self.pods[uid] = await self.client.get(resources.PODS, name, NS)
        return await self.syncer.sync(uid)

    async def status(self, uid: str) -> Obj:
        pod = await self.client.get(resources.PODS, self.pods[uid]["metadata"]["name"], NS)
        status: Obj = pod["status"]
        return status

    async def main_status(self, uid: str) -> Obj:
        [found] = (await self.status(uid))["containerStatuses"]
        return dict(found)


@pytest.fixture
async def node(harness: ApiHarness, harness_client: ApiClient, tmp_path: Path) -> AsyncIterator[Node]:
    clock = FakeClock(START)
    runtime = MemoryRuntime(clock)
    events: list[tuple[str, str, str]] = []
    pods: dict[str, Obj] = {}

    async def record(pod: Obj, container: str, type_: str, reason: str, message: str) -> None:
        events.append((container, reason, message))

    probes = ProbeManager(runtime, clock, on_change=lambda uid: None, record=record)
    starter = ct.ContainerStarter(runtime, clock, record, node_ip="192.0.2.10",
                                  image_backoff=Backoff(INITIAL, MAXIMUM, clock), allocatable=dict)
    syncer = PodSyncer(client=harness_client, driver=runtime, clock=clock, probes=probes,
                       volumes=VolumeManager(tmp_path / "agent", node_ip="192.0.2.10"), starter=starter,
                       record=record, lookup=pods.get, node_ip="192.0.2.10",
                       crash_backoff=Backoff(INITIAL, MAXIMUM, clock), resync_interval=RESYNC)
    node = Node(harness_client, clock, runtime, syncer, probes, events, pods)
    try:
        yield node
    finally:
        await probes.close()


CASES = [(policy, code) for policy in POLICIES for code in (0, 1)]
#: Whether the pod sync starts a new attempt after the container exited (Kubernetes' table).
RESTARTS = {("Always", 0): True, ("Always", 1): True, ("OnFailure", 0): False, ("OnFailure", 1): True,
            ("Never", 0): False, ("Never", 1): False}


@pytest.mark.parametrize(("policy", "code"), CASES)
async def test_an_exited_container_is_restarted_per_policy(node: Node, policy: str, code: int) -> None:
    uid = await node.create("p", policy)
    await node.sync(uid)
    first = node.runtime.running("main")
    assert (await node.status(uid))["phase"] == "Running"

    node.clock.advance(3)
    node.runtime.exit(first.id, code)
    await node.sync(uid)

    restarted = RESTARTS[(policy, code)]
    attempts = node.runtime.attempts("main")
    status = await node.main_status(uid)
    if restarted:  # the first crash restarts at once, as the next attempt
        assert [ct.attempt_of(c) for c in attempts] == [0, 1]
        assert node.runtime.running("main").id == attempts[1].id
        assert status["restartCount"] == 1 and "running" in status["state"]
        assert status["lastState"]["terminated"]["exitCode"] == code
        assert (await node.status(uid))["phase"] == "Running"
    else:
        assert [c.id for c in attempts] == [first.id]  # nothing new was started
        assert status["restartCount"] == 0 and status["state"]["terminated"]["exitCode"] == code
        assert (await node.status(uid))["phase"] == ("Succeeded" if code == 0 else "Failed")
        node.clock.advance(INITIAL * 4)
        await node.sync(uid)  # a terminal pod stays down
        assert len(node.runtime.attempts("main")) == 1
        assert not node.runtime.sandboxes[next(iter(node.runtime.sandboxes))].ready  # its IP is released


@pytest.mark.parametrize(("policy", "code"), CASES)
async def test_init_containers_restart_on_failure_unless_never(node: Node, policy: str, code: int) -> None:
    uid = await node.create("p", policy, init=True)
    await node.sync(uid)
    setup = node.runtime.running("setup")
    assert node.runtime.attempts("main") == []
    node.clock.advance(1)
    node.runtime.exit(setup.id, code)
    await node.sync(uid)
    phase = (await node.status(uid))["phase"]
    if code == 0:  # done: the app container starts, the init container is never run again
        assert len(node.runtime.attempts("setup")) == 1
        assert node.runtime.running("main")
        assert phase == "Running"
    elif policy == "Never":
        assert len(node.runtime.attempts("setup")) == 1 and node.runtime.attempts("main") == []
        assert phase == "Failed"
    else:  # Always and OnFailure both retry a failed init container (OnFailure semantics)
        assert [ct.attempt_of(c) for c in node.runtime.attempts("setup")] == [0, 1]
        assert node.runtime.attempts("main") == []
        assert phase == "Pending"


async def test_crash_loop_back_off_doubles_to_the_maximum(node: Node) -> None:
    uid = await node.create("crasher", "Always")
    await node.sync(uid)
    ref = f"crasher_{NS}({uid})"
    waits: list[float] = []
    for attempt in range(6):
        current = node.runtime.running("main")
        assert ct.attempt_of(current) == attempt
        node.clock.advance(1)  # it runs for a second, then crashes
        node.runtime.exit(current.id, 1)
        result = await node.sync(uid)
        if attempt == 0:  # no back-off yet: restarted at once
            assert len(node.runtime.attempts("main")) == 2
            continue
        # In back-off: nothing started, the reason shown, a pass asked for when it ends.
        assert not any(c.state.value == "running" for c in node.runtime.attempts("main"))
        status = await node.main_status(uid)
        delay = min(INITIAL * 2 ** (attempt - 1), MAXIMUM)
        shown = f"{int(delay)}s" if delay < 60 else f"{int(delay) // 60}m{int(delay) % 60}s"
        assert status["state"]["waiting"] == {
            "reason": "CrashLoopBackOff",
            "message": f"back-off {shown} restarting failed container=main pod={ref}"}
        assert status["restartCount"] == attempt and status["ready"] is False
        assert status["lastState"]["terminated"]["exitCode"] == 1
        assert (await node.status(uid))["phase"] == "Running"
        assert ("main", "BackOff", f"Back-off restarting failed container main in pod {ref}") in node.events
        assert result.resync == pytest.approx(delay)
        waits.append(delay)

        node.clock.advance(delay - 0.5)  # not yet
        await node.sync(uid)
        assert not any(c.state.value == "running" for c in node.runtime.attempts("main"))
        node.clock.advance(0.5)  # now
        await node.sync(uid)
        assert ct.attempt_of(node.runtime.running("main")) == attempt + 1
    assert waits == [10, 20, 40, 80, 80]
    assert len(node.runtime.attempts("main")) == 2  # older attempts are removed, the previous one kept


async def test_the_back_off_resets_after_a_long_enough_run(node: Node) -> None:
    uid = await node.create("p", "OnFailure")
    await node.sync(uid)
    for _ in range(3):  # crash, restart at once; crash, back-off 10 s; crash, back-off 20 s
        node.clock.advance(1)
        node.runtime.exit(node.runtime.running("main").id, 1)
        result = await node.sync(uid)
        if result.resync is not None and result.resync < RESYNC:
            node.clock.advance(result.resync)
            await node.sync(uid)
    node.clock.advance(2 * MAXIMUM + 1)  # then it runs for longer than twice the maximum
    node.runtime.exit(node.runtime.running("main").id, 1)
    restarted = len(node.runtime.started)
    await node.sync(uid)
    assert len(node.runtime.started) == restarted + 1  # restarted at once: the back-off was forgotten


async def test_a_successful_exit_under_on_failure_ends_a_crash_loop(node: Node) -> None:
    uid = await node.create("p", "OnFailure")
    await node.sync(uid)
    node.clock.advance(1)
    node.runtime.exit(node.runtime.running("main").id, 1)
    await node.sync(uid)  # restarted at once
    node.clock.advance(1)
    node.runtime.exit(node.runtime.running("main").id, 0)
    result = await node.sync(uid)
    assert result.resync == 0.0  # ended: the next pass stops the sandbox
    status = await node.status(uid)
    assert status["phase"] == "Succeeded"
    assert status["containerStatuses"][0]["restartCount"] == 1
    assert len(node.runtime.started) == 2

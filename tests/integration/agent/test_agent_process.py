"""The node agent end to end against a real API server, with the process runtime driver."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.runtime.driver import State
from shoal.agent.runtime.process import ProcessDriver
from shoal.client import resources
from shoal.client.rest import ApiClient
from tests.integration.agent.helpers import (
    condition,
    container_status,
    create_bound,
    events,
    eventually,
    free_port,
    get_pod,
    http_get,
    httpd,
    pod_check,
    pod_manifest,
    port_open,
    running_agent,
    shell,
)

pytestmark = pytest.mark.integration


async def test_node_is_ready_with_capacity_and_lease(client: ApiClient, driver: ProcessDriver, node_name: str,
                                                     tmp_path: Path) -> None:
    async with running_agent(client, driver, node_name, tmp_path, kubelet_port=10250, control_plane=True):
        node = await client.get(resources.NODES, node_name)
        labels = node["metadata"]["labels"]
        assert labels["kubernetes.io/hostname"] == node_name
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"]
        assert "node-role.kubernetes.io/control-plane" in labels
        status = node["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"], ready["message"]) == (
            "True", "KubeletReady", "kubelet is posting ready status")
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
        assert int(status["capacity"]["cpu"]) >= 1 and status["capacity"]["memory"].endswith("Ki")
        assert status["capacity"]["pods"] == "110" and status["allocatable"]["pods"] == "110"
        assert status["nodeInfo"]["containerRuntimeVersion"].startswith("process://")
        assert status["nodeInfo"]["kubeletVersion"] == "v1.32.0-shoal"
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
        assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]

        lease = await client.get(resources.LEASES, node_name, "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == node_name
        assert lease["spec"]["leaseDurationSeconds"] == 4
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
        first = lease["spec"]["renewTime"]
        assert len(first) == len("2024-01-01T00:00:00.000000Z")

        async def renewed() -> bool:
            again = await client.get(resources.LEASES, node_name, "kube-node-lease")
            return bool(again["spec"]["renewTime"] > first)

        await eventually(renewed, within=5, what="the lease to be renewed")

        async def heartbeat() -> bool:
            again = await client.get(resources.NODES, node_name)
            beat = next(c for c in again["status"]["conditions"] if c["type"] == "Ready")
            return bool(beat["lastHeartbeatTime"] > ready["lastHeartbeatTime"]
                        and beat["lastTransitionTime"] == ready["lastTransitionTime"])

        await eventually(heartbeat, within=5, what="a node status heartbeat")
    await client.delete(resources.NODES, node_name)


async def test_pod_runs_and_becomes_ready(client: ApiClient, driver: ProcessDriver, namespace: str, node_name: str,
                                          tmp_path: Path) -> None:
    port = free_port()
    await client.create(resources.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "cfg"}, "data": {"mode": "fast"}}, namespace)
    await client.create(resources.SECRETS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
                                            "data": {"pw": base64.b64encode(b"hunter2").decode()}}, namespace)
    server = httpd("web", port, readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1})
    server["command"][-1] = "echo MODE=$MODE PW=$PW POD=$POD NODE=$NODE IP=$IP ARG=$(MODE); " + server["command"][-1]
    server["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest("web", server))
        pod = await eventually(pod_check(client, namespace, "web", lambda p: condition(p, "Ready") == "True"),
                               what="pod web to be Ready")
        status = pod["status"]
        assert status["phase"] == "Running"
        assert (status["podIP"], status["hostIP"]) == ("127.0.0.1", "127.0.0.1")
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "PodScheduled": "True", "PodReadyToStartContainers": "True", "Initialized": "True",
            "ContainersReady": "True", "Ready": "True"}
        web = container_status(pod, "web")
        assert web["ready"] and web["started"] and web["restartCount"] == 0
        assert web["containerID"].startswith("process://") and "running" in web["state"]
        assert status["startTime"] and status["qosClass"] == "BestEffort"
        assert (await http_get(port))[0] == 200
        reasons = [reason for reason, _ in await events(client, namespace, "web")]
        assert reasons[:3] == ["Pulled", "Created", "Started"]
        output = b"".join([line async for line in driver.logs(web["containerID"].split("://")[1])])
        assert b"MODE=fast PW=hunter2 POD=web NODE=" + node_name.encode() + b" IP=127.0.0.1 ARG=fast" in output


async def test_crash_loop_backoff(client: ApiClient, driver: ProcessDriver, namespace: str, node_name: str,
                                  tmp_path: Path) -> None:
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest("crash", shell("app", "echo oops; exit 3")))

        def looping(pod: dict[str, Any]) -> bool:
            status = container_status(pod, "app")
            return bool(status.get("restartCount", 0) >= 3 and "waiting" in status.get("state", {}))

        pod = await eventually(pod_check(client, namespace, "crash", looping), what="a crash loop")
        app = container_status(pod, "app")
        waiting = app["state"]["waiting"]
        uid = pod["metadata"]["uid"]
        assert waiting["reason"] == "CrashLoopBackOff"
        assert waiting["message"].startswith("back-off ")
        assert waiting["message"].endswith(f"restarting failed container=app pod=crash_{namespace}({uid})")
        assert app["lastState"]["terminated"]["exitCode"] == 3
        assert app["lastState"]["terminated"]["reason"] == "Error"
        assert pod["status"]["phase"] == "Running" and condition(pod, "Ready") == "False"
        assert ("BackOff", f"Back-off restarting failed container app in pod crash_{namespace}({uid})") in \
            await events(client, namespace, "crash")
        # Only the newest attempt and the one before it are kept.
        mine = [c for c in await driver.list_containers() if c.labels.get("shoal.pod.uid") == uid]
        assert 1 <= len(mine) <= 2


async def test_readiness_failure_keeps_pod_unready(client: ApiClient, driver: ProcessDriver, namespace: str,
                                                   node_name: str, tmp_path: Path) -> None:
    port = free_port()
    probe = {"httpGet": {"path": "/missing", "port": port}, "periodSeconds": 1, "failureThreshold": 1}
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name,
                           pod_manifest("unready", httpd("web", port, readinessProbe=probe)))

        async def failed_twice() -> bool:
            found = [m for r, m in await events(client, namespace, "unready") if r == "Unhealthy"]
            return bool(found) and found[0] == "Readiness probe failed: HTTP probe failed with statuscode: 404"

        await eventually(failed_twice, what="a failed readiness probe")
        pod = await get_pod(client, namespace, "unready")
        assert pod is not None and pod["status"]["phase"] == "Running"
        assert condition(pod, "Ready") == "False" and condition(pod, "ContainersReady") == "False"
        assert container_status(pod, "web")["ready"] is False
        assert container_status(pod, "web")["restartCount"] == 0


async def test_liveness_failure_restarts(client: ApiClient, driver: ProcessDriver, namespace: str, node_name: str,
                                         tmp_path: Path) -> None:
    closed = free_port()
    probe = {"tcpSocket": {"port": closed}, "periodSeconds": 1, "failureThreshold": 2}
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name,
                           pod_manifest("sick", shell("app", "exec sleep 600", livenessProbe=probe)))
        pod = await eventually(pod_check(client, namespace, "sick",
                                         lambda p: container_status(p, "app").get("restartCount", 0) >= 1),
                               what="a liveness restart")
        assert "terminated" in container_status(pod, "app")["lastState"]
        found = await events(client, namespace, "sick")
        assert ("Killing", "Container app failed liveness probe, will be restarted") in found
        assert any(r == "Unhealthy" and m.startswith("Liveness probe failed: dial tcp") for r, m in found)


async def test_restart_policy_never(client: ApiClient, driver: ProcessDriver, namespace: str, node_name: str,
                                    tmp_path: Path) -> None:
    async with running_agent(client, driver, node_name, tmp_path):
        init = [shell("setup", "echo init done")]
        await create_bound(client, namespace, node_name,
                           pod_manifest("ok", shell("app", "exit 0"), restart="Never", initContainers=init))
        await create_bound(client, namespace, node_name, pod_manifest("bad", shell("app", "exit 4"), restart="Never"))
        await create_bound(client, namespace, node_name,
                           pod_manifest("retry", shell("app", "exit 0"), restart="OnFailure"))
        terminal = ("Succeeded", "Failed")
        ok = await eventually(pod_check(client, namespace, "ok", lambda p: p["status"]["phase"] in terminal))
        bad = await eventually(pod_check(client, namespace, "bad", lambda p: p["status"]["phase"] in terminal))
        retry = await eventually(pod_check(client, namespace, "retry", lambda p: p["status"]["phase"] in terminal))
        assert (ok["status"]["phase"], bad["status"]["phase"], retry["status"]["phase"]) == (
            "Succeeded", "Failed", "Succeeded")
        setup = container_status(ok, "setup", "initContainerStatuses")
        assert setup["state"]["terminated"]["reason"] == "Completed"
        assert container_status(ok, "app")["state"]["terminated"]["exitCode"] == 0
        assert container_status(bad, "app")["state"]["terminated"]["exitCode"] == 4
        assert container_status(bad, "app")["restartCount"] == 0
        assert condition(ok, "Initialized") == "True" and condition(ok, "Ready") == "False"


async def test_failed_init_container_blocks_the_app(client: ApiClient, driver: ProcessDriver, namespace: str,
                                                    node_name: str, tmp_path: Path) -> None:
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest(
            "blocked", shell("app", "sleep 600"), restart="Never", initContainers=[shell("setup", "exit 1")]))
        pod = await eventually(pod_check(client, namespace, "blocked", lambda p: p["status"]["phase"] == "Failed"))
        assert container_status(pod, "app")["state"] == {"waiting": {"reason": "PodInitializing"}}
        assert condition(pod, "Initialized") == "False"


async def test_delete_stops_the_process_and_removes_the_pod(client: ApiClient, driver: ProcessDriver,
                                                           namespace: str, node_name: str, tmp_path: Path) -> None:
    port = free_port()
    async with running_agent(client, driver, node_name, tmp_path):
        pod = await create_bound(client, namespace, node_name, pod_manifest("doomed", httpd("web", port)))
        await eventually(pod_check(client, namespace, "doomed", lambda p: condition(p, "Ready") == "True"))
        assert await port_open(port)
        await client.delete(resources.PODS, "doomed", namespace)
        await eventually(lambda: _gone(client, namespace, "doomed"), what="the pod to be deleted")
        assert not await port_open(port)
        uid = pod["metadata"]["uid"]
        assert not [c for c in await driver.list_containers() if c.labels.get("shoal.pod.uid") == uid]
        assert not [s for s in await driver.list_sandboxes() if s.pod_uid == uid]
        assert ("Killing", "Stopping container web") in await events(client, namespace, "doomed")
        assert not (tmp_path / "pods" / uid).exists()


async def _gone(client: ApiClient, namespace: str, name: str) -> bool:
    return await get_pod(client, namespace, name) is None


async def test_agent_restart_adopts_containers_and_removes_orphans(client: ApiClient, driver: ProcessDriver,
                                                                    namespace: str, node_name: str,
                                                                    tmp_path: Path) -> None:
    port = free_port()
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest("keeper", httpd("web", port)))
        await create_bound(client, namespace, node_name, pod_manifest("orphan", shell("app", "exec sleep 600")))
        keeper = await eventually(pod_check(client, namespace, "keeper", lambda p: condition(p, "Ready") == "True"))
        orphan = await eventually(pod_check(client, namespace, "orphan", lambda p: condition(p, "Ready") == "True"))
    before = {c.id: c for c in await driver.list_containers()}
    assert all(c.state is State.RUNNING for c in before.values()) and len(before) == 2
    # While the agent is down the orphan's pod disappears for good (a forced deletion).
    await client.delete(resources.PODS, "orphan", namespace, grace_period_seconds=0)
    assert await get_pod(client, namespace, "orphan") is None

    restarted = ProcessDriver(tmp_path / "runtime")  # a new driver on the same state, as after a restart
    async with running_agent(client, restarted, node_name, tmp_path):
        orphan_uid = orphan["metadata"]["uid"]

        async def orphan_removed() -> bool:
            return not [c for c in await restarted.list_containers() if c.labels.get("shoal.pod.uid") == orphan_uid]

        await eventually(orphan_removed, what="the orphan's container to be removed")
        await asyncio.sleep(1.0)  # a few relists and syncs
        after = await restarted.list_containers()
        assert [c.id for c in after] == [container_status(keeper, "web")["containerID"].split("://")[1]]
        assert after[0].state is State.RUNNING and after[0].started_at == before[after[0].id].started_at
        pod = await get_pod(client, namespace, "keeper")
        assert pod is not None
        assert container_status(pod, "web")["containerID"] == container_status(keeper, "web")["containerID"]
        assert container_status(pod, "web")["restartCount"] == 0 and condition(pod, "Ready") == "True"
        assert (await http_get(port))[0] == 200


async def test_missing_config_is_reported_then_recovers(client: ApiClient, driver: ProcessDriver, namespace: str,
                                                         node_name: str, tmp_path: Path) -> None:
    env_user = shell("app", "exec sleep 600",
                     env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "x"}}}])
    mounter = shell("app", "exec sleep 600", volumeMounts=[{"name": "conf", "mountPath": "/etc/conf"}])
    async with running_agent(client, driver, node_name, tmp_path):
        await create_bound(client, namespace, node_name, pod_manifest("env", env_user))
        await create_bound(client, namespace, node_name, pod_manifest(
            "vol", mounter, volumes=[{"name": "conf", "configMap": {"name": "late"}}]))
        env_pod = await eventually(pod_check(client, namespace, "env", lambda p: container_status(p, "app").get(
            "state", {}).get("waiting", {}).get("reason") == "CreateContainerConfigError"))
        assert container_status(env_pod, "app")["state"]["waiting"]["message"] == 'configmap "late" not found'

        async def failed_mount() -> bool:
            return any(r == "FailedMount" for r, _ in await events(client, namespace, "vol"))

        await eventually(failed_mount, what="a FailedMount event")
        found = dict(await events(client, namespace, "vol"))
        assert found["FailedMount"] == 'MountVolume.SetUp failed for volume "conf" : configmap "late" not found'
        vol_pod = await get_pod(client, namespace, "vol")
        assert vol_pod is not None and vol_pod["status"]["phase"] == "Pending"
        assert container_status(vol_pod, "app")["state"] == {"waiting": {"reason": "ContainerCreating"}}

        await client.create(resources.CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                                   "metadata": {"name": "late"}, "data": {"x": "1"}}, namespace)
        for name in ("env", "vol"):
            await eventually(pod_check(client, namespace, name, lambda p: condition(p, "Ready") == "True"),
                             what=f"pod {name} to recover")
        uid = (await client.get(resources.PODS, "vol", namespace))["metadata"]["uid"]
        assert (tmp_path / "pods" / uid / "volumes" / "configmap" / "conf" / "x").read_text() == "1"

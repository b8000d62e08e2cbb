"""The node agent with the podman driver: real isolation, a bridge network from the podCIDR.

The test's podman objects carry the scope label ``shoal.test=<unique name>`` and live on the
test's own bridge network (a free ``10.99.X.0/24``); teardown removes them and the network
even when the test fails.  HTTP goes only to the pod IP on that bridge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import uuid
from pathlib import Path

import pytest

from shoal.agent.runtime.demo_image import DEMO_IMAGE, ensure_demo_image
from shoal.agent.runtime.podman import PodmanDriver
from shoal.client import resources
from shoal.client.rest import ApiClient
from tests.integration.agent.helpers import (
    condition,
    container_status,
    create_bound,
    events,
    eventually,
    get_pod,
    http_get,
    pod_check,
    pod_manifest,
    running_agent,
)
from tests.integration.runtime.helpers import free_subnet

pytestmark = pytest.mark.integration


async def _ready(client: ApiClient, node_name: str) -> dict[str, str]:
    node = await client.get(resources.NODES, node_name)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    return {"status": ready["status"], "reason": ready["reason"]}


async def test_demo_pod_answers_http_on_its_pod_ip(client: ApiClient, namespace: str, node_name: str,
                                                   tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed")
    await ensure_demo_image()
    network = f"shoaltest{uuid.uuid4().hex[:8]}"
    # No subnet: the agent hands the driver the podCIDR (configure_network) once it is assigned.
    driver = PodmanDriver(network, "", labels={"shoal.test": network}, state_dir=tmp_path / "podman",
                          warm_sandboxes=1)
    assert driver.needs_pod_cidr
    try:
        # A 5 s image-pull backoff: long enough to see ImagePullBackOff between pull attempts.
        async with running_agent(client, driver, node_name, tmp_path,
                                 backoff_initial=5.0, backoff_max=10.0) as agent:
            # Without a podCIDR the node is registered but not Ready, and no pod starts.
            await eventually(lambda: _registered(client, node_name), what="the node to register")
            assert await _ready(client, node_name) == {"status": "False", "reason": "KubeletNotReady"}
            subnet = free_subnet()
            await client.patch(resources.NODES, node_name, {"spec": {"podCIDR": subnet, "podCIDRs": [subnet]}})
            await eventually(lambda: asyncio.sleep(0, agent.started.is_set()), what="the agent to start")
            await eventually(lambda: _is_ready(client, node_name), what="the node to become Ready")
            # The warm pool filled once the network existed: the first pod claims that pod.
            await eventually(lambda: asyncio.sleep(0, bool(driver.pool.ready)), what="a warm sandbox")
            warm_id = driver.pool.ready[0].id

            probe = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
            container = {"name": "web", "image": DEMO_IMAGE, "ports": [{"containerPort": 8080}],
                         "readinessProbe": probe}
            pod = await create_bound(client, namespace, node_name, pod_manifest("demo", container))
            ready = await eventually(pod_check(client, namespace, "demo", lambda p: condition(p, "Ready") == "True"),
                                     within=60, what="the demo pod to be Ready")
            pod_ip = ready["status"]["podIP"]
            assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(subnet)
            assert container_status(ready, "web")["containerID"].startswith("podman://")
            assert container_status(ready, "web")["imageID"].startswith("sha256:")
            code, body = await http_get(8080, host=pod_ip)
            assert (code, body.strip()) == (200, b"demo")  # the demo serves its hostname = pod name
            claimed = [s for s in await driver.list_sandboxes() if s.pod_uid == pod["metadata"]["uid"]]
            assert [s.id for s in claimed] == [warm_id]
            assert claimed[0].labels["shoal.pod.name"] == "demo"
            assert ("Pulled", f'Container image "{DEMO_IMAGE}" already present on machine') in \
                await events(client, namespace, "demo")

            # A container over its memory limit: OOMKilled, and a Warning OOMKilling event.
            hog = {"name": "hog", "image": DEMO_IMAGE, "resources": {"limits": {"memory": "32Mi"}},
                   "command": ["sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"]}
            await create_bound(client, namespace, node_name, pod_manifest("hog", hog, restart="Never"))
            oom = await eventually(pod_check(client, namespace, "hog", lambda p: p["status"]["phase"] == "Failed"),
                                   within=30, what="the memory hog to be OOM-killed")
            assert container_status(oom, "hog")["state"]["terminated"]["reason"] == "OOMKilled"
            assert any(r == "OOMKilling" for r, _ in await events(client, namespace, "hog"))

            # An image that cannot be pulled: ErrImagePull, then ImagePullBackOff between attempts.
            image = "127.0.0.1:9/missing/image:1"  # nothing listens on port 9: refused at once
            await create_bound(client, namespace, node_name,
                               pod_manifest("noimage", {"name": "app", "image": image}))
            backoff = await eventually(pod_check(client, namespace, "noimage", lambda p: container_status(
                p, "app").get("state", {}).get("waiting", {}).get("reason") == "ImagePullBackOff"),
                within=30, what="ImagePullBackOff")
            message = container_status(backoff, "app")["state"]["waiting"]["message"]
            assert message.startswith(f'Back-off pulling image "{image}": ErrImagePull: ')
            found = await events(client, namespace, "noimage")
            assert ("Pulling", f'Pulling image "{image}"') in found
            assert any(r == "Failed" and m.startswith(f'Failed to pull image "{image}": ') for r, m in found)
            assert ("Failed", "Error: ErrImagePull") in found
            assert ("BackOff", f'Back-off pulling image "{image}"') in found

            await client.delete(resources.PODS, "demo", namespace)
            await eventually(lambda: _gone(client, namespace), within=30, what="the pod to be deleted")
            uid = pod["metadata"]["uid"]
            assert not [s for s in await driver.list_sandboxes() if s.pod_uid == uid]
    finally:
        await driver.purge()
        if driver.subnet:
            await driver.remove_network()
        await driver.close()


async def _registered(client: ApiClient, node_name: str) -> bool:
    found = await client.list(resources.NODES)
    return any(n["metadata"]["name"] == node_name for n in found["items"])


async def _is_ready(client: ApiClient, node_name: str) -> bool:
    return (await _ready(client, node_name))["status"] == "True"


async def _gone(client: ApiClient, namespace: str) -> bool:
    return await get_pod(client, namespace, "demo") is None


async def test_an_ended_pod_gives_back_its_ip_and_an_agent_restart_does_not_report_its_oom_again(
        client: ApiClient, namespace: str, node_name: str, tmp_path: Path) -> None:
    await ensure_demo_image()
    network = f"shoaltest{uuid.uuid4().hex[:8]}"
    subnet = free_subnet()

    def new_driver() -> PodmanDriver:  # a fresh driver (and agent) = an agent restart
        return PodmanDriver(network, subnet, labels={"shoal.test": network}, state_dir=tmp_path / "podman")

    first, second = new_driver(), new_driver()
    hog = {"name": "hog", "image": DEMO_IMAGE, "resources": {"limits": {"memory": "32Mi"}},
           "command": ["sh", "-c", "exec dd if=/dev/zero of=/dev/null bs=64M count=1"]}
    try:
        await first.ensure_network()
        async with running_agent(client, first, node_name, tmp_path):
            pod = await create_bound(client, namespace, node_name, pod_manifest("hog", hog, restart="Never"))
            await eventually(pod_check(client, namespace, "hog", lambda p: p["status"]["phase"] == "Failed"),
                             within=30, what="the memory hog to be OOM-killed")
            await eventually(lambda: _oom_events(client, namespace), what="the OOMKilling event")
            # Like kubelet: the sandbox of an ended pod is stopped (its IP goes back to the node),
            # the container stays for logs, and the status keeps the pod IP.
            ended = await eventually(pod_check(client, namespace, "hog", lambda p: condition(
                p, "PodReadyToStartContainers") == "False"), what="the sandbox to be stopped")
            assert ended["status"]["podIP"]
            sandboxes = [s for s in await first.list_sandboxes() if s.pod_uid == pod["metadata"]["uid"]]
            assert sandboxes and not any(s.ready or s.ip for s in sandboxes)
            assert [c.reason for c in await first.list_containers(sandboxes[0].id)] == ["OOMKilled"]
        async with running_agent(client, second, node_name, tmp_path):
            await asyncio.sleep(3)  # several relists and syncs of the failed pod
        assert await _oom_events(client, namespace) == 1
    finally:
        await second.purge()
        await second.remove_network()
        await first.close()
        await second.close()


async def _oom_events(client: ApiClient, namespace: str) -> int:
    return sum(1 for reason, _ in await events(client, namespace, "hog") if reason == "OOMKilling")

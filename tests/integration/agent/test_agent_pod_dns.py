"""A podman pod's /etc/resolv.conf and Service environment (issue 9 items 4 and 5).

The agent writes each pod's resolv.conf and bind-mounts it read-only on /etc/resolv.conf of
every container, so the pod keeps the warm sandbox it claimed (made before its namespace was
known).  The containers copy what they see into an emptyDir the test reads on the host.
Podman objects carry the test's scope label and live on the test's own bridge network, removed
in teardown even when the test fails.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest

from shoal.agent.runtime.demo_image import DEMO_IMAGE, ensure_demo_image
from shoal.agent.runtime.podman import PodmanDriver
from shoal.client import resources
from shoal.client.rest import ApiClient
from tests.integration.agent.helpers import create_bound, eventually, pod_check, pod_manifest, running_agent
from tests.integration.runtime.helpers import free_subnet

pytestmark = pytest.mark.integration

REPORT = "cat /etc/resolv.conf > /out/resolv.conf && env > /out/env && echo x >> /etc/resolv.conf || touch /out/ro"


def reporter(name: str, **spec: object) -> dict[str, object]:
    container = {"name": "c", "image": DEMO_IMAGE, "command": ["sh", "-c", REPORT],
                 "env": [{"name": "EXPLICIT", "value": "$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"}],
                 "volumeMounts": [{"name": "out", "mountPath": "/out"}]}
    return pod_manifest(name, container, restart="Never", volumes=[{"name": "out", "emptyDir": {}}], **spec)


def env_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


async def test_pods_get_cluster_dns_and_service_variables(client: ApiClient, namespace: str, node_name: str,
                                                          tmp_path: Path) -> None:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed")
    await ensure_demo_image()
    await client.create(resources.SERVICES, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    web = await client.get(resources.SERVICES, "web", namespace)
    web_ip = web["spec"]["clusterIP"]
    network = f"shoaltest{uuid.uuid4().hex[:8]}"
    driver = PodmanDriver(network, "", labels={"shoal.test": network}, state_dir=tmp_path / "podman",
                          warm_sandboxes=1)
    (tmp_path / "agent").mkdir()
    node_resolv = tmp_path / "node-resolv.conf"
    node_resolv.write_text("nameserver 192.0.2.53\nsearch corp.example\n")
    try:
        async with running_agent(client, driver, node_name, tmp_path / "agent", resolv_conf=node_resolv) as agent:
            await eventually(lambda: _registered(client, node_name), what="the node to register")
            subnet = free_subnet()
            await client.patch(resources.NODES, node_name, {"spec": {"podCIDR": subnet, "podCIDRs": [subnet]}})
            await eventually(lambda: asyncio.sleep(0, agent.started.is_set()), what="the agent to start")
            await eventually(lambda: asyncio.sleep(0, bool(driver.pool.ready)), within=60, what="a warm sandbox")
            warm_id = driver.pool.ready[0].id

            pod = await create_bound(client, namespace, node_name, reporter("cluster-first"))
            none = await create_bound(client, namespace, node_name, reporter("none", dnsPolicy="None", dnsConfig={
                "nameservers": ["192.0.2.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}]},
                enableServiceLinks=False))
            for name in ("cluster-first", "none"):
                await eventually(pod_check(client, namespace, name, lambda p: p["status"].get("phase") == "Succeeded"),
                                 within=60, what=f"pod {name} to succeed")
            out = tmp_path / "agent" / "pods" / pod["metadata"]["uid"] / "volumes" / "empty-dir" / "out"
            resolv = (out / "resolv.conf").read_text()
            print(f"--- /etc/resolv.conf of a ClusterFirst pod ---\n{resolv}")
            assert resolv == (f"nameserver 10.43.0.10\nsearch {namespace}.svc.cluster.local svc.cluster.local "
                              "cluster.local corp.example\noptions ndots:5\n")
            assert (out / "ro").exists(), "/etc/resolv.conf is mounted read-only"
            env = env_of((out / "env").read_text())
            print("--- Service variables ---\n" + "\n".join(f"{k}={v}" for k, v in sorted(env.items())
                                                         if k.startswith(("WEB_", "KUBERNETES_", "EXPLICIT"))))
            assert env["WEB_SERVICE_HOST"] == web_ip and env["WEB_SERVICE_PORT"] == "80"
            assert env["WEB_SERVICE_PORT_HTTP"] == "80" and env["WEB_PORT"] == f"tcp://{web_ip}:80"
            assert env["WEB_PORT_80_TCP_ADDR"] == web_ip and env["WEB_PORT_80_TCP_PROTO"] == "tcp"
            assert env["EXPLICIT"] == f"{web_ip}:80", "$(VAR) expansion sees the Service variables"
            assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1", "the master Service, bootstrapped by the server"
            claimed = [s for s in await driver.list_sandboxes() if s.pod_uid == pod["metadata"]["uid"]]
            assert [s.id for s in claimed] == [warm_id], "the pod ran in the warm sandbox"

            none_out = tmp_path / "agent" / "pods" / none["metadata"]["uid"] / "volumes" / "empty-dir" / "out"
            assert (none_out / "resolv.conf").read_text() == \
                "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2\n"
            none_env = env_of((none_out / "env").read_text())
            assert "WEB_SERVICE_HOST" not in none_env and none_env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
            assert none_env["EXPLICIT"] == "$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)"
    finally:
        await driver.purge()
        if driver.subnet:
            await driver.remove_network()
        await driver.close()


async def _registered(client: ApiClient, node_name: str) -> bool:
    return any(n["metadata"]["name"] == node_name for n in (await client.list(resources.NODES))["items"])

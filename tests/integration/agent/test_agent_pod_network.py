"""The agent's pod-network step with the process runtime: a driver that ``needs_pod_cidr`` gets
the node's podCIDR through ``configure_network`` (retried after a failure), and until then the
Node is not Ready and no pod starts — what the podman driver goes through, without podman."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shoal.agent.runtime.driver import RuntimeDriverError
from shoal.agent.runtime.process import ProcessDriver
from shoal.client import resources
from shoal.client.rest import ApiClient
from tests.integration.agent.helpers import (
    condition,
    create_bound,
    eventually,
    pod_check,
    pod_manifest,
    purge,
    running_agent,
    shell,
)


class NetworkedProcessDriver(ProcessDriver):
    """The process driver, but with a pod network to set up; the first attempt fails."""

    needs_pod_cidr = True

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.attempts: list[str] = []

    async def configure_network(self, cidr: str) -> None:
        self.attempts.append(cidr)
        if len(self.attempts) == 1:
            raise RuntimeDriverError("the bridge is not there yet")


async def _ready(client: ApiClient, node_name: str) -> tuple[str, str] | None:
    found = await client.list(resources.NODES, field_selector=f"metadata.name={node_name}")
    if not found["items"]:
        return None
    ready = next(c for c in found["items"][0]["status"]["conditions"] if c["type"] == "Ready")
    return str(ready["status"]), str(ready["reason"])


async def test_pods_wait_for_the_pod_network(client: ApiClient, namespace: str, node_name: str,
                                             tmp_path: Path) -> None:
    driver = NetworkedProcessDriver(tmp_path / "runtime")
    try:
        async with running_agent(client, driver, node_name, tmp_path) as agent:
            await eventually(lambda: _ready(client, node_name), what="the node to register")
            await create_bound(client, namespace, node_name, pod_manifest("early", shell("c", "sleep 600")))
            await asyncio.sleep(1.0)  # a few status writes: still no network, no pod
            assert await _ready(client, node_name) == ("False", "KubeletNotReady")
            assert driver.attempts == [] and not agent.started.is_set()
            assert await driver.list_sandboxes() == []

            cidr = "10.42.77.0/24"
            await client.patch(resources.NODES, node_name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
            await eventually(lambda: asyncio.sleep(0, agent.started.is_set()), what="the agent to start")
            assert driver.attempts == [cidr, cidr]  # the failed attempt was retried
            assert await eventually(lambda: _is_ready(client, node_name), what="the node to become Ready")
            await eventually(pod_check(client, namespace, "early", lambda p: condition(p, "Ready") == "True"),
                             what="the waiting pod to run")
        await client.delete(resources.NODES, node_name)
    finally:
        await purge(driver)


async def _is_ready(client: ApiClient, node_name: str) -> bool:
    return await _ready(client, node_name) == ("True", "KubeletReady")

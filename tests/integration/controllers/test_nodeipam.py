"""Node IPAM against a live API server: unique pod CIDRs, reuse after deletion, exhaustion."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.controllers.manager import CONTROLLERS, ControllerManager
from tests.integration.controllers.helpers import eventually

pytestmark = pytest.mark.e2e

@pytest.fixture
async def nodes(client: ApiClient) -> AsyncIterator[list[str]]:
    """Names of the nodes a test made; deleted afterwards (nodes are cluster-wide)."""
    made: list[str] = []
    yield made
    for name in made:
        with contextlib.suppress(NotFoundError):
            await client.delete(resources.NODES, name)


@contextlib.asynccontextmanager
async def ipam(client: ApiClient, **options: Any) -> AsyncIterator[ControllerManager]:
    manager = ControllerManager(client, controllers={"nodeipam": CONTROLLERS["nodeipam"]}, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        await eventually(lambda: _synced(manager), what="the node cache")
        yield manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


async def _synced(manager: ControllerManager) -> bool:
    return bool(manager.controllers) and all(i.has_synced for c in manager.controllers for i in c.informers)


async def add_node(client: ApiClient, made: list[str], pod_cidr: str | None = None) -> str:
    name = f"node-{uuid.uuid4().hex[:6]}"
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    await client.create(resources.NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                                          "spec": spec})
    made.append(name)
    return name


async def cidrs(client: ApiClient, names: list[str]) -> dict[str, str]:
    found = {}
    for name in names:
        spec = (await client.get(resources.NODES, name)).get("spec") or {}
        if spec.get("podCIDR"):
            assert spec.get("podCIDRs") == [spec["podCIDR"]]
            found[name] = spec["podCIDR"]
    return found


async def test_every_node_gets_its_own_subnet(client: ApiClient, nodes: list[str]) -> None:
    preset = await add_node(client, nodes, "10.42.0.0/24")
    async with ipam(client):
        for _ in range(5):
            await add_node(client, nodes)

        async def all_assigned() -> bool:
            return len(await cidrs(client, nodes)) == len(nodes)

        await eventually(all_assigned, what="a pod CIDR on every node")
        assigned = await cidrs(client, nodes)
        assert assigned[preset] == "10.42.0.0/24", "a CIDR already set is kept"
        assert len(set(assigned.values())) == len(nodes), f"a subnet was handed out twice: {assigned}"
        assert set(assigned.values()) == {f"10.42.{i}.0/24" for i in range(6)}, "lowest free subnets first"

        freed = next(name for name, cidr in assigned.items() if cidr == "10.42.3.0/24")
        await client.delete(resources.NODES, freed)
        nodes.remove(freed)
        newcomer = await add_node(client, nodes)

        async def reused() -> bool:
            return (await cidrs(client, [newcomer])).get(newcomer) == "10.42.3.0/24"

        await eventually(reused, what="the deleted node's subnet handed to a new node")


async def test_an_exhausted_range_is_reported(client: ApiClient, nodes: list[str]) -> None:
    async with ipam(client, cluster_cidr="10.99.0.0/23"):
        first, second = await add_node(client, nodes), await add_node(client, nodes)
        await eventually(lambda: _count(client, [first, second], 2), what="two subnets")
        third = await add_node(client, nodes)

        async def reported() -> bool:
            events = (await client.list(resources.EVENTS, "default"))["items"]
            return any(e["reason"] == "CIDRNotAvailable" and e["involvedObject"]["name"] == third for e in events)

        await eventually(reported, what="a CIDRNotAvailable event")
        assert set((await cidrs(client, [first, second])).values()) == {"10.99.0.0/24", "10.99.1.0/24"}
        assert third not in await cidrs(client, [third])


async def _count(client: ApiClient, names: list[str], wanted: int) -> bool:
    return len(await cidrs(client, names)) == wanted

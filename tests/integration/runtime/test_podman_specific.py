"""podman-only behaviour: network namespaces, the node network, scope labels, start latency."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest

from shoal.agent.runtime.demo_image import DEMO_IMAGE
from shoal.agent.runtime.driver import ContainerSpec, RuntimeDriver, RuntimeDriverError, SandboxSpec, State
from shoal.agent.runtime.podman import PodmanDriver
from tests.integration.runtime.helpers import eventually, free_subnet, run_container, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60),
              pytest.mark.parametrize("driver_kind", ["podman"], indirect=True)]

SpecFactory = Callable[..., SandboxSpec]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"shoaltest{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True, timeout=10)


async def test_pods_in_a_network_namespace(driver: RuntimeDriver, netns: str, sandbox_spec: SpecFactory) -> None:
    assert isinstance(driver, PodmanDriver)
    inner = PodmanDriver(f"{driver.network}ns", free_subnet(), netns=netns, labels=driver.scope_labels)
    try:
        sandbox = await inner.create_sandbox(sandbox_spec("nsweb", hostname="nsweb-1"))
        container_id = await run_container(inner, sandbox.id, ContainerSpec(name="web", image=DEMO_IMAGE))
        await wait_state(inner, container_id, State.RUNNING)

        def fetch() -> bytes:
            # (busybox-static's wget crashes with -T, so the subprocess timeout bounds it)
            try:
                return subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "busybox", "wget", "-q", "-O", "-",
                                       f"http://{sandbox.ip}:8080/"], capture_output=True, timeout=2).stdout
            except subprocess.TimeoutExpired:
                return b""

        async def served() -> bytes:
            return await asyncio.to_thread(fetch)

        assert await eventually(served, within=10) == b"nsweb-1\n"
        listing = await asyncio.to_thread(subprocess.run, ["ip", "-n", netns, "-4", "-o", "addr"],
                                          capture_output=True, text=True, check=True, timeout=10)
        bridges = listing.stdout
        assert inner.subnet.rsplit(".", 1)[0] in bridges  # the bridge lives inside the namespace
    finally:
        await inner.purge()
        await inner.remove_network()
        await inner.close()


async def test_existing_network_with_another_subnet_is_refused(driver: RuntimeDriver) -> None:
    assert isinstance(driver, PodmanDriver)
    await driver.ensure_network()
    clash = PodmanDriver(driver.network, free_subnet())
    with pytest.raises(RuntimeDriverError, match="exists with subnets"):
        await clash.ensure_network()


async def test_scope_labels_separate_nodes(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    assert isinstance(driver, PodmanDriver)
    other = PodmanDriver(driver.network, driver.subnet, labels={"shoal.test": driver.network + "-other"})
    mine = await driver.create_sandbox(sandbox_spec("mine"))
    theirs = await other.create_sandbox(sandbox_spec("theirs"))
    try:
        assert [s.id for s in await driver.list_sandboxes()] == [mine.id]
        assert [s.id for s in await other.list_sandboxes()] == [theirs.id]
        assert mine.ip != theirs.ip
    finally:
        await other.purge()
        await other.close()


async def test_create_container_again_returns_the_same_container(driver: RuntimeDriver,
                                                                 sandbox_spec: SpecFactory) -> None:
    """An agent that crashed between create and recording the ID must not get a duplicate."""
    sandbox = await driver.create_sandbox(sandbox_spec())
    spec = ContainerSpec(name="app", image=DEMO_IMAGE, command=("sleep", "30"),
                         labels={"shoal.container.attempt": "1"})
    first = await driver.create_container(sandbox.id, spec)
    assert await driver.create_container(sandbox.id, spec) == first
    assert [c.id for c in await driver.list_containers(sandbox.id)] == [first]

"""Fixtures of the runtime-driver conformance suite: every test runs on podman and on process.

Each podman test gets its own driver: a bridge network ``shoaltest<hex>`` on a free
``10.99.X.0/24`` and a scope label ``shoal.test=<same name>`` on every pod and container, so
listing and cleanup see only this test's objects even when other suites run in parallel.
Teardown removes the pods, containers and the network, also when the test failed.  A missing
podman makes the podman half fail (``pytest.fail``), never skip.  Each process test gets a
fresh state directory; teardown kills and removes what it started.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from shoal.agent.runtime.demo_image import ensure_demo_image_sync
from shoal.agent.runtime.driver import RuntimeDriver, SandboxSpec
from shoal.agent.runtime.podman import PodmanDriver
from shoal.agent.runtime.process import ProcessDriver
from tests.integration.runtime.helpers import DriverFactory, free_subnet


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """podman is installed and the demo image exists (built once per session, offline)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: the podman runtime tests cannot run")
    ensure_demo_image_sync()


@pytest.fixture(params=["podman", "process"])
def driver_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "podman":
        request.getfixturevalue("podman_ready")
    return kind


@pytest.fixture
async def driver_factory(driver_kind: str, tmp_path: Path) -> AsyncIterator[DriverFactory]:
    if driver_kind == "podman":
        name = f"shoaltest{uuid.uuid4().hex[:8]}"
        subnet = free_subnet()
        factory = DriverFactory("podman", lambda: PodmanDriver(name, subnet, labels={"shoal.test": name}), [])
    else:
        state = tmp_path / "process-state"
        factory = DriverFactory("process", lambda: ProcessDriver(state), [])
    first = factory.new()
    try:
        yield factory
    finally:
        await _teardown(first, driver_kind)
        for made in factory.created:
            if isinstance(made, PodmanDriver):
                await made.close()


async def _teardown(driver: RuntimeDriver, kind: str) -> None:
    if isinstance(driver, PodmanDriver):
        await driver.purge()
        await driver.remove_network()
    elif isinstance(driver, ProcessDriver):
        await driver.purge()


@pytest.fixture
def driver(driver_factory: DriverFactory) -> RuntimeDriver:
    return driver_factory.created[0]


@pytest.fixture
def sandbox_spec() -> Iterator[Callable[..., SandboxSpec]]:
    def build(name: str = "web", hostname: str | None = None) -> SandboxSpec:
        uid = str(uuid.uuid4())
        return SandboxSpec(pod_uid=uid, namespace="rt-test", name=name, hostname=hostname or name,
                           labels={"shoal.pod.uid": uid, "shoal.pod.name": name,
                                   "shoal.pod.namespace": "rt-test"})

    yield build

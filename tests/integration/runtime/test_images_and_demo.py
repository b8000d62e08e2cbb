"""Images, the demo image's HTTP server, resource limits and spec validation, on both drivers.

Where the drivers differ by design (the process driver has no images and no memory cgroup),
the test states what each must do.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

import pytest

from shoal.agent.runtime.demo_image import DEMO_IMAGE, DEMO_IMAGE_V2
from shoal.agent.runtime.driver import (
    ContainerSpec,
    ImageNotPresentError,
    ImagePullError,
    InvalidSpecError,
    Resources,
    RuntimeDriver,
    RuntimeDriverError,
    SandboxSpec,
    Security,
    State,
)
from tests.integration.runtime.helpers import eventually, http_get, log_lines, run_container, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SpecFactory = Callable[..., SandboxSpec]
UNPULLABLE = "localhost:1/shoal-nope/missing:1"  # connection refused on 127.0.0.1: fails fast


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_ensure_image_policies(driver: RuntimeDriver) -> None:
    demo_id = await driver.ensure_image(DEMO_IMAGE, "IfNotPresent")
    assert demo_id.startswith("sha256:")
    assert await driver.ensure_image(DEMO_IMAGE_V2, "Never") == demo_id
    if not driver.isolated:  # the process driver runs no images: every policy succeeds
        assert (await driver.ensure_image(UNPULLABLE, "Never")).startswith("sha256:")
        return
    with pytest.raises(ImageNotPresentError):
        await driver.ensure_image(UNPULLABLE, "Never")
    started = time.monotonic()
    if_not_present, always = await asyncio.gather(
        driver.ensure_image(UNPULLABLE, "IfNotPresent"), driver.ensure_image(UNPULLABLE, "Always"),
        return_exceptions=True)
    assert time.monotonic() - started < 10  # podman 4.3 retries a refused connection for ~3 s
    for error in (if_not_present, always):
        assert isinstance(error, ImagePullError) and "connection refused" in str(error)


async def test_demo_image_serves_hostname(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec("demo", hostname="demo-7f9c"))
    port = 8080 if driver.isolated else free_port()  # process pods share the host's ports
    env = {} if driver.isolated else {"PORT": str(port)}
    container_id = await run_container(driver, sandbox.id, ContainerSpec(name="web", image=DEMO_IMAGE, env=env))
    await wait_state(driver, container_id, State.RUNNING)
    url = f"http://{sandbox.ip}:{port}/"

    async def body() -> bytes | None:
        try:
            return await asyncio.to_thread(http_get, url)
        except OSError:
            return None

    assert await eventually(body, within=10) == b"demo-7f9c\n"
    started = time.monotonic()
    await driver.stop_container(container_id, grace_seconds=10)
    assert time.monotonic() - started < 5  # the demo server stops on SIGTERM
    status = await driver.inspect_container(container_id)
    assert (status.state, status.exit_code) == (State.EXITED, 0)


async def test_memory_limit_oom(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    limit = 32 * 1024 * 1024
    spec = ContainerSpec(name="hog", image=DEMO_IMAGE,
                         command=("sh", "-c", "echo start; exec dd if=/dev/zero of=/dev/null bs=64M count=1"),
                         resources=Resources(memory_limit_bytes=limit))
    container_id = await run_container(driver, sandbox.id, spec)
    status = await wait_state(driver, container_id, State.EXITED)
    if driver.isolated:
        assert (status.exit_code, status.reason) == (137, "OOMKilled")
    else:  # RLIMIT_AS: the allocation fails, the process is not OOM-killed (documented)
        assert status.exit_code != 0 and status.reason == "Error"
    assert "start" in await log_lines(driver, container_id)


PODMAN_ONLY = pytest.mark.parametrize("driver_kind", ["podman"], indirect=True)


@PODMAN_ONLY
async def test_cpu_and_memory_limits_are_applied(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    """The process driver applies no cgroup limits (documented), so this is podman's alone."""
    sandbox = await driver.create_sandbox(sandbox_spec())
    spec = ContainerSpec(name="limited", image=DEMO_IMAGE, command=("sleep", "30"),
                         resources=Resources(cpu_limit_millis=500, cpu_request_millis=250,
                                             memory_limit_bytes=64 * 1024 * 1024))
    container_id = await run_container(driver, sandbox.id, spec)
    await wait_state(driver, container_id, State.RUNNING)
    quota = await driver.exec(container_id, ["cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                                             "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
                                             "/sys/fs/cgroup/cpu/cpu.shares",
                                             "/sys/fs/cgroup/memory/memory.limit_in_bytes"], timeout=10)
    assert quota.stdout.split() == [b"50000", b"100000", b"256", str(64 * 1024 * 1024).encode()]


@PODMAN_ONLY
async def test_privileged_is_refused(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    """The process driver isolates nothing, so ``privileged`` changes nothing there (documented)."""
    sandbox = await driver.create_sandbox(sandbox_spec())
    spec = ContainerSpec(name="root", image=DEMO_IMAGE, command=("true",), security=Security(privileged=True))
    with pytest.raises(InvalidSpecError):
        await driver.create_container(sandbox.id, spec)


async def test_security_context_user_and_read_only(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    security = Security(run_as_user=65534, run_as_group=65534, read_only_root_filesystem=True,
                        capabilities_drop=("ALL",))
    script = "id -u; id -g; touch /marker 2>/dev/null && echo writable || echo read-only"
    container_id = await run_container(driver, sandbox.id, ContainerSpec(
        name="sec", image=DEMO_IMAGE, command=("sh", "-c", script), security=security))
    await wait_state(driver, container_id, State.EXITED)
    lines = await log_lines(driver, container_id)
    assert lines[:2] == ["65534", "65534"]
    if driver.isolated:
        assert lines[2] == "read-only"


async def test_image_less_spec_is_invalid_on_process_driver(driver: RuntimeDriver,
                                                            sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    spec = ContainerSpec(name="app", image="docker.io/library/nginx:1.27")
    if driver.isolated:
        with pytest.raises(RuntimeDriverError, match="nginx"):  # podman: the image is simply not there
            await driver.create_container(sandbox.id, spec)
    else:
        with pytest.raises(InvalidSpecError):
            await driver.create_container(sandbox.id, spec)

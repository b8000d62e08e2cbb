"""Helpers of the runtime conformance suite (waiting, collecting logs, HTTP to a pod)."""

from __future__ import annotations

import functools
import ipaddress
import json
import random
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from shoal.agent.runtime.driver import ContainerSpec, ContainerStatus, RuntimeDriver, State
from tests.support import wait

eventually = functools.partial(wait.eventually, within=10.0)


async def wait_state(driver: RuntimeDriver, container_id: str, state: State, within: float = 15.0) -> ContainerStatus:
    async def reached() -> ContainerStatus | None:
        status = await driver.inspect_container(container_id)
        return status if status.state is state else None

    result = await eventually(reached, within=within)
    assert isinstance(result, ContainerStatus)
    return result


async def log_lines(driver: RuntimeDriver, container_id: str, **options: object) -> list[str]:
    return [line.decode().rstrip("\n") async for line in driver.logs(container_id, **options)]  # type: ignore[arg-type]


async def wait_log(driver: RuntimeDriver, container_id: str, text: str, within: float = 15.0) -> None:
    async def seen() -> bool:
        return any(text in line for line in await log_lines(driver, container_id))

    await eventually(seen, within=within)


async def run_container(driver: RuntimeDriver, sandbox_id: str, spec: ContainerSpec) -> str:
    container_id = await driver.create_container(sandbox_id, spec)
    await driver.start_container(container_id)
    return container_id


def http_get(url: str, timeout: float = 1.0) -> bytes:
    """GET without proxies (the pod network is local)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


@dataclass
class DriverFactory:
    """Builds drivers of one kind on the same node state (a restarted agent = a new instance)."""

    kind: str
    make: Callable[[], RuntimeDriver]
    created: list[RuntimeDriver]

    def new(self) -> RuntimeDriver:
        driver = self.make()
        self.created.append(driver)
        return driver


SUBNET_POOL = ipaddress.IPv4Network("10.99.0.0/16")


def used_subnets() -> list[ipaddress.IPv4Network]:
    """Subnets of existing podman networks and of the host's routes."""
    nets: list[ipaddress.IPv4Network] = []
    out = subprocess.run(["podman", "--runtime", "runc", "network", "ls", "--format", "json"],
                         capture_output=True, check=True, timeout=30).stdout
    for network in json.loads(out or b"[]"):
        for subnet in network.get("subnets") or []:
            parsed = ipaddress.ip_network(subnet["subnet"], strict=False)
            if isinstance(parsed, ipaddress.IPv4Network):
                nets.append(parsed)
    routes = subprocess.run(["ip", "-4", "-j", "route"], capture_output=True, check=True, timeout=30).stdout
    for route in json.loads(routes or b"[]"):
        dst = route.get("dst", "default")
        if dst != "default":
            parsed = ipaddress.ip_network(dst, strict=False)
            if isinstance(parsed, ipaddress.IPv4Network):
                nets.append(parsed)
    return nets


def free_subnet() -> str:
    used = used_subnets()
    candidates = list(SUBNET_POOL.subnets(new_prefix=24))
    random.shuffle(candidates)
    for candidate in candidates:
        if not any(candidate.overlaps(u) for u in used):
            return str(candidate)
    raise RuntimeError("no free 10.99.X.0/24 subnet")

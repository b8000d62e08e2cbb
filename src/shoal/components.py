"""The catalogue of Shoal's components: what ``shoal server`` and ``shoal agent`` run.

Each function here returns a :class:`~shoal.runner.Component` for the component runner
(:mod:`shoal.runner`): :func:`controllers` and :func:`scheduler` run in ``shoal server``;
:func:`node_components` is what every node runs — the node agent today, the service proxy and
cluster DNS once they exist — in ``shoal agent`` and in the all-in-one ``shoal server`` alike,
so a node component is added here once and runs in both.

Contract and invariants
-----------------------
* Every component builds its own :class:`~shoal.client.rest.ApiClient` with ``connect`` when it
  starts and closes it when it ends, and talks to the API over HTTPS only — no shared state
  with the API process, so each could run in a process of its own.
* Controllers and the scheduler are leader-elected through Lease objects in ``kube-system``
  (``shoal-controller-manager``, ``kube-scheduler``), so when several servers share one etcd
  exactly one of each is active.
* A component's ``run`` returns when ``stop`` is set; an exception ends the process (the
  runner stops the other components and re-raises it).
* Component packages are imported when a component starts, not when the catalogue is imported:
  ``shoal server`` turns ready before the controllers, the scheduler or the agent are loaded.

:func:`freeze_heap`, run when ``shoal server`` turns ready and again :data:`HEAP_SETTLE_SECONDS`
later (and that once by ``shoal agent``), keeps Python's full garbage collections short: measured
in the server during the pod-start benchmark, one took 30-56 ms before (a pause every request and
pod start in flight waits out), 7-12 ms once the heap was frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from shoal.client.rest import ApiClient
from shoal.runner import Component, FunctionComponent

if TYPE_CHECKING:
    from shoal.agent.config import AgentConfig

__all__ = ["HEAP_SETTLE_SECONDS", "SCHEDULER_LEASE", "Connect", "cluster_dns", "controllers", "freeze_heap",
           "kubeconfig_client", "node_agent", "node_components", "scheduler", "service_proxy"]

#: Builds the API client of one component (each component has its own).
Connect = Callable[[], ApiClient]

SCHEDULER_LEASE = "kube-scheduler"
#: Seconds after start-up (the components have started and imported what they use) before
#: :func:`freeze_heap`.
HEAP_SETTLE_SECONDS = 10.0


def freeze_heap(*, collect: bool = True) -> None:
    """Collect, then move every object alive now into the collector's permanent generation
    (``gc.freeze``): what start-up made (modules, OpenAPI schemas, the first cache fills) is
    not scanned by later full collections, which then walk only what changed since.

    ``collect=False`` only freezes (constant time): for the moment the server turns ready,
    when start-up has left no garbage to collect (measured: none among ~63,000 objects) and
    a full collection (~45 ms) would only delay the first requests."""
    if collect:
        gc.collect()
    gc.freeze()


def kubeconfig_client(kubeconfig: Path) -> Connect:
    """``connect`` for components of ``shoal server``: a client with the admin kubeconfig."""
    return lambda: ApiClient.from_kubeconfig(kubeconfig)


@contextlib.asynccontextmanager
async def _client(connect: Connect) -> AsyncIterator[ApiClient]:
    client = connect()
    try:
        yield client
    finally:
        await client.close()


def controllers(connect: Connect, cluster_cidr: str) -> Component:
    """The controller manager (leader-elected); nodes get their podCIDR from ``cluster_cidr``."""
    async def run(stop: asyncio.Event) -> None:
        from shoal.controllers.manager import ControllerManager

        async with _client(connect) as client:
            await ControllerManager(client, cluster_cidr=cluster_cidr).run(stop)

    return FunctionComponent("controllers", run)


def scheduler(connect: Connect) -> Component:
    """The scheduler, active while it holds the :data:`SCHEDULER_LEASE` Lease."""
    async def run(stop: asyncio.Event) -> None:
        from shoal.client.leaderelection import LeaseLeadership, server_identity
        from shoal.scheduler.scheduler import Scheduler

        async with _client(connect) as client:
            leadership = LeaseLeadership(client, SCHEDULER_LEASE, server_identity(client))
            await leadership.run_while_leader(stop, Scheduler(client).run)

    return FunctionComponent("scheduler", run)


def node_agent(config: AgentConfig, connect: Connect) -> Component:
    """The node agent (kubelet) for ``config``, with its runtime driver and kubelet API."""
    async def run(stop: asyncio.Event) -> None:
        from shoal.agent.agent import run_agent

        async with _client(connect) as client:
            await run_agent(config, client, stop)

    return FunctionComponent("agent", run)


def service_proxy(config: AgentConfig, connect: Connect) -> Component:
    """The node's service proxy (HAProxy), its files in the agent's data dir under ``proxy/``."""
    async def run(stop: asyncio.Event) -> None:
        from shoal.proxy.config import ProxyConfig
        from shoal.proxy.proxy import ServiceProxy

        proxy_config = ProxyConfig(node_name=config.node_name, run_dir=config.data_dir / "proxy",
                                   node_addresses=(config.node_ip, "127.0.0.1"), netns=config.netns)
        async with _client(connect) as client:
            await ServiceProxy(client, proxy_config).run(stop)

    return FunctionComponent("proxy", run)


def cluster_dns(config: AgentConfig, connect: Connect) -> Component:
    """The node's cluster DNS (:mod:`shoal.proxy.dns`) on ``config.dns_listen``."""
    async def run(stop: asyncio.Event) -> None:
        from shoal.proxy.dns import ClusterDns, DnsConfig

        listen = config.dns_listen or f"{config.cluster_dns[0] if config.cluster_dns else '10.43.0.10'}:53"
        dns_config = DnsConfig(listen=listen, domain=config.cluster_domain, resolv_conf=config.resolv_conf,
                               cluster_dns=config.cluster_dns, netns=config.netns)
        async with _client(connect) as client:
            await ClusterDns(client, dns_config).run(stop)

    return FunctionComponent("dns", run)


def node_components(config: AgentConfig, connect: Connect) -> list[Component]:
    """What every node runs, in ``shoal agent`` and in ``shoal server``: the node agent, the
    service proxy and cluster DNS."""
    return [node_agent(config, connect), service_proxy(config, connect), cluster_dns(config, connect)]

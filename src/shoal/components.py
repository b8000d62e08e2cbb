"""The components ``shoal server`` runs beside the API, each as an ordinary API client.

Every component gets its own :class:`~shoal.client.rest.ApiClient` built from the admin
kubeconfig and talks to the API over HTTPS only — no shared state with the API process, so
each could run in a process of its own.  Controllers and the scheduler are leader-elected
through Lease objects in ``kube-system`` (``shoal-controller-manager``, ``kube-scheduler``),
so when several servers share one etcd exactly one of each is active.  The node agent runs
on every server unless disabled.  Each ``run_*`` returns when ``stop`` is set; an exception
ends the server.

:func:`freeze_heap`, run when ``shoal server`` turns ready and again :data:`HEAP_SETTLE_SECONDS`
later (and that once by ``shoal agent``), keeps Python's full garbage collections short: measured in the server during
the pod-start benchmark, one took 30-56 ms before (a pause every request and pod start in
flight waits out), 7-12 ms once the heap was frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from shoal.client.rest import ApiClient

log = logging.getLogger(__name__)

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


def default_runtime() -> str:
    if shutil.which("podman"):
        return "podman"
    log.warning("podman is not installed: using the UNSAFE process runtime (no isolation)")
    return "process"


@contextlib.asynccontextmanager
async def _client(kubeconfig: Path) -> AsyncIterator[ApiClient]:
    client = ApiClient.from_kubeconfig(kubeconfig)
    try:
        yield client
    finally:
        await client.close()


async def run_controllers(kubeconfig: Path, stop: asyncio.Event, cluster_cidr: str) -> None:
    from shoal.controllers.manager import ControllerManager

    async with _client(kubeconfig) as client:
        await ControllerManager(client, cluster_cidr=cluster_cidr).run(stop)


async def run_scheduler(kubeconfig: Path, stop: asyncio.Event) -> None:
    from shoal.client.leaderelection import LeaseLeadership, server_identity
    from shoal.scheduler.scheduler import Scheduler

    async with _client(kubeconfig) as client:
        leadership = LeaseLeadership(client, SCHEDULER_LEASE, server_identity(client))
        await leadership.run_while_leader(stop, Scheduler(client).run)


async def run_node_agent(kubeconfig: Path, stop: asyncio.Event, *, node_name: str, data_dir: Path,
                         runtime: str, node_ip: str, kubelet_port: int, ca_pem: bytes) -> None:
    from shoal.agent.agent import run_agent

    async with _client(kubeconfig) as client:
        await run_agent(node_name=node_name or socket.gethostname(), data_dir=data_dir, stop=stop,
                        client=client, driver=runtime, node_ip=node_ip, kubelet_port=kubelet_port,
                        control_plane=True, ca_pem=ca_pem)

"""The node agent (Shoal's kubelet): composition and start-up order.

:class:`NodeAgent` wires the pieces for one :class:`~shoal.agent.config.AgentConfig` and runs
them until ``stop`` is set:

1. register the Node (:mod:`.node`) — retried until it works;
2. renew the node Lease (:mod:`.lease`) and write the Node status, in the background;
3. when the driver ``needs_pod_cidr`` (podman: the node's bridge network), wait for
   ``spec.podCIDR`` from the control plane and hand it to ``driver.configure_network``
   (retried with back-off); the Node is not Ready until then, and no pod is started before;
4. watch the pods bound to this node (an Informer with ``fieldSelector spec.nodeName=<node>``);
   every event makes the pod's worker (:mod:`.podworker`) sync it (:mod:`.sync`);
5. once the cache has synced, adopt what the runtime already runs: every pod uid found in the
   runtime (or with volume directories) gets a worker, which keeps containers of pods that
   still exist (no duplicates, restart counts continue) and removes the rest;
6. relist the runtime every ``relist_interval`` (kubelet's PLEG) and sync the pods whose
   containers changed state (a crash is noticed within about a second).

Stopping the agent leaves containers running: a restarted agent adopts them.
:func:`run_agent` builds the driver (:func:`shoal.agent.runtime.make_driver`), the kubelet API
and the agent from a config and an API client, for the node-agent component of ``shoal
server`` and ``shoal agent`` (:mod:`shoal.components`); it closes the driver, never the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shoal.agent import containers as ct
from shoal.agent import runtime
from shoal.agent.backoff import Backoff
from shoal.agent.config import AgentConfig
from shoal.agent.drain import EndpointDrain
from shoal.agent.lease import LeaseRenewer
from shoal.agent.lookup import make_pod_lookup
from shoal.agent.node import NodeManager
from shoal.agent.podworker import PodWorkers
from shoal.agent.probes import ProbeManager
from shoal.agent.resolvconf import PodDns
from shoal.agent.runtime.driver import RuntimeDriver, RuntimeDriverError
from shoal.agent.server import AgentServer
from shoal.agent.sync import PodSyncer
from shoal.agent.volumes import VolumeError, VolumeManager
from shoal.client import resources
from shoal.client.errors import ApiClientError
from shoal.client.events import EventRecorder
from shoal.client.informer import EventHandler, Informer, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.kube import objects
from shoal.kube.clock import Clock, WallClock, race_sleep
from shoal.kube.objects import Obj

__all__ = ["NodeAgent", "run_agent"]

log = logging.getLogger(__name__)


def _desired(pod: Obj) -> tuple[Obj, Obj]:
    """What the agent acts on: the spec and the metadata without bookkeeping fields."""
    meta = {k: v for k, v in (pod.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")}
    return pod.get("spec") or {}, meta


class NodeAgent:
    """The agent of one node (see the module docstring); ``clock`` is injected by tests."""

    def __init__(self, client: ApiClient, driver: RuntimeDriver, config: AgentConfig, *,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.driver = driver
        self.config = config
        node_name, node_ip = config.node_name, config.node_ip
        self.node_name = node_name
        self.data_dir = config.data_dir
        self.clock: Clock = clock or WallClock()
        self.node_ip = node_ip
        self.relist_interval = config.relist_interval
        #: The pod network waits for the podCIDR (read once: the driver's answer at start).
        self.network_required = driver.needs_pod_cidr
        self.node = NodeManager(client, driver, node_name=node_name, node_ip=node_ip,
                                kubelet_port=config.kubelet_port, data_dir=self.data_dir, clock=self.clock,
                                status_interval=config.status_interval, control_plane=config.control_plane,
                                labels=dict(config.labels), network_required=self.network_required)
        self.lease = LeaseRenewer(client, node_name, duration=config.lease_duration, clock=self.clock,
                                  node_uid=lambda: self.node.node_uid)
        self.recorder = EventRecorder(client, "kubelet", node_name,
                                      clock=lambda: datetime.fromtimestamp(self.clock.now(), UTC))
        self._events: asyncio.Queue[tuple[Obj, str, str, str, str]] = asyncio.Queue()
        self._event_writer: asyncio.Task[None] | None = None
        self.pods = Informer(client, resources.PODS, field_selector=f"spec.nodeName={node_name}")
        self.endpoint_drain = EndpointDrain(client)
        #: Every Service, for the pods' Service variables (kubelet's service lister).
        self.services = Informer(client, resources.SERVICES)
        self.pods.add_index("uid", lambda pod: [objects.uid(pod)])
        self.workers = PodWorkers(self._sync, self.clock,
                                  expected=(VolumeError, RuntimeDriverError, ApiClientError))
        self.probes = ProbeManager(driver, self.clock, on_change=self.workers.update, record=self._record)
        self.volumes = VolumeManager(self.data_dir, node_ip=node_ip)
        backoff_initial, backoff_max = config.backoff_initial, config.backoff_max
        starter = ct.ContainerStarter(driver, self.clock, self._record, node_ip=node_ip,
                                      image_backoff=Backoff(backoff_initial, backoff_max, self.clock),
                                      allocatable=lambda: self.node.allocatable,
                                      dns=PodDns(self.volumes.root, cluster_dns=config.cluster_dns,
                                                 cluster_domain=config.cluster_domain,
                                                 node_resolv_conf=config.resolv_conf))
        self.syncer = PodSyncer(client=client, driver=driver, clock=self.clock, probes=self.probes,
                                volumes=self.volumes, starter=starter, record=self._record, lookup=self.pod,
                                node_ip=node_ip, crash_backoff=Backoff(backoff_initial, backoff_max, self.clock),
                                resync_interval=config.resync_interval, drain=self._drain,
                                services=self.services.list)
        self._last_relist: dict[str, frozenset[tuple[str, str]]] = {}
        #: Set once pods are being synced (the node is registered and the pod cache is filled).
        self.started = asyncio.Event()

    @property
    def pod_cidr(self) -> str:
        return self.node.pod_cidr

    def pod(self, uid: str) -> Obj | None:
        """The cached pod with ``uid`` if it is bound to this node."""
        for pod in self.pods.by_index("uid", uid):
            if (pod.get("spec") or {}).get("nodeName") == self.node_name:
                return pod
        return None

    async def _drain(self, uid: str) -> None:
        waited, complete = await self.endpoint_drain.wait(uid)
        if waited > 0.001 or not complete:
            log.info("pod %s: endpoints %s in %.3fs before stopping its containers", uid,
                     "drained" if complete else "NOT drained (gave up)", waited)

    async def _sync(self, uid: str) -> Any:
        return await self.syncer.sync(uid)

    async def _record(self, pod: Obj, container: str, type_: str, reason: str, message: str) -> None:
        """Queue an Event about ``pod`` (or one of its containers); a background task writes
        them in order, so a pod start never waits for its Pulled/Created/Started events."""
        if not pod:
            return
        ref = {**pod, "kind": "Pod", "apiVersion": "v1"}
        path = ""
        if container:
            spec = pod.get("spec") or {}
            init = any(c.get("name") == container for c in spec.get("initContainers") or [])
            path = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
        self._events.put_nowait((ref, type_, reason, message, path))
        if self._event_writer is None or self._event_writer.done():
            self._event_writer = asyncio.get_running_loop().create_task(self._write_events(), name="pod-events")

    async def _write_events(self) -> None:
        while True:
            ref, type_, reason, message, path = await self._events.get()
            try:
                await self.recorder.record(ref, type_, reason, message, field_path=path)  # logs its own failures
            finally:
                self._events.task_done()

    async def _flush_events(self, within: float = 2.0) -> None:
        """Give queued events ``within`` seconds to be written, then stop the writer."""
        writer, self._event_writer = self._event_writer, None
        if writer is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._events.join(), within)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer

    def _on_pod(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") == self.node_name:
            self.workers.update(objects.uid(pod))

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        """Sync on changes of spec or metadata; status-only updates (mostly our own writes) are
        ignored, as kubelet's pod config source does: the periodic resync covers the rest."""
        if _desired(old) != _desired(new):
            self._on_pod(new)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the agent until ``stop`` is set (see the module docstring for the order)."""
        if not await self.node.register(stop):
            return
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self.lease.run(stop), name="node-lease")
                group.create_task(self.node.run(stop), name="node-status")
                if self.network_required:
                    cidr = await self.node.wait_pod_cidr(stop)
                    if not cidr:
                        return
                    await self._configure_network(cidr, stop)
                    if stop.is_set():
                        return
                self.pods.add_event_handler(EventHandler(
                    on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod))
                group.create_task(self.pods.run(stop), name="pod-informer")
                group.create_task(self.endpoint_drain.run(stop), name="endpoint-drain")
                group.create_task(self.services.run(stop), name="service-informer")
                if not await wait_for_sync([self.pods, self.services], stop):
                    return
                await self._adopt()
                self.started.set()
                group.create_task(self._relist_loop(stop), name="runtime-relist")
                await stop.wait()
        finally:
            await self.workers.close()
            await self.probes.close()
            await self._flush_events()

    async def _configure_network(self, cidr: str, stop: asyncio.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            try:
                await self.driver.configure_network(cidr)
                self.node.set_network_ready(True)
                log.info("node %s: pod network %s configured", self.node_name, cidr)
                return
            except RuntimeDriverError as exc:
                log.warning("node %s: configuring pod network %s failed (%s); retrying in %.1fs",
                            self.node_name, cidr, exc, delay)
            await race_sleep(self.clock, delay, stop.wait())
            delay = min(delay * 2, 30.0)

    async def _adopt(self) -> None:
        """Give a worker to every pod uid the runtime (or the volume dir) knows about."""
        uids = {s.pod_uid or s.labels.get(ct.LABEL_POD_UID, "") for s in await self.driver.list_sandboxes()}
        uids |= set(await asyncio.to_thread(self.volumes.known_pods))
        for uid in sorted(u for u in uids if u):
            self.workers.update(uid)
        log.info("node %s: adopted %d pod(s) from the runtime", self.node_name, len(uids - {""}))

    async def relist(self) -> None:
        """One runtime relist: sync every pod whose containers changed state since the last one."""
        snapshot: dict[str, set[tuple[str, str]]] = {}
        for container in await self.driver.list_containers():
            uid = container.labels.get(ct.LABEL_POD_UID, "")
            if uid:
                snapshot.setdefault(uid, set()).add((container.id, container.state.value))
        current = {uid: frozenset(states) for uid, states in snapshot.items()}
        for uid in set(current) | set(self._last_relist):
            if current.get(uid) != self._last_relist.get(uid):
                self.workers.update(uid)
        self._last_relist = current

    async def _relist_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.relist()
            except RuntimeDriverError as exc:
                log.warning("node %s: runtime relist failed: %s", self.node_name, exc)
            await race_sleep(self.clock, self.relist_interval, stop.wait())


async def run_agent(config: AgentConfig, client: ApiClient, stop: asyncio.Event, *,
                    on_start: Callable[[NodeAgent], None] | None = None, clock: Clock | None = None) -> None:
    """Build the driver and a :class:`NodeAgent` for ``config``; run it on ``client`` until ``stop``.

    ``on_start`` receives the agent before it runs.  With ``config.ca_pem`` (the cluster CA) the
    agent also serves its kubelet API (logs, exec) on ``node_ip:kubelet_port`` (0 = any free
    port; the Node then reports the bound one) to clients with a CA-signed certificate.  The
    driver is closed on return (its pods and containers keep running); ``client`` is the
    caller's."""
    await asyncio.to_thread(config.data_dir.mkdir, parents=True, exist_ok=True)
    driver = runtime.make_driver(config)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if config.ca_pem is not None:  # the kubelet API: logs and exec for the API server
                api = AgentServer(driver, pod_lookup=make_pod_lookup(driver), bind=config.node_ip,
                                  port=config.kubelet_port, ca_pem=config.ca_pem, cert_dir=config.data_dir / "tls")
                await stack.enter_async_context(api)
                config = dataclasses.replace(config, kubelet_port=api.port)
            agent = NodeAgent(client, driver, config, clock=clock)
            if on_start is not None:
                on_start(agent)
            await agent.run(stop)
    finally:
        await driver.close()

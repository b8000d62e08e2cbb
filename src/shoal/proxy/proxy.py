"""The service proxy of one node: Services and EndpointSlices from the API, HAProxy as the data
plane (Kubernetes' kube-proxy, with HAProxy instead of iptables).

``ServiceProxy(client, config).run(stop)`` watches Services and EndpointSlices, keeps one
:class:`~shoal.proxy.model.ServiceModel` per Service, and applies changes to HAProxy
(:mod:`shoal.proxy.haproxy`) as they arrive, without batching.

Contract and invariants
-----------------------
1. Level-triggered: informer handlers only mark a Service key dirty; the apply loop re-reads
   the caches for every dirty key, computes the model and diffs it with what HAProxy runs.
2. Endpoint changes (a pod ready, not ready, terminating, gone) go through the runtime API
   (:mod:`shoal.proxy.slots`), never a reload.  A change of structure (a Service or port
   added or removed, a new mode or affinity) reloads, which drops no connection.  Either way
   the configuration file is rewritten first, so it always holds the whole truth; a runtime
   command HAProxy refuses is logged and answered by a reload from that file.
3. ClusterIPs are on the loopback interface (:mod:`shoal.proxy.addresses`) before HAProxy is
   asked to listen on them, and taken off after it stopped listening.
4. After each applied batch the proxy's Lease (:mod:`shoal.client.proxystatus`) is brought to
   the highest EndpointSlice resourceVersion applied (one write in flight at a time, the latest
   value wins), and renewed every :data:`RENEW_SECONDS` otherwise: node agents wait for it
   before they stop a pod that is an endpoint ("drain before kill").
5. Metrics (:mod:`shoal.proxy.metrics`) on ``config.metrics_address``, read from HAProxy at
   each scrape.
6. UDP ports go through nftables DNAT (:mod:`shoal.proxy.udp`), replaced whole after every
   applied batch when they changed.  SCTP ports get a Warning Event on their Service, once
   per change.
7. If HAProxy exits, it is started again from the file, with a back-off; ``stop`` stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

from shoal.client import proxystatus, resources
from shoal.client.errors import AlreadyExistsError, ApiClientError, NotFoundError
from shoal.client.events import WARNING, EventRecorder
from shoal.client.informer import EventHandler, Informer, object_key, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.kube.files import atomic_write
from shoal.kube.objects import Obj, revision, slice_service_key
from shoal.kube.times import format_micro
from shoal.proxy.addresses import LoopbackAddresses
from shoal.proxy.config import ProxyConfig
from shoal.proxy.haproxy import HAProxy, HAProxyError
from shoal.proxy.haproxy_cfg import render, render_service
from shoal.proxy.metrics import ProxyCollector
from shoal.proxy.model import ServiceModel, service_model
from shoal.proxy.slots import SlotTable
from shoal.proxy.udp import NftError, NftUdp

__all__ = ["RENEW_SECONDS", "ServiceProxy"]

log = logging.getLogger(__name__)

RENEW_SECONDS = 10.0
RETRY_SECONDS = 5.0
LEASE_SECONDS = 30


class ServiceProxy:
    def __init__(self, client: ApiClient, config: ProxyConfig, *, haproxy: HAProxy | None = None,
                 addresses: LoopbackAddresses | None = None) -> None:
        self.client = client
        self.config = config
        self.haproxy = haproxy or HAProxy(config.haproxy_binary, config.run_dir, netns=config.netns)
        self.addresses = addresses if addresses is not None else (
            LoopbackAddresses(str(config.run_dir), config.netns) if config.manage_addresses else None)
        self.events = EventRecorder(client, "service-proxy", config.node_name)
        self.udp = NftUdp(str(config.run_dir), config.netns)
        self.services = Informer(client, resources.SERVICES)
        self.slices = Informer(client, resources.ENDPOINTSLICES)
        self.slices.add_index("service", slice_service_key)
        self.services.add_event_handler(EventHandler(
            on_add=self._on_service, on_update=lambda _o, n: self._on_service(n), on_delete=self._on_service))
        self.slices.add_event_handler(EventHandler(
            on_add=self._on_slice, on_update=lambda _o, n: self._on_slice(n), on_delete=self._on_slice))
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._seen_revision = 0
        #: The highest EndpointSlice resourceVersion in effect in HAProxy.
        self.synced_revision = 0
        self._acked = asyncio.Event()
        self.models: dict[str, ServiceModel] = {}
        self._sections: dict[str, str] = {}
        self.slots: dict[str, SlotTable] = {}
        #: Applied batches, runtime-API batches and reloads (for tests and metrics).
        self.batches = 0
        self.runtime_updates = 0
        self._pending_since: float | None = None
        self.registry = CollectorRegistry()
        self.metrics = ProxyCollector(self.haproxy.admin_socket, self._servers,
                                      lambda: (self.haproxy.reloads, self.runtime_updates), self.registry)
        self._metrics_server: WSGIServer | None = None
        #: Where /metrics is served (host, port), once running.
        self.metrics_bound: tuple[str, int] | None = None

    def _on_service(self, service: Obj) -> None:
        self._mark(object_key(service))

    def _on_slice(self, piece: Obj) -> None:
        self._seen_revision = max(self._seen_revision, revision(piece))
        for key in slice_service_key(piece):
            self._mark(key)

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        self._wake.set()

    def _servers(self, backend: str) -> Mapping[str, tuple[str, str]]:
        """Slot name → (``ip:port``, pod name) of ``backend``, for the metrics."""
        table = self.slots.get(backend)
        if table is None:
            return {}
        namespace, service = backend.split(".")[:2]
        pods = {str(a): str((e.get("targetRef") or {}).get("name") or "")
                for piece in self.slices.by_index("service", f"{namespace}/{service}")
                for e in piece.get("endpoints") or [] for a in (e.get("addresses") or [])[:1]}
        return {s.name: (f"{s.ip}:{s.port}", pods.get(s.ip, "")) for s in table.servers() if s.state != "maint"}

    # -- computing ---------------------------------------------------------------------------

    def _compute(self, key: str) -> ServiceModel:
        service = self.services.get(key)
        if service is None:
            return ServiceModel()
        return service_model(service, self.slices.by_index("service", key), node_name=self.config.node_name,
                             node_addresses=self.config.node_addresses)

    def _update(self, keys: Iterable[str]) -> tuple[bool, list[str], list[tuple[str, ServiceModel]]]:
        """Bring the models, slot tables and sections to the caches for ``keys``; whether a
        reload is needed, the runtime commands otherwise, and the Services whose warnings
        changed."""
        reload, commands, warn = False, [], []
        for key in keys:
            old, new = self.models.get(key, ServiceModel()), self._compute(key)
            if new.structure != old.structure:
                reload = True
                for backend in old.backends:
                    self.slots.pop(backend.name, None)
            for backend in new.backends:
                table = self.slots.get(backend.name)
                if table is None:
                    self.slots[backend.name] = SlotTable(backend.name, backend.endpoints)
                else:
                    commands += table.update(backend.endpoints)
            if new.warnings and new.warnings != old.warnings:
                warn.append((key, new))
            if new.frontends or new.backends or new.udp:
                self.models[key] = new
                self._sections[key] = render_service(new.frontends, new.backends, self.slots)
            else:
                self.models.pop(key, None)
                self._sections.pop(key, None)
        return reload, commands, warn

    def config_text(self) -> str:
        return render(self.haproxy.admin_socket, self.haproxy.alive_socket,
                      (self._sections[k] for k in sorted(self._sections)))

    def wanted_addresses(self) -> set[str]:
        return {addr for model in self.models.values() for addr in model.addresses}

    # -- applying ----------------------------------------------------------------------------

    async def _apply(self) -> None:
        keys, self._dirty = self._dirty, set()
        since, self._pending_since = self._pending_since, None
        revision = self._seen_revision
        reload, commands, warn = self._update(keys)
        text = self.config_text()
        if reload:
            await self._sync_addresses(add_only=True)
            try:
                await self.haproxy.reload(text)
            except (HAProxyError, OSError) as exc:
                # The running worker keeps serving the previous file; try again shortly.
                log.error("service proxy: reload failed, retrying in %.0fs: %s", RETRY_SECONDS, exc)
                self._retry(keys)
                return
            await self._sync_addresses(add_only=False)
        else:
            atomic_write(self.haproxy.config_path, text.encode(), fsync=False)
            try:
                await self.haproxy.command(commands)
                self.runtime_updates += bool(commands)
            except (HAProxyError, OSError) as exc:
                log.error("service proxy: %s; reloading from the configuration file", exc)
                try:
                    await self.haproxy.reload(text)
                except (HAProxyError, OSError) as again:
                    log.error("service proxy: reload failed, retrying in %.0fs: %s", RETRY_SECONDS, again)
                    self._retry(keys)
                    return
        await self._apply_udp()
        self.batches += 1
        if since is not None:
            self.metrics.sync_seconds.observe(time.monotonic() - since)
        self.synced_revision = max(self.synced_revision, revision)
        self._acked.set()
        await self._warn(warn)

    async def _warn(self, warn: list[tuple[str, ServiceModel]]) -> None:
        for key, model in warn:
            service = self.services.get(key)
            if service is not None:
                for message in model.warnings:
                    await self.events.record(service, WARNING, "UnsupportedProtocol", message)

    async def _apply_udp(self) -> None:
        """UDP ports through nftables (:mod:`shoal.proxy.udp`); a failure is logged and the
        next change tries again (the table is replaced whole each time)."""
        try:
            await self.udp.apply([rule for model in self.models.values() for rule in model.udp])
        except (NftError, OSError) as exc:
            log.error("service proxy: UDP Service ports not applied: %s", exc)

    def _retry(self, keys: Iterable[str]) -> None:
        """Forget what ``keys`` were applied as, so the next pass recomputes them from scratch."""
        keys = set(keys)
        for key in keys:
            for backend in self.models.pop(key, ServiceModel()).backends:
                self.slots.pop(backend.name, None)
            self._sections.pop(key, None)

        def again() -> None:
            for key in keys:
                self._mark(key)
        asyncio.get_running_loop().call_later(RETRY_SECONDS, again)

    async def _sync_addresses(self, *, add_only: bool) -> None:
        if self.addresses is None:
            return
        wanted = self.wanted_addresses()
        if add_only:
            wanted |= await asyncio.to_thread(self.addresses.current)
        await asyncio.to_thread(self.addresses.sync, wanted)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self.services.run(stop), name="proxy-services")
            group.create_task(self.slices.run(stop), name="proxy-slices")
            if not await wait_for_sync([self.services, self.slices], stop):
                return
            _, _, warn = self._update(list(self._dirty))
            self._dirty.clear()
            self.synced_revision = self._seen_revision
            await self._sync_addresses(add_only=True)
            await self.haproxy.start(self.config_text())
            await self._sync_addresses(add_only=False)
            await self._apply_udp()
            log.info("service proxy: HAProxy serving %d Services", len(self.models))
            await self._warn(warn)
            group.create_task(self._ack_loop(stop), name="proxy-ack")
            self._serve_metrics()
            try:
                await self._loop(stop)
            finally:
                if self._metrics_server is not None:
                    await asyncio.to_thread(self._metrics_server.shutdown)
                    self._metrics_server.server_close()
                await self.haproxy.stop()
                try:
                    await self.udp.clear()
                except (NftError, OSError) as exc:
                    log.error("service proxy: could not remove its UDP rules: %s", exc)
                if self.addresses is not None:
                    await asyncio.to_thread(self.addresses.sync, ())

    def _serve_metrics(self) -> None:
        if not self.config.metrics_address:
            return
        host, _, port = self.config.metrics_address.rpartition(":")
        server, _thread = start_http_server(int(port), host, registry=self.registry)
        self._metrics_server = server
        self.metrics_bound = (host, int(server.server_address[1]))

    async def _loop(self, stop: asyncio.Event) -> None:
        stopping = asyncio.ensure_future(stop.wait())
        exited = asyncio.ensure_future(self.haproxy.wait())
        backoff = 0.5
        try:
            while not stop.is_set():
                woken = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({stopping, exited, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if stop.is_set():
                    return
                if exited.done():
                    log.error("service proxy: HAProxy exited (%s); starting it again in %.1fs",
                              exited.result(), backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    await self.haproxy.start(self.config_text())
                    exited = asyncio.ensure_future(self.haproxy.wait())
                    continue
                self._wake.clear()
                await self._apply()
        finally:
            stopping.cancel()
            exited.cancel()

    # -- the proxy's Lease (invariant 4) ------------------------------------------------------

    async def _ack_loop(self, stop: asyncio.Event) -> None:
        written = -1
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._acked.wait(), RENEW_SECONDS if written >= 0 else 0.01)
            self._acked.clear()
            if stop.is_set():
                return
            revision = self.synced_revision
            try:
                await self._write_lease(revision)
                written = revision
            except ApiClientError as exc:
                log.warning("service proxy: could not write its Lease: %s", exc)
                await asyncio.sleep(0.5)
                self._acked.set()

    async def _write_lease(self, revision: int) -> None:
        name = proxystatus.proxy_lease_name(self.config.node_name)
        body: Obj = {"metadata": {"labels": {proxystatus.PROXY_LEASE_LABEL: proxystatus.PROXY_LEASE_LABEL_VALUE},
                                  "annotations": {proxystatus.SYNCED_REVISION: str(revision)}},
                     "spec": {"holderIdentity": self.config.node_name, "leaseDurationSeconds": LEASE_SECONDS,
                              "renewTime": format_micro(time.time())}}
        try:
            await self.client.patch(resources.LEASES, name, body, proxystatus.PROXY_LEASE_NAMESPACE)
        except NotFoundError:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": proxystatus.PROXY_LEASE_NAMESPACE, **body["metadata"]},
                     "spec": body["spec"]}
            with contextlib.suppress(AlreadyExistsError):
                await self.client.create(resources.LEASES, lease)

"""``shoal server``: the all-in-one control plane process (k3s style, without globals).

Start-up order, each step gated on the one before (STYLE.md §5, the k3s ordering):

1. data dir (0700), the store (``sqlite`` file in the data dir, or etcd endpoints);
2. security material: cluster CA + serving certificate, admin token, the admin's client
   certificate (``tls/client-admin.crt``: CN ``shoal-admin``, O ``system:masters``, the token's
   user and groups), secret encryption key;
3. the HTTPS API server (uvicorn) on ``bind:port``; the kinds' registry, discovery, OpenAPI;
   authentication by client certificate first, then bearer token (:mod:`shoal.api.authn`);
4. bootstrap objects (namespaces default, kube-system, kube-public, kube-node-lease; the
   Services ``default/kubernetes`` on 10.43.0.1:443 - its Endpoints and EndpointSlice are the
   ``kubernetes-service`` controller's, :mod:`shoal.controllers.kubernetes_service` - and
   ``kube-system/kube-dns`` on 10.43.0.10, served by every node's DNS, :mod:`shoal.proxy.dns`);
5. ``DIR/kubeconfig.yaml`` with the admin credentials (client certificate and token), then
   ``/readyz`` turns 200;
6. the components, through the component runner (:mod:`shoal.runner`): ``api`` (a watch on
   the HTTP server: it ending on its own is a crash), the store compactor (keeps
   ``--compact-interval`` seconds of history), then those of the catalogue
   (:mod:`shoal.components`) unless disabled with ``--disable``: the controllers and the
   scheduler (leader-elected) and the node's components — the node agent with its runtime
   (podman, else the unsafe process runtime).  Each talks to the API over HTTPS like any
   other client.

A start with nothing to change writes nothing: every file of steps 1-5 is loaded and kept as
it is unless missing or due for renewal, the kubeconfig is rewritten only when its bytes
differ, and bootstrap namespaces that exist are read, not created again.  So after a crash
on a full disk the server starts again and serves reads; writes get 503 naming the cause
(from the store) until space returns.

A crash in any component stops the others and the process exits non-zero.  SIGINT/SIGTERM
(the runner's handlers, not uvicorn's) stop the components first — they release their leases
through the API — and the HTTP server after them; a second signal stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from shoal import components, runner
from shoal.agent.config import AgentConfig
from shoal.api import connlimits, serving, wsprotocol
from shoal.api.app import ApiServer
from shoal.api.authn import Authenticator, TokenAuthentication, UnionAuthentication, X509Authentication
from shoal.api.storage import ObjectStorage
from shoal.api.writes import WriteContext
from shoal.client.rest import ApiClient
from shoal.client.systemservices import kube_dns_service, kubernetes_service
from shoal.controllers.system_namespaces import SYSTEM_NAMESPACES
from shoal.kube import errors
from shoal.resources.kinds import build_registry
from shoal.security.encryption import SecretBox
from shoal.security.kubeconfig import write_kubeconfig
from shoal.security.pki import ClientCertificate, ensure_client_cert, ensure_pki
from shoal.security.tokens import ADMIN_GROUPS, ADMIN_USER, TokenAuthenticator, ensure_admin_token
from shoal.security.user import APISERVER
from shoal.store import open_store
from shoal.store.compactor import DEFAULT_INTERVAL, run_compactor
from shoal.store.interface import Store

log = logging.getLogger(__name__)

#: The namespaces made at start (the system-namespaces controller keeps them there).
BOOTSTRAP_NAMESPACES = SYSTEM_NAMESPACES
COMPONENTS = frozenset({"agent", "dns", "proxy", "controllers", "scheduler"})
#: ``<data_dir>/tls/<ADMIN_CERT>.crt`` and ``.key``: the admin's client certificate (k3s' name).
ADMIN_CERT = "client-admin"


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/shoal")
    return Path.home() / ".local" / "share" / "shoal"


@dataclass
class ServerConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    bind: str = "127.0.0.1"
    port: int = 6443
    datastore: str = "sqlite"
    disable: frozenset[str] = frozenset()
    #: Seconds of store history kept for watches and paginated lists (Kubernetes: 300).
    compact_interval: float = DEFAULT_INTERVAL
    #: The node agent's node name (default: the host name), runtime ("podman" | "process",
    #: default podman when installed) and kubelet API port (0 = any free port).
    node_name: str = ""
    runtime: str = ""
    kubelet_port: int = 10250
    #: Pod addresses: each node gets a /24 of this range.
    cluster_cidr: str = "10.42.0.0/16"
    #: Timeouts and connection caps of the HTTPS API (:mod:`shoal.api.serving`).
    connection_limits: connlimits.ConnectionLimits = field(default_factory=connlimits.ConnectionLimits)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
        return f"https://{host}:{self.port}"


def authentication(data_dir: Path) -> Authenticator:
    """The API's authentication: the verified client certificate first, then bearer tokens."""
    return UnionAuthentication(X509Authentication(), TokenAuthentication(TokenAuthenticator(data_dir / "tokens")))


class Server:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.started = asyncio.Event()

    async def run(self) -> None:
        began = time.perf_counter()
        cfg = self.config
        cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = open_store(cfg.datastore, cfg.data_dir)
        await store.start()
        try:
            await self._serve(store, began)
        finally:
            await store.close()

    async def _serve(self, store: Store, began: float) -> None:
        cfg = self.config
        box = SecretBox.load_or_create(cfg.data_dir)
        ips = [cfg.bind] if cfg.bind not in ("0.0.0.0", "::") else []
        pki = ensure_pki(cfg.data_dir, [socket.gethostname()], ips)
        token = ensure_admin_token(cfg.data_dir)
        admin_cert = ensure_client_cert(pki, ADMIN_CERT, ADMIN_USER, ADMIN_GROUPS)
        authenticator = authentication(cfg.data_dir)
        registry = build_registry()
        storage = ObjectStorage(store, box)
        api = ApiServer(storage, registry, authenticator, f"{cfg.bind}:{cfg.port}", data_dir=cfg.data_dir)
        uv_config = uvicorn.Config(api, host=cfg.bind, port=cfg.port, lifespan="off", log_level="warning",
                                   timeout_graceful_shutdown=2, access_log=False, ws=wsprotocol.WebSocketProtocol)
        http = _HttpServer(uv_config, pki.ssl_context(), cfg.connection_limits)
        stop = asyncio.Event()
        with runner.stop_on_signals(stop):
            serving = asyncio.create_task(http.serve(), name="api-server")
            try:
                while not http.started:
                    if serving.done():
                        await serving  # surfaces the bind error
                        raise RuntimeError("API server stopped during start-up")
                    await asyncio.sleep(0.005)
                await self._bootstrap(api)
                if write_kubeconfig(cfg.data_dir / "kubeconfig.yaml", cfg.url, pki.ca_pem, token,
                                    client_cert=(admin_cert.cert_pem, admin_cert.key_pem)):
                    log.info("wrote %s", cfg.data_dir / "kubeconfig.yaml")
                api.ready = True
                self.started.set()
                components.freeze_heap(collect=False)
                asyncio.get_running_loop().call_later(components.HEAP_SETTLE_SECONDS, components.freeze_heap)
                log.warning("shoal server ready on %s in %.0f ms (kubeconfig: %s)", cfg.url,
                            (time.perf_counter() - began) * 1000, cfg.data_dir / "kubeconfig.yaml")

                async def compact(stop: asyncio.Event) -> None:
                    await runner.cancel_on_stop(run_compactor(storage.store, cfg.compact_interval), stop)

                await runner.run_components(
                    [runner.FunctionComponent("api", functools.partial(_watch_http, serving)),
                     runner.FunctionComponent("compactor", compact),
                     *self._components(pki.ca_pem, token, admin_cert)],
                    stop, disable=cfg.disable)
            finally:
                # Last: the components have stopped (or were cancelled after the runner's grace).
                http.should_exit = True
                await asyncio.wait({serving})
            serving.result()  # a failure of the HTTP server while it stopped

    def _components(self, ca_pem: bytes, token: str, cert: ClientCertificate) -> list[runner.Component]:
        """The catalogue's components for this server (the runner skips the disabled ones).

        Each connects with the admin credentials of the kubeconfig, read from their files in
        ``tls/`` (the kubeconfig's inline certificate would need temporary files per client)."""
        cfg = self.config

        def connect() -> ApiClient:
            return ApiClient(cfg.url, token, ca_pem=ca_pem, cert_file=cert.cert_path, key_file=cert.key_path)

        node = AgentConfig(node_name=cfg.node_name or socket.gethostname(), data_dir=cfg.data_dir / "agent",
                           runtime=cfg.runtime, node_ip=cfg.bind if cfg.bind not in ("0.0.0.0", "::") else "127.0.0.1",
                           kubelet_port=cfg.kubelet_port, control_plane=True, ca_pem=ca_pem)
        return [components.controllers(connect, cfg.cluster_cidr), components.scheduler(connect),
                *components.node_components(node, connect)]

    async def _bootstrap(self, api: ApiServer) -> None:
        ctx = WriteContext(user=APISERVER, field_manager="shoal-apiserver")
        for name in BOOTSTRAP_NAMESPACES:
            await _ensure(api, ctx, "namespaces", {"metadata": {"name": name}})
        for service in (kubernetes_service(self.config.port), kube_dns_service()):
            await _ensure(api, ctx, "services", service)


async def _ensure(api: ApiServer, ctx: WriteContext, plural: str, obj: dict[str, Any]) -> None:
    """Create the core/v1 ``obj`` unless it exists: an existing one is read, not written (the
    disk may be full), and one created meanwhile is fine.  The bootstrap Services:
    ``default/kubernetes`` exists before the first pod starts, for the pods'
    ``KUBERNETES_SERVICE_*`` variables; the ``kubernetes-service`` controller keeps it, its
    endpoints and ``kube-system/kube-dns`` afterwards."""
    kind = api.registry.lookup("", "v1", plural)
    assert kind is not None
    namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    try:
        await api.storage.get(kind, namespace, name)
        return
    except errors.ApiError as exc:
        if exc.code != 404:
            raise
    try:
        await api.handlers.writer.create(kind, namespace, obj, ctx)
    except errors.ApiError as exc:
        if exc.reason != "AlreadyExists":
            raise


class HttpServerExitedError(RuntimeError):
    """uvicorn returned while the server was meant to run."""


async def _watch_http(serving: asyncio.Task[None], stop: asyncio.Event) -> None:
    """The ``api`` component: returns on ``stop``; the HTTP server ending before is a crash."""
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not stop.is_set():
        if not serving.cancelled():
            serving.result()  # raises what ended it, if anything
        raise HttpServerExitedError("the HTTP API server stopped on its own")


class _HttpServer(serving.HardenedServer):
    """uvicorn without its own signal handlers: the runner's (:func:`shoal.runner.stop_on_signals`)
    stop the components first, and the server then stops uvicorn with ``should_exit``."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

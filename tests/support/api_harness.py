"""An in-process API server for fast tests: the real ApiServer on a real SQLite store.

:class:`ApiHarness` builds the API exactly as ``shoal server`` does (:mod:`shoal.server`):
a :class:`~shoal.store.sqlite.SqliteStore` in a temporary directory, the
:class:`~shoal.api.storage.ObjectStorage` with a real :class:`~shoal.security.encryption.SecretBox`,
the kinds' registry, the server's authentication (:func:`shoal.server.authentication`: client
certificate, then bearer token) with a freshly made admin token, and the
bootstrap namespaces (``default``, ``kube-system``, ...).  No TLS, no subprocess, no mocks.

Two ways in:

* :attr:`ApiHarness.http` - an ``httpx.AsyncClient`` calling the ASGI app directly
  (``httpx.ASGITransport``, no socket), with the admin token: for API tests that look at
  status codes, ``Status`` bodies and headers.  It buffers whole responses, so it cannot watch.
* :meth:`ApiHarness.with_scope_state` - the same with entries added to every request's
  ``scope["state"]``, as the TLS layer adds the verified client certificate there.
* :meth:`ApiHarness.client` - a real :class:`~shoal.client.rest.ApiClient` (its own HTTP/1.1
  transport) on the same app served by uvicorn on ``127.0.0.1``, plain HTTP, on a port the
  kernel picks, inside the test's event loop.  Controllers and informers use this one (it
  watches).  The server starts on the first call.

Direct access for assertions that must not go through HTTP: :attr:`ApiHarness.storage`
(objects as stored), :attr:`ApiHarness.writer` (the write pipeline) and
:meth:`ApiHarness.revision` (the store's current revision: a write that was refused must
not move it).

Controller tests drive ``reconcile(key)`` themselves; between passes,
:meth:`ApiHarness.caught_up` waits (on informer events, not on a timer) until the given
informers' caches hold exactly what the store holds, so the next pass sees every write of
the previous one.  :func:`informers_running` runs an
:class:`~shoal.client.informer.InformerFactory` for the duration of a block.

Start-up is a few milliseconds; :meth:`ApiHarness.close` (or the ``async with`` exit) stops the
HTTP server, closes every client and the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from shoal.api.admission import AdmissionPlugin
from shoal.api.app import ApiServer
from shoal.api.audit import AuditSink
from shoal.api.authz import Authorizer
from shoal.api.storage import ObjectStorage
from shoal.api.writes import WriteContext, Writer
from shoal.client.informer import EventHandler, Informer, InformerFactory, object_key, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.kube import errors
from shoal.kube.objects import Obj
from shoal.resources.kinds import build_registry
from shoal.resources.registry import Registry, ResourceKind
from shoal.security.encryption import SecretBox
from shoal.security.tokens import ensure_admin_token
from shoal.security.user import APISERVER, UserInfo, authenticated
from shoal.server import BOOTSTRAP_NAMESPACES, authentication
from shoal.store.sqlite import SqliteStore

__all__ = ["TEST_USER", "USERS", "ApiHarness", "informers_running", "ok", "status_of"]

#: The user of writes that tests make directly through :attr:`ApiHarness.writer`.
TEST_USER = authenticated(UserInfo("test"), "token")

#: How long :meth:`ApiHarness.caught_up` waits for informers before failing the test.
CATCH_UP_TIMEOUT = 5.0

_registry: Registry | None = None


def _shared_registry() -> Registry:
    """The kinds' registry is immutable after it is built: build it once per test session."""
    global _registry
    if _registry is None:
        _registry = build_registry()
    return _registry


class _HttpServer:
    """uvicorn serving one ASGI app on an already bound socket, without uvicorn's 0.1 s tick loop."""

    def __init__(self, app: ApiServer) -> None:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and
        # without it every answer waits ~40 ms for a delayed ACK (uvicorn writes head and body apart).
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)

    async def start(self) -> None:
        await self.server.startup(sockets=[self.sock])
        await self.server.on_tick(0)  # the Date header

    async def stop(self) -> None:
        state = self.server.server_state
        for listener in self.server.servers:
            listener.close()
        for connection in list(state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after their answer
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while state.connections and loop.time() < deadline:  # noqa: ASYNC110 - uvicorn has no event for it
            await asyncio.sleep(0.001)
        tasks = list(state.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for connection in list(state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for listener in self.server.servers:
            await listener.wait_closed()
        self.sock.close()


#: Users besides the admin in every harness's static token file: (token, uid, groups).
USERS: dict[str, tuple[str, str, str]] = {"alice": ("alice-token", "uid-alice", "team-a,devs"),
                                          "bob": ("bob-token", "uid-bob", "")}


class ApiHarness:
    """See the module docstring.  Build with :meth:`start` (or ``async with ApiHarness(dir)``).

    ``authorizer``, ``audit`` and ``admission`` (a callable ``(storage, registry) -> plugin``)
    replace the API server's pipeline stages, for tests of the request pipeline."""

    def __init__(self, data_dir: Path, *, authorizer: Authorizer | None = None, audit: AuditSink | None = None,
                 admission: Callable[[ObjectStorage, Registry], AdmissionPlugin] | None = None) -> None:
        self.data_dir = data_dir
        self.options = {"authorizer": authorizer, "audit": audit}
        self.admission = admission
        self.tokens: dict[str, str] = {name: token for name, (token, _, _) in USERS.items()}
        self.store = SqliteStore(data_dir / "state.db")
        self.registry = _shared_registry()
        self.token = ""
        self._http: httpx.AsyncClient | None = None
        self._server: _HttpServer | None = None
        self._clients: list[ApiClient] = []
        self._watched: dict[int, asyncio.Event] = {}
        self._api: ApiServer | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> ApiHarness:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.store.start()
        try:
            self.token = self.tokens["admin"] = ensure_admin_token(self.data_dir)
            known = self.token_file.read_text()
            with self.token_file.open("a") as out:
                for name, (token, uid, groups) in USERS.items():
                    if token in known:  # the data dir is opened again
                        continue
                    out.write(f'{token},{name},{uid},"{groups}"\n' if groups else f"{token},{name},{uid}\n")
            storage = ObjectStorage(self.store, SecretBox.load_or_create(self.data_dir))
            options: dict[str, Any] = {k: v for k, v in self.options.items() if v is not None}
            if self.admission is not None:
                options["admission"] = self.admission(storage, self.registry)
            self._api = ApiServer(storage, self.registry, authentication(self.data_dir), "127.0.0.1:0", **options)
            await self._bootstrap()
            self._api.ready = True
            self._http = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self._api), base_url="http://shoal.test",
                headers={"Authorization": f"Bearer {self.token}"})
        except BaseException:
            await self.store.close()
            raise
        return self

    async def _bootstrap(self) -> None:
        kind = self.kind("namespaces")
        ctx = WriteContext(user=APISERVER, field_manager="shoal-apiserver")
        for name in BOOTSTRAP_NAMESPACES:
            try:
                await self.writer.create(kind, "", {"metadata": {"name": name}}, ctx)
            except errors.ApiError as exc:
                if exc.reason != "AlreadyExists":
                    raise

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients.clear()
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.store.close()

    async def __aenter__(self) -> ApiHarness:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- access ----------------------------------------------------------------------------

    @property
    def api(self) -> ApiServer:
        assert self._api is not None, "ApiHarness.start() was not called"
        return self._api

    @property
    def token_file(self) -> Path:
        return self.data_dir / "tokens"

    def as_user(self, user: str | None = "alice") -> httpx.AsyncClient:
        """An httpx client on the ASGI app with ``user``'s token (``None``: no credentials)."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.api), base_url="https://shoal.test",
                                 headers=headers)

    def with_scope_state(self, state: dict[str, Any], user: str | None = None) -> httpx.AsyncClient:
        """An httpx client on the ASGI app whose requests carry ``state`` in ``scope["state"]``,
        as the TLS layer fills it per connection (e.g. the verified client certificate under
        :data:`shoal.api.authn.PEERCERT_STATE_KEY`); ``user``'s token too, if given."""
        api = self.api

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await api({**scope, "state": {**scope.get("state", {}), **state}}, receive, send)

        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://shoal.test",
                                 headers=headers)

    @property
    def storage(self) -> ObjectStorage:
        return self.api.storage

    @property
    def writer(self) -> Writer:
        return self.api.handlers.writer

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "ApiHarness.start() was not called"
        return self._http

    def kind(self, plural: str, group: str = "", version: str = "v1") -> ResourceKind:
        """The registry's kind for ``plural`` (``group``/``version`` for non-core kinds)."""
        found = self.registry.lookup(group, version, plural)
        assert found is not None, f"no kind {group}/{version} {plural}"
        return found

    async def revision(self) -> int:
        """The store's current revision."""
        return await self.storage.current_revision()

    async def stored(self, kind: ResourceKind, namespace: str, name: str) -> Obj | None:
        """The object as the store holds it now, or ``None``."""
        try:
            return await self.storage.get(kind, namespace, name)
        except errors.ApiError as exc:
            if exc.code == 404:
                return None
            raise

    async def client(self, user_agent: str = "shoal-test") -> ApiClient:
        """A new real :class:`ApiClient` on the in-process server (started on first use)."""
        if self._server is None:
            server = _HttpServer(self.api)
            await server.start()
            self._server = server
        client = ApiClient(f"http://127.0.0.1:{self._server.port}", self.token, user_agent=user_agent)
        self._clients.append(client)
        return client

    async def create_namespace(self, name: str) -> Obj:
        ctx = WriteContext(user=TEST_USER, field_manager="test")
        return await self.writer.create(self.kind("namespaces"), "", {"metadata": {"name": name}}, ctx)

    # -- informers -------------------------------------------------------------------------

    def _changed(self, informer: Informer) -> asyncio.Event:
        """An event set after every change the informer applies (one handler per informer)."""
        event = self._watched.get(id(informer))
        if event is None:
            event = self._watched[id(informer)] = asyncio.Event()
            flag = event
            informer.add_event_handler(EventHandler(lambda _o: flag.set(), lambda _o, _n: flag.set(),
                                                    lambda _o: flag.set()))
        return event

    async def _truth(self, informer: Informer) -> dict[str, str]:
        ref = informer.ref
        kind = self.kind(ref.plural, ref.group, ref.version)
        page = await self.storage.list(kind, informer.namespace or "")
        return {object_key(obj): str(obj["metadata"]["resourceVersion"]) for obj in page.items}

    async def caught_up(self, *informers: Informer, within: float = CATCH_UP_TIMEOUT) -> None:
        """Wait until each informer's cache holds exactly the store's objects and versions.

        Only for informers without label or field selectors.  Fails (AssertionError) after
        ``within`` seconds, naming the informer and the difference."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for informer in informers:
            assert informer.label_selector is None and informer.field_selector is None
            changed = self._changed(informer)
            while True:
                changed.clear()
                truth = await self._truth(informer)
                cached = {object_key(obj): str((obj.get("metadata") or {}).get("resourceVersion", ""))
                          for obj in informer.list()}
                if informer.has_synced and cached == truth:
                    break
                left = deadline - loop.time()
                if left <= 0:
                    raise AssertionError(
                        f"informer {informer.ref.resource} did not catch up within {within}s: "
                        f"cache {cached}, store {truth}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, 0.05))


@contextlib.asynccontextmanager
async def informers_running(factory: InformerFactory, *informers: Informer) -> AsyncIterator[InformerFactory]:
    """Run ``factory``'s informers until the block ends; ``informers`` have synced on entry."""
    stop = asyncio.Event()
    task = asyncio.create_task(factory.run(stop), name="test-informers")
    try:
        synced = asyncio.create_task(wait_for_sync(informers, stop))
        try:
            done, _ = await asyncio.wait((task, synced), timeout=CATCH_UP_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not synced.done():
                synced.cancel()
                await asyncio.wait((synced,))
        if task in done:
            await task  # the informers ended: surfaces their error
            raise AssertionError("the informers stopped before they synced")
        if synced.cancelled() or not synced.result():
            raise AssertionError(f"informers did not sync within {CATCH_UP_TIMEOUT}s")
        yield factory
    finally:
        stop.set()
        await asyncio.wait_for(task, CATCH_UP_TIMEOUT)


def ok(response: httpx.Response, code: int = 200) -> Obj:
    assert response.status_code == code, response.text
    body: Obj = response.json()
    return body


def status_of(response: httpx.Response, code: int, reason: str) -> Obj:
    """The Kubernetes Status of a failed request, checked for code and reason."""
    assert response.status_code == code, response.text
    body: Obj = response.json()
    assert body["kind"] == "Status" and body["apiVersion"] == "v1" and body["status"] == "Failure"
    assert (body["code"], body["reason"]) == (code, reason), body
    return body

"""The ASGI application of the API server.

Every request goes through one pipeline (:mod:`shoal.api.pipeline`), for every path and for
WebSocket upgrades alike: authenticate (:mod:`shoal.api.authn`) -> audit hook
(:mod:`shoal.api.audit`) -> authorize (:mod:`shoal.api.authz`) -> the handler, whose writes
pass admission (:mod:`shoal.api.admission`).  Each stage is a Protocol given to
:class:`ApiServer`; the defaults are today's behaviour: bearer tokens from the static token
file (remembered for ``AUTH_MEMORY`` seconds, so a revoked token may work that much longer;
a refused one is checked again on every request), no audit, every authenticated user
allowed, and admission = namespace lifecycle + Service IP/port allocation.

Routes: ``/version``, ``/livez``, ``/readyz``, ``/healthz`` are public (the anonymous user,
no credentials read); everything else needs a verified client certificate or a valid bearer
token (401 Unauthorized Status otherwise, a refused upgrade for WebSockets): discovery (``/api``
and ``/api/``, ``/apis`` and ``/apis/`` -- the latter always the plain APIGroupList, as
kube-apiserver serves it --, group and group-version documents), OpenAPI v3 (``/openapi/v3``
and per group-version documents), ``/metrics``, SelfSubjectReviews (:mod:`shoal.api.selfsubject`,
for ``kubectl auth whoami``), the resource paths handled by :mod:`shoal.api.handlers`, and
``pods/log`` and
``pods/exec`` (plain HTTP and the exec WebSocket) proxied to node agents by
:mod:`shoal.api.podproxy`, ``pods/portforward`` (its WebSocket tunnel) by
:mod:`shoal.api.portforward`; any other path is a 404 NotFound Status.  A refusal by the
authorizer is a 403 Forbidden Status.  Every
:class:`~shoal.kube.errors.ApiError` becomes a Kubernetes Status; any other exception is
logged with its traceback and answered as a 500 InternalError Status that names only the
exception's type (its text, which may hold file paths, stays in the log).  A client that
disconnects before its request body is complete is one INFO line, not an error.

After the pipeline, resource requests (``/api/x...`` and ``/apis/x...`` over HTTP) go straight
to :meth:`ApiServer.resource`, past Starlette's router (which adds nothing there:
``resource`` answers every error itself); the other paths and WebSocket upgrades take the
Starlette routes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from shoal.api import podproxy, portforward, selfsubject
from shoal.api.admission import AdmissionPlugin
from shoal.api.audit import AuditSink
from shoal.api.authn import Authenticator
from shoal.api.authz import AllowAuthenticated, Authorizer
from shoal.api.bodies import json_response
from shoal.api.discovery import AGGREGATED, Discovery, wants_aggregated
from shoal.api.handlers import ResourceHandlers, parse_target
from shoal.api.openapi import ResourceInfo, build_openapi_v3
from shoal.api.pipeline import RequestPipeline
from shoal.api.requestinfo import split_path
from shoal.api.storage import ObjectStorage
from shoal.kube import errors
from shoal.resources.registry import Registry

log = logging.getLogger(__name__)

VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-shoal", "gitCommit": "shoal",
           "gitTreeState": "clean", "buildDate": "2026-11-25T00:00:00Z", "goVersion": "python3.11",
           "compiler": "cpython", "platform": "linux/amd64"}


_RESOURCE_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
NOT_FOUND = "the server could not find the requested resource"


class ApiServer:
    """The API server as one ASGI app: the request pipeline in front of the handlers."""

    def __init__(self, storage: ObjectStorage, registry: Registry, authenticator: Authenticator,
                 server_address: str, data_dir: Path | None = None, *,
                 authorizer: Authorizer | None = None, audit: AuditSink | None = None,
                 admission: AdmissionPlugin | None = None) -> None:
        self.storage = storage
        self.registry = registry
        self.handlers = ResourceHandlers(storage, registry, admission)
        self.pod_proxy = podproxy.PodProxy(
            storage, registry, podproxy.ensure_agent_client_cert(data_dir) if data_dir is not None else None)
        self.port_forward = portforward.PortForwardProxy(self.pod_proxy)
        self.discovery = Discovery(registry, server_address)
        self.openapi = build_openapi_v3([
            ResourceInfo(k.group, k.version, k.kind, k.plural, k.namespaced, k.subresources)
            for k in registry])
        self.ready = False
        self.metrics = CollectorRegistry()
        self.requests = Counter("shoal_apiserver_requests", "API requests by verb and code",
                                ["verb", "code"], registry=self.metrics)
        routes = [
            Route("/version", self.version), Route("/livez", self.livez), Route("/healthz", self.livez),
            Route("/readyz", self.readyz), Route("/metrics", self.prometheus),
            # kube-apiserver answers /api/ as /api (go-restful ignores the slash) and /apis/ with
            # the plain APIGroupList (the aggregator's UnlistedHandle("/apis/", apisHandler)).
            Route("/api", self.api), Route("/api/", self.api),
            Route("/apis", self.apis), Route("/apis/", self.apis_legacy),
            Route("/openapi/v3", self.openapi_index), Route("/openapi/v3/{path:path}", self.openapi_doc),
            Route("/api/{path:path}", self.resource, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/apis/{path:path}", self.resource, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/exec", self.pod_proxy.exec_websocket),
            WebSocketRoute("/api/v1/namespaces/{namespace}/pods/{name}/portforward", self.port_forward.websocket),
        ]
        self.app = RequestPipeline(self._dispatch, authenticator, authorizer or AllowAuthenticated(), audit)
        # Any other path: kube-apiserver's NotFound Status, not Starlette's text 404.
        self._starlette = Starlette(routes=routes, exception_handlers={404: self.not_found})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"] if scope["type"] == "http" else ""
        if path in selfsubject.PATHS:
            await selfsubject.serve(scope, receive, send)
            return
        prefix = "/api/" if path.startswith("/api/") else "/apis/" if path.startswith("/apis/") else ""
        if not prefix or path == prefix:
            await self._starlette(scope, receive, send)
            return
        scope["path_params"] = {"path": path[len(prefix):]}
        request = Request(scope, receive)
        if request.method not in _RESOURCE_METHODS:
            response: Response = json_response(errors.method_not_allowed(
                f"{request.method} is not supported").to_status(), 405)
        else:
            response = await self.resource(request)
        await response(scope, receive, send)

    @staticmethod
    async def _guard(request: Request, call: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await call()
        except errors.ApiError as exc:
            return json_response(exc.to_status(), exc.code, exc.headers or None)
        except ClientDisconnect:
            # The client went away before its body arrived: nothing to answer, nothing broken.
            log.info("client disconnected while sending %s %s", request.method, request.scope["path"])
            return json_response(errors.bad_request("the client disconnected before the request body "
                                                    "was complete").to_status(), 400)
        except Exception as exc:
            log.exception("internal error serving %s %s", request.method, request.scope["path"])
            # The exception's text stays in the log: it may hold file paths or other internals.
            return json_response(errors.internal(
                f"unexpected {type(exc).__name__} serving the request; the API server log has the details"
            ).to_status(), 500)

    async def version(self, request: Request) -> Response:
        return json_response(VERSION)

    async def livez(self, request: Request) -> Response:
        return Response(b"ok", media_type="text/plain")

    async def readyz(self, request: Request) -> Response:
        if not self.ready:
            return Response(b"not ready", status_code=503, media_type="text/plain")
        return Response(b"ok", media_type="text/plain")

    async def prometheus(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics), media_type=CONTENT_TYPE_LATEST)

    async def api(self, request: Request) -> Response:
        if wants_aggregated(request.headers.get("accept")):
            return Response(orjson.dumps(self.discovery.aggregated_core), media_type=AGGREGATED)
        return json_response(self.discovery.api_versions)

    async def apis(self, request: Request) -> Response:
        if wants_aggregated(request.headers.get("accept")):
            return Response(orjson.dumps(self.discovery.aggregated_groups), media_type=AGGREGATED)
        return json_response(self.discovery.api_group_list)

    async def apis_legacy(self, request: Request) -> Response:
        return json_response(self.discovery.api_group_list)

    async def not_found(self, request: Request, exc: Exception) -> Response:
        """Any other path: kube-apiserver's NotFound Status (its notfoundhandler)."""
        return json_response(errors.ApiError(404, "NotFound", NOT_FOUND).to_status(), 404)

    async def openapi_index(self, request: Request) -> Response:
        return json_response(self.openapi.index())

    async def openapi_doc(self, request: Request) -> Response:
        document = self.openapi.document(request.path_params["path"])
        if document is None:
            return json_response(errors.ApiError(404, "NotFound", "not found").to_status(), 404)
        return Response(document, media_type="application/json")

    async def resource(self, request: Request) -> Response:
        response = await self._guard(request, lambda: self._resource(request))
        self.requests.labels(request.method, str(response.status_code)).inc()
        return response

    async def _resource(self, request: Request) -> Response:
        path: str = request.scope["path"]  # not request.url: building a URL is slow
        split = split_path(path)
        assert split is not None, "resource() serves only /api/ and /apis/ paths"
        group, version, rest = split
        if not group:  # the core group: /api/v1 only
            if version != "v1":
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
        else:
            if not version:
                doc: dict[str, Any] | None = self.discovery.group(group)
                if doc is None:
                    raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
                return json_response(doc)
        if not rest:
            resource_list = self.discovery.resource_list(group, version)
            if resource_list is None:
                raise errors.ApiError(404, "NotFound", "the server could not find the requested resource")
            return json_response(resource_list)
        target = parse_target(self.registry, group, version, rest)
        if target.kind is self.pod_proxy.pods and target.subresource in podproxy.SUBRESOURCES:
            return await self.pod_proxy.handle(request, target)
        if target.kind is self.pod_proxy.pods and target.subresource == portforward.SUBRESOURCE:
            return await self.port_forward.handle(request, target.namespace, target.name)
        return await self.handlers.handle(request, target)

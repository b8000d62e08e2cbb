"""The request pipeline: the one way into the API server, for every HTTP request and WebSocket.

::

    request -> RequestInfo -> authenticate -> audit (RequestReceived) -> authorize -> handler
                                  | 401           (ResponseComplete / Panic)    | 403

Contract and invariants
-----------------------
* Every ``http`` and ``websocket`` scope passes through :class:`RequestPipeline` before any
  handler sees it: resource requests, discovery, OpenAPI, ``/metrics``, ``pods/log|exec``
  and WebSocket upgrades alike.  Other scope types (``lifespan``) go straight to the handler.
* Stages, in this order, each a ``typing.Protocol`` with a default implementation:

  1. :class:`~shoal.api.authn.Authenticator` (default
     :class:`~shoal.api.authn.TokenAuthentication`).  No accepted credential: 401
     Unauthorized Status (a refused WebSocket upgrade).  :data:`~shoal.api.authn.PUBLIC_PATHS`
     skip authentication and run as :data:`~shoal.security.user.ANONYMOUS`.  The user is put
     in the scope (:func:`~shoal.api.authn.request_user` reads it);
  2. :class:`~shoal.api.audit.AuditSink` (default :class:`~shoal.api.audit.NoopAuditSink`,
     which switches auditing off entirely): ``RequestReceived`` now, ``ResponseComplete``
     with the code that was sent, or ``Panic`` if the handler raised;
  3. :class:`~shoal.api.authz.Authorizer` (default
     :class:`~shoal.api.authz.AllowAuthenticated`) on the
     :class:`~shoal.api.authz.Attributes` of the request.  Anything but *allow*: 403
     Forbidden Status worded as Kubernetes words it (:func:`~shoal.api.authz.forbidden`);
  4. the handler.  Admission is part of the handlers' write path
     (:mod:`shoal.api.admission`), where the objects are known.

* Refusals are answered by :func:`shoal.kube.remotecommand.deny`, the same for HTTP and
  WebSockets.  Exceptions of a stage are not caught here: they reach the server (uvicorn
  answers 500); those of authorization and of the handler are audited as ``Panic`` when
  auditing is on (authentication comes before audit, as in Kubernetes).
* Cost: with the no-op audit sink a request pays for one RequestInfo, one authentication
  (a dictionary hit for a remembered token) and one authorizer call; nothing wraps ``send``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Set

from starlette.types import ASGIApp, Receive, Scope, Send

from shoal.api.audit import (
    AuditEvent,
    AuditSink,
    NoopAuditSink,
    Stage,
    StatusRecorder,
    request_uri,
    source_ips,
    user_agent,
)
from shoal.api.authn import PUBLIC_PATHS, SCOPE_USER, Authenticator
from shoal.api.authz import Attributes, Authorizer, forbidden
from shoal.api.requestinfo import RequestInfo, request_info
from shoal.kube import errors, remotecommand
from shoal.security.user import ANONYMOUS, UserInfo


class RequestPipeline:
    """ASGI middleware running authentication, audit and authorization before ``handler``."""

    def __init__(self, handler: ASGIApp, authenticator: Authenticator, authorizer: Authorizer,
                 audit: AuditSink | None = None, *, public_paths: Set[str] = PUBLIC_PATHS,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.handler = handler
        self.authenticator = authenticator
        self.authorizer = authorizer
        #: None when auditing is off (no sink, or the no-op sink): then no event is ever built.
        self.audit: AuditSink | None = None if audit is None or isinstance(audit, NoopAuditSink) else audit
        self.public_paths = public_paths
        self._wall_clock = wall_clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.handler(scope, receive, send)
            return
        info = request_info(scope)
        if scope["path"] in self.public_paths:
            user: UserInfo | None = ANONYMOUS
        else:
            user = await self.authenticator.authenticate(scope)
        if self.audit is None:
            await self._serve(scope, receive, send, info, user)
        else:
            await self._audited(self.audit, scope, receive, send, info, user)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, info: RequestInfo,
                     user: UserInfo | None) -> None:
        if user is None:
            await remotecommand.deny(scope, receive, send, errors.unauthorized())
            return
        scope[SCOPE_USER] = user
        attributes = Attributes(user, info)
        decision = await self.authorizer.authorize(attributes)
        if not decision.allowed:
            await remotecommand.deny(scope, receive, send, forbidden(attributes, decision.reason))
            return
        await self.handler(scope, receive, send)

    async def _audited(self, sink: AuditSink, scope: Scope, receive: Receive, send: Send,
                       info: RequestInfo, user: UserInfo | None) -> None:
        now = self._wall_clock()
        event = AuditEvent(str(uuid.uuid4()), Stage.REQUEST_RECEIVED, request_uri(scope), info, user,
                           source_ips(scope), user_agent(scope), now, now)
        sink.process(event)
        recorder = StatusRecorder(send)
        try:
            await self._serve(scope, receive, recorder.send, info, user)
        except Exception:
            sink.process(event.at(Stage.PANIC, self._wall_clock(), 500))
            raise
        sink.process(event.at(Stage.RESPONSE_COMPLETE, self._wall_clock(), recorder.code))

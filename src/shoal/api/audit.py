"""Audit: a record of who asked for what, and what they were answered.

The hook of the request pipeline (:mod:`shoal.api.pipeline`) that runs after authentication
and before authorization, as in Kubernetes; the event stages are Kubernetes' audit stages.

Contract and invariants
-----------------------
* An :class:`AuditSink` receives :class:`AuditEvent` s, synchronously and in order, from the
  request's own task: it must not block (a sink that writes files or sends events buffers
  them and works elsewhere).  An exception from the sink fails the request; events are never
  dropped silently.
* Every audited request produces ``RequestReceived`` (once the user is known, before
  authorization) and then exactly one of ``ResponseComplete`` (the response was sent: its
  HTTP status, 101 for an accepted WebSocket, 401/403 for refusals) or ``Panic`` (the handler
  raised; code 500).  A request cancelled while being served (server shutdown) ends without a
  final event.  Long-running responses (watch, ``logs -f``, exec) complete when they end.
* Events carry the user (None when authentication failed: the 401 is audited too), the
  :class:`~shoal.api.requestinfo.RequestInfo` (verb, group, version, resource, subresource,
  namespace, name or path), the request URI, source address, user agent, one audit ID per
  request (a UUID) and wall-clock times of receipt and of the stage.
* :class:`NoopAuditSink` is today's only implementation.  The pipeline recognises it when it
  is built and then audits nothing at all: no event is built, no ``send`` is wrapped, so
  auditing costs nothing unless a real sink is configured.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Protocol

from starlette.types import Message, Scope, Send

from shoal.api.requestinfo import RequestInfo, header
from shoal.security.user import UserInfo


class Stage(enum.Enum):
    """Kubernetes' audit stages (``ResponseStarted`` is not emitted yet)."""

    REQUEST_RECEIVED = "RequestReceived"
    RESPONSE_STARTED = "ResponseStarted"
    RESPONSE_COMPLETE = "ResponseComplete"
    PANIC = "Panic"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record (the fields of Kubernetes' ``audit.k8s.io/v1`` Event that Shoal has)."""

    audit_id: str
    stage: Stage
    request_uri: str
    request: RequestInfo
    user: UserInfo | None
    source_ips: tuple[str, ...]
    user_agent: str
    received: float
    stage_time: float
    code: int | None = None

    @property
    def verb(self) -> str:
        return self.request.verb

    def at(self, stage: Stage, when: float, code: int | None) -> AuditEvent:
        """The same request at a later stage."""
        return replace(self, stage=stage, stage_time=when, code=code)


class AuditSink(Protocol):
    """Where audit events go (Kubernetes' audit ``Backend``)."""

    def process(self, event: AuditEvent) -> None:
        """Take one event; must not block."""
        ...


class NoopAuditSink:
    """Audits nothing; the pipeline skips auditing entirely when given this sink."""

    def process(self, event: AuditEvent) -> None:
        return None


def request_uri(scope: Scope) -> str:
    query: bytes = scope.get("query_string", b"")
    path: str = scope["path"]
    return f"{path}?{query.decode('latin-1')}" if query else path


def source_ips(scope: Scope) -> tuple[str, ...]:
    client = scope.get("client")
    return (str(client[0]),) if client else ()


def user_agent(scope: Scope) -> str:
    return header(scope, b"user-agent") or ""


class StatusRecorder:
    """Wraps an ASGI ``send`` to learn the code of the response that went out."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.code: int | None = None

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            self.code = int(message["status"])
        elif kind == "websocket.accept":
            self.code = 101
        elif kind == "websocket.close" and self.code is None:
            self.code = 403  # closed before accept: the server refuses the upgrade with 403
        await self._send(message)

"""The request pipeline on the real ApiServer app (in process, real SQLite store).

authenticate -> audit -> authorize -> handler, for resource requests, discovery, /metrics,
pods/log and WebSocket upgrades.  The only stand-ins are a deliberately denying authorizer
and a recording audit sink; everything else is the server's own code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from shoal.api.audit import AuditEvent, NoopAuditSink, Stage
from shoal.api.authn import SCOPE_USER, UnauthenticatedRequestError, request_user
from shoal.api.authz import ALLOWED, NO_OPINION, Attributes, Decision, Verdict
from shoal.api.pipeline import RequestPipeline
from shoal.security.user import ANONYMOUS, UserInfo
from tests.support.api_harness import ApiHarness

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"}, "data": {"k": "v"}}


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def process(self, event: AuditEvent) -> None:
        self.events.append(event)


class DenyingAuthorizer:
    """Denies (verb, resource) pairs with a reason, has no opinion on ``silent`` ones, allows the rest."""

    def __init__(self, denied: set[tuple[str, str]], silent: set[tuple[str, str]] | None = None) -> None:
        self.denied = denied
        self.silent = silent or set()
        self.seen: list[Attributes] = []

    async def authorize(self, attributes: Attributes) -> Decision:
        self.seen.append(attributes)
        key = (attributes.verb, attributes.resource or attributes.path)
        if key in self.denied:
            return Decision(Verdict.DENY, "denied by the test policy")
        if key in self.silent:
            return NO_OPINION
        return ALLOWED


async def test_public_paths_are_served_to_anyone(tmp_path: Path) -> None:
    sink = RecordingSink()
    async with ApiHarness(tmp_path / "api", audit=sink) as harness, harness.as_user(None) as anonymous:
        for path in ("/livez", "/readyz", "/healthz"):
            response = await anonymous.get(path)
            assert (response.status_code, response.text) == (200, "ok")
        assert (await anonymous.get("/version")).json()["minor"] == "32"
        bad = await anonymous.get("/livez", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 200  # credentials are not even read there
        assert {e.user for e in sink.events} == {ANONYMOUS}
        assert (await anonymous.post("/livez")).status_code == 405  # the handler, not the policy


@pytest.mark.parametrize("path", ["/api", "/apis", "/api/v1", "/apis/apps/v1", "/openapi/v3", "/metrics",
                                  "/api/v1/namespaces/default/configmaps", "/api/v1/namespaces/default/pods/p/log",
                                  "/nowhere"])
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic YWxpY2U6eA==", "Bearer"])
async def test_everything_else_needs_a_valid_token(tmp_path: Path, path: str, header: str | None) -> None:
    async with ApiHarness(tmp_path / "api") as harness, harness.as_user(None) as client:
        response = await client.get(path, headers={"Authorization": header} if header else {})
        assert response.status_code == 401
        assert response.json() == UNAUTHORIZED


async def test_the_user_keeps_groups_and_reaches_audit(tmp_path: Path) -> None:
    sink = RecordingSink()
    async with ApiHarness(tmp_path / "api", audit=sink) as harness, harness.as_user("alice") as alice:
        created = await alice.post("/api/v1/namespaces/default/configmaps", json=CONFIGMAP,
                                   headers={"User-Agent": "kubectl/v1.32.5"})
        assert created.status_code == 201
        received, complete = sink.events
    assert [received.stage, complete.stage] == [Stage.REQUEST_RECEIVED, Stage.RESPONSE_COMPLETE]
    assert received.audit_id == complete.audit_id
    assert (received.code, complete.code) == (None, 201)
    user = complete.user
    assert user == UserInfo("alice", "uid-alice", ("team-a", "devs", "system:authenticated"),
                            authenticated_by="token")
    info = complete.request
    assert (info.verb, info.api_group, info.api_version, info.resource, info.namespace, info.name) == (
        "create", "", "v1", "configmaps", "default", "")
    assert complete.request_uri == "/api/v1/namespaces/default/configmaps"
    assert complete.user_agent == "kubectl/v1.32.5"
    assert complete.source_ips == ("127.0.0.1",)
    assert received.received == complete.received <= complete.stage_time


async def test_refusals_are_audited(tmp_path: Path) -> None:
    sink = RecordingSink()
    authorizer = DenyingAuthorizer({("get", "/metrics")})
    async with ApiHarness(tmp_path / "api", audit=sink, authorizer=authorizer) as harness:
        async with harness.as_user(None) as anonymous:
            assert (await anonymous.get("/api")).status_code == 401
        async with harness.as_user("bob") as bob:
            assert (await bob.get("/metrics")).status_code == 403
    assert [(e.stage, e.code, e.user.name if e.user else None) for e in sink.events] == [
        (Stage.REQUEST_RECEIVED, None, None), (Stage.RESPONSE_COMPLETE, 401, None),
        (Stage.REQUEST_RECEIVED, None, "bob"), (Stage.RESPONSE_COMPLETE, 403, "bob")]


def _forbidden(message: str, details: dict[str, str]) -> dict[str, Any]:
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": "Forbidden", "code": 403}
    if details:
        status["details"] = details
    return status


REASON = ": denied by the test policy"


@pytest.mark.parametrize(
    ("method", "path", "denied", "message", "details"),
    [
        ("GET", "/api/v1/namespaces/default/configmaps/cm1", ("get", "configmaps"),
         'configmaps "cm1" is forbidden: User "alice" cannot get resource "configmaps" in API group "" '
         f'in the namespace "default"{REASON}', {"name": "cm1", "kind": "configmaps"}),
        ("GET", "/apis/apps/v1/namespaces/default/deployments", ("list", "deployments"),
         'deployments.apps is forbidden: User "alice" cannot list resource "deployments" in API group "apps" '
         f'in the namespace "default"{REASON}', {"group": "apps", "kind": "deployments"}),
        ("DELETE", "/api/v1/namespaces/default/configmaps", ("deletecollection", "configmaps"),
         'configmaps is forbidden: User "alice" cannot deletecollection resource "configmaps" in API group "" '
         f'in the namespace "default"{REASON}', {"kind": "configmaps"}),
        ("GET", "/api/v1/nodes/n1", ("get", "nodes"),
         f'nodes "n1" is forbidden: User "alice" cannot get resource "nodes" in API group "" at the cluster scope'
         f'{REASON}', {"name": "n1", "kind": "nodes"}),
        ("GET", "/api/v1/namespaces/default/pods/p/log", ("get", "pods"),
         'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the namespace '
         f'"default"{REASON}', {"name": "p", "kind": "pods"}),
        ("GET", "/metrics", ("get", "/metrics"), f'forbidden: User "alice" cannot get path "/metrics"{REASON}', {}),
        ("GET", "/apis", ("get", "/apis"), f'forbidden: User "alice" cannot get path "/apis"{REASON}', {}),
    ],
)
async def test_a_denial_is_kubernetes_forbidden(tmp_path: Path, method: str, path: str, denied: tuple[str, str],
                                                message: str, details: dict[str, str]) -> None:
    authorizer = DenyingAuthorizer({denied})
    async with ApiHarness(tmp_path / "api", authorizer=authorizer) as harness, harness.as_user("alice") as alice:
        response = await alice.request(method, path)
        assert response.status_code == 403
        assert response.json() == _forbidden(message, details)
        assert authorizer.seen[-1].user.name == "alice"


async def test_no_opinion_is_a_denial_and_nothing_is_written(tmp_path: Path) -> None:
    authorizer = DenyingAuthorizer(set(), silent={("create", "configmaps")})
    async with ApiHarness(tmp_path / "api", authorizer=authorizer) as harness, harness.as_user("alice") as alice:
        response = await alice.post("/api/v1/namespaces/default/configmaps", json=CONFIGMAP)
        assert response.json()["message"] == (
            'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the '
            'namespace "default"')
        assert (await alice.get("/api/v1/namespaces/default/configmaps/cm1")).status_code == 404


async def test_every_kind_of_request_is_authorized(tmp_path: Path) -> None:
    authorizer = DenyingAuthorizer(set())
    async with ApiHarness(tmp_path / "api", authorizer=authorizer) as harness, harness.as_user("alice") as alice:
        assert (await alice.post("/api/v1/namespaces/default/configmaps", json=CONFIGMAP)).status_code == 201
        assert (await alice.get("/api/v1/namespaces/default/configmaps",
                                params={"fieldSelector": "metadata.name=cm1"})).status_code == 200
        patch = await alice.patch("/api/v1/namespaces/default/configmaps/cm1", content=b'{"data":{"k":"w"}}',
                                  headers={"Content-Type": "application/merge-patch+json"})
        assert patch.status_code == 200
        assert (await alice.get("/apis/apps/v1")).status_code == 200
        assert (await alice.get("/openapi/v3")).status_code == 200
        assert (await alice.get("/metrics")).status_code == 200
        assert (await alice.delete("/api/v1/namespaces/default/configmaps/cm1")).status_code == 200
    seen = [(a.verb, a.resource_request, a.resource or a.path, a.name) for a in authorizer.seen]
    assert seen == [("create", True, "configmaps", ""), ("list", True, "configmaps", "cm1"),
                    ("patch", True, "configmaps", "cm1"), ("get", False, "/apis/apps/v1", ""),
                    ("get", False, "/openapi/v3", ""), ("get", False, "/metrics", ""),
                    ("delete", True, "configmaps", "cm1")]


# -- WebSocket upgrades ----------------------------------------------------------------------

async def _upgrade(app: Any, token: str | None, extension: bool = True) -> list[Message]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    scope: Scope = {"type": "websocket", "path": "/api/v1/namespaces/default/pods/p/exec",
                    "raw_path": b"/api/v1/namespaces/default/pods/p/exec",
                    "query_string": b"command=sh&stdin=true", "headers": headers,
                    "subprotocols": ["v5.channel.k8s.io"], "client": ("127.0.0.1", 5000),
                    "server": ("127.0.0.1", 6443), "scheme": "wss", "root_path": "",
                    "extensions": {"websocket.http.response": {}} if extension else {}}
    sent: list[Message] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_websocket_upgrades_go_through_the_pipeline(tmp_path: Path) -> None:
    sink = RecordingSink()
    authorizer = DenyingAuthorizer({("get", "pods")})
    async with ApiHarness(tmp_path / "api", authorizer=authorizer, audit=sink) as harness:
        unauthenticated = await _upgrade(harness.api, None)
        assert unauthenticated[0] == {"type": "websocket.http.response.start", "status": 401,
                                      "headers": unauthenticated[0]["headers"]}
        assert b'"reason":"Unauthorized"' in unauthenticated[1]["body"]
        closed = await _upgrade(harness.api, None, extension=False)
        assert closed == [{"type": "websocket.close", "code": 1008, "reason": "Unauthorized"}]
        denied = await _upgrade(harness.api, harness.tokens["alice"])
        assert denied[0]["status"] == 403
        assert (b'pods \\"p\\" is forbidden: User \\"alice\\" cannot get resource \\"pods/exec\\" in API group '
                b'\\"\\" in the namespace \\"default\\"') in denied[1]["body"]
    assert [e.code for e in sink.events if e.stage is Stage.RESPONSE_COMPLETE] == [401, 403, 403]
    assert authorizer.seen[-1].subresource == "exec"


# -- the pipeline's own contract ---------------------------------------------------------------

async def test_a_handler_failure_is_audited_as_panic_and_raised(tmp_path: Path) -> None:
    sink = RecordingSink()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        assert request_user(scope).name == "alice"
        raise RuntimeError("boom")

    async with ApiHarness(tmp_path / "api") as harness:
        pipeline = RequestPipeline(broken, harness.api.app.authenticator, harness.api.app.authorizer, sink)
        scope: Scope = {"type": "http", "method": "GET", "path": "/api/v1/pods", "query_string": b"",
                        "headers": [(b"authorization", b"Bearer alice-token")], "client": None}

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            raise AssertionError("nothing is sent")

        with pytest.raises(RuntimeError, match="boom"):
            await pipeline(scope, receive, send)
    assert [(e.stage, e.code) for e in sink.events] == [(Stage.REQUEST_RECEIVED, None), (Stage.PANIC, 500)]
    assert sink.events[0].source_ips == ()


async def test_the_noop_sink_switches_audit_off(tmp_path: Path) -> None:
    async with ApiHarness(tmp_path / "api", audit=NoopAuditSink()) as harness:
        assert harness.api.app.audit is None
    async with ApiHarness(tmp_path / "default" / "api") as harness:
        assert harness.api.app.audit is None


def test_request_user_needs_the_pipeline() -> None:
    with pytest.raises(UnauthenticatedRequestError):
        request_user({"type": "http", "path": "/api/v1/pods"})
    user = UserInfo("carol")
    assert request_user({SCOPE_USER: user}) is user

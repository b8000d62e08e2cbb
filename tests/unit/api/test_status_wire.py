"""Discovery with a trailing slash, and Status bodies byte for byte as kube-apiserver writes them.

The expected bytes are kube-apiserver's: Go's ``metav1.Status`` field order (kind, apiVersion,
metadata, status, message, reason, details, code), ``omitempty`` (no ``"group":""`` for the
core group), compact JSON escaped as Go's ``json.Encoder`` escapes it, and its trailing newline.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shoal.api.authz import ALLOWED, Attributes, Decision, Verdict
from shoal.api.discovery import AGGREGATED
from shoal.kube import errors
from tests.support.api_harness import ApiHarness

CM = "/api/v1/namespaces/default/configmaps"
KUBECTL_DISCOVERY = f"{AGGREGATED},application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList," \
                    "application/json"


async def test_api_and_apis_with_a_trailing_slash_are_discovery(harness: ApiHarness) -> None:
    """Issue 8 item 12: ``/api/`` and ``/apis/`` answer as kube-apiserver does, not 404.

    ``/api/`` is ``/api`` (go-restful ignores the slash, aggregated discovery included);
    ``/apis/`` is the plain APIGroupList whatever the Accept (kube-aggregator's
    ``UnlistedHandle("/apis/", apisHandler)`` is not wrapped for aggregated discovery)."""
    for accept in ("application/json", KUBECTL_DISCOVERY):
        plain = await harness.http.get("/api", headers={"Accept": accept})
        slash = await harness.http.get("/api/", headers={"Accept": accept})
        assert slash.status_code == 200, slash.text
        assert (slash.content, slash.headers["content-type"]) == (plain.content, plain.headers["content-type"])
    legacy = await harness.http.get("/apis", headers={"Accept": "application/json"})
    for accept in ("application/json", KUBECTL_DISCOVERY):
        slash = await harness.http.get("/apis/", headers={"Accept": accept})
        assert slash.status_code == 200, slash.text
        assert slash.headers["content-type"] == "application/json"
        assert slash.content == legacy.content
        assert slash.json()["kind"] == "APIGroupList"
    assert (await harness.http.get("/api/v1")).json()["kind"] == "APIResourceList"  # unchanged


async def test_not_found_is_kubernetes_bytes(harness: ApiHarness) -> None:
    """Issue 8 item 13: a 404 for the core group has no ``"group":""``, ``code`` last, a newline."""
    answer = await harness.http.get(f"{CM}/nosuch")
    assert answer.status_code == 404
    assert answer.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"nosuch\\" not found","reason":"NotFound",'
        b'"details":{"name":"nosuch","kind":"configmaps"},"code":404}\n')
    grouped = await harness.http.get("/apis/apps/v1/namespaces/default/deployments/web")
    assert grouped.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"web\\" not found","reason":"NotFound",'
        b'"details":{"name":"web","group":"apps","kind":"deployments"},"code":404}\n')


async def test_unknown_path_is_a_not_found_status(harness: ApiHarness) -> None:
    """Issue 8 item 13: any other path is kube-apiserver's NotFound Status (not a text 404)."""
    answer = await harness.http.get("/no/such/path")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"the server could not find the requested resource","reason":"NotFound","code":404}\n')


async def test_already_exists_is_kubernetes_bytes(harness: ApiHarness) -> None:
    """Issue 8 item 13: a 409 AlreadyExists."""
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dup"}}
    assert (await harness.http.post(CM, json=body)).status_code == 201
    answer = await harness.http.post(CM, json=body)
    assert answer.status_code == 409
    assert answer.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"dup\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"dup","kind":"configmaps"},"code":409}\n')


SUBDOMAIN = (b"a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
             b"and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
             b"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL = (b"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
         b"start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
         b"validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


async def test_invalid_with_causes_is_kubernetes_bytes(harness: ApiHarness) -> None:
    """Issue 8 item 13: a 422 whose causes carry the field error without its path
    (Kubernetes' ``ErrorBody``), in the cause order reason, message, field."""
    answer = await harness.http.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "Bad_Name"}})
    assert answer.status_code == 422
    assert answer.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"ConfigMap \\"Bad_Name\\" is invalid: metadata.name: Invalid value: \\"Bad_Name\\": '
        + SUBDOMAIN + b'","reason":"Invalid","details":{"name":"Bad_Name","kind":"ConfigMap","causes":['
        b'{"reason":"FieldValueInvalid","message":"Invalid value: \\"Bad_Name\\": ' + SUBDOMAIN
        + b'","field":"metadata.name"}]},"code":422}\n')
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "Bad", "image": ""}]}}
    two = await harness.http.post("/api/v1/namespaces/default/pods", json=pod)
    assert two.status_code == 422
    assert two.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Pod \\"p\\" is invalid: [spec.containers[0].name: Invalid value: \\"Bad\\": ' + LABEL
        + b', spec.containers[0].image: Required value]","reason":"Invalid","details":{"name":"p","kind":"Pod",'
        b'"causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \\"Bad\\": ' + LABEL
        + b'","field":"spec.containers[0].name"},'
        b'{"reason":"FieldValueRequired","message":"Required value","field":"spec.containers[0].image"}]},'
        b'"code":422}\n')


class _DenyConfigMaps:
    async def authorize(self, attributes: Attributes) -> Decision:
        if attributes.resource == "configmaps":
            return Decision(Verdict.DENY)
        return ALLOWED


async def test_forbidden_is_kubernetes_bytes(tmp_path: Path) -> None:
    """Issue 8 item 13: a 403 Forbidden (written by the request pipeline)."""
    async with ApiHarness(tmp_path / "api", authorizer=_DenyConfigMaps()) as harness, \
            harness.as_user("bob") as bob:
        listing = await bob.get(CM)
        one = await bob.get(f"{CM}/cm1")
    assert (listing.status_code, one.status_code) == (403, 403)
    assert listing.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps is forbidden: User \\"bob\\" cannot list resource \\"configmaps\\" in API group '
        b'\\"\\" in the namespace \\"default\\"","reason":"Forbidden","details":{"kind":"configmaps"},"code":403}\n')
    assert one.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"cm1\\" is forbidden: User \\"bob\\" cannot get resource \\"configmaps\\" in '
        b'API group \\"\\" in the namespace \\"default\\"","reason":"Forbidden",'
        b'"details":{"name":"cm1","kind":"configmaps"},"code":403}\n')


async def test_unauthorized_and_success_status_bytes(harness: ApiHarness) -> None:
    """Issue 8 item 13: the 401 and a success Status (pods/binding) are written the same way."""
    async with harness.as_user(None) as anonymous:
        refused = await anonymous.get(CM)
    assert refused.content == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                               b'"message":"Unauthorized","reason":"Unauthorized","code":401}\n')
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert (await harness.http.post("/api/v1/namespaces/default/pods", json=pod)).status_code == 201
    bound = await harness.http.post("/api/v1/namespaces/default/pods/p/binding", json={
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}})
    assert bound.status_code == 201
    assert bound.content == b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}\n'


@pytest.mark.parametrize(("status", "expected"), [
    # Go's json.Encoder escapes <, >, & and U+2028/U+2029 (SetEscapeHTML is on by default).
    ({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "bad <nil> & >\u2028\u2029",
      "code": 400},
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
     b'"message":"bad \\u003cnil\\u003e \\u0026 \\u003e\\u2028\\u2029","code":400}\n'),
    # Field order is Go's whatever the input order; empty fields are left out; unknown keys dropped.
    ({"code": 409, "details": {"causes": [{"field": "f", "message": "", "reason": "R"}], "kind": "k",
                               "group": "", "name": "n", "extra": 1},
      "reason": "Conflict", "metadata": {}, "status": "Failure", "message": "m", "apiVersion": "v1",
      "kind": "Status"},
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"m","reason":"Conflict",'
     b'"details":{"name":"n","kind":"k","causes":[{"reason":"R","field":"f"}]},"code":409}\n'),
    # A details pointer with nothing in it is still written, as Go writes a non-nil pointer.
    ({"kind": "Status", "apiVersion": "v1", "status": "Failure", "details": {"group": ""}, "code": 403},
     b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","details":{},"code":403}\n'),
])
def test_encode_status_is_go_json(status: dict[str, object], expected: bytes) -> None:
    """Issue 8 item 13: the encoder itself (escaping, order, omitempty, newline)."""
    assert errors.encode_status(status) == expected
    assert orjson.loads(expected) == errors.status_object(status)


def test_internal_error_carries_its_cause() -> None:
    """Issue 8 item 13: an InternalError has Kubernetes' ``details.causes[0].message``."""
    assert errors.internal("boom").status_body() == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"Internal error occurred: boom","reason":"InternalError",'
        b'"details":{"causes":[{"message":"boom"}]},"code":500}\n')

"""Hostile bodies and broken requests: 4xx Statuses naming the field, no 500, no server path.

Through the real API (in-process ApiServer on a real SQLite store; uvicorn on 127.0.0.1 for the
client that hangs up):

* DeleteOptions that are not an object (``1`` with ``?propagationPolicy=``, was a TypeError 500)
  or whose fields have the wrong types;
* ``pods/binding`` bodies that are no Binding (``{"target":"n1"}``, ``[1]``, were AttributeError
  500s), ``*/scale`` bodies that are no Scale, ``namespaces/finalize`` with ``spec: null``;
* a client that disconnects mid-body: one INFO line, no ERROR traceback;
* unexpected server errors and store errors show the client no file path;
* Secret ``data`` whose base64 is line-wrapped (``\\r\\n``) is taken, as Go's decoder skips the
  line breaks, and stored as the same bytes on one line;
* no ``fieldValidation``: Kubernetes' default Warn (a ``Warning`` header), not Strict.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from shoal.api.admission import AdmissionChain, AdmissionPlugin, AdmissionRequest, default_admission
from shoal.api.allocators import Release
from shoal.api.storage import ObjectStorage
from shoal.kube.objects import Obj
from shoal.resources.registry import Registry, ResourceKind
from tests.support.api_harness import ApiHarness, ok, status_of

NS = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
SECRETS = f"/api/v1/namespaces/{NS}/secrets"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
JSON = {"Content-Type": "application/json"}
MERGE = {"Content-Type": "application/merge-patch+json"}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
       "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}}


def no_path(message: str) -> str:
    assert "/tmp" not in message and "state.db" not in message and "/work" not in message, message
    return message


def refused(response: httpx.Response, code: int, reason: str, *words: str) -> str:
    message = no_path(str(status_of(response, code, reason)["message"]))
    for word in words:
        assert word in message, message
    return message


async def send(harness: ApiHarness, method: str, path: str, body: str, headers: dict[str, str] | None = None,
               params: dict[str, str] | None = None) -> httpx.Response:
    return await harness.http.request(method, path, content=body.encode(), headers=headers or JSON, params=params)


# -- DeleteOptions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["1", "[1]", '"Background"', "true"])
async def test_a_delete_body_that_is_no_object_is_a_bad_request(harness: ApiHarness, body: str) -> None:
    """Issue 8 item 6: body ``1`` plus ``?propagationPolicy=Background`` was a TypeError 500."""
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "patch-target"}}), 201)
    response = await send(harness, "DELETE", f"{CONFIGMAPS}/patch-target", body,
                          params={"propagationPolicy": "Background"})
    refused(response, 400, "BadRequest", "DeleteOptions", "must be a JSON object")
    ok(await harness.http.get(f"{CONFIGMAPS}/patch-target"))


@pytest.mark.parametrize(("options", "field"), [
    ({"propagationPolicy": 5}, "propagationPolicy"), ({"orphanDependents": "yes"}, "orphanDependents"),
    ({"preconditions": "x"}, "preconditions"), ({"preconditions": {"uid": 5}}, "preconditions.uid"),
    ({"preconditions": {"resourceVersion": ["1"]}}, "preconditions.resourceVersion"),
    ({"dryRun": "All"}, "dryRun"), ({"dryRun": [1]}, "dryRun[0]"), ({"metadata": 5}, "metadata"),
])
async def test_delete_options_of_the_wrong_type_are_bad_requests(
        harness: ApiHarness, options: dict[str, Any], field: str) -> None:
    """Issue 8 item 6: every DeleteOptions field has its Go type; the 400 names the field."""
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}}), 201)
    response = await harness.http.request("DELETE", f"{CONFIGMAPS}/cm", json=options)
    refused(response, 400, "BadRequest", f"{field}: must be")
    ok(await harness.http.get(f"{CONFIGMAPS}/cm"))


async def test_a_delete_collection_takes_typed_options(harness: ApiHarness) -> None:
    """Issue 8 item 6: a collection DELETE checks its options the same way, and honours them."""
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}}), 201)
    refused(await send(harness, "DELETE", CONFIGMAPS, "1"), 400, "BadRequest", "DeleteOptions")
    refused(await harness.http.delete(CONFIGMAPS, params={"gracePeriodSeconds": "nan"}), 400, "BadRequest",
            "gracePeriodSeconds")
    pending = ok(await harness.http.request("DELETE", CONFIGMAPS, json={"propagationPolicy": "Orphan"}))
    assert pending["items"][0]["metadata"]["finalizers"] == ["orphan"]


# -- subresource bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "words"), [
    ('{"target":"n1"}', ["Binding", "target: must be an object"]),
    ('{"target":["x"]}', ["Binding", "target: must be an object, not array"]),
    ("[1]", ["must be of type Binding", "not array"]),
    ('"n1"', ["must be of type Binding", "not string"]),
    ('{"target":{"name":5}}', ["target.name: must be a string"]),
    ('{"target":{"name":"n1","kind":7}}', ["target.kind: must be a string"]),
    ('{"metadata":[],"target":{"name":"n1"}}', ["metadata: must be an object"]),
])
async def test_a_binding_that_is_no_binding_is_a_bad_request(harness: ApiHarness, body: str,
                                                              words: list[str]) -> None:
    """Issue 8 item 7: ``{"target":"n1"}``, ``{"target":["x"]}`` or ``[1]`` were AttributeError 500s."""
    ok(await harness.http.post(PODS, json=POD), 201)
    refused(await send(harness, "POST", f"{PODS}/p1/binding", body), 400, "BadRequest", *words)
    assert "nodeName" not in ok(await harness.http.get(f"{PODS}/p1"))["spec"]


@pytest.mark.parametrize(("body", "words"), [
    ('{"target":{}}', ['Binding "p1" is invalid: target.name: Required value']),
    ('{"target":{"name":""}}', ["target.name: Required value"]),
    ("{}", ["target.name: Required value"]),
    ('{"target":{"kind":"Pod","name":"n1"}}', ['target.kind: Unsupported value: "Pod"']),
])
async def test_a_binding_without_a_node_is_invalid(harness: ApiHarness, body: str, words: list[str]) -> None:
    """Issue 8 item 7: a well-formed Binding that names no node is a 422 naming the field."""
    ok(await harness.http.post(PODS, json=POD), 201)
    refused(await send(harness, "POST", f"{PODS}/p1/binding", body), 422, "Invalid", *words)
    bound = await send(harness, "POST", f"{PODS}/p1/binding", '{"target":{"kind":"Node","name":"n1"}}')
    assert bound.status_code == 201, bound.text
    assert ok(await harness.http.get(f"{PODS}/p1"))["spec"]["nodeName"] == "n1"


@pytest.mark.parametrize(("method", "body", "code", "words"), [
    ("PUT", "[1]", 400, ["must be of type Scale"]),
    ("PUT", '{"spec":5}', 400, ["spec: must be an object"]),
    ("PUT", '{"metadata":5,"spec":{"replicas":1}}', 400, ["metadata: must be an object"]),
    ("PUT", '{"spec":{"replicas":"3"}}', 400, ["spec.replicas: must be an integer"]),
    ("PUT", '{"spec":{"replicas":1.5}}', 400, ["spec.replicas: must be an integer"]),
    ("PUT", '{"spec":{"replicas":1099511627776}}', 400, ["spec.replicas", "32-bit"]),
    ("PUT", '{"spec":{"replicas":-1}}', 422, ["spec.replicas: Invalid value: -1"]),
    ("PUT", '{"spec":{}}', 422, ["spec.replicas: Required value"]),
    ("PATCH", '{"spec":5}', 400, ["spec: must be an object"]),
    ("PATCH", '{"spec":{"replicas":true}}', 400, ["spec.replicas: must be an integer, not bool"]),
])
async def test_a_scale_that_is_no_scale_is_refused(harness: ApiHarness, method: str, body: str, code: int,
                                                   words: list[str]) -> None:
    """Issue 8 item 7: ``*/scale`` bodies are shape-checked (``[1]``, ``{"spec":5}`` were 500s)."""
    ok(await harness.http.post(DEPLOYMENTS, json=DEPLOYMENT), 201)
    headers = MERGE if method == "PATCH" else JSON
    refused(await send(harness, method, f"{DEPLOYMENTS}/web/scale", body, headers), code,
            "BadRequest" if code == 400 else "Invalid", *words)
    assert ok(await harness.http.get(f"{DEPLOYMENTS}/web"))["spec"]["replicas"] == 1
    scaled = ok(await send(harness, "PATCH", f"{DEPLOYMENTS}/web/scale", '{"spec":{"replicas":3}}', MERGE))
    assert scaled["spec"]["replicas"] == 3


async def test_status_and_finalize_bodies_with_null_parts_are_served(harness: ApiHarness) -> None:
    """Issue 8 item 7: ``namespaces/x/finalize`` with ``spec: null`` was an AttributeError 500."""
    ok(await harness.http.post("/api/v1/namespaces", json={"metadata": {"name": "x"}}), 201)
    finalized = ok(await send(harness, "PUT", "/api/v1/namespaces/x/finalize",
                              '{"metadata":{"name":"x"},"spec":null}'))
    assert finalized["spec"] == {"finalizers": []}
    ok(await harness.http.post(PODS, json=POD), 201)
    emptied = ok(await send(harness, "PUT", f"{PODS}/p1/status", '{"metadata":{"name":"p1"},"status":null}'))
    assert isinstance(emptied["status"], dict)
    refused(await send(harness, "PUT", f"{PODS}/p1/status", "[1]"), 400, "BadRequest")
    refused(await send(harness, "PATCH", f"{PODS}/p1/status", '{"status":5}', MERGE), 422, "Invalid", "status")


# -- broken requests and internal errors ------------------------------------------------------------


async def test_a_client_that_hangs_up_mid_body_is_no_error(harness: ApiHarness,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8 item 11: a client that disconnects mid-body was logged as an ERROR traceback."""
    client = await harness.client()
    url = urlsplit(client.server_url)
    caplog.set_level(logging.INFO, logger="shoal")
    _reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write((f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: {url.netloc}\r\nAuthorization: Bearer {harness.token}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                  '{"metadata": {"name": "half"').encode())
    await writer.drain()
    await asyncio.sleep(0.05)
    writer.close()
    await writer.wait_closed()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while "client disconnected" not in caplog.text and loop.time() < deadline:  # noqa: ASYNC110 - log, no event
        await asyncio.sleep(0.01)
    assert "client disconnected while sending POST" in caplog.text
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("shoal")]
    assert errors == [], [r.getMessage() for r in errors]
    status_of(await harness.http.get(f"{CONFIGMAPS}/half"), 404, "NotFound")
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "whole"}}), 201)


class BrokenPlugin:
    """An admission plugin with a bug: it fails on a policy file, naming the file on the server."""

    async def admit(self, request: AdmissionRequest) -> None:
        if request.kind.plural == "configmaps":
            raise ValueError("/var/lib/shoal/secret-policy.json: line 3: expected a mapping")

    async def reserve(self, request: AdmissionRequest) -> Release:
        async def nothing() -> None:
            return None

        return nothing

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        return None


def broken_admission(storage: ObjectStorage, registry: Registry) -> AdmissionPlugin:
    return AdmissionChain([BrokenPlugin(), *default_admission(storage, registry).plugins])


async def test_an_internal_error_shows_the_client_no_details(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """Issue 8 item 4: a 500's message carried ``repr(exc)`` (file paths); now only the log has it."""
    async with ApiHarness(tmp_path / "api", admission=broken_admission) as harness:
        response = await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}})
        message = refused(response, 500, "InternalError", "ValueError")
        assert "/var/lib/shoal" not in message and "secret-policy" not in message
        assert "/var/lib/shoal/secret-policy.json" in caplog.text  # the operator still sees it


async def test_a_store_error_shows_the_client_no_file_path(harness: ApiHarness) -> None:
    """Issue 8 item 4: store errors named the database file (``<data-dir>/state.db: ...``) to clients.

    Another process holding the database's write lock (an ``sqlite3`` shell, a backup tool) makes
    every write fail after SQLite's 5 s busy timeout: a 503 naming the cause, not the file."""
    locker = sqlite3.connect(harness.data_dir / "state.db", isolation_level=None)
    try:
        locker.execute("BEGIN IMMEDIATE")
        response = await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}})
        refused(response, 503, "ServiceUnavailable", "database is locked")
        ok(await harness.http.get(CONFIGMAPS))  # reads go on
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": "cm"}}), 201)


# -- Secret data and field validation ----------------------------------------------------------------


async def test_line_wrapped_base64_in_secret_data_is_taken(harness: ApiHarness) -> None:
    """Issue 8 item 14: base64 with ``\\r\\n`` line breaks (PEM tools write it) was refused."""
    pem = b"-----BEGIN CERTIFICATE-----\n" + bytes(range(256)) * 2 + b"\n-----END CERTIFICATE-----\n"
    flat = base64.b64encode(pem).decode()
    wrapped = "\r\n".join(flat[i:i + 64] for i in range(0, len(flat), 64)) + "\r\n"
    unix = "\n".join(flat[i:i + 76] for i in range(0, len(flat), 76))
    body = {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": wrapped, "tls.key": unix}, "stringData": {"note": "a\r\nb"}}
    created = ok(await harness.http.post(SECRETS, json=body), 201)
    assert created["data"]["tls.crt"] == flat and created["data"]["tls.key"] == flat
    assert base64.b64decode(created["data"]["note"]) == b"a\r\nb"  # stringData: the bytes as given
    assert ok(await harness.http.get(f"{SECRETS}/tls"))["data"]["tls.crt"] == flat
    patched = ok(await harness.http.patch(f"{SECRETS}/tls", json={"data": {"extra": wrapped}}, headers=MERGE))
    assert patched["data"]["extra"] == flat
    # Line breaks are the only thing skipped, as in Go's StdEncoding: other junk is still refused.
    junk = {"metadata": {"name": "junk"}, "data": {"k": flat[:8] + " " + flat[8:]}}
    refused(await harness.http.post(SECRETS, json=junk), 422, "Invalid", "data[k]")
    cm = {"metadata": {"name": "bin"}, "binaryData": {"blob": wrapped}}
    assert ok(await harness.http.post(CONFIGMAPS, json=cm), 201)["binaryData"]["blob"] == flat


async def test_without_field_validation_an_unknown_field_is_a_warning(harness: ApiHarness) -> None:
    """Issue 8 item 15: no ``fieldValidation`` acted as Strict; Kubernetes' default is Warn."""
    body = {"metadata": {"name": "web"}, "spec": {"foo": 1, "selector": {"app": "web"},
                                                  "ports": [{"port": 80}]}}
    created = await harness.http.post(f"/api/v1/namespaces/{NS}/services", json=body)
    assert created.status_code == 201, created.text
    assert created.headers["Warning"] == '299 - "unknown field \\"spec.foo\\""'
    assert "foo" not in created.json()["spec"]
    strict = await harness.http.post(f"/api/v1/namespaces/{NS}/services", params={"fieldValidation": "Strict"},
                                     json={**body, "metadata": {"name": "web2"}})
    refused(strict, 400, "BadRequest", 'unknown field "spec.foo"')


@pytest.mark.parametrize("validation", ["Warn", "Ignore"])
async def test_unknown_fields_with_any_name_are_dropped_exactly(harness: ApiHarness, validation: str) -> None:
    """Issue 8 (schemathesis finding F1): under Warn or Ignore an unknown field named ``""``
    inside metadata dropped the whole ``metadata`` (a 500 KeyError), and unknown keys with
    ``.`` or ``[`` in their names were stored.  Now exactly the unknown fields go."""
    body = {"metadata": {"name": "odd", "": [True]}, "data": {"k": "v"}, "a.b": 1, "c[0]": 2, "": 3}
    created = await harness.http.post(CONFIGMAPS, params={"fieldValidation": validation}, json=body)
    stored = ok(created, 201)
    assert stored["metadata"]["name"] == "odd" and "" not in stored["metadata"]
    assert stored["data"] == {"k": "v"}
    assert not {"a.b", "c[0]", ""} & set(stored)

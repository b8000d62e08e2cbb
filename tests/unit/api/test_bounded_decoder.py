"""Hostile and malformed request bodies get a 4xx Status naming the problem, never a 500.

Through the real API (the in-process ApiServer on SQLite, :mod:`tests.support.api_harness`),
with the bodies of issue 8:

* item 1: YAML nested 900 levels (POST/PUT ``application/yaml``, server-side apply);
* item 2: merge, JSON and strategic patches nested 10,000 levels;
* item 3: a strategic merge patch nested 900 levels;
* item 11 (duplicate keys): refused under ``fieldValidation=Strict``, a ``Warning`` under
  ``Warn``, last value kept;

and the bounds of :mod:`shoal.api.decode` around them: a body exactly :data:`MAX_DEPTH` deep
passes every write path (so the later steps are safe at the limit), one level more is a 400;
YAML aliases cannot deepen, loop or amplify a document; bodies over 3 MiB are 413; a JSON
patch cannot amplify itself with ``copy`` nor exceed 10,000 operations.  A refused write
never moves the store's revision.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from shoal.api.decode import MAX_BODY_BYTES, MAX_DEPTH, decode_json
from tests.support.api_harness import ApiHarness, ok, status_of

CM = "/api/v1/namespaces/default/configmaps"
TARGET = f"{CM}/patch-target"
YAML = {"Content-Type": "application/yaml"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
PATCHES = [MERGE, STRATEGIC, JSON_PATCH]
STRICT = {"fieldValidation": "Strict"}
WARN = {"fieldValidation": "Warn"}
IGNORE = {"fieldValidation": "Ignore"}

#: Issue 8 item 1: a ConfigMap whose ``data:`` is ``[`` x 900 then ``]`` x 900.
DEEP_YAML = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata: " + "[" * 900 + "]" * 900 + "\n"
#: Issue 8 item 2: ``{"data":`` + ``{"a":`` x 10000 + ``1`` + ``}`` x 10001.
DEEP_PATCH = b'{"data":' + b'{"a":' * 10000 + b"1" + b"}" * 10001
#: Issue 8 item 3: a strategic merge patch nested 900 levels under metadata.labels.
DEEP_LABELS = b'{"metadata":{"labels":' + b'{"a":' * 900 + b'"x"' + b"}" * 900 + b"}}"


def nest(levels: int) -> Any:
    """``levels`` nested lists: ``nest(1) == []``, ``nest(2) == [[]]``."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def configmap(name: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


@pytest.fixture
async def api(harness: ApiHarness) -> AsyncIterator[ApiHarness]:
    """The harness with the issue's ConfigMap ``patch-target``."""
    ok(await harness.http.post(CM, json=configmap("patch-target", data={"k": "v"})), 201)
    yield harness


def too_deep(response: httpx.Response, what: str) -> str:
    message = str(status_of(response, 400, "BadRequest")["message"])
    assert f"error decoding {what}: exceeded max depth of {MAX_DEPTH} nested objects and lists" in message
    return message


# -- item 1: deeply nested YAML ------------------------------------------------------------

async def test_deep_yaml_create_update_and_apply_are_400(api: ApiHarness) -> None:
    """Issue 8 item 1: POST/PUT application/yaml and server-side apply of the 900-level YAML."""
    before = await api.revision()
    too_deep(await api.http.post(CM, content=DEEP_YAML.format(name="deep"), headers=YAML), "YAML request body")
    too_deep(await api.http.put(TARGET, content=DEEP_YAML.format(name="patch-target"), headers=YAML),
             "YAML request body")
    too_deep(await api.http.patch(f"{CM}/deep", params={"fieldManager": "t"},
                                  content=DEEP_YAML.format(name="deep"), headers=APPLY), "YAML request body")
    assert await api.revision() == before


async def test_deep_block_yaml_and_deep_json_as_yaml_are_400(api: ApiHarness) -> None:
    """Issue 8 item 1: block-style nesting and JSON sent as YAML hit the same bound."""
    block = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n" + "".join(
        "  " * i + "a:\n" for i in range(1, 300)) + "  " * 300 + "x\n"
    message = too_deep(await api.http.post(CM, content=block, headers=YAML), "YAML request body")
    assert "line 105, column 201" in message  # where the 101st level opens
    as_json = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"deep"},"data":' + b"[" * 5000
    too_deep(await api.http.post(CM, content=as_json, headers=YAML), "YAML request body")


async def test_yaml_aliases_cannot_deepen_loop_or_amplify(api: ApiHarness) -> None:
    """Issue 8 item 1: aliases count as deep as the node they name; loops and bombs are refused."""
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: alias\n"
    deep = head + "x: &a " + "[" * 60 + "]" * 60 + "\ny: " + "[" * 50 + "*a" + "]" * 50 + "\n"
    too_deep(await api.http.post(CM, content=deep, headers=YAML, params=IGNORE), "YAML request body")
    loop = head + "x: &a [*a]\n"
    message = status_of(await api.http.post(CM, content=loop, headers=YAML, params=IGNORE), 400, "BadRequest")
    assert "alias *a at line 5" in message["message"] and "refers to a node that contains it" in message["message"]
    bomb = head + "l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9))
    message = status_of(await api.http.post(CM, content=bomb, headers=YAML, params=IGNORE), 400, "BadRequest")
    assert "yaml: document contains excessive aliasing" in message["message"]
    shared = head + "data:\n  a: &v shared\n  b: *v\n"
    assert ok(await api.http.post(CM, content=shared, headers=YAML), 201)["data"] == {"a": "shared", "b": "shared"}


async def test_yaml_values_json_cannot_hold_are_400_not_500(api: ApiHarness) -> None:
    """Issue 8 item 1: the YAML decoder yields JSON values only (no dates, NaN or odd keys)."""
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n"
    made = ok(await api.http.post(CM, content=head.format(name="typed") + "  day: 2024-01-01\n  1: one\n",
                                  headers=YAML), 201)
    assert made["data"] == {"day": "2024-01-01", "1": "one"}
    for name, value in (("nan", ".nan"), ("inf", "-.inf"), ("omap", "!!omap [x: y]"), ("tag", "!custom 1")):
        status_of(await api.http.post(CM, content=head.format(name=name) + f"  v: {value}\n", headers=YAML),
                  400, "BadRequest")


# -- item 2: patches nested 10,000 levels --------------------------------------------------

@pytest.mark.parametrize("headers", PATCHES, ids=["merge", "strategic", "json"])
async def test_patch_nested_10000_levels_is_400(api: ApiHarness, headers: dict[str, str]) -> None:
    """Issue 8 item 2: the issue's 10,000-level body as each patch type is a 400, not a 500."""
    before = await api.revision()
    too_deep(await api.http.patch(TARGET, content=DEEP_PATCH, headers=headers), "patch")
    assert await api.revision() == before


async def test_json_patch_with_a_value_nested_10000_levels_is_400(api: ApiHarness) -> None:
    """Issue 8 item 2: a well-formed JSON patch whose value nests 10,000 levels."""
    ops = b'[{"op":"add","path":"/data","value":' + b'{"a":' * 10000 + b"1" + b"}" * 10000 + b"}]"
    too_deep(await api.http.patch(TARGET, content=ops, headers=JSON_PATCH), "patch")


async def test_scale_patch_nested_10000_levels_is_400(api: ApiHarness) -> None:
    """Issue 8 item 2: the subresource patch path (scale) uses the same bounded decoder."""
    ok(await api.http.post("/apis/apps/v1/namespaces/default/deployments", json={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        201)
    response = await api.http.patch("/apis/apps/v1/namespaces/default/deployments/web/scale",
                                    content=b'{"spec":' + DEEP_PATCH + b"}", headers=MERGE)
    too_deep(response, "patch")


# -- item 3: strategic merge patch nested 900 levels ---------------------------------------

@pytest.mark.parametrize("headers", [STRATEGIC, MERGE], ids=["strategic", "merge"])
async def test_patch_nested_900_levels_is_400(api: ApiHarness, headers: dict[str, str]) -> None:
    """Issue 8 item 3: the 900-level labels patch; strategic was a 500 (copy.deepcopy)."""
    before = await api.revision()
    message = too_deep(await api.http.patch(TARGET, content=DEEP_LABELS, headers=headers), "patch")
    assert "metadata.labels.a.a" in message  # where the limit was crossed
    assert await api.revision() == before


# -- the bound itself: MAX_DEPTH passes every path, MAX_DEPTH + 1 does not -----------------

async def test_body_exactly_max_depth_passes_every_write_path(api: ApiHarness) -> None:
    """Issue 8 items 1-3: at the limit, decoding, patch engines, apply and validation all work.

    The deep value is an unknown field (no built-in kind has a free-form one), so under
    ``fieldValidation=Ignore`` every write succeeds and the field is dropped."""
    deep = nest(MAX_DEPTH - 1)  # under the root object: MAX_DEPTH levels in all
    body = configmap("at-limit", extra=deep)
    ok(await api.http.post(CM, content=orjson.dumps(body), params=IGNORE), 201)
    ok(await api.http.put(f"{CM}/at-limit", content=orjson.dumps(body), params=IGNORE))
    ok(await api.http.patch(f"{CM}/at-limit", content=orjson.dumps(body), headers=APPLY,
                            params={**IGNORE, "fieldManager": "t"}))
    ok(await api.http.post(CM, content=orjson.dumps(configmap("yaml-at-limit", extra=deep)), headers=YAML,
                           params=IGNORE), 201)
    for headers in (MERGE, STRATEGIC):
        ok(await api.http.patch(TARGET, content=orjson.dumps({"extra": deep}), headers=headers, params=IGNORE))
    ops = [{"op": "add", "path": "/extra", "value": nest(MAX_DEPTH - 3)},
           {"op": "copy", "from": "/extra", "path": "/extra/0/0"}]  # ends exactly MAX_DEPTH deep
    ok(await api.http.patch(TARGET, content=orjson.dumps(ops), headers=JSON_PATCH, params=IGNORE))
    stored = ok(await api.http.get(f"{CM}/at-limit"))
    assert "extra" not in stored


async def test_body_one_level_over_max_depth_is_400_on_every_path(api: ApiHarness) -> None:
    """Issue 8 items 1-3: one level more than MAX_DEPTH is refused by every decoder."""
    deep = nest(MAX_DEPTH)
    body = orjson.dumps(configmap("over", extra=deep))
    before = await api.revision()
    too_deep(await api.http.post(CM, content=body, params=IGNORE), "JSON request body")
    too_deep(await api.http.put(TARGET, content=body, params=IGNORE), "JSON request body")
    too_deep(await api.http.post(CM, content=body, headers=YAML, params=IGNORE), "YAML request body")
    too_deep(await api.http.patch(f"{CM}/over", content=body, headers=APPLY,
                                  params={**IGNORE, "fieldManager": "t"}), "YAML request body")
    for headers in (MERGE, STRATEGIC):
        too_deep(await api.http.patch(TARGET, content=orjson.dumps({"extra": deep}), headers=headers), "patch")
    too_deep(await api.http.request("DELETE", TARGET, content=orjson.dumps({"preconditions": deep})),
             "JSON request body")
    assert await api.revision() == before


async def test_messages_name_the_place_briefly(api: ApiHarness) -> None:
    """Issue 8 items 1-3: a path of long keys is cut, so an error or a Warning stays small."""
    key = "k" * 10_000
    deep: Any = "x"
    for _ in range(MAX_DEPTH):
        deep = {key: deep}
    message = too_deep(await api.http.patch(TARGET, content=orjson.dumps({"data": deep}), headers=MERGE), "patch")
    assert len(message) < 300 and message.endswith("...")
    name = b"k" * 250  # a valid ConfigMap key, and a path longer than any message should quote
    body = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"long"},"data":{"%s":"1","%s":"2"}}' % (
        name, name)
    warned = await api.http.post(CM, content=body, params=WARN)
    ok(warned, 201)
    assert len(warned.headers["warning"]) < 300


async def test_json_patch_cannot_nest_the_object_past_max_depth(api: ApiHarness) -> None:
    """Issue 8 item 2: a JSON patch that would deepen the object past the limit is 422, before it runs."""
    ops = [{"op": "add", "path": "/extra", "value": nest(MAX_DEPTH - 3)},
           {"op": "copy", "from": "/extra", "path": "/extra/0/0/0"}]  # would end MAX_DEPTH + 1 deep
    before = await api.revision()
    status = status_of(await api.http.patch(TARGET, content=orjson.dumps(ops), headers=JSON_PATCH,
                                            params=IGNORE), 422, "Invalid")
    assert f"json patch operation 1 (copy): the result would exceed max depth of {MAX_DEPTH}" in status["message"]
    assert await api.revision() == before


async def test_protobuf_fields_v1_nested_2000_levels_is_400(api: ApiHarness) -> None:
    """Issue 8 item 2: JSON inside a protobuf body (managedFields fieldsV1) is bounded too."""
    def varint(n: int) -> bytes:
        out = bytearray()
        while n >= 0x80:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes([*out, n])

    def ld(number: int, data: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(data)) + data

    meta = ld(1, b"s") + ld(17, ld(7, ld(1, b'{"f:a":' * 2000 + b"{}" + b"}" * 2000)))
    envelope = ld(1, ld(1, b"v1") + ld(2, b"Secret")) + ld(2, ld(1, meta))
    response = await api.http.post("/api/v1/namespaces/default/secrets", content=b"k8s\x00" + envelope,
                                   headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    message = str(status_of(response, 400, "BadRequest")["message"])
    assert "fieldsV1 is not JSON: error decoding fieldsV1: exceeded max depth" in message


# -- size ----------------------------------------------------------------------------------

def too_large(response: httpx.Response) -> None:
    status = status_of(response, 413, "RequestEntityTooLarge")
    assert status["message"] == f"Request entity too large: limit is {MAX_BODY_BYTES}"


async def test_bodies_over_3_mib_are_413(api: ApiHarness) -> None:
    """Issue 8 (bounded decoder): kube-apiserver's 3 MiB request body limit, declared or streamed."""
    big = orjson.dumps(configmap("big", data={"k": "x" * MAX_BODY_BYTES}))
    before = await api.revision()
    too_large(await api.http.post(CM, content=big))
    too_large(await api.http.patch(TARGET, content=b'{"data":{"k":"' + b"x" * MAX_BODY_BYTES + b'"}}',
                                   headers=MERGE))

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    too_large(await api.http.post(CM, content=chunks()))
    assert await api.revision() == before
    exactly = orjson.dumps(configmap("fits", data={"k": "x" * 1000}))
    ok(await api.http.post(CM, content=exactly), 201)


async def test_real_server_refuses_a_declared_oversize_body_without_reading_it(api: ApiHarness) -> None:
    """Issue 8 (bounded decoder): over a real socket, a 1 GB Content-Length is a 413 at once."""
    port = urlsplit((await api.client()).server_url).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {CM} HTTP/1.1\r\nHost: shoal\r\nAuthorization: Bearer {api.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413 "), head


async def test_json_patch_operation_count_and_copies_are_bounded(api: ApiHarness) -> None:
    """Issue 8 (bounded decoder): 10,000 operations at most (413); copies amplify at most 3 MiB (422)."""
    test_op = {"op": "test", "path": "/kind", "value": "ConfigMap"}
    response = await api.http.patch(TARGET, content=orjson.dumps([test_op] * 10_001), headers=JSON_PATCH)
    status = status_of(response, 413, "RequestEntityTooLarge")
    assert "The allowed maximum operations in a JSON patch is 10000, got 10001" in status["message"]
    ok(await api.http.patch(TARGET, content=orjson.dumps([test_op] * 10_000), headers=JSON_PATCH))
    doubling = [{"op": "copy", "from": "", "path": f"/c{i}"} for i in range(16)]  # each copy doubles it
    status = status_of(await api.http.patch(TARGET, content=orjson.dumps(doubling), headers=JSON_PATCH,
                                            params=IGNORE), 422, "Invalid")
    assert f"the values copied would exceed {MAX_BODY_BYTES} bytes in total" in status["message"]


# -- item 11: duplicate keys ---------------------------------------------------------------

DUPLICATED = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","labels":{"a":"1","a":"2"}},'
              b'"data":{"x":"1"},"data":{"y":"2"}}')
DUPLICATE_TEXTS = ['duplicate field "metadata.labels.a"', 'duplicate field "data"']


async def test_duplicate_json_keys_are_refused_under_strict(api: ApiHarness) -> None:
    """Issue 8 item 11: duplicate JSON keys are a strict decoding error, as in Kubernetes."""
    before = await api.revision()
    status = status_of(await api.http.post(CM, content=DUPLICATED, params=STRICT), 400, "BadRequest")
    assert status["message"] == "strict decoding error: " + ", ".join(DUPLICATE_TEXTS)
    assert await api.revision() == before


async def test_duplicate_json_keys_warn_under_warn_and_keep_the_last(api: ApiHarness) -> None:
    """Issue 8 item 11: under Warn each duplicate is a Warning header; the last value wins."""
    response = await api.http.post(CM, content=DUPLICATED, params=WARN)
    made = ok(response, 201)
    assert made["metadata"]["labels"] == {"a": "2"} and made["data"] == {"y": "2"}
    warning = response.headers.get("warning", "")
    for text in DUPLICATE_TEXTS:
        assert '299 - "' + text.replace('"', '\\"') + '"' in warning
    quiet = await api.http.post(CM, content=DUPLICATED.replace(b'"dup"', b'"dup2"'), params=IGNORE)
    assert ok(quiet, 201)["data"] == {"y": "2"} and "warning" not in quiet.headers


async def test_duplicate_keys_in_patches_yaml_and_apply(api: ApiHarness) -> None:
    """Issue 8 item 11: patches, YAML bodies and server-side apply report duplicates the same way."""
    patch = b'{"data":{"x":"1","x":"2"}}'
    for headers in (MERGE, STRATEGIC):
        status = status_of(await api.http.patch(TARGET, content=patch, headers=headers, params=STRICT),
                           400, "BadRequest")
        assert status["message"] == 'strict decoding error: duplicate field "data.x"'
    ops = b'[{"op":"add","path":"/data/x","value":"1","value":"2"}]'
    status = status_of(await api.http.patch(TARGET, content=ops, headers=JSON_PATCH, params=STRICT), 400,
                       "BadRequest")
    assert status["message"] == 'strict decoding error: duplicate field "[0].value"'
    warned = await api.http.patch(TARGET, content=patch, headers=MERGE, params=WARN)
    assert ok(warned)["data"]["x"] == "2"
    assert '299 - "duplicate field \\"data.x\\""' in warned.headers.get("warning", "")
    yaml_body = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  x: '1'\n  x: '2'\n"
    status = status_of(await api.http.post(CM, content=yaml_body.format(name="y"), headers=YAML, params=STRICT),
                       400, "BadRequest")
    assert status["message"] == 'strict decoding error: line 7: key "x" already set in map'
    status = status_of(await api.http.patch(f"{CM}/y", content=yaml_body.format(name="y"), headers=APPLY,
                                            params={**STRICT, "fieldManager": "t"}), 400, "BadRequest")
    assert status["message"] == 'strict decoding error: line 7: key "x" already set in map'
    applied = await api.http.patch(f"{CM}/y", content=yaml_body.format(name="y"), headers=APPLY,
                                   params={**WARN, "fieldManager": "t"})
    assert applied.status_code in (200, 201), applied.text
    assert applied.json()["data"] == {"x": "2"}
    assert 'line 7: key \\"x\\" already set in map' in applied.headers.get("warning", "")


@pytest.mark.parametrize(("body", "duplicates"), [
    (b'{"a":"x:y","a":"z"}', ('duplicate field "a"',)),  # the replaced value held a colon
    (b'{"a" : 1, "b" :{"c":1, "c" : 2}}', ('duplicate field "b.c"',)),  # spaces around colons
    (b'{"k\\u003a":1,"k:":2}', ('duplicate field "k:"',)),  # an escaped colon: the exact path
    (b'{"k\\u003a":1,"l":"\\u003a"}', ()),
    (b'[{"a":1},{"a":1}]', ()),
    (b'{"x":[{"n":1,"n":2}],"x":[]}', ('duplicate field "x[0].n"', 'duplicate field "x"')),
    (b'"a:b"', ()),
])
def test_duplicate_keys_are_found_exactly(body: bytes, duplicates: tuple[str, ...]) -> None:
    """Issue 8 item 11: the colon-count test never misses a duplicate nor invents one."""
    assert decode_json(body).duplicates == duplicates

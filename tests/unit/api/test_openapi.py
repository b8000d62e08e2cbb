"""OpenAPI v3 index and group-version documents, checked the way kubectl reads them."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from shoal.api.openapi import OpenAPIV3, ResourceInfo, build_openapi_v3, resource_infos
from shoal.resources.registry import ResourceKind

RESOURCES = [
    ResourceInfo("", "v1", "Namespace", "namespaces", False, ("status",)),
    ResourceInfo("", "v1", "Pod", "pods", True, ("status", "log", "binding")),
    ResourceInfo("", "v1", "Service", "services", True, ("status",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", True),
    ResourceInfo("", "v1", "Secret", "secrets", True),
    ResourceInfo("", "v1", "Node", "nodes", False, ("status",)),
    ResourceInfo("apps", "v1", "Deployment", "deployments", True, ("status", "scale")),
    ResourceInfo("apps", "v1", "ReplicaSet", "replicasets", True, ("status", "scale")),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", True),
    ResourceInfo("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
]


@pytest.fixture(scope="module")
def openapi() -> OpenAPIV3:
    return build_openapi_v3(RESOURCES)


def load(openapi: OpenAPIV3, gv: str) -> dict[str, Any]:
    raw = openapi.document(gv)
    assert raw is not None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


def gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def test_index_lists_every_group_version_with_its_hash(openapi: OpenAPIV3) -> None:
    index = openapi.index()
    assert list(index["paths"]) == ["api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                                    "apis/discovery.k8s.io/v1"]
    for gv, entry in index["paths"].items():
        raw = openapi.document(gv)
        assert raw is not None
        digest = hashlib.sha512(raw).hexdigest().upper()
        assert entry == {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        assert openapi.hash(gv) == digest


def test_unknown_group_version_has_no_document(openapi: OpenAPIV3) -> None:
    assert openapi.document("apis/batch/v1") is None
    assert openapi.hash("apis/batch/v1") is None
    assert openapi.document("/apis/apps/v1") == openapi.document("apis/apps/v1")


def test_documents_are_stable_across_builds(openapi: OpenAPIV3) -> None:
    """Keys are sorted on encoding: the bytes depend on the resource set, not its order."""
    again = build_openapi_v3(list(reversed(RESOURCES)))
    assert again.document("apis/apps/v1") == openapi.document("apis/apps/v1")
    assert again.hash("api/v1") == openapi.hash("api/v1")
    fewer = build_openapi_v3([r for r in RESOURCES if r.kind != "ReplicaSet"])
    assert fewer.hash("apis/apps/v1") != openapi.hash("apis/apps/v1")


def test_namespaced_item_path_operations(openapi: OpenAPIV3) -> None:
    doc = load(openapi, "apis/apps/v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"] == {"title": "Kubernetes", "version": "v1.32.0"}
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    assert {p["name"] for p in item["parameters"]} >= {"name", "namespace"}
    actions = {verb: op["x-kubernetes-action"] for verb, op in item.items() if verb != "parameters"}
    assert actions == {"get": "get", "put": "put", "patch": "patch", "delete": "delete"}
    for verb in ("get", "put", "patch", "delete"):
        assert item[verb]["x-kubernetes-group-version-kind"] == gvk("apps", "v1", "Deployment")
    ref = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    patch = item["patch"]
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in patch["parameters"] if p["name"] == "fieldValidation").items()
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]


def test_collection_and_cluster_scoped_paths(openapi: OpenAPIV3) -> None:
    core = load(openapi, "api/v1")
    assert {"get", "post", "delete"} <= set(core["paths"]["/api/v1/namespaces/{namespace}/pods"])
    assert core["paths"]["/api/v1/pods"]["get"]["x-kubernetes-action"] == "list"
    ns_item = core["paths"]["/api/v1/namespaces/{name}"]
    assert ns_item["patch"]["x-kubernetes-group-version-kind"] == gvk("", "v1", "Namespace")
    assert "/api/v1/nodes/{name}/status" in core["paths"]
    listing = core["paths"]["/api/v1/namespaces"]["get"]["responses"]["200"]
    assert listing["content"]["application/json"]["schema"]["$ref"].endswith("core.v1.NamespaceList")
    log = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/log"]["get"]
    assert "text/plain" in log["responses"]["200"]["content"]
    binding = core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"]
    assert binding["x-kubernetes-group-version-kind"] == gvk("", "v1", "Binding")


def test_scale_subresource_is_tagged_with_autoscaling_scale(openapi: OpenAPIV3) -> None:
    doc = load(openapi, "apis/apps/v1")
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == gvk("autoscaling", "v1", "Scale")
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def supports_field_validation(doc: dict[str, Any], want: dict[str, str]) -> bool:
    """kubectl's query-param verifier: the first matching PATCH decides."""
    for item in doc["paths"].values():
        op = item.get("patch")
        if op is None or op["x-kubernetes-group-version-kind"] != want:
            continue
        return any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])
    return False


@pytest.mark.parametrize(("gv", "group", "kind"), [
    ("api/v1", "", "Pod"), ("api/v1", "", "Namespace"), ("apis/apps/v1", "apps", "Deployment"),
    ("apis/apps/v1", "apps", "ReplicaSet"), ("apis/coordination.k8s.io/v1", "coordination.k8s.io", "Lease"),
    ("apis/discovery.k8s.io/v1", "discovery.k8s.io", "EndpointSlice")])
def test_every_patch_for_a_kind_accepts_field_validation(openapi: OpenAPIV3, gv: str, group: str,
                                                        kind: str) -> None:
    doc = load(openapi, gv)
    want = gvk(group, "v1", kind)
    assert supports_field_validation(doc, want)
    patches = [item["patch"] for item in doc["paths"].values()
               if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == want]
    assert patches
    assert all(any(p["name"] == "fieldValidation" for p in op["parameters"]) for op in patches)


def follow(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while True:
        if "allOf" in node:
            node = node["allOf"][0]
        ref = node.get("$ref")
        if ref is None:
            return node
        node = doc["components"]["schemas"][ref.removeprefix("#/components/schemas/")]


def find_kind(doc: dict[str, Any], want: dict[str, str]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in doc["components"]["schemas"].values()
                                   if want in s.get("x-kubernetes-group-version-kind", [])]
    assert len(found) == 1
    return found[0]


def test_explain_can_walk_fields(openapi: OpenAPIV3) -> None:
    apps = load(openapi, "apis/apps/v1")
    deployment = find_kind(apps, gvk("apps", "v1", "Deployment"))
    spec = follow(apps, deployment["properties"]["spec"])
    replicas = spec["properties"]["replicas"]
    assert replicas["type"] == "integer"
    assert replicas["description"].startswith("Number of desired pods.")
    core = load(openapi, "api/v1")
    pod_spec = follow(core, find_kind(core, gvk("", "v1", "Pod"))["properties"]["spec"])
    containers = pod_spec["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    container = follow(core, containers["items"])
    assert "image" in container["properties"]
    probe = follow(core, container["properties"]["livenessProbe"])
    port = follow(core, probe["properties"]["httpGet"])["properties"]["port"]
    assert port["x-kubernetes-int-or-string"] is True
    assert port["format"] == "int-or-string"


def test_components_are_closed_and_limited_to_the_group_version(openapi: OpenAPIV3) -> None:
    for gv in openapi.gv_paths():
        doc = load(openapi, gv)
        names = set(doc["components"]["schemas"])
        text = orjson.dumps(doc).decode()
        refs = {part.split('"', 1)[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}
        assert refs <= names, refs - names
    apps = set(load(openapi, "apis/apps/v1")["components"]["schemas"])
    assert "io.k8s.api.core.v1.PodSpec" in apps
    assert "io.k8s.api.core.v1.Service" not in apps
    assert "io.k8s.api.core.v1.Pod" not in apps
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.Patch" in apps
    lease = set(load(openapi, "apis/coordination.k8s.io/v1")["components"]["schemas"])
    assert "io.k8s.api.core.v1.PodSpec" not in lease


def test_schema_types_kubernetes_gets_right(openapi: OpenAPIV3) -> None:
    core = load(openapi, "api/v1")["components"]["schemas"]
    limits = core["io.k8s.api.core.v1.ResourceRequirements"]["properties"]["limits"]
    assert limits["additionalProperties"] == {"type": "string", "format": "quantity",
                                              "x-kubernetes-int-or-string": True}
    assert core["io.k8s.api.core.v1.Secret"]["properties"]["data"]["additionalProperties"] == {
        "type": "string", "format": "byte"}
    meta = core["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
    assert meta["creationTimestamp"]["format"] == "date-time"
    assert "title" not in meta["name"]
    assert "Attributes:" not in core["io.k8s.api.core.v1.Pod"]["description"]
    spec = core["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert spec["x-kubernetes-patch-merge-key"] == "port"


def test_resource_infos_from_registry_kinds() -> None:
    kind = ResourceKind(group="apps", version="v1", kind="Deployment", plural="deployments",
                        singular="deployment", namespaced=True, subresources=("status", "scale"))
    [info] = resource_infos([kind])
    assert info == ResourceInfo("apps", "v1", "Deployment", "deployments", True, ("status", "scale"),
                                kind.verbs)
    assert info.gv_path == "apis/apps/v1"
    read_only = ResourceInfo("", "v1", "Event", "events", True, verbs=("get", "list"))
    doc = orjson.loads(build_openapi_v3([read_only]).document("api/v1") or b"{}")
    item = doc["paths"]["/api/v1/namespaces/{namespace}/events/{name}"]
    assert "get" in item
    assert "patch" not in item

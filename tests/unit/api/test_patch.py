"""apply_patch: media-type dispatch, JSON patch (rollout undo), merge patch (scale)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shoal.api.patch import apply_patch, merge_patch
from shoal.kube.errors import ApiError


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default",
                     "annotations": {"deployment.kubernetes.io/revision": "3", "x": "y",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
        "spec": {"replicas": 2,
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}},
    }


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_rollout_undo_json_patch() -> None:
    live = deployment()
    template = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                         "ports": [{"containerPort": 80}], "resources": {}}]}}
    annotations = {"deployment.kubernetes.io/revision": "2",
                   "kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    ops = [{"op": "replace", "path": "/spec/template", "value": template},
           {"op": "replace", "path": "/metadata/annotations", "value": annotations}]
    out = apply_patch(live, body(ops), "application/json-patch+json")
    assert out["spec"]["template"] == template
    assert out["metadata"]["annotations"] == annotations
    assert out["spec"]["replicas"] == 2
    assert live == deployment()


def test_json_patch_test_op_passes_then_applies() -> None:
    ops = [{"op": "test", "path": "/spec/replicas", "value": 2},
           {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
           {"op": "remove", "path": "/metadata/annotations/x"},
           {"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata/labels"},
           {"op": "move", "from": "/spec/replicas", "path": "/spec/replicaz"},
           {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "b", "image": "b"}}]
    out = apply_patch(deployment(), body(ops), "application/json-patch+json")
    assert out["metadata"]["labels"] == {"a": "b"} == out["spec"]["template"]["metadata"]["labels"]
    assert "x" not in out["metadata"]["annotations"]
    assert out["spec"]["replicaz"] == 2 and "replicas" not in out["spec"]
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx", "b"]


def test_json_patch_failed_test_op_is_422_naming_the_path() -> None:
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 9},
           {"op": "test", "path": "/metadata/resourceVersion", "value": "41"}]
    live = deployment()
    with pytest.raises(ApiError) as info:
        apply_patch(live, body(ops), "application/json-patch+json")
    err = info.value
    assert (err.code, err.reason) == (422, "Invalid")
    assert err.message == "testing value /metadata/resourceVersion failed: test failed"
    assert err.details["causes"][0]["field"] == "/metadata/resourceVersion"
    assert live == deployment()


@pytest.mark.parametrize(("ops", "path"), [
    ([{"op": "replace", "path": "/spec/paused", "value": True}], "/spec/paused"),
    ([{"op": "remove", "path": "/metadata/labels"}], "/metadata/labels"),
    ([{"op": "add", "path": "/status/foo/bar", "value": 1}], "/status/foo/bar"),
    ([{"op": "move", "from": "/nope", "path": "/spec/x"}], "/spec/x"),
    ([{"op": "add", "path": "/spec/template/spec/containers/7", "value": {}}],
     "/spec/template/spec/containers/7"),
], ids=["replace-missing", "remove-missing", "add-under-missing", "move-missing-from",
        "index-out-of-range"])
def test_json_patch_ops_that_do_not_apply_are_422(ops: list[dict[str, Any]], path: str) -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(deployment(), body(ops), "application/json-patch+json")
    assert info.value.code == 422
    assert path in info.value.message
    assert info.value.details["causes"][0]["field"] == path


@pytest.mark.parametrize("raw", [
    b"not json",
    body({"op": "add", "path": "/a", "value": 1}),
    body([{"op": "frobnicate", "path": "/a"}]),
    body([{"path": "/a", "value": 1}]),
    body([{"op": "add", "path": "spec", "value": 1}]),
    body([{"op": "add", "path": "/spec/x"}]),
    body([{"op": "move", "path": "/spec/x"}]),
    body([{"op": "replace", "path": "", "value": [1]}]),
], ids=["bad-json", "not-a-list", "unknown-op", "no-op", "relative-path", "no-value", "no-from",
        "root-not-object"])
def test_malformed_json_patches_are_400(raw: bytes) -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(deployment(), raw, "application/json-patch+json")
    assert (info.value.code, info.value.reason) == (400, "BadRequest")


def test_scale_merge_patch() -> None:
    scale = {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": "web"},
             "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": "app=web"}}
    out = apply_patch(scale, b'{"spec":{"replicas":4}}', "application/merge-patch+json")
    assert out["spec"] == {"replicas": 4} and out["status"] == scale["status"]


# (target, patch, expected) from RFC 7386 and the Kubernetes uses of it
MERGE_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"metadata": {"labels": {"a": "1", "b": "2"}}}, {"metadata": {"labels": {"a": None}}},
     {"metadata": {"labels": {"b": "2"}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), MERGE_CASES)
def test_merge_patch_rfc7386(target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    assert apply_patch(target, body(patch), "application/merge-patch+json") == expected
    assert target == before


def test_merge_patch_result_shares_nothing() -> None:
    target = {"a": {"b": [1]}}
    out = merge_patch(target, {"c": 1})
    out["a"]["b"].append(2)
    assert target == {"a": {"b": [1]}}


def test_merge_patch_must_be_an_object() -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(deployment(), b"[1]", "application/merge-patch+json")
    assert info.value.code == 400


def test_strategic_merge_uses_the_live_kind_and_media_type_parameters() -> None:
    service = {"kind": "Service", "spec": {"ports": [{"port": 80, "targetPort": 80}, {"port": 443}]}}
    patch = body({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
    out = apply_patch(service, patch, "application/strategic-merge-patch+json; charset=utf-8")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 8080}, {"port": 443}]
    replaced = apply_patch(service, patch, "application/strategic-merge-patch+json", kind="ConfigMap")
    assert replaced["spec"]["ports"] == [{"port": 80, "targetPort": 8080}]


def test_strategic_merge_body_must_be_an_object() -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(deployment(), b'"x"', "application/strategic-merge-patch+json")
    assert info.value.code == 400


@pytest.mark.parametrize("content_type",
                         ["application/json", "application/apply-patch+yaml", "text/plain", ""])
def test_unknown_media_types_are_415(content_type: str) -> None:
    with pytest.raises(ApiError) as info:
        apply_patch(deployment(), b"{}", content_type)
    assert (info.value.code, info.value.reason) == (415, "UnsupportedMediaType")

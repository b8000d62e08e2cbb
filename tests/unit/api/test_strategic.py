"""Strategic merge patch: the patches kubectl and the python client send, and the directives."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from shoal.api.strategic import list_type, strategic_merge
from shoal.kube.errors import ApiError

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "annotations": {LAST_APPLIED: "{}\n", "x": "y"}, "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": list(containers), "restartPolicy": "Always"}},
                 **spec},
    }


def nginx(image: str = "nginx:1.25", **extra: Any) -> dict[str, Any]:
    return {"name": "nginx", "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 80, "protocol": "TCP"}], "resources": {},
            "terminationMessagePath": "/dev/termination-log", **extra}


def c(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": f"{name}:1", **extra}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def no_directives(value: Any) -> bool:
    if isinstance(value, dict):
        return all(not k.startswith("$") and no_directives(v) for k, v in value.items())
    if isinstance(value, list):
        return all(no_directives(v) for v in value)
    return True


def template_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


def test_kubectl_second_apply_changes_one_image() -> None:
    live = deployment(nginx())
    manifest = json.dumps({"kind": "Deployment", "spec": {"x": 1}}) + "\n"
    patch = {"metadata": {"annotations": {LAST_APPLIED: manifest}},
             "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                            "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["containers"] == [nginx("nginx:1.26")]
    assert out["metadata"]["annotations"] == {LAST_APPLIED: manifest, "x": "y"}
    assert out["spec"]["replicas"] == 2 and out["metadata"]["uid"] == "u1"
    assert no_directives(out)


# (description, live containers, template spec patch, expected container names)
ORDER_CASES = [
    ("setElementOrder appends a new container where the manifest has it",
     [c("a"), c("b")],
     {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}], "containers": [c("c")]},
     ["a", "b", "c"]),
    ("setElementOrder reorders without content changes",
     [c("a"), c("b"), c("c")],
     {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]},
     ["c", "a", "b"]),
    ("setElementOrder with a deletion",
     [c("a"), c("b"), c("c")],
     {"$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
      "containers": [{"$patch": "delete", "name": "b"}]},
     ["a", "c"]),
    ("without setElementOrder Kubernetes puts new items first",
     [c("a"), c("b")], {"containers": [c("c")]}, ["c", "a", "b"]),
    ("without setElementOrder a changed item keeps its place",
     [c("a"), c("b"), c("d")], {"containers": [{"name": "b", "image": "b:2"}]}, ["a", "b", "d"]),
    ("setElementOrder keeps server-only items at their live position",
     [c("a"), c("sidecar"), c("b")],
     {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
      "containers": [{"name": "b", "image": "x"}]},
     ["a", "sidecar", "b"]),
    ("$patch: delete of a missing item is a no-op",
     [c("a")], {"containers": [{"$patch": "delete", "name": "zzz"}]}, ["a"]),
    ("$patch: replace replaces the whole list",
     [c("a"), c("b")], {"containers": [{"$patch": "replace"}, c("z")]}, ["z"]),
]


@pytest.mark.parametrize(("live_containers", "patch", "expected"),
                         [case[1:] for case in ORDER_CASES], ids=[case[0] for case in ORDER_CASES])
def test_container_list_merge_and_order(live_containers: list[dict[str, Any]], patch: dict[str, Any],
                                        expected: list[str]) -> None:
    out = strategic_merge(deployment(*live_containers), template_patch(patch), "Deployment")
    assert names(pod_spec(out)["containers"]) == expected
    assert no_directives(out)


def test_merged_container_keeps_live_fields() -> None:
    live = deployment(nginx(), c("b"))
    out = strategic_merge(live, template_patch({"containers": [{"name": "nginx", "image": "nginx:2"}]}),
                          "Deployment")
    assert pod_spec(out)["containers"][0] == nginx("nginx:2")


def test_env_add_and_remove() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    live = deployment(nginx(env=env))
    patch = template_patch({
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"name": "nginx",
                        "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                        "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]}],
    })
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["containers"][0]["env"] == [{"name": "A", "value": "1"}, {"name": "C", "value": "3"}]
    assert no_directives(out)


def test_env_value_change_and_value_from() -> None:
    live = deployment(nginx(env=[{"name": "A", "value": "1"}]))
    patch = template_patch({"containers": [{"name": "nginx", "env": [
        {"name": "A", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]})
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["containers"][0]["env"] == [
        {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]


def test_delete_volume_and_volume_mount() -> None:
    live = deployment(nginx(volumeMounts=[{"name": "data", "mountPath": "/data"},
                                          {"name": "cfg", "mountPath": "/etc/cfg"}]))
    pod_spec(live)["volumes"] = [{"name": "data", "emptyDir": {}},
                                 {"name": "cfg", "configMap": {"name": "c"}}]
    patch = template_patch({
        "volumes": [{"$patch": "delete", "name": "cfg"}],
        "containers": [{"name": "nginx", "volumeMounts": [{"$patch": "delete", "mountPath": "/etc/cfg"}]}],
    })
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert pod_spec(out)["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]


def test_null_deletes_map_key() -> None:
    out = strategic_merge(deployment(nginx()), {"metadata": {"annotations": {"x": None}, "labels": None}},
                          "Deployment")
    assert out["metadata"]["annotations"] == {LAST_APPLIED: "{}\n"}
    assert "labels" not in out["metadata"]


def test_retain_keys_switches_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": None}}}
    out = strategic_merge(deployment(nginx()), patch, "Deployment")
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_volume_source() -> None:
    live = deployment(nginx())
    pod_spec(live)["volumes"] = [{"name": "v", "emptyDir": {}}]
    patch = template_patch({"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"],
                                         "configMap": {"name": "cm"}}]})
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]


def test_patch_replace_and_delete_on_maps() -> None:
    live = deployment(nginx())
    out = strategic_merge(live, {"spec": {"selector": {"$patch": "replace", "matchLabels": {"tier": "x"}}}},
                          "Deployment")
    assert out["spec"]["selector"] == {"matchLabels": {"tier": "x"}}
    out = strategic_merge(live, {"spec": {"strategy": {"$patch": "delete"}}}, "Deployment")
    assert out["spec"]["strategy"] == {}


def test_rollout_restart_annotation() -> None:
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}}
    out = strategic_merge(deployment(nginx()), patch, "Deployment")
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}


def test_finalizers_merge_as_a_set() -> None:
    live = {"kind": "ConfigMap", "metadata": {"name": "x", "finalizers": ["a", "b"]}}
    out = strategic_merge(live, {"metadata": {"finalizers": ["b", "c"]}}, "ConfigMap")
    assert sorted(out["metadata"]["finalizers"]) == ["a", "b", "c"]
    out = strategic_merge(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"],
                                              "$setElementOrder/finalizers": ["b", "c"],
                                              "finalizers": ["c"]}}, "ConfigMap")
    assert out["metadata"]["finalizers"] == ["b", "c"]


# (kind, live, patch, expected) for lists whose strategy depends on where they are
LIST_CASES = [
    ("Deployment", {"spec": {"template": {"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}}},
     {"spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}},
     {"spec": {"template": {"spec": {"tolerations": [{"key": "c"}]}}}}),
    ("Pod", {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"},
                                                            {"containerPort": 443}]}]}},
     {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}]}},
     {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"},
                                                      {"containerPort": 443}]}]}}),
    ("Service", {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}},
     {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
     {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
    ("EndpointSlice", {"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]},
     {"endpoints": [{"addresses": ["10.0.0.2"]}]},
     {"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": [{"port": 80}]}),
    ("Deployment", {"status": {"conditions": [{"type": "Available", "status": "False"},
                                              {"type": "Progressing", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Available", "status": "True"}]}},
     {"status": {"conditions": [{"type": "Available", "status": "True"},
                                {"type": "Progressing", "status": "True"}]}}),
    ("ReplicaSet", {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}},
     {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}}),
    ("Deployment", {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"]}]}}}},
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "args": ["z"]}]}}}}),
]


@pytest.mark.parametrize(("kind", "live", "patch", "expected"), LIST_CASES,
                         ids=["tolerations-atomic", "container-ports", "service-ports",
                              "endpointslice-atomic", "conditions", "ownerReferences", "args-atomic"])
def test_list_strategies(kind: str, live: dict[str, Any], patch: dict[str, Any],
                         expected: dict[str, Any]) -> None:
    assert strategic_merge(live, patch, kind) == expected


def test_new_subtrees_lose_their_directives() -> None:
    live = deployment(nginx())
    patch = template_patch({"volumes": [{"$patch": "delete", "name": "gone"}, {"name": "w", "emptyDir": {}}],
                            "securityContext": {"$retainKeys": ["runAsUser"], "runAsUser": 1000}})
    out = strategic_merge(live, patch, "Deployment")
    assert pod_spec(out)["volumes"] == [{"name": "w", "emptyDir": {}}]
    assert pod_spec(out)["securityContext"] == {"runAsUser": 1000}
    assert no_directives(out)


def test_python_client_dict_patch_and_inputs_untouched() -> None:
    live = deployment(nginx())
    patch = {"spec": {"replicas": 5}}
    before_live, before_patch = copy.deepcopy(live), copy.deepcopy(patch)
    out = strategic_merge(live, patch, "Deployment")
    assert out["spec"]["replicas"] == 5
    assert live == before_live and patch == before_patch
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert live == before_live


BAD_PATCHES = [
    ("unknown $patch", {"spec": {"$patch": "explode"}}),
    ("unknown directive", {"spec": {"$frobnicate": 1}}),
    ("merge key missing", template_patch({"containers": [{"image": "x"}]})),
    ("delete without key", template_patch({"containers": [{"$patch": "delete"}]})),
    ("list $patch merge", template_patch({"containers": [{"$patch": "merge"}]})),
    ("retainKeys not covering the patch",
     {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    ("retainKeys not a list", {"spec": {"strategy": {"$retainKeys": "type"}}}),
    ("setElementOrder disagreeing with the patch",
     template_patch({"$setElementOrder/containers": [{"name": "a"}], "containers": [c("b")]})),
    ("setElementOrder not a list", template_patch({"$setElementOrder/containers": {"name": "a"}})),
    ("objects in a primitive merge list", {"metadata": {"finalizers": [{"a": 1}]}}),
]


@pytest.mark.parametrize("patch", [case[1] for case in BAD_PATCHES], ids=[case[0] for case in BAD_PATCHES])
def test_bad_patches_are_400(patch: dict[str, Any]) -> None:
    live = deployment(c("a"))
    with pytest.raises(ApiError) as info:
        strategic_merge(live, patch, "Deployment")
    assert info.value.code == 400 and info.value.reason == "BadRequest"


def test_list_type_table() -> None:
    assert list_type("Service", ("spec", "ports")).merge_key == "port"
    assert list_type("Pod", ("spec", "ports")).merge_key == ""
    assert list_type("Deployment", ("spec", "template", "spec", "containers", "ports")).keys == (
        "containerPort", "protocol")
    assert list_type("Pod", ("spec", "initContainers", "volumeMounts")).merge_key == "mountPath"
    assert list_type("Pod", ("spec", "hostAliases")).merge_key == "ip"
    assert list_type("Pod", ("spec", "imagePullSecrets")).merge_key == "name"
    assert list_type("Pod", ("spec", "tolerations")).merge_key == ""
    assert list_type("ConfigMap", ("metadata", "finalizers")).is_set

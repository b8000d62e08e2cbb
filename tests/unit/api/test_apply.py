"""Server-side apply and managedFields: create, re-apply, prune, conflicts, force, updates."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.api import fieldsets
from shoal.api.apply import record_update, server_side_apply
from shoal.kube.errors import ApiError

T0, T1, T2 = "2025-01-01T00:00:00Z", "2025-01-01T00:01:00Z", "2025-01-01T00:02:00Z"
CONTAINER = 'k:{"name":"nginx"}'


def manifest(replicas: int | None = 2, image: str = "nginx:1.25", **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "nginx", "image": image,
                                              "ports": [{"containerPort": 80}]}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", **labels}},
            "spec": spec}


def stored(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API layer would store after create: server-owned metadata and defaults added."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u-1", resourceVersion="5", generation=1, creationTimestamp=T0)
    container = out["spec"]["template"]["spec"]["containers"][0]
    container.setdefault("imagePullPolicy", "IfNotPresent")
    for port in container.get("ports", []):
        port.setdefault("protocol", "TCP")
    return out


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[str]:
    entry = entries(obj)[(manager, operation)]
    assert entry["fieldsType"] == "FieldsV1"
    paths = fieldsets.decode(entry["fieldsV1"])
    assert paths is not None
    return {fieldsets.path_string(p) for p in paths}


def apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str = "kubectl",
          force: bool = False, now: str = T1) -> dict[str, Any]:
    return server_side_apply(live, applied, manager, force, "Deployment", now)


def test_create_records_apply_entry_in_fieldsv1_format() -> None:
    out = apply(None, manifest(), now=T0)
    (entry,) = out["metadata"]["managedFields"]
    assert {k: entry[k] for k in ("manager", "operation", "apiVersion", "time", "fieldsType")} == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1"}
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {}, "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {CONTAINER: {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}},
                }}}}}}
    assert out["spec"] == manifest()["spec"]


def test_apply_again_unchanged_keeps_object_and_time() -> None:
    live = stored(apply(None, manifest(), now=T0))
    again = apply(live, manifest(), now=T2)
    assert again == live
    assert entries(again)[("kubectl", "Apply")]["time"] == T0


def test_apply_again_with_new_image() -> None:
    live = stored(apply(None, manifest(), now=T0))
    out = apply(live, manifest(image="nginx:1.26"), now=T2)
    container = out["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.26"
    assert container["imagePullPolicy"] == "IfNotPresent"  # a default nobody owns survives
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert out["metadata"]["uid"] == "u-1"
    assert entries(out)[("kubectl", "Apply")]["time"] == T2


def test_fields_omitted_by_their_only_applier_are_removed() -> None:
    live = stored(apply(None, manifest(tier="fe"), now=T0))
    applied = manifest(replicas=None)
    applied["spec"]["template"]["spec"]["containers"][0].pop("ports")
    out = apply(live, applied)
    assert "replicas" not in out["spec"]
    assert out["metadata"]["labels"] == {"app": "web"}
    container = out["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in container
    assert ".spec.replicas" not in owned(out, "kubectl")


def test_omitted_container_is_removed_with_its_defaults() -> None:
    first = manifest()
    first["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    live = stored(apply(None, first, now=T0))
    out = apply(live, manifest())
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx"]


def test_fields_another_manager_owns_are_not_removed() -> None:
    live = stored(apply(None, manifest(), now=T0))
    live = apply(live, manifest(), manager="ci", now=T0)  # a second applier co-owns everything
    out = apply(live, manifest(replicas=None))
    assert out["spec"]["replicas"] == 2
    assert ".spec.replicas" in owned(out, "ci")
    assert ".spec.replicas" not in owned(out, "kubectl")


def test_conflict_with_another_applier() -> None:
    live = stored(apply(None, manifest(), manager="ci", now=T0))
    with pytest.raises(ApiError) as info:
        apply(live, manifest(replicas=5))
    err = info.value
    assert (err.code, err.reason) == (409, "Conflict")
    assert err.message == 'Apply failed with 1 conflict: conflict with "ci": .spec.replicas'
    assert err.details == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "ci"',
                                       "field": ".spec.replicas"}]}
    assert err.to_status()["details"]["causes"][0]["reason"] == "FieldManagerConflict"


def test_same_value_is_shared_not_a_conflict() -> None:
    live = stored(apply(None, manifest(), manager="ci", now=T0))
    out = apply(live, manifest())
    assert ".spec.replicas" in owned(out, "ci") and ".spec.replicas" in owned(out, "kubectl")


def test_force_moves_ownership() -> None:
    live = stored(apply(None, manifest(), manager="ci", now=T0))
    out = apply(live, manifest(replicas=5, image="nginx:2"), force=True)
    assert out["spec"]["replicas"] == 5
    ci, mine = owned(out, "ci"), owned(out, "kubectl")
    image = '.spec.template.spec.containers[name="nginx"].image'
    assert ".spec.replicas" not in ci and image not in ci
    assert ".spec.replicas" in mine and image in mine
    assert ".spec.selector" in ci and ".spec.selector" in mine


def test_several_conflicts_are_grouped_by_manager() -> None:
    live = stored(apply(None, manifest(), manager="ci", now=T0))
    record_update(copy.deepcopy(live), live, "ci", "Update", T0)  # nothing changed: no new entry
    assert set(entries(live)) == {("ci", "Apply")}
    with pytest.raises(ApiError) as info:
        apply(live, manifest(replicas=5, image="nginx:2"))
    assert info.value.message == (
        'Apply failed with 2 conflicts: conflicts with "ci":\n'
        '- .spec.replicas\n- .spec.template.spec.containers[name="nginx"].image')
    assert len(info.value.details["causes"]) == 2


def test_client_side_apply_create_then_server_side_apply_conflicts() -> None:
    created = manifest()
    record_update(None, created, "kubectl-client-side-apply", "Update", T0)
    live = stored(created)
    csa = owned(live, "kubectl-client-side-apply", "Update")
    assert ".spec.replicas" in csa and ".metadata.labels" in csa  # an added map carries "."
    assert not any(p.startswith((".metadata.name", ".metadata.uid", ".apiVersion", ".kind")) for p in csa)
    with pytest.raises(ApiError) as info:
        apply(live, manifest(replicas=3))
    assert info.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                  'using apps/v1: .spec.replicas')


def test_scale_update_then_apply_conflicts_and_force_takes_over() -> None:
    live = stored(apply(None, manifest(), now=T0))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 4
    record_update(live, scaled, "kubectl", "Update", T1, subresource="scale")
    assert owned(scaled, "kubectl", "Update") == {".spec.replicas"}
    assert ".spec.replicas" not in owned(scaled, "kubectl")  # the applier lost it
    with pytest.raises(ApiError) as info:
        apply(scaled, manifest(replicas=2))
    assert info.value.message == ('Apply failed with 1 conflict: conflict with "kubectl" with subresource '
                                  '"scale" using apps/v1: .spec.replicas')
    out = apply(scaled, manifest(replicas=2), force=True)
    assert out["spec"]["replicas"] == 2
    assert ("kubectl", "Update") not in entries(out)  # its only field moved away


def test_handing_replicas_to_an_updater_then_dropping_them_from_the_manifest() -> None:
    live = stored(apply(None, manifest(), now=T0))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 4
    record_update(live, scaled, "kubectl-scale", "Update", T1)
    out = apply(scaled, manifest(replicas=None, image="nginx:2"))
    assert out["spec"]["replicas"] == 4
    assert owned(out, "kubectl-scale", "Update") == {".spec.replicas"}


def test_pruned_item_survives_when_another_applier_owns_part_of_it() -> None:
    first = manifest()
    first["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    live = stored(apply(None, first, now=T0))
    partial = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "sidecar", "env": [{"name": "A", "value": "1"}]}]}}}}
    live = apply(live, partial, manager="ci")
    out = apply(live, manifest(), now=T2)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert containers[1] == {"name": "sidecar", "env": [{"name": "A", "value": "1"}]}
    assert containers[0]["name"] == "nginx"


def test_record_update_moves_changed_fields_and_drops_removed_ones() -> None:
    live = stored(apply(None, manifest(tier="fe"), now=T0))
    new = copy.deepcopy(live)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:9"
    del new["metadata"]["labels"]["tier"]
    new["metadata"]["annotations"] = {"note": "x"}
    record_update(live, new, "editor", "Update", T1)
    editor = owned(new, "editor", "Update")
    assert editor == {'.spec.template.spec.containers[name="nginx"].image', ".metadata.annotations",
                      ".metadata.annotations.note"}
    mine = owned(new, "kubectl")
    assert '.spec.template.spec.containers[name="nginx"].image' not in mine
    assert ".metadata.labels.tier" not in mine
    assert entries(new)[("editor", "Update")]["time"] == T1
    assert [e["operation"] for e in new["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_record_update_uses_supplied_managed_fields_and_can_clear_them() -> None:
    live = stored(apply(None, manifest(), now=T0))
    rewritten = copy.deepcopy(live)
    rewritten["metadata"]["managedFields"] = [{
        "manager": "other", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
    record_update(live, rewritten, "kubectl", "Update", T1)
    assert [e["manager"] for e in rewritten["metadata"]["managedFields"]] == ["other"]
    cleared = copy.deepcopy(live)
    cleared["metadata"]["managedFields"] = [{}]
    record_update(live, cleared, "kubectl", "Update", T1)
    assert "managedFields" not in cleared["metadata"]
    malformed = copy.deepcopy(live)
    malformed["metadata"]["managedFields"] = [{"manager": "x", "operation": "Bogus", "fieldsV1": {}}]
    record_update(live, malformed, "kubectl", "Update", T1)
    assert entries(malformed) == entries(live)


def test_untracked_status_and_finalizer_sets() -> None:
    applied = manifest()
    applied["metadata"]["finalizers"] = ["example.com/x"]
    applied["status"] = {"replicas": 9}
    out = server_side_apply(None, applied, "kubectl", False, "Deployment", T0, track_status=False)
    assert "status" not in out
    fields = owned(out, "kubectl")
    assert '.metadata.finalizers[="example.com/x"]' in fields
    assert not any(p.startswith(".status") for p in fields)


def test_live_object_without_managed_fields_belongs_to_before_first_apply() -> None:
    live = stored(manifest())
    with pytest.raises(ApiError) as info:
        apply(live, manifest(replicas=7))
    assert 'conflict with "before-first-apply" using apps/v1: .spec.replicas' in info.value.message


@pytest.mark.parametrize(("mutate", "code"), [
    (lambda m: m["metadata"].update(managedFields=[{"manager": "x"}]), 400),
    (lambda m: m["spec"]["template"]["spec"]["containers"].append({"image": "no-name"}), 422),
    (lambda m: m["spec"]["template"]["spec"]["containers"].append({"name": "nginx"}), 422),
], ids=["managedFields-in-request", "item-without-key", "duplicate-key"])
def test_invalid_applied_configurations(mutate: Any, code: int) -> None:
    applied = manifest()
    mutate(applied)
    with pytest.raises(ApiError) as info:
        apply(None, applied)
    assert info.value.code == code


def test_inputs_are_not_mutated() -> None:
    live = stored(apply(None, manifest(), manager="ci", now=T0))
    applied = manifest(replicas=3)
    before_live, before_applied = copy.deepcopy(live), copy.deepcopy(applied)
    apply(live, applied, force=True)
    assert live == before_live and applied == before_applied


def test_fieldsets_round_trip_and_printing() -> None:
    tree = {"f:metadata": {"f:finalizers": {".": {}, 'v:"a"': {}}},
            "f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}, "f:x": {}}}
    paths = fieldsets.decode(tree)
    assert paths is not None
    assert fieldsets.encode(paths) == tree
    assert sorted(fieldsets.path_string(p) for p in paths) == [
        '.metadata.finalizers', '.metadata.finalizers[="a"]', '.spec.ports[port=80,protocol="TCP"]',
        '.spec.ports[port=80,protocol="TCP"].port', ".spec.x"]
    assert fieldsets.decode({"f:a": {"k:not json": {}}}) is None
    assert fieldsets.decode({"zz": {}}) is None
    assert fieldsets.decode([]) is None

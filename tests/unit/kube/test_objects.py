"""Accessors of objects held as JSON dicts (shoal.kube.objects): never raise, typed reads."""

from __future__ import annotations

import pytest

from shoal.kube import objects
from shoal.kube.objects import Obj

POD: Obj = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1", "labels": {"app": "web"},
                         "annotations": {"a": "b"}, "deletionTimestamp": "2024-05-01T12:00:00Z",
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "web", "uid": "rs1"},
                                             {"kind": "ReplicaSet", "name": "web2", "uid": "rs2",
                                              "controller": True},
                                             "garbage"]},
            "spec": {"nodeName": "n1"}}


def test_reads() -> None:
    assert (objects.name(POD), objects.namespace(POD), objects.uid(POD)) == ("web-1", "default", "u1")
    assert objects.labels(POD) == {"app": "web"} and objects.annotations(POD) == {"a": "b"}
    assert objects.deleting(POD)
    assert [r["uid"] for r in objects.owner_references(POD)] == ["rs1", "rs2"]  # non-dicts dropped
    controller = objects.controller_of(POD)
    assert controller is not None and controller["name"] == "web2"
    assert objects.typed_meta(POD).get("uid") == "u1"


@pytest.mark.parametrize("broken", [None, {}, {"metadata": "x", "spec": [], "status": 3},
                                    {"metadata": {"name": 3, "labels": ["a"], "ownerReferences": {}}}])
def test_malformed_objects_read_as_empty(broken: Obj | None) -> None:
    assert objects.meta(broken) == {} or isinstance(objects.meta(broken), dict)
    assert objects.spec(broken) == {} and objects.status(broken) == {}
    assert objects.name(broken) == "" and objects.uid(broken) == ""
    assert objects.labels(broken) == {} and objects.owner_references(broken) == []
    assert objects.controller_of(broken) is None and not objects.deleting(broken)


def test_reading_parts_shares_them_and_a_missing_part_is_fresh() -> None:
    pod: Obj = {"metadata": {"name": "a"}}
    objects.meta(pod)["name"] = "b"  # the object's own map
    assert pod["metadata"]["name"] == "b"
    objects.status(pod)["phase"] = "Running"  # a fresh map: the object does not change
    assert "status" not in pod


def test_ensure_stores_the_part_for_writing() -> None:
    pod: Obj = {"metadata": {"name": "a"}, "status": "garbage"}
    objects.ensure(pod, "status")["phase"] = "Running"
    assert pod["status"] == {"phase": "Running"}
    assert objects.ensure(pod, "status") is pod["status"]

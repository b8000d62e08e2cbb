"""build_registry: the kinds, their discovery names and subresources, and field-selector values."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.resources.kinds import ALL_KINDS, build_registry

# plural: (group, kind, singular, namespaced, short names, categories, subresources)
EXPECTED: dict[str, tuple[str, str, str, bool, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "configmaps": ("", "ConfigMap", "configmap", True, ("cm",), (), ()),
    "endpoints": ("", "Endpoints", "endpoints", True, ("ep",), (), ()),
    "events": ("", "Event", "event", True, ("ev",), (), ()),
    "namespaces": ("", "Namespace", "namespace", False, ("ns",), (), ("status", "finalize")),
    "nodes": ("", "Node", "node", False, ("no",), (), ("status",)),
    "pods": ("", "Pod", "pod", True, ("po",), ("all",), ("status", "log", "binding", "exec", "portforward")),
    "secrets": ("", "Secret", "secret", True, (), (), ()),
    "serviceaccounts": ("", "ServiceAccount", "serviceaccount", True, ("sa",), (), ()),
    "services": ("", "Service", "service", True, ("svc",), ("all",), ("status",)),
    "deployments": ("apps", "Deployment", "deployment", True, ("deploy",), ("all",), ("status", "scale")),
    "replicasets": ("apps", "ReplicaSet", "replicaset", True, ("rs",), ("all",), ("status", "scale")),
    "leases": ("coordination.k8s.io", "Lease", "lease", True, (), (), ()),
    "endpointslices": ("discovery.k8s.io", "EndpointSlice", "endpointslice", True, (), (), ()),
}


def test_registry_lists_every_kind_in_discovery_order() -> None:
    registry = build_registry()
    assert [k.plural for k in registry] == list(EXPECTED)
    assert registry.group_versions() == [
        ("", "v1"),
        ("apps", "v1"),
        ("coordination.k8s.io", "v1"),
        ("discovery.k8s.io", "v1"),
    ]
    assert build_registry() is not registry
    assert len(ALL_KINDS) == len(EXPECTED)


@pytest.mark.parametrize("plural", list(EXPECTED))
def test_kind_names(plural: str) -> None:
    group, kind_name, singular, namespaced, short, categories, subresources = EXPECTED[plural]
    kind = build_registry().lookup(group, "v1", plural)
    assert kind is not None
    assert (kind.kind, kind.singular, kind.namespaced) == (kind_name, singular, namespaced)
    assert (kind.short_names, kind.categories, kind.subresources) == (short, categories, subresources)
    assert build_registry().by_kind(kind.api_version, kind_name) is not None
    assert kind.columns[0].name in ("Name", "Last Seen")
    assert all(c.priority in (0, 1) for c in kind.columns)


def test_namespaces_have_no_deletecollection() -> None:
    namespaces = build_registry().lookup("", "v1", "namespaces")
    assert namespaces is not None and "deletecollection" not in namespaces.verbs
    pods = build_registry().lookup("", "v1", "pods")
    assert pods is not None and "deletecollection" in pods.verbs


FIELD_KEYS = {
    "pods": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
    "replicasets": {"status.replicas"},
    "services": {"spec.clusterIP", "spec.type"},
}


@pytest.mark.parametrize("plural", list(EXPECTED))
def test_field_selector_keys_do_not_depend_on_content(plural: str) -> None:
    kind = next(k for k in build_registry() if k.plural == plural)
    assert set(kind.fields({})) == FIELD_KEYS.get(plural, set())
    assert all(isinstance(v, str) for v in kind.fields({}).values())


def test_field_values() -> None:
    registry = build_registry()

    def fields(plural: str, obj: dict[str, Any]) -> dict[str, str]:
        return next(k for k in registry if k.plural == plural).fields(obj)

    pod = {
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": True},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.9"}], "podIP": "10.42.0.9"},
    }
    assert fields("pods", pod) == {
        "spec.nodeName": "n1",
        "spec.restartPolicy": "Always",
        "spec.schedulerName": "",
        "spec.serviceAccountName": "",
        "spec.hostNetwork": "true",
        "status.phase": "Running",
        "status.podIP": "10.42.0.9",
        "status.nominatedNodeName": "",
    }
    event = {
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default", "uid": "u1"},
        "reason": "Pulled",
        "type": "Normal",
        "reportingComponent": "kubelet",
    }
    values = fields("events", event)
    assert values["involvedObject.uid"] == "u1" and values["source"] == "kubelet"
    assert values["involvedObject.fieldPath"] == ""
    assert fields("events", {**event, "source": {"component": "shoal-agent"}})["source"] == "shoal-agent"
    assert fields("nodes", {"spec": {"unschedulable": True}}) == {"spec.unschedulable": "true"}
    assert fields("replicasets", {"status": {"replicas": 3}}) == {"status.replicas": "3"}
    assert fields("services", {"spec": {"clusterIP": "10.43.0.10", "type": "ClusterIP"}}) == {
        "spec.clusterIP": "10.43.0.10",
        "spec.type": "ClusterIP",
    }
    assert fields("secrets", {"type": "kubernetes.io/tls"}) == {"type": "kubernetes.io/tls"}
    assert fields("namespaces", {"status": {"phase": "Active"}}) == {"status.phase": "Active"}

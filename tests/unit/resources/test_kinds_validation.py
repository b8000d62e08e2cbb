"""Semantic validation: Kubernetes' field paths, cause types and messages for the classic mistakes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.kube.errors import FieldError, invalid
from shoal.resources.kinds import build_registry
from shoal.resources.registry import ResourceKind

REGISTRY = build_registry()
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def kind(plural: str) -> ResourceKind:
    found = [k for k in REGISTRY if k.plural == plural]
    assert len(found) == 1
    return found[0]


def check(plural: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Default (as the API server does before validating) and return the error messages."""
    k = kind(plural)
    obj = copy.deepcopy(obj)
    k.default(obj)
    if old is not None:
        old = copy.deepcopy(old)
        k.default(old)
    return [e.message() for e in k.validate(obj, old)]


def deployment(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]
                },
            },
        },
    }
    base["spec"].update(spec)
    return base


def pod(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec},
    }


def service(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
    }


def test_valid_objects_pass() -> None:
    assert check("deployments", deployment()) == []
    assert check("replicasets", deployment()) == []
    assert check("pods", pod()) == []
    assert check("services", service()) == []
    assert check("services", service(type="NodePort", ports=[{"port": 80, "nodePort": 30080}])) == []


def test_deployment_missing_image_and_selector_mismatch() -> None:
    bad = deployment()
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    del bad["spec"]["template"]["spec"]["containers"][0]["image"]
    kind("deployments").default(bad)
    errors = kind("deployments").validate(bad, None)
    assert [e.message() for e in errors] == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
        "`selector` does not match template `labels`",
        "spec.template.spec.containers[0].image: Required value",
    ]
    assert invalid("Deployment", "apps", "web", errors).message.startswith(
        'Deployment.apps "web" is invalid: [spec.template.metadata.labels: Invalid value: '
    )
    assert [e.type for e in errors] == ["FieldValueInvalid", "FieldValueRequired"]


def test_deployment_selector_rules() -> None:
    assert check("deployments", deployment(selector=None)) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`",
    ]
    assert check("deployments", deployment(selector={})) == [
        "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"
    ]
    old = deployment()
    changed = deployment(selector={"matchLabels": {"app": "web", "v": "2"}})
    changed["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert check("deployments", changed, old) == [
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "v":"2"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    ]
    expressions = deployment(
        selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}
    )
    assert check("deployments", expressions) == []


def test_deployment_spec_rules() -> None:
    assert check("deployments", deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    ]
    assert check(
        "deployments", deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}})
    ) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, "
        'StrVal:"0%"}: may not be 0 when `maxSurge` is 0'
    ]
    assert check("deployments", deployment(strategy={"rollingUpdate": {"maxUnavailable": "120%"}})) == [
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, "
        'StrVal:"120%"}: must not be greater than 100%'
    ]
    assert check("deployments", deployment(strategy={"rollingUpdate": {"maxSurge": "x"}}))[0].endswith(
        "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
        "regex used for validation is '[0-9]+%')"
    )
    assert check("deployments", deployment(strategy={"type": "Recreate", "rollingUpdate": {}})) == [
        "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
    ]
    assert check("deployments", deployment(strategy={"type": "Blue"}))[0].endswith(
        'supported values: "Recreate", "RollingUpdate"'
    )
    assert check("deployments", deployment(minReadySeconds=700)) == [
        "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"
    ]
    never = deployment()
    never["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert check("deployments", never) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
    ]


def test_bad_names() -> None:
    bad = deployment()
    bad["metadata"]["name"] = "Web_1"
    assert check("deployments", bad) == [f'metadata.name: Invalid value: "Web_1": {SUBDOMAIN_MSG}']
    assert check("pods", {"metadata": {"namespace": "default"}, "spec": pod()["spec"]}) == [
        "metadata.name: Required value: name or generateName is required"
    ]
    svc = service()
    svc["metadata"]["name"] = "1web"
    assert check("services", svc)[0].startswith('metadata.name: Invalid value: "1web": a DNS-1035 label')
    assert check("namespaces", {"metadata": {"name": "a.b"}})[0].startswith(
        'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label'
    )
    labelled = pod()
    labelled["metadata"]["labels"] = {"app": "bad value"}
    assert check("pods", labelled)[0].startswith(
        'metadata.labels: Invalid value: "bad value": a valid label must be an empty string'
    )


def test_container_rules() -> None:
    assert check("pods", pod(containers=[])) == ["spec.containers: Required value"]
    assert check(
        "pods", pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}])
    ) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: "
        "must be between 1 and 65535, inclusive"
    ]
    duplicated = pod(containers=[{"name": "c", "image": "x"}, {"name": "c", "image": "y"}])
    kind("pods").default(duplicated)
    assert [(e.path, e.type, e.value) for e in kind("pods").validate(duplicated, None)] == [
        ("spec.containers[1].name", "FieldValueDuplicate", "c")
    ]
    assert check("pods", pod(containers=[{"image": "x"}])) == ["spec.containers[0].name: Required value"]
    assert check(
        "pods",
        pod(containers=[{"name": "c", "image": "x", "ports": [{"containerPort": 80, "protocol": "tcp"}]}]),
    ) == [
        'spec.containers[0].ports[0].protocol: Unsupported value: "tcp": '
        'supported values: "SCTP", "TCP", "UDP"'
    ]
    assert check("pods", pod(restartPolicy="Sometimes")) == [
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'
    ]
    assert check(
        "pods",
        pod(
            containers=[
                {"name": "c", "image": "x", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}}
            ]
        ),
    ) == [
        'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu '
        "limit of 1"
    ]
    assert check(
        "pods",
        pod(
            containers=[
                {
                    "name": "c",
                    "image": "x",
                    "livenessProbe": {"successThreshold": 2, "exec": {"command": ["true"]}},
                }
            ]
        ),
    ) == ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]
    assert check("pods", pod(containers=[{"name": "c", "image": "x", "readinessProbe": {}}])) == [
        "spec.containers[0].readinessProbe: Required value: must specify a handler type"
    ]


def test_volume_mount_to_a_missing_volume_is_not_found() -> None:
    mounted = pod(
        containers=[{"name": "c", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]
    )
    kind("pods").default(mounted)
    errors = kind("pods").validate(mounted, None)
    assert [(e.path, e.type, e.value) for e in errors] == [
        ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", "data")
    ]


def test_pod_update_rules() -> None:
    old = pod()
    new_image = pod(containers=[{"name": "c", "image": "busybox:2"}])
    assert check("pods", new_image, old) == []
    bound = pod(nodeName="node-1")
    assert check("pods", bound, old) == []
    moved = pod(nodeName="node-2")
    assert check("pods", moved, bound)[0].startswith(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    )
    ported = pod(containers=[{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}])
    assert len(check("pods", ported, old)) == 1
    tolerated = pod(tolerations=[{"key": "k", "operator": "Exists", "effect": "NoExecute"}])
    assert check("pods", tolerated, old) == []
    assert check("pods", old, tolerated) != []
    assert check("pods", pod(activeDeadlineSeconds=10), pod(activeDeadlineSeconds=5)) == [
        "spec.activeDeadlineSeconds: Invalid value: 10: must be less than or equal to previous value"
    ]


def test_service_rules() -> None:
    assert check("services", service(ports=[])) == ["spec.ports: Required value"]
    assert check("services", service(ports=[], clusterIP="None")) == []
    assert (
        check(
            "services",
            {
                "metadata": {"name": "ext", "namespace": "default"},
                "spec": {"type": "ExternalName", "externalName": "db.example.com."},
            },
        )
        == []
    )
    assert check("services", service(type="ExternalName")) == ["spec.externalName: Required value"]
    assert check("services", service(ports=[{"port": 0}])) == [
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
    ]
    assert check("services", service(ports=[{"port": 80}, {"port": 81}])) == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].name: Required value",
    ]
    assert check("services", service(type="Magic")) == [
        'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
        '"LoadBalancer", "NodePort"'
    ]
    assert check("services", service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])) == [
        "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of "
        "valid ports is 30000-32767"
    ]
    assert check("services", service(ports=[{"port": 80, "nodePort": 30080}])) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert check("services", service(ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]))[
        0
    ].startswith('spec.ports[1]: Duplicate value: core.ServicePort{Name:"", Protocol:"TCP"')
    assert check("services", service(clusterIP="10.43.0.20"), service(clusterIP="10.43.0.10")) == [
        'spec.clusterIPs[0]: Invalid value: "10.43.0.20": may not change once set'
    ]
    assert check("services", service(), service(clusterIP="10.43.0.10")) == []


def test_secret_and_configmap_rules() -> None:
    meta = {"name": "s", "namespace": "default"}
    assert check("secrets", {"metadata": meta, "type": "kubernetes.io/tls", "data": {}}) == [
        "data[tls.crt]: Required value",
        "data[tls.key]: Required value",
    ]
    assert check("secrets", {"metadata": meta, "data": {"bad key": "eA=="}})[0].startswith(
        'data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters'
    )
    assert check("secrets", {"metadata": meta, "data": {"k": "not base64!"}}) == [
        'data[k]: Invalid value: "<secret contents redacted>": must be base64-encoded'
    ]
    big = "A" * (4 * ((1024 * 1024) // 3 + 2))
    assert check("secrets", {"metadata": meta, "data": {"k": big}}) == [
        "data: Too long: may not be more than 1048576 bytes"
    ]
    assert check(
        "secrets",
        {"metadata": meta, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}},
        {"metadata": meta, "data": {}},
    ) == ['type: Invalid value: "kubernetes.io/tls": field is immutable']
    assert check(
        "secrets",
        {"metadata": meta, "data": {"a": "eA=="}},
        {"metadata": meta, "immutable": True, "data": {}},
    ) == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    assert check("configmaps", {"metadata": meta, "data": {"k": "v"}, "binaryData": {"k": "eA=="}}) == [
        'data[k]: Invalid value: "k": duplicate of key present in binaryData'
    ]
    assert check("configmaps", {"metadata": meta, "data": {"..k": "v"}}) == [
        "data[..k]: Invalid value: \"..k\": must not start with '..'"
    ]


def test_other_kinds() -> None:
    meta = {"name": "x", "namespace": "default"}
    assert check("leases", {"metadata": meta, "spec": {"leaseDurationSeconds": 0}}) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    ]
    assert check("events", {"metadata": meta, "involvedObject": {"kind": "Pod", "namespace": "other"}}) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace'
    ]
    assert check("events", {"metadata": meta, "involvedObject": {"kind": "Node", "name": "n1"}}) == []
    assert check("endpointslices", {"metadata": meta, "addressType": "IPv5"}) == [
        'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'
    ]
    assert check(
        "endpointslices", {"metadata": meta, "addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]}
    ) == ['endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address']
    assert check("endpoints", {"metadata": meta, "subsets": [{"addresses": [{"ip": "10.42.0.300"}]}]}) == [
        'subsets[0].addresses[0].ip: Invalid value: "10.42.0.300": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)"
    ]
    assert check(
        "nodes", {"metadata": {"name": "n1"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}
    ) == [
        'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
        '"PreferNoSchedule", "NoExecute"'
    ]
    node = {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.1.0/24"}}
    assert check("nodes", {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.2.0/24"}}, node) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid'
    ]
    assert check("nodes", node, {"metadata": {"name": "n1"}}) == []


@pytest.mark.parametrize("plural", [k.plural for k in REGISTRY])
def test_validation_survives_garbage(plural: str) -> None:
    """Wrongly typed fields are the schema check's job; semantic validation must not crash on them."""
    garbage: dict[str, Any] = {
        "metadata": {"name": "x", "namespace": "d", "labels": []},
        "spec": {
            "containers": "nope",
            "ports": 3,
            "selector": "a=b",
            "template": 1,
            "strategy": [],
            "taints": {},
        },
        "data": [],
        "subsets": "x",
        "endpoints": 5,
        "status": 7,
    }
    errors = kind(plural).validate(garbage, copy.deepcopy(garbage))
    assert all(isinstance(e, FieldError) for e in errors)

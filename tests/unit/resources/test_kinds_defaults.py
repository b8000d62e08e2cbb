"""API defaults: minimal objects come out as Kubernetes 1.32 stores them, and defaulting is idempotent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from shoal.resources.kinds import build_registry
from shoal.resources.registry import ResourceKind

REGISTRY = build_registry()

DEFAULTED_CONTAINER = {
    "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File",
    "resources": {},
}
DEFAULTED_POD_SPEC = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "securityContext": {},
    "schedulerName": "default-scheduler",
}


def kind(plural: str, group: str = "") -> ResourceKind:
    found = REGISTRY.lookup(group, "v1", plural)
    assert found is not None
    return found


def defaulted(plural: str, obj: dict[str, Any], group: str = "") -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    kind(plural, group).default(obj)
    return obj


def test_minimal_deployment_defaults() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
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
    assert defaulted("deployments", deployment, "apps")["spec"] == {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                **DEFAULTED_POD_SPEC,
                "containers": [
                    {
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        **DEFAULTED_CONTAINER,
                    }
                ],
            },
        },
    }


def test_recreate_deployment_gets_no_rolling_update() -> None:
    spec = defaulted("deployments", {"spec": {"strategy": {"type": "Recreate"}}}, "apps")["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert "template" not in spec  # nothing invented


def test_explicit_values_are_kept() -> None:
    spec = defaulted(
        "deployments",
        {"spec": {"replicas": 0, "revisionHistoryLimit": 0, "strategy": {"rollingUpdate": {"maxSurge": 1}}}},
        "apps",
    )["spec"]
    assert spec["replicas"] == 0 and spec["revisionHistoryLimit"] == 0
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": "25%"}


def test_minimal_pod_defaults() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    assert defaulted("pods", pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            **DEFAULTED_POD_SPEC,
            "enableServiceLinks": True,
            "containers": [
                {"name": "c", "image": "busybox", "imagePullPolicy": "Always", **DEFAULTED_CONTAINER}
            ],
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/demo", "Always"),
        ("localhost:5000/demo:v1", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("", "IfNotPresent"),
        ("Bad/Name", "IfNotPresent"),
    ],
)
def test_image_pull_policy_follows_the_tag(image: str, policy: str) -> None:
    pod = defaulted("pods", {"spec": {"containers": [{"name": "c", "image": image}]}})
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_pod_requests_default_to_limits_and_probes_get_defaults() -> None:
    pod = defaulted(
        "pods",
        {
            "spec": {
                "hostNetwork": True,
                "containers": [
                    {
                        "name": "c",
                        "image": "x:1",
                        "ports": [{"containerPort": 8080}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "64Mi"},
                            "requests": {"cpu": "250m"},
                        },
                        "livenessProbe": {"httpGet": {"port": 8080}},
                        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 3},
                        "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    }
                ],
                "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "cm"}}],
            }
        },
    )
    c = pod["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "64Mi"}
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 3
    assert c["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "spec.nodeName", "apiVersion": "v1"}
    assert pod["spec"]["volumes"] == [
        {"name": "a", "emptyDir": {}},
        {"name": "b", "configMap": {"name": "cm", "defaultMode": 420}},
    ]
    assert pod["status"]["qosClass"] == "Burstable"


def test_pod_with_equal_limits_is_guaranteed_but_templates_do_not_copy_requests() -> None:
    container = {"name": "c", "image": "x:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    pod = defaulted("pods", {"spec": {"containers": [copy.deepcopy(container)]}})
    assert pod["status"]["qosClass"] == "Guaranteed"
    rs = defaulted("replicasets", {"spec": {"template": {"spec": {"containers": [container]}}}}, "apps")
    template_container = rs["spec"]["template"]["spec"]["containers"][0]
    assert "requests" not in template_container["resources"]
    assert "enableServiceLinks" not in rs["spec"]["template"]["spec"]
    assert rs["spec"]["replicas"] == 1


def test_minimal_service_defaults() -> None:
    service = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
    }
    assert defaulted("services", service)["spec"] == {
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
    }


def test_service_type_dependent_defaults() -> None:
    node_port = defaulted(
        "services", {"spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]}}
    )["spec"]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert node_port["ports"][0]["targetPort"] == "http"
    lb = defaulted("services", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})["spec"]
    assert lb["allocateLoadBalancerNodePorts"] is True
    external = defaulted("services", {"spec": {"type": "ExternalName", "externalName": "example.com"}})[
        "spec"
    ]
    assert external == {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}
    sticky = defaulted("services", {"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 1}]}})["spec"]
    assert sticky["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    headless = defaulted("services", {"spec": {"clusterIP": "None"}})["spec"]
    assert headless["clusterIPs"] == ["None"]


def test_namespace_secret_node_and_slice_defaults() -> None:
    ns = defaulted("namespaces", {"metadata": {"name": "team"}})
    assert ns == {
        "metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }
    finalized = defaulted("namespaces", {"metadata": {"name": "t"}, "spec": {"finalizers": []}})
    assert finalized["spec"]["finalizers"] == []
    secret = defaulted(
        "secrets", {"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello"}}
    )
    assert secret == {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "eA==", "b": "aGVsbG8="}}
    node = defaulted("nodes", {"spec": {"podCIDR": "10.42.1.0/24"}, "status": {"capacity": {"cpu": "4"}}})
    assert node["status"]["allocatable"] == {"cpu": "4"}
    assert node["spec"]["podCIDRs"] == ["10.42.1.0/24"]
    eps = defaulted("endpointslices", {"addressType": "IPv4", "ports": [{"port": 80}]}, "discovery.k8s.io")
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    ep = defaulted("endpoints", {"subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


SAMPLES: dict[str, dict[str, Any]] = {
    "pods": {
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "ports": [{"containerPort": 1}],
                    "resources": {"limits": {"cpu": "1"}},
                    "startupProbe": {"tcpSocket": {"port": 1}},
                }
            ],
            "initContainers": [{"name": "i", "image": "y"}],
        },
    },
    "deployments": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    "replicasets": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    "services": {
        "spec": {
            "type": "NodePort",
            "sessionAffinity": "ClientIP",
            "clusterIP": "10.43.0.9",
            "ports": [{"port": 80}],
        }
    },
    "namespaces": {"metadata": {"name": "n"}},
    "secrets": {"stringData": {"k": "v"}},
    "nodes": {"status": {"capacity": {"cpu": "1"}}},
    "endpoints": {"subsets": [{"ports": [{"port": 1}]}]},
    "endpointslices": {"ports": [{}]},
    "configmaps": {"data": {"k": "v"}},
    "events": {"reason": "x"},
    "serviceaccounts": {},
    "leases": {"spec": {"holderIdentity": "me"}},
}


@pytest.mark.parametrize("plural", sorted(SAMPLES))
def test_defaulting_is_idempotent(plural: str) -> None:
    registered = [k for k in REGISTRY if k.plural == plural]
    assert len(registered) == 1
    once = copy.deepcopy(SAMPLES[plural])
    registered[0].default(once)
    twice = copy.deepcopy(once)
    registered[0].default(twice)
    assert twice == once

"""Server-side Table rows: the cells ``kubectl get`` (and ``-o wide``) prints for sample objects."""

from __future__ import annotations

import pytest

from tests.unit.resources.tables import REGISTRY, meta, row


def test_workload_rows() -> None:
    template = {
        "spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]
        }
    }
    deployment = {
        "metadata": meta("web"),
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row("deployments", deployment) == [
        "web",
        "2/3",
        3,
        2,
        "5m",
        "nginx,log",
        "nginx:1.25,busybox",
        "app=web",
    ]
    rs = {
        "metadata": meta("web-abc"),
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
            "template": template,
        },
        "status": {"replicas": 3},
    }
    assert row("replicasets", rs) == [
        "web-abc",
        3,
        3,
        0,
        "5m",
        "nginx,log",
        "nginx:1.25,busybox",
        "app=web,pod-template-hash=abc",
    ]


def test_service_rows() -> None:
    cluster = {
        "metadata": meta("web"),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.43.0.10",
            "clusterIPs": ["10.43.0.10"],
            "selector": {"app": "web"},
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }
    assert row("services", cluster) == ["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP", "5m", "app=web"]
    node_port = {
        "metadata": meta("np"),
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.43.0.11",
            "ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 53, "protocol": "UDP", "nodePort": 30053},
            ],
        },
    }
    assert row("services", node_port) == [
        "np",
        "NodePort",
        "10.43.0.11",
        "<none>",
        "80:30080/TCP,53:30053/UDP",
        "5m",
        "<none>",
    ]
    lb = {"metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIPs": ["10.43.0.12"], "ports": []}}
    assert row("services", lb)[2:5] == ["10.43.0.12", "<pending>", "<none>"]
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}, {"hostname": "lb.example"}]}}
    assert row("services", lb)[3] == "192.0.2.9,lb.example"
    external = {"metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example.com"}}
    assert row("services", external)[2:4] == ["<none>", "db.example.com"]
    headless = {
        "metadata": meta("h"),
        "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]},
    }
    assert row("services", headless)[2] == "None"


def test_endpoint_rows() -> None:
    assert row("endpoints", {"metadata": meta("web")}) == ["web", "<none>", "5m"]
    endpoints = {
        "metadata": meta("web"),
        "subsets": [{"addresses": [{"ip": f"10.42.0.{i}"} for i in range(1, 5)], "ports": [{"port": 80}]}],
    }
    assert row("endpoints", endpoints) == ["web", "10.42.0.1:80,10.42.0.2:80,10.42.0.3:80 + 1 more...", "5m"]
    v6 = {"metadata": meta("v6"), "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]}
    assert row("endpoints", v6)[1] == "[fd00::1]:80"
    headless = {"metadata": meta("h"), "subsets": [{"addresses": [{"ip": "10.42.0.1"}]}]}
    assert row("endpoints", headless)[1] == "10.42.0.1"
    eps = {
        "metadata": meta("web-x1"),
        "addressType": "IPv4",
        "ports": [{"port": 80}, {"name": "dns"}, {}],
        "endpoints": [{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2"]}],
    }
    assert row("endpointslices", eps) == ["web-x1", "IPv4", "80,dns,*", "10.42.0.1,10.42.0.2", "5m"]
    assert row("endpointslices", {"metadata": meta("e"), "addressType": "IPv4"})[2:4] == [
        "<unset>",
        "<unset>",
    ]


def test_config_rows() -> None:
    assert row("configmaps", {"metadata": meta("cm"), "data": {"a": "1"}, "binaryData": {"b": "eA=="}}) == [
        "cm",
        2,
        "5m",
    ]
    assert row("secrets", {"metadata": meta("s"), "type": "Opaque", "data": {"a": "eA=="}}) == [
        "s",
        "Opaque",
        1,
        "5m",
    ]
    assert row("serviceaccounts", {"metadata": meta("default")}) == ["default", 0, "5m"]
    assert row("namespaces", {"metadata": meta("team"), "status": {"phase": "Terminating"}}) == [
        "team",
        "Terminating",
        "5m",
    ]
    assert row("leases", {"metadata": meta("node-1"), "spec": {"holderIdentity": "node-1"}}) == [
        "node-1",
        "node-1",
        "5m",
    ]
    assert row("leases", {"metadata": meta("l"), "spec": {}})[1] == ""


def test_node_rows() -> None:
    node = {
        "metadata": {
            "name": "n1",
            "creationTimestamp": "2025-05-01T12:00:00Z",
            "labels": {
                "node-role.kubernetes.io/control-plane": "",
                "node-role.kubernetes.io/worker": "",
                "kubernetes.io/role": "edge",
            },
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0-shoal",
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "podman://4.3.1",
            },
        },
    }
    assert row("nodes", node) == [
        "n1",
        "Ready,SchedulingDisabled",
        "control-plane,edge,worker",
        "31d",
        "v1.32.0-shoal",
        "10.0.0.2",
        "<none>",
        "Debian GNU/Linux 12",
        "6.1.0",
        "podman://4.3.1",
    ]
    bare = {"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert row("nodes", bare) == [
        "n2",
        "NotReady",
        "<none>",
        "<unknown>",
        "",
        "<none>",
        "<none>",
        "<unknown>",
        "<unknown>",
        "<unknown>",
    ]
    assert row("nodes", {"metadata": {"name": "n3"}})[1] == "Unknown"


def test_event_rows() -> None:
    event = {
        "metadata": meta("web.17d"),
        "type": "Normal",
        "reason": "ScalingReplicaSet",
        "message": " Scaled up replica set web-abc to 2\n",
        "count": 3,
        "firstTimestamp": "2025-06-01T11:00:00Z",
        "lastTimestamp": "2025-06-01T11:59:30Z",
        "involvedObject": {"kind": "Deployment", "name": "web", "fieldPath": "spec.containers{nginx}"},
        "source": {"component": "deployment-controller", "host": "node-1"},
    }
    assert row("events", event) == [
        "30s",
        "Normal",
        "ScalingReplicaSet",
        "deployment/web",
        "spec.containers{nginx}",
        "deployment-controller, node-1",
        "Scaled up replica set web-abc to 2",
        "60m",
        3,
        "web.17d",
    ]
    new_style = {
        "metadata": meta("e2"),
        "type": "Warning",
        "reason": "BackOff",
        "message": "m",
        "eventTime": "2025-06-01T11:58:00.000000Z",
        "reportingComponent": "kubelet",
        "reportingInstance": "node-2",
        "involvedObject": {"kind": "Pod"},
        "series": {"count": 7, "lastObservedTime": "2025-06-01T11:59:50.000000Z"},
    }
    assert row("events", new_style) == [
        "10s",
        "Warning",
        "BackOff",
        "pod",
        "",
        "kubelet, node-2",
        "m",
        "2m",
        7,
        "e2",
    ]
    assert row("events", {"metadata": meta("e3")})[8] == 1


@pytest.mark.parametrize("plural", [k.plural for k in REGISTRY])
def test_every_kind_prints_an_empty_object(plural: str) -> None:
    cells = row(plural, {"metadata": {"name": "x"}})
    assert "x" in cells
    assert all(isinstance(c, str | int) for c in cells)

"""Pod resource arithmetic (``PodInfo``) and the node view (``NodeInfo``)."""

from __future__ import annotations

import pytest

from shoal.kube.objects import Obj
from shoal.scheduler.nodeinfo import InvalidNodeError, NodeInfo, Taint
from shoal.scheduler.podinfo import (
    DEFAULT_MEMORY_REQUEST,
    DEFAULT_MILLI_CPU_REQUEST,
    InvalidPodError,
    PodInfo,
    pod_requests,
)
from tests.unit.scheduler.builders import node, pod

MI = 1024 * 1024


def container(cpu: str | None = None, memory: str | None = None, *, limits: Obj | None = None,
              restart: str | None = None) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    obj: Obj = {"name": "c", "resources": {"requests": requests, "limits": limits or {}}}
    if restart:
        obj["restartPolicy"] = restart
    return obj


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param({"containers": [container("100m", "64Mi"), container("250m", "1Gi")]},
                 (350, 64 * MI + 1024 * MI), id="containers add up"),
    pytest.param({"containers": [container("1.5")]}, (1500, 0), id="whole cpus"),
    pytest.param({"containers": [container("1m", "1")]}, (1, 1), id="tiny"),
    pytest.param({"containers": [container(limits={"cpu": "2", "memory": "1Gi"})]}, (2000, 1024 * MI),
                 id="requests default to limits"),
    pytest.param({"containers": [container("100m")], "initContainers": [container("2")]}, (2000, 0),
                 id="an init container bigger than the app sets the peak"),
    pytest.param({"containers": [container("1")], "initContainers": [container("500m"), container("200m")]},
                 (1000, 0), id="init containers run one at a time"),
    pytest.param({"containers": [container("1")],
                  "initContainers": [container("300m", restart="Always"), container("900m")]},
                 (1300, 0), id="a sidecar adds to the app and to later init containers"),
    pytest.param({"containers": [container("100m")],
                  "initContainers": [container("300m", restart="Always"), container("900m")]},
                 (1200, 0), id="init after a sidecar: 900m + 300m beats 100m + 300m"),
    pytest.param({"containers": [container("100m", "10Mi")], "overhead": {"cpu": "50m", "memory": "5Mi"}},
                 (150, 15 * MI), id="overhead is added"),
    pytest.param({"containers": []}, (0, 0), id="nothing"),
])
def test_pod_requests(spec: Obj, expected: tuple[int, int]) -> None:
    assert pod_requests(spec) == expected


def test_non_zero_requests_give_requestless_containers_the_defaults() -> None:
    spec = {"containers": [container(), container("300m")]}
    assert pod_requests(spec, non_zero=True) == (DEFAULT_MILLI_CPU_REQUEST + 300, 2 * DEFAULT_MEMORY_REQUEST)


def test_a_bad_quantity_is_a_typed_error() -> None:
    with pytest.raises(InvalidPodError, match="cpu"):
        pod_requests({"containers": [container("lots")]})


def test_pod_info_reads_owner_ports_and_priority() -> None:
    obj = pod("web", cpu="100m", owner="rs-1", spec={"priority": 7})
    obj["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080},
                                             {"containerPort": 53, "hostPort": 53, "protocol": "UDP",
                                              "hostIP": "127.0.0.1"},
                                             {"containerPort": 9000}]
    info = PodInfo.of(obj)
    assert (info.key, info.owner_uid, info.priority, info.cpu) == ("default/web", "rs-1", 7, 100)
    assert info.ports == (("TCP", "", 8080), ("UDP", "127.0.0.1", 53))
    assert (info.namespace, info.name) == ("default", "web")


@pytest.mark.parametrize(("ready", "taint"), [
    ("True", None),
    ("False", Taint("node.kubernetes.io/not-ready", "", "NoSchedule")),
    (None, Taint("node.kubernetes.io/not-ready", "", "NoSchedule")),
    ("Unknown", Taint("node.kubernetes.io/unreachable", "", "NoSchedule")),
])
def test_readiness_becomes_a_taint(ready: str | None, taint: Taint | None) -> None:
    info = NodeInfo(node("n1", ready=ready))
    assert info.taints == ((taint,) if taint else ())


def test_an_existing_readiness_taint_is_not_duplicated() -> None:
    info = NodeInfo(node("n1", ready="False",
                         taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]))
    assert info.taints == (Taint("node.kubernetes.io/not-ready", "", "NoExecute"),)


def test_node_allocatable_and_change_detection() -> None:
    info = NodeInfo(node("n1", cpu="3500m", memory="2Gi", pods="20"))
    assert (info.alloc_cpu, info.alloc_memory, info.alloc_pods) == (3500, 2048 * MI, 20)
    heartbeat = node("n1", cpu="3500m", memory="2Gi", pods="20")
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = "2025-01-01T00:00:00Z"
    assert info.set_node(heartbeat) is False
    assert info.set_node(node("n1", cpu="4", memory="2Gi", pods="20")) is True
    assert info.set_node(node("n1", cpu="4", memory="2Gi", pods="20", labels={"zone": "a"})) is True


def test_node_without_allocatable_falls_back_to_capacity_and_rejects_garbage() -> None:
    obj = node("n1")
    obj["status"]["capacity"] = obj["status"].pop("allocatable")
    assert NodeInfo(obj).alloc_cpu == 4000
    obj["status"]["capacity"]["cpu"] = "four"
    with pytest.raises(InvalidNodeError, match="n1"):
        NodeInfo(obj)


def test_node_totals_follow_pods_in_and_out() -> None:
    info = NodeInfo(node("n1"))
    first = PodInfo.of(pod("a", cpu="100m", memory="10Mi", owner="rs"))
    second = PodInfo.of(pod("b", owner="rs"))
    second.pod["spec"]["containers"][0]["ports"] = [{"containerPort": 1, "hostPort": 80}]
    second = PodInfo.of(second.pod)
    info.add_pod(first)
    info.add_pod(second)
    info.add_pod(first)  # re-adding replaces, never double counts
    assert (info.requested_cpu, info.requested_memory, len(info.pods)) == (100, 10 * MI, 2)
    assert (info.nz_cpu, info.nz_memory) == (200, 10 * MI + DEFAULT_MEMORY_REQUEST)
    assert info.owner_counts == {"rs": 2}
    assert info.ports == {("TCP", 80): {"": 1}}
    assert info.remove_pod("default/b") is second
    assert info.remove_pod("default/b") is None
    info.remove_pod("default/a")
    assert (info.requested_cpu, info.nz_cpu, info.owner_counts, info.ports) == (0, 0, {}, {})

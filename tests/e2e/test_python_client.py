"""The official ``kubernetes`` Python client against a real shoal server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def api(shoal: ShoalProcess) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(shoal.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api_client:
        yield api_client


def deployment(name: str, image: str = "shoal-demo:1") -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_create_read_list_patch_delete(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment("default", deployment("py"))
    assert created.metadata.uid and created.metadata.generation == 1
    assert created.spec.strategy.type == "RollingUpdate"
    read = apps.read_namespaced_deployment("py", "default")
    assert read.spec.template.spec.containers[0].image == "shoal-demo:1"
    listed = apps.list_namespaced_deployment("default", label_selector="app=py")
    assert [d.metadata.name for d in listed.items] == ["py"]
    assert apps.list_namespaced_deployment("default", label_selector="app=nope").items == []
    patched = apps.patch_namespaced_deployment(
        "py", "default", {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "shoal-demo:2"}]}}}})
    assert patched.spec.template.spec.containers[0].image == "shoal-demo:2"
    assert patched.metadata.generation == 2
    patched = apps.patch_namespaced_deployment(
        "py", "default", [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert patched.spec.replicas == 4
    apps.delete_namespaced_deployment("py", "default")
    with pytest.raises(ApiException) as info:
        apps.read_namespaced_deployment("py", "default")
    assert info.value.status == 404


def test_conflict_on_stale_resource_version(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cas"}, "data": {"v": "1"}})
    stale = cm.metadata.resource_version
    core.replace_namespaced_config_map("cas", "default", {"metadata": {"name": "cas", "resourceVersion": stale},
                                                          "data": {"v": "2"}})
    with pytest.raises(ApiException) as info:
        core.replace_namespaced_config_map("cas", "default",
                                           {"metadata": {"name": "cas", "resourceVersion": stale},
                                            "data": {"v": "3"}})
    assert info.value.status == 409
    assert core.read_namespaced_config_map("cas", "default").data == {"v": "2"}


def test_a_uid_in_a_status_patch_is_a_precondition(api: client.ApiClient) -> None:
    """As the kubelet relies on: a status patch for an older pod of the same name is refused."""
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod("default", {"metadata": {"name": "uidpre"},
                                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    try:
        with pytest.raises(ApiException) as info:
            core.patch_namespaced_pod_status("uidpre", "default", {"metadata": {"uid": "not-this-pod"},
                                                                   "status": {"message": "stale"}})
        assert info.value.status == 409
        assert "Precondition failed: UID in precondition: not-this-pod" in info.value.body
        patched = core.patch_namespaced_pod_status("uidpre", "default", {"metadata": {"uid": pod.metadata.uid},
                                                                         "status": {"message": "fresh"}})
        assert patched.status.message == "fresh"
    finally:
        core.delete_namespaced_pod("uidpre", "default", grace_period_seconds=0)


def test_watch_stream(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def consume() -> None:
        stream = watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=start,
                                      timeout_seconds=10)
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED" and event["object"].metadata.name == "watched-py":
                return

    thread = threading.Thread(target=consume)
    thread.start()
    core.create_namespaced_config_map("default", {"metadata": {"name": "watched-py"}, "data": {"a": "1"}})
    core.patch_namespaced_config_map("watched-py", "default", {"data": {"a": "2"}})
    core.delete_namespaced_config_map("watched-py", "default")
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert [e for e in seen if e[1] == "watched-py"] == [
        ("ADDED", "watched-py"), ("MODIFIED", "watched-py"), ("DELETED", "watched-py")]


def test_services_get_unique_cluster_ips(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    ips = set()
    for index in range(5):
        svc = core.create_namespaced_service("default", {
            "metadata": {"name": f"s{index}"},
            "spec": {"type": "NodePort", "selector": {"app": "x"}, "ports": [{"port": 80}]}})
        assert svc.spec.cluster_ip.startswith("10.43.")
        assert 30000 <= svc.spec.ports[0].node_port <= 32767
        assert svc.spec.ports[0].target_port == 80
        ips.add(svc.spec.cluster_ip)
    assert len(ips) == 5
    taken = core.read_namespaced_service("s0", "default").spec.cluster_ip
    with pytest.raises(ApiException) as info:
        core.create_namespaced_service("default", {"metadata": {"name": "dup"},
                                                   "spec": {"clusterIP": taken, "ports": [{"port": 80}]}})
    assert info.value.status == 422 and "already allocated" in info.value.body
    core.delete_namespaced_service("s0", "default")
    again = core.create_namespaced_service("default", {"metadata": {"name": "reuse"},
                                                       "spec": {"clusterIP": taken, "ports": [{"port": 80}]}})
    assert again.spec.cluster_ip == taken

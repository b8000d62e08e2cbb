"""Real /usr/bin/kubectl against a real ``shoal server`` with every component on (the node agent
on the process runtime, so the node has its heartbeat Lease; no pod here is ever started).

Issue 8 item 8 (system namespaces protected and repaired), item 17 (default tolerations) and
item 19 (the ``default`` ServiceAccount), as a user sees them.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.api.admission import DEFAULT_TOLERATION_SECONDS
from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e

NODE = "e2e-node"
SYSTEM = ("default", "kube-system", "kube-public", "kube-node-lease")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    base: Path = tmp_path_factory.mktemp("system-namespaces")
    with ShoalProcess(base / "data", disable="proxy,dns",
                      extra_args=("--runtime", "process", "--node-name", NODE, "--kubelet-port", "0")) as server:
        yield server


def get_json(server: ShoalProcess, *args: str) -> Any:
    result = server.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def poll(check: Callable[[], Any], within: float, what: str) -> tuple[Any, float]:
    """Call ``check`` until it returns something truthy; that and the seconds it took."""
    began = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - began
        if time.monotonic() - began > within:
            pytest.fail(f"timed out after {within}s waiting for {what}")
        time.sleep(0.2)


def renewed_since(server: ShoalProcess, namespace: str, name: str, after: str) -> Any:
    lease = get_json(server, "lease", name, "-n", namespace)
    return lease if lease is not None and lease["spec"].get("renewTime", "") > after else None


def test_kubectl_cannot_delete_system_namespaces_and_kube_node_lease_comes_back(cluster: ShoalProcess) -> None:
    """Issue 8 item 8: three 403s in kube-apiserver's words; kube-node-lease is deleted, then the
    namespace and the node's Lease are back within seconds; creates in default and both leader
    elections keep working."""
    poll(lambda: get_json(cluster, "lease", NODE, "-n", "kube-node-lease"), 20.0, "the node lease")
    before = get_json(cluster, "namespace", "kube-node-lease")
    answer = cluster.kubectl("delete", "ns", *SYSTEM, check=False)
    assert answer.returncode == 1
    assert answer.stderr.splitlines() == [
        f'Error from server (Forbidden): namespaces "{name}" is forbidden: this namespace may not be deleted'
        for name in ("default", "kube-system", "kube-public")]
    assert answer.stdout.strip() == 'namespace "kube-node-lease" deleted'
    deleted_at = time.monotonic()

    def fresh_namespace() -> Any:
        ns = get_json(cluster, "namespace", "kube-node-lease")
        new = ns is not None and ns["metadata"]["uid"] != before["metadata"]["uid"]
        return ns if new and ns["status"]["phase"] == "Active" else None

    poll(fresh_namespace, 10.0, "kube-node-lease to be created again")
    lease, _ = poll(lambda: get_json(cluster, "lease", NODE, "-n", "kube-node-lease"), 10.0, "the node lease again")
    took = time.monotonic() - deleted_at
    assert lease["spec"]["holderIdentity"] == NODE
    assert took < 10.0, f"recovery took {took:.1f}s"
    poll(lambda: renewed_since(cluster, "kube-node-lease", NODE, lease["spec"]["renewTime"]), 10.0,
         "the node lease to be renewed")

    for name in SYSTEM:
        assert get_json(cluster, "namespace", name)["status"]["phase"] == "Active"
    assert cluster.kubectl("create", "configmap", "after-delete", "-n", "default").stdout.strip() == \
        "configmap/after-delete created"
    for election in ("shoal-controller-manager", "kube-scheduler"):
        now = get_json(cluster, "lease", election, "-n", "kube-system")
        poll(functools.partial(renewed_since, cluster, "kube-system", election, now["spec"]["renewTime"]),
             10.0, f"{election} to renew its lease")


def pod_yaml(name: str, tolerations: str = "") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeSelector:
    example.com/nowhere: "true"
  containers:
  - name: c
    image: busybox:1
{tolerations}"""


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      nodeSelector:
        example.com/nowhere: "true"
      containers:
      - name: c
        image: busybox:1
"""

DEFAULTS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": DEFAULT_TOLERATION_SECONDS},
]


def test_pods_get_the_default_noexecute_tolerations(cluster: ShoalProcess) -> None:
    """Issue 8 item 17: kubectl-created pods, server-side applied pods and a Deployment's pods
    carry the two default tolerations; a pod's own toleration for a key is kept instead."""
    assert "created" in cluster.kubectl("apply", "-f", "-", input=pod_yaml("plain")).stdout
    assert get_json(cluster, "pod", "plain")["spec"]["tolerations"] == DEFAULTS
    assert "unchanged" in cluster.kubectl("apply", "-f", "-", input=pod_yaml("plain")).stdout

    own = ("  tolerations:\n  - key: node.kubernetes.io/unreachable\n    operator: Exists\n"
           "    effect: NoExecute\n    tolerationSeconds: 60\n")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=pod_yaml("own", own))
    cluster.kubectl("apply", "--server-side", "-f", "-", input=pod_yaml("own", own))
    assert get_json(cluster, "pod", "own")["spec"]["tolerations"] == [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 60}, DEFAULTS[0]]

    cluster.kubectl("apply", "-f", "-", input=DEPLOYMENT)

    def two_pods() -> Any:
        items = (get_json(cluster, "pods", "-l", "app=web") or {}).get("items") or []
        return items if len(items) == 2 else None

    pods, _ = poll(two_pods, 15.0, "the deployment's two pods")
    assert all(p["spec"]["tolerations"] == DEFAULTS for p in pods)
    assert "tolerations" not in get_json(cluster, "deployment", "web")["spec"]["template"]["spec"]
    described = cluster.kubectl("describe", "pod", "plain").stdout
    assert (f"node.kubernetes.io/not-ready:NoExecute op=Exists for {DEFAULT_TOLERATION_SECONDS}s"
            in described)
    cluster.kubectl("delete", "deployment", "web", "--wait=false")


def test_every_namespace_has_a_default_service_account(cluster: ShoalProcess) -> None:
    """Issue 8 item 19: system namespaces, a new namespace, and again after the account is deleted."""
    for name in SYSTEM:
        poll(functools.partial(get_json, cluster, "serviceaccount", "default", "-n", name), 10.0,
             f"{name}/default")
    cluster.kubectl("create", "namespace", "e2e-sa")
    first, took = poll(lambda: get_json(cluster, "serviceaccount", "default", "-n", "e2e-sa"), 10.0,
                       "e2e-sa/default")
    assert took < 5.0
    assert cluster.kubectl("delete", "serviceaccount", "default", "-n", "e2e-sa").returncode == 0

    def replaced() -> Any:
        sa = get_json(cluster, "serviceaccount", "default", "-n", "e2e-sa")
        return sa if sa is not None and sa["metadata"]["uid"] != first["metadata"]["uid"] else None

    poll(replaced, 10.0, "e2e-sa/default to be created again")
    # `kubectl create token`-style clients and `kubectl auth` look it up by this name.
    assert cluster.kubectl("get", "sa", "-n", "e2e-sa", "-o", "name").stdout.split() == ["serviceaccount/default"]
    cluster.kubectl("delete", "namespace", "e2e-sa", "--timeout=20s")

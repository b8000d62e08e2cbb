"""Real kubectl against a real shoal server: Endpoints and EndpointSlices (issue 9 items 1 and 5).

No node agent runs: the test plays the kubelet (``kubectl patch --subresource=status``), so the
pods' addresses and readiness are the test's.  Checks the controllers in the real server
process and the ``kubectl get endpoints,endpointslices`` columns, and the ``kubernetes``
Service pointing at the API server.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e

MANIFEST = """
apiVersion: v1
kind: Node
metadata: {name: e2e-node, labels: {topology.kubernetes.io/zone: zone-e2e}}
---
apiVersion: v1
kind: Service
metadata: {name: shop, namespace: default}
spec:
  selector: {app: shop}
  ports: [{name: http, port: 80, targetPort: web}]
"""


def pod(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "shop"}},
                       "spec": {"nodeName": "e2e-node", "containers": [
                           {"name": "main", "image": "busybox", "ports": [{"name": "web", "containerPort": 8080}]}]}})


def status(ip: str, ready: bool) -> str:
    flag = "True" if ready else "False"
    return json.dumps({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [
        {"type": "Ready", "status": flag, "lastTransitionTime": "2030-01-01T00:00:00Z"}]}})


def until(check: Any, what: str, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def table(shoal: ShoalProcess, *args: str) -> list[list[str]]:
    return [line.split() for line in shoal.kubectl("get", *args).stdout.splitlines()]


def test_endpoints_and_slices_follow_pods(shoal: ShoalProcess) -> None:
    shoal.kubectl("apply", "-f", "-", input=MANIFEST)
    for number, name in enumerate(("shop-a", "shop-b", "shop-c", "shop-d", "shop-e"), start=11):
        shoal.kubectl("apply", "-f", "-", input=pod(name))
        shoal.kubectl("patch", "pod", name, "--subresource=status", "--type=merge", "-p",
                      status(f"10.42.7.{number}", ready=name != "shop-e"))

    def endpoints_row() -> list[str] | None:
        rows = table(shoal, "endpoints", "shop")
        return rows[1] if len(rows[1]) > 3 else None

    row = until(endpoints_row, "four ready endpoints")
    assert table(shoal, "endpoints", "shop")[0] == ["NAME", "ENDPOINTS", "AGE"]
    assert row[1:5] == ["10.42.7.11:8080,10.42.7.12:8080,10.42.7.13:8080", "+", "1", "more..."], \
        "ready addresses only, three shown"

    slices = table(shoal, "endpointslices", "-l", "kubernetes.io/service-name=shop")
    assert slices[0] == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    [line] = slices[1:]
    assert line[0].startswith("shop-") and line[1:3] == ["IPv4", "8080"]
    assert line[3:7] == ["10.42.7.11,10.42.7.12,10.42.7.13", "+", "2", "more..."], "every address, ready or not"

    shoal.kubectl("delete", "pod", "shop-a", "--wait=false")

    def terminating() -> dict[str, Any] | None:
        items = json.loads(shoal.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=shop",
                                         "-o", "json").stdout)["items"]
        found = {e["targetRef"]["name"]: e for s in items for e in s.get("endpoints") or []}
        a = found.get("shop-a")
        return found if a is not None and a["conditions"].get("terminating") else None

    found = until(terminating, "shop-a terminating in the slice")
    assert found["shop-a"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
    assert found["shop-b"]["zone"] == "zone-e2e" and found["shop-b"]["nodeName"] == "e2e-node"
    eps = json.loads(shoal.kubectl("get", "endpoints", "shop", "-o", "json").stdout)
    ready = [a["ip"] for s in eps["subsets"] for a in s.get("addresses") or []]
    assert "10.42.7.11" not in ready, "the Endpoints leave terminating pods out"


def test_the_kubernetes_service_points_at_the_api_server(shoal: ShoalProcess) -> None:
    service = until(lambda: [r for r in table(shoal, "svc", "-n", "default") if r[0] == "kubernetes"],
                    "the kubernetes Service")
    assert service[0][1:5] == ["ClusterIP", "10.43.0.1", "<none>", "443/TCP"]
    row = until(lambda: [r for r in table(shoal, "endpoints", "-n", "default") if r[0] == "kubernetes"],
                "the kubernetes Endpoints")
    assert row[0][1] == f"127.0.0.1:{shoal.port}"
    slice_ = json.loads(shoal.kubectl("get", "endpointslice", "kubernetes", "-o", "json").stdout)
    assert slice_["endpoints"] == [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]
    assert slice_["ports"] == [{"name": "https", "port": shoal.port, "protocol": "TCP"}]


def test_a_real_pod_on_the_process_runtime_goes_in_and_out_of_its_slice(tmp_path: Path) -> None:
    """The whole path with the node agent (process runtime: pods on 127.0.0.1): a readiness
    probe failing takes the endpoint to ``ready: false`` within seconds, and back."""
    flag = tmp_path / "ready"
    flag.touch()
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "live", "labels": {"app": "live"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "main", "image": "busybox", "command": ["sleep", "120"],
                    "readinessProbe": {"exec": {"command": ["test", "-f", str(flag)]},
                                       "periodSeconds": 1, "failureThreshold": 1}}]}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "live"},
               "spec": {"selector": {"app": "live"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    with ShoalProcess(tmp_path / "data", disable="proxy",
                      extra_args=("--runtime", "process", "--node-name", "live-node", "--kubelet-port", "0")) as shoal:
        shoal.kubectl("apply", "-f", "-", input=json.dumps(service))
        try:
            shoal.kubectl("apply", "-f", "-", input=json.dumps(manifest))

            def endpoint() -> dict[str, Any] | None:
                items = json.loads(shoal.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=live",
                                                 "-o", "json").stdout)["items"]
                found = [e for s in items for e in s.get("endpoints") or []]
                return found[0] if found else None

            def ready(value: bool) -> dict[str, Any] | None:
                found = endpoint()
                return found if found is not None and found["conditions"]["ready"] is value else None

            up = until(lambda: ready(True), "the pod ready in its slice", within=30.0)
            assert up["addresses"] == ["127.0.0.1"] and up["nodeName"] == "live-node"
            flag.unlink()
            until(lambda: ready(False), "the failing probe in the slice", within=10.0)
            flag.touch()
            until(lambda: ready(True), "ready again", within=10.0)
            shoal.kubectl("delete", "pod", "live", "--wait=false")
            until(lambda: endpoint() is None, "the deleted pod out of the slice", within=20.0)
        finally:  # the agent stops the process before the pod goes
            shoal.kubectl("delete", "pod", "live", "--ignore-not-found", "--timeout=30s", check=False)

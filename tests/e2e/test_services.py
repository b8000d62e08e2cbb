"""Issue 9 end to end: Services with zero failed requests, with real kubectl, podman and HAProxy.

The all-in-one server runs inside a network namespace the test makes (``shoal-e2e-…``), as a
node of ``shoal up`` does: its ClusterIPs, NodePorts, pod bridge, HAProxy and DNS live there,
never on the host's interfaces.  "From the host" means from that node's namespace.  The
namespace, the pods and every process the test started are removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.server import ShoalProcess
from tests.support.wait import wait_for as support_wait_for

pytestmark = pytest.mark.e2e

DEMO = "localhost/shoal-demo:1"
DEMO2 = "localhost/shoal-demo:2"
ROOT = Path(__file__).resolve().parents[2]
RATE, SECONDS = 50.0, 20.0


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.2) -> Any:
    """:func:`tests.support.wait.wait_for`, polling every 0.2 s."""
    return support_wait_for(what, check, timeout, every)


def podman(*args: str, check: bool = True) -> str:
    return subprocess.run(["podman", "--runtime", "runc", *args], check=check, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    for tool in ("haproxy", "podman", "kubectl", "nsenter", "curl"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
            pytest.fail(f"{tool} is missing: the Service tests need it (scripts/setup.sh installs it)")
    base: Path = tmp_path_factory.mktemp("services")
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    netns = f"shoal-{name}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    server = ShoalProcess(base / "data", disable="", netns=netns, extra_args=(
        "--node-name", name, "--cluster-cidr", "10.96.0.0/16", "--kubelet-port", "0"))
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        subprocess.run([*server.shoal_command(), "demo-image"], check=True, capture_output=True, timeout=120)
        server.start()
        wait_for("the node to register", lambda: server.kubectl("get", "node", name, check=False).returncode == 0)
        server.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
        yield server
    finally:
        server.stop()
        server.stop_haproxy()
        for pod_id in podman("pod", "ps", "-q", "--filter", f"label=shoal.node={name}", check=False).split():
            subprocess.run(["podman", "--runtime", "runc", "pod", "rm", "-f", pod_id], capture_output=True, timeout=60)
        subprocess.run(server.in_netns(["podman", "network", "rm", "-f", f"shoal-{name}"]), capture_output=True,
                       timeout=60)
        subprocess.run(["ip", "netns", "del", netns], check=False)


def apply(node: ShoalProcess, *objects: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", input="---\n".join(yaml.safe_dump(o) for o in objects))


def web_deployment(name: str = "web", replicas: int = 3, image: str = DEMO, **env: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "web", "image": image, "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1, "failureThreshold": 1}}
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 5, "containers": [container]}}}}


def service(name: str, *, selector: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                     **spec}}


def get(node: ShoalProcess, *args: str) -> Any:
    return json.loads(node.kubectl("get", *args, "-o", "json").stdout)


def ready_pods(node: ShoalProcess, app: str = "web") -> list[dict[str, Any]]:
    items = get(node, "pods", "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))]


def endpoint_ips(node: ShoalProcess, service_name: str = "web") -> set[str]:
    slices = get(node, "endpointslices", "-l", f"kubernetes.io/service-name={service_name}")["items"]
    return {e["addresses"][0] for s in slices for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")}


def http(node: ShoalProcess, url: str) -> tuple[int, str]:
    out = subprocess.run(node.in_netns(["curl", "-s", "-m", "3", "-w", "\n%{http_code}", url]),
                         capture_output=True, text=True, timeout=10)
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body.strip()


class Load:
    """~50 requests/s for at most 20 s, from the node (the host) and from a pod, at once."""

    def __init__(self, node: ShoalProcess, url: str, stop_file: Path) -> None:
        self.stop_file = stop_file
        stop_file.unlink(missing_ok=True)
        self.host = subprocess.Popen(
            node.in_netns([sys.executable, "-m", "tests.support.load", url, "--rate", str(RATE), "--seconds",
                           str(SECONDS), "--until-file", str(stop_file)]),
            cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        count = int(RATE * SECONDS)
        loop = (f"ok=0; fail=0; i=0; end=$(( $(date +%s) + {int(SECONDS)} )); "
                f"while [ $i -lt {count} ] && [ $(date +%s) -lt $end ] && [ ! -e /tmp/stop ]; do "
                f"if timeout 3 wget -q -O /dev/null {url}; then ok=$((ok+1)); else fail=$((fail+1)); fi; "
                f"i=$((i+1)); sleep 0.02; done; echo $ok $fail")
        self.node = node
        node.kubectl("exec", "loader", "--", "rm", "-f", "/tmp/stop")
        self.pod = subprocess.Popen(node.in_netns(["kubectl", "--kubeconfig", str(node.kubeconfig), "exec", "loader",
                                                   "--", "sh", "-c", loop]), stdout=subprocess.PIPE, text=True)

    def stop(self) -> None:
        """End both loads early (a test that failed before :meth:`finish`)."""
        self.stop_file.touch()
        self.node.kubectl("exec", "loader", "--", "touch", "/tmp/stop", check=False)
        for proc in (self.host, self.pod):
            if proc.poll() is None:
                proc.communicate(timeout=30)

    def finish(self, what: str) -> tuple[int, int]:
        """Wait for both loads to run their full course (at most :data:`SECONDS`)."""
        out, _ = self.host.communicate(timeout=SECONDS + 30)
        host = json.loads(out)
        pod_out, _ = self.pod.communicate(timeout=60)
        pod_ok, pod_failed = (int(x) for x in pod_out.split())
        sent, failed = host["sent"] + pod_ok + pod_failed, host["failed"] + pod_failed
        print(f"{what}: {sent} requests ({host['sent']} from the host, {pod_ok + pod_failed} from a pod), "
              f"{failed} failed; host errors: {host['errors'][:5]}")
        return sent, failed


@pytest.fixture(scope="module")
def web(node: ShoalProcess) -> dict[str, Any]:
    apply(node, web_deployment(), service("web", type="NodePort"), service("web-headless", clusterIP="None"),
          {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loader"},
           "spec": {"containers": [{"name": "sh", "image": DEMO, "command": [
               # PID 1 a shell that reaps: busybox timeout leaves a watcher process per request
               "sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}],
                    "terminationGracePeriodSeconds": 1}})
    node.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    node.kubectl("wait", "--for=condition=Ready", "pod/loader", "--timeout=60s")
    wait_for("3 endpoints", lambda: len(endpoint_ips(node)) == 3)
    return dict(get(node, "service", "web"))


def test_service_answers_on_clusterip_and_nodeport(node: ShoalProcess, web: dict[str, Any]) -> None:
    ip, node_port = web["spec"]["clusterIP"], web["spec"]["ports"][0]["nodePort"]
    names = {p["metadata"]["name"] for p in ready_pods(node)}
    seen = {http(node, f"http://{ip}/")[1] for _ in range(9)}
    assert seen == names, "round robin over the three replicas"
    assert http(node, f"http://127.0.0.1:{node_port}/")[0] == 200
    out = node.kubectl("exec", "loader", "--", "wget", "-q", "-O", "-", f"http://{ip}/").stdout.strip()
    assert out in names


@pytest.mark.parametrize("disruption", ["podman kill", "delete pod", "rolling update", "scale 1 and back",
                                        "service churn"])
def test_zero_failed_requests(node: ShoalProcess, web: dict[str, Any], disruption: str, tmp_path: Path) -> None:
    url = f"http://{web['spec']['clusterIP']}/"
    load = Load(node, url, tmp_path / "stop")
    try:
        disrupt(node, disruption)
    except BaseException:
        load.stop()
        raise
    sent, failed = load.finish(disruption)
    assert sent > 0.8 * RATE * SECONDS and failed == 0
    wait_for("3 endpoints again", lambda: len(endpoint_ips(node)) == 3)


def disrupt(node: ShoalProcess, disruption: str) -> None:
    """One disruption, started 2 s into the load; returns when the app is back to 3 ready replicas."""
    time.sleep(2)
    victim = ready_pods(node)[0]
    if disruption == "podman kill":
        cid = next(c["containerID"] for c in victim["status"]["containerStatuses"]).split("://")[-1]
        podman("kill", cid)
        wait_for("the container to restart and be ready", lambda: len(ready_pods(node)) == 3 and any(
            p["status"]["containerStatuses"][0]["restartCount"] > 0 for p in ready_pods(node)), timeout=30)
    elif disruption == "delete pod":
        node.kubectl("delete", "pod", victim["metadata"]["name"], "--wait=true")
        wait_for("a replacement", lambda: len(ready_pods(node)) == 3, timeout=30)
    elif disruption == "rolling update":
        node.kubectl("set", "env", "deployment/web", f"ROLL={uuid.uuid4().hex[:6]}")
        node.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    elif disruption == "scale 1 and back":
        node.kubectl("scale", "deployment/web", "--replicas=1")
        wait_for("one replica", lambda: len(get(node, "pods", "-l", "app=web")["items"]) == 1, timeout=30)
        node.kubectl("scale", "deployment/web", "--replicas=3")
        wait_for("three replicas", lambda: len(ready_pods(node)) == 3, timeout=60)
    else:
        apply(node, service("unrelated", selector="nothing"))
        time.sleep(2)
        node.kubectl("delete", "service", "unrelated")


def in_loader(node: ShoalProcess, script: str) -> str:
    return node.kubectl("exec", "loader", "--", "sh", "-c", script).stdout.strip()


def test_a_pod_reaches_the_service_by_name_env_and_headless_dns(node: ShoalProcess, web: dict[str, Any]) -> None:
    names = {p["metadata"]["name"] for p in ready_pods(node)}
    ns = "default"
    for host in ("web", f"web.{ns}", f"web.{ns}.svc.cluster.local"):
        assert in_loader(node, f"wget -q -O - http://{host}/") in names, host
    resolv = in_loader(node, "cat /etc/resolv.conf")
    assert "nameserver 10.43.0.10" in resolv and f"search {ns}.svc.cluster.local svc.cluster.local cluster.local" \
        in resolv and "ndots:5" in resolv
    env = node.kubectl("exec", "deploy/web", "--", "env").stdout
    assert f"WEB_SERVICE_HOST={web['spec']['clusterIP']}" in env and "WEB_SERVICE_PORT=80" in env
    assert in_loader(node, "wget -q -O - http://$WEB_SERVICE_HOST:$WEB_SERVICE_PORT/ 2>/dev/null || "
                           f"wget -q -O - http://{web['spec']['clusterIP']}/") in names
    headless = in_loader(node, "nslookup web-headless.default.svc.cluster.local 10.43.0.10")
    pod_ips = {p["status"]["podIP"] for p in ready_pods(node)}
    assert pod_ips <= set(headless.split()), headless


def test_a_pod_failing_readiness_leaves_the_endpoints_within_2s(node: ShoalProcess, web: dict[str, Any]) -> None:
    pod = ready_pods(node)[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    node.kubectl("exec", name, "--", "mv", "/tmp/www/index.html", "/tmp/www/away.html")  # readiness now 404
    began = time.monotonic()
    wait_for("the pod to leave the endpoints", lambda: ip not in endpoint_ips(node), timeout=10, every=0.05)
    left = time.monotonic() - began
    names = {http(node, f"http://{web['spec']['clusterIP']}/")[1] for _ in range(6)}
    node.kubectl("exec", name, "--", "mv", "/tmp/www/away.html", "/tmp/www/index.html")
    began = time.monotonic()
    wait_for("the pod to come back", lambda: ip in endpoint_ips(node), timeout=10, every=0.05)
    back = time.monotonic() - began
    print(f"readiness: out of the endpoints in {left:.2f}s, back in {back:.2f}s")
    assert left < 2.0 and name not in names


def test_port_forward_to_the_service(node: ShoalProcess, web: dict[str, Any]) -> None:
    from tests.support.server import free_port

    port = free_port()
    forward = subprocess.Popen(node.in_netns(["kubectl", "--kubeconfig", str(node.kubeconfig), "port-forward",
                                              "svc/web", f"{port}:80"]), stdout=subprocess.DEVNULL)
    try:
        wait_for("port-forward to listen", lambda: http(node, f"http://127.0.0.1:{port}/")[0] == 200, timeout=20)
        names = {p["metadata"]["name"] for p in ready_pods(node)}
        assert all(http(node, f"http://127.0.0.1:{port}/")[1] in names for _ in range(5))
    finally:
        forward.terminate()
        forward.wait(10)


def test_bad_service_input_is_refused_and_changes_nothing(node: ShoalProcess, web: dict[str, Any]) -> None:
    taken = web["spec"]["ports"][0]["nodePort"]
    for node_port, message in ((taken, "provided port is already allocated"),
                               (80, "provided port is not in the valid range")):
        bad = service("bad", type="NodePort")
        bad["spec"]["ports"][0]["nodePort"] = node_port
        result = node.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert node.kubectl("get", "service", "bad", check=False).returncode != 0, "nothing was created"
    # a targetPort name no container declares: that pod is no endpoint, and an Event says why
    apply(node, service("misnamed", selector="web") | {"spec": {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "nosuch"}]}})
    try:
        wait_for("an Event about the port name", lambda: "nosuch" in node.kubectl(
            "get", "events", "--field-selector", "involvedObject.name=misnamed", "-o", "json").stdout, timeout=20)
        slices = get(node, "endpointslices", "-l", "kubernetes.io/service-name=misnamed")["items"]
        assert slices and not [p for s in slices for p in s.get("ports") or [] if p.get("name") == "http"], \
            "the pods resolve no port for it (Kubernetes lists them in a slice without the port)"
        ip = get(node, "service", "misnamed")["spec"]["clusterIP"]
        assert wait_for("the proxy to answer 503", lambda: http(node, f"http://{ip}/")[0] == 503, timeout=10)
    finally:
        node.kubectl("delete", "service", "misnamed")


def test_deleting_a_service_frees_its_ports_and_haproxy_stops_listening(node: ShoalProcess,
                                                                       web: dict[str, Any]) -> None:
    apply(node, service("gone", type="NodePort"))
    svc = get(node, "service", "gone")
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    wait_for("the new Service to answer", lambda: http(node, f"http://{ip}/")[0] == 200, timeout=20)
    node.kubectl("delete", "service", "gone")

    def closed() -> bool:
        listening = subprocess.run(node.in_netns(["ss", "-ltnH"]), capture_output=True, text=True).stdout
        addresses = subprocess.run(["ip", "-n", str(node.netns), "addr", "show", "lo"], capture_output=True,
                                   text=True).stdout
        return f":{node_port} " not in listening and f"{ip}:80 " not in listening and f"{ip}/32" not in addresses
    wait_for("HAProxy to stop listening on the deleted Service's ports", closed, timeout=20)
    again = service("gone-again", type="NodePort")
    again["spec"]["ports"][0]["nodePort"] = node_port
    apply(node, again)  # the freed nodePort can be taken again
    assert get(node, "service", "gone-again")["spec"]["ports"][0]["nodePort"] == node_port
    node.kubectl("delete", "service", "gone-again")


def test_a_udp_service_carries_datagrams_from_a_pod(node: ShoalProcess, web: dict[str, Any]) -> None:
    """A selectorless UDP Service whose endpoint is the node's cluster DNS: a pod's query to the
    Service's ClusterIP is DNATed by the proxy's nftables rules and answered."""
    alias = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns-alias"},
             "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}
    piece = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
             "metadata": {"name": "dns-alias-1", "labels": {"kubernetes.io/service-name": "dns-alias"}},
             "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
             "endpoints": [{"addresses": ["10.43.0.10"], "conditions": {"ready": True}}]}
    apply(node, alias, piece)
    try:
        ip = get(node, "service", "dns-alias")["spec"]["clusterIP"]
        def answer() -> str | None:
            out = in_loader(node, f"nslookup web.default.svc.cluster.local {ip} 2>&1 || true")
            return out if web["spec"]["clusterIP"] in out else None
        wait_for("web's address through the UDP Service", answer, timeout=20)
    finally:
        node.kubectl("delete", "service", "dns-alias")
        node.kubectl("delete", "endpointslice", "dns-alias-1")

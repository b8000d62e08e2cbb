"""Issue 3 end to end: real kubectl, a real all-in-one server and real podman containers."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ShoalProcess
from tests.support.wait import wait_for

pytestmark = pytest.mark.e2e

DEMO = "localhost/shoal-demo:1"
DEMO2 = "localhost/shoal-demo:2"


def podman(*args: str) -> str:
    return subprocess.run(["podman", "--runtime", "runc", *args], check=True, capture_output=True,
                          text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    base: Path = tmp_path_factory.mktemp("containers")
    node = f"e2e-{uuid.uuid4().hex[:6]}"
    server = ShoalProcess(base / "data", disable="proxy,dns", extra_args=(
        "--node-name", node, "--cluster-cidr", "10.97.0.0/16", "--kubelet-port", "0"))
    subprocess.run([*server.shoal_command(), "demo-image"], check=True, capture_output=True, timeout=120)
    server.start()
    try:
        wait_for("the node to register", lambda: server.kubectl("get", "node", node, check=False).returncode == 0)
        server.kubectl("wait", "--for=condition=Ready", f"node/{node}", "--timeout=60s")
        yield server
    finally:
        server.stop()
        for pod_id in podman("pod", "ps", "-q", "--filter", f"label=shoal.node={node}").split():
            subprocess.run(["podman", "--runtime", "runc", "pod", "rm", "-f", pod_id], capture_output=True,
                           timeout=60)
        subprocess.run(["podman", "network", "rm", "-f", f"shoal-{node}"], capture_output=True, timeout=60)


def pods(server: ShoalProcess, selector: str) -> list[dict[str, Any]]:
    return list(json.loads(server.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"])


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def deployment(name: str, replicas: int = 3, image: str = DEMO, **spec: Any) -> str:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                                      "name": "web", "image": image, "ports": [{"containerPort": 8080}],
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                         "periodSeconds": 1}}]}}, **spec}}
    return json.dumps(body)


def test_deployment_runs_restarts_and_rolls(cluster: ShoalProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=deployment("web"))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    running = wait_for("3 ready pods", lambda: [p for p in pods(cluster, "app=web") if ready(p)]
                       if len([p for p in pods(cluster, "app=web") if ready(p)]) == 3 else None)
    names = {p["metadata"]["name"] for p in running}
    # podman pod ps shows a pod for each (claimed warm pods carry no pod labels: find them
    # through their containers, which do)
    containers = json.loads(podman("ps", "--format", "json", "--filter", "label=shoal.pod.namespace=default"))
    pod_ids = {c["Pod"] for c in containers if c.get("Labels", {}).get("shoal.pod.name") in names}
    assert len(pod_ids) == 3
    assert pod_ids <= {p["Id"] for p in json.loads(podman("pod", "ps", "--format", "json"))}
    for pod in running:  # each answers HTTP on its pod IP with its hostname
        ip = pod["status"]["podIP"]
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
            assert pod["metadata"]["name"] in response.read().decode()

    # podman kill of one container: restarted, restartCount 1, back to 3/3
    victim = running[0]
    container_id = victim["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    podman("kill", container_id)
    wait_for("restartCount 1", lambda: json.loads(cluster.kubectl(
        "get", "pod", victim["metadata"]["name"], "-o", "json").stdout)["status"]["containerStatuses"][0][
        "restartCount"] == 1, timeout=60)
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    wait_for("3/3 ready again", lambda: len([p for p in pods(cluster, "app=web") if ready(p)]) == 3)

    # kubectl delete pod: a replacement appears
    cluster.kubectl("delete", "pod", running[1]["metadata"]["name"], "--wait=true")
    wait_for("replacement", lambda: len([p for p in pods(cluster, "app=web") if ready(p)
                                         and p["metadata"]["name"] not in names]) >= 1)

    # logs and exec
    target = pods(cluster, "app=web")[0]["metadata"]["name"]
    assert cluster.kubectl("exec", target, "--", "cat", "/etc/hostname").stdout.strip() == target
    cluster.kubectl("logs", target, "--tail=5")

    # roll to a new image tag, watching the ReplicaSets throughout: with 3 replicas and
    # maxUnavailable 1 / maxSurge 1, at least 2 pods stay ready and at most 4 exist
    cache = cluster.data_dir.parent / "kubectl-cache"
    watcher = subprocess.Popen(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache), "get", "rs", "-l",
         "app=web", "-w", "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE, text=True)
    try:
        cluster.kubectl("set", "image", "deployment/web", f"web={DEMO2}")
        cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
        time.sleep(1)
    finally:
        watcher.terminate()
        output, _ = watcher.communicate(timeout=10)
    latest: dict[str, dict[str, Any]] = {}
    decoder = json.JSONDecoder()
    position, steps = 0, 0
    while position < len(output):
        if output[position].isspace():
            position += 1
            continue
        event, position = decoder.raw_decode(output, position)
        rs = event["object"]
        latest[rs["metadata"]["name"]] = rs
        ready_total = sum(r.get("status", {}).get("readyReplicas", 0) for r in latest.values())
        desired_total = sum(r["spec"]["replicas"] for r in latest.values())
        steps += 1
        assert desired_total <= 4, f"maxSurge exceeded: {desired_total} pods wanted"
        assert ready_total >= 2 or steps <= len(latest), f"maxUnavailable exceeded: {ready_total} ready"
    assert len(latest) == 2 and steps > 4
    sets = json.loads(cluster.kubectl("get", "rs", "-l", "app=web", "-o", "json").stdout)["items"]
    assert len(sets) == 2
    assert "REVISION" in cluster.kubectl("rollout", "history", "deployment/web").stdout
    cluster.kubectl("rollout", "undo", "deployment/web")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=120s")
    image = json.loads(cluster.kubectl("get", "deploy", "web", "-o", "json").stdout)[
        "spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == DEMO
    assert len(json.loads(cluster.kubectl("get", "rs", "-l", "app=web", "-o", "json").stdout)["items"]) == 2

    # a broken image stalls with ProgressDeadlineExceeded while the old pods keep serving
    cluster.kubectl("patch", "deployment", "web", "--type=merge", "-p",
                    '{"spec":{"progressDeadlineSeconds":8}}')
    cluster.kubectl("set", "image", "deployment/web", "web=localhost:1/nope:1")
    result = cluster.kubectl("rollout", "status", "deployment/web", "--timeout=90s", check=False)
    assert result.returncode != 0 and "exceeded its progress deadline" in result.stderr
    assert len([p for p in pods(cluster, "app=web") if ready(p)]) >= 2


def test_crash_loop_probes_and_oom(cluster: ShoalProcess) -> None:
    def pod(name: str, container: dict[str, Any], restart: str = "Always") -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                                    "containers": [{"name": "c", "image": DEMO, **container}]}})

    cluster.kubectl("apply", "-f", "-", input=pod("crash", {"command": ["sh", "-c", "echo dying; exit 1"]}))
    cluster.kubectl("apply", "-f", "-", input=pod("unready", {
        "readinessProbe": {"httpGet": {"path": "/", "port": 9999}, "periodSeconds": 1}}))
    cluster.kubectl("apply", "-f", "-", input=pod("unlive", {
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}}))
    cluster.kubectl("apply", "-f", "-", input=pod("hog", {
        "command": ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); sleep 60"],
        "resources": {"limits": {"memory": "32Mi"}}}, restart="Never"))

    def status(name: str) -> dict[str, Any]:
        return dict(json.loads(cluster.kubectl("get", "pod", name, "-o", "json").stdout)["status"])

    def waiting_reason(name: str) -> str:
        statuses = status(name).get("containerStatuses") or [{}]
        return str(statuses[0].get("state", {}).get("waiting", {}).get("reason", ""))

    def waiting_message(name: str) -> str:
        statuses = status(name).get("containerStatuses") or [{}]
        return str(statuses[0].get("state", {}).get("waiting", {}).get("message", ""))

    wait_for("CrashLoopBackOff", lambda: waiting_reason("crash") == "CrashLoopBackOff", timeout=60)
    assert status("crash")["containerStatuses"][0]["restartCount"] >= 1
    assert "dying" in cluster.kubectl("logs", "crash", "--previous").stdout
    # growing delays: kubelet's back-off starts at 10 s and doubles after each crash
    wait_for("back-off 20s", lambda: waiting_message("crash").startswith("back-off 20s restarting failed"),
             timeout=60)
    assert status("crash")["containerStatuses"][0]["restartCount"] >= 2
    assert "Back-off restarting failed container c" in cluster.kubectl("describe", "pod", "crash").stdout
    wait_for("unlive restarted", lambda: status("unlive")["containerStatuses"][0]["restartCount"] >= 1,
             timeout=60)
    unready = status("unready")
    assert unready["phase"] == "Running" and not ready({"status": unready})
    wait_for("OOMKilled", lambda: (status("hog").get("containerStatuses") or [{}])[0].get("state", {}).get(
        "terminated", {}).get("reason") == "OOMKilled", timeout=60)
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=crash").stdout
    assert "BackOff" in events


def test_unschedulable_pod_stays_pending(cluster: ShoalProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "c", "image": DEMO, "resources": {"requests": {"cpu": "1000"}}}]}}))
    wait_for("FailedScheduling", lambda: "FailedScheduling" in cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=greedy").stdout, timeout=30)
    pod = json.loads(cluster.kubectl("get", "pod", "greedy", "-o", "json").stdout)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    described = cluster.kubectl("describe", "pod", "greedy").stdout
    assert "FailedScheduling" in described and "0/1 nodes are available: 1 Insufficient cpu" in described


def test_logs_follow_streams(cluster: ShoalProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": DEMO,
            "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.3; done"]}]}}))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=60s")
    cache = cluster.data_dir.parent / "kubectl-cache"
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(cache),
                             "logs", "-f", "ticker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        later = [proc.stdout.readline() for _ in range(3)]
        assert first.startswith("tick") and all(line.startswith("tick") for line in later)
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_agent_restart_keeps_containers(cluster: ShoalProcess) -> None:
    cluster.kubectl("apply", "-f", "-", input=deployment("keeper", replicas=2))
    cluster.kubectl("rollout", "status", "deployment/keeper", "--timeout=120s")

    def container_ids() -> set[str]:
        return {p["status"]["containerStatuses"][0]["containerID"] for p in pods(cluster, "app=keeper")}

    before = container_ids()
    cluster.kill9()  # the all-in-one server (and its agent) dies; the containers do not
    cluster.start()
    cluster.kubectl("rollout", "status", "deployment/keeper", "--timeout=60s")
    time.sleep(3)  # give a duplicating agent the chance to show itself
    assert container_ids() == before
    listed = json.loads(podman("ps", "--format", "json", "--filter", "label=shoal.pod.namespace=default"))
    keeper = [c for c in listed if c.get("Labels", {}).get("shoal.pod.name", "").startswith("keeper-")
              and c.get("Labels", {}).get("shoal.container.name") == "web"]
    assert len(keeper) == 2

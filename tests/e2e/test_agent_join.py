"""`shoal agent --server URL --token T` joins a node to a running server and runs its pods."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def joined(tmp_path: Path) -> Iterator[tuple[ShoalProcess, str]]:
    node = f"join-{uuid.uuid4().hex[:6]}"
    with ShoalProcess(tmp_path / "data", disable="agent,proxy,dns") as server:  # control plane only
        log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115 - closed below
        agent = subprocess.Popen(
            [*server.shoal_command(), "agent", "--server", server.url, "--token", server.token,
             "--ca-file", str(server.ca_file), "--node-name", node, "--data-dir", str(tmp_path / "agent"),
             "--runtime", "process", "--kubelet-port", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield server, node
        finally:
            server.kubectl("delete", "pods", "--all", "--wait=true", "--timeout=30s", check=False)
            agent.terminate()
            try:
                agent.wait(timeout=15)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(timeout=10)
            log.close()


def test_agent_joins_and_runs_pods(joined: tuple[ShoalProcess, str]) -> None:
    server, node = joined
    deadline = time.monotonic() + 30  # the agent registers its Node shortly after it starts
    while server.kubectl("get", "node", node, check=False).returncode != 0:
        assert time.monotonic() < deadline, f"node {node} never registered"
        time.sleep(0.3)
    server.kubectl("wait", "--for=condition=Ready", f"node/{node}", "--timeout=60s")
    described = json.loads(server.kubectl("get", "node", node, "-o", "json").stdout)
    assert described["status"]["allocatable"]["pods"] == "110"
    assert described["spec"]["podCIDR"].startswith("10.42.")
    lease = json.loads(server.kubectl("-n", "kube-node-lease", "get", "lease", node, "-o", "json").stdout)
    assert lease["spec"]["holderIdentity"] == node

    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "joined"},
           "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
               "name": "c", "image": "busybox",
               "command": ["sh", "-c", "echo hello from $(hostname); sleep 600"]}]}}
    server.kubectl("apply", "-f", "-", input=json.dumps(pod))
    server.kubectl("wait", "--for=condition=Ready", "pod/joined", "--timeout=60s")
    got = json.loads(server.kubectl("get", "pod", "joined", "-o", "json").stdout)
    assert got["spec"]["nodeName"] == node
    assert got["status"]["containerStatuses"][0]["containerID"].startswith("process://")
    deadline = time.monotonic() + 20
    while "hello from" not in server.kubectl("logs", "joined").stdout and time.monotonic() < deadline:
        time.sleep(0.3)
    assert "hello from" in server.kubectl("logs", "joined").stdout
    assert server.kubectl("exec", "joined", "--", "echo", "inside").stdout.strip() == "inside"
    server.kubectl("delete", "pod", "joined", "--timeout=30s")

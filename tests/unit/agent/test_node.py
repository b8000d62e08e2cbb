"""Node facts and status: capacity from the machine, condition transitions on a fake clock."""

from __future__ import annotations

import os
from pathlib import Path

from shoal.agent.node import NodeManager, host_facts, runtime_version
from shoal.agent.runtime.process import ProcessDriver
from shoal.client.rest import ApiClient
from shoal.kube.clock import FakeClock

START = 1_700_000_000.0


def test_runtime_version() -> None:
    assert runtime_version("podman", "podman 4.3.1") == "podman://4.3.1"
    assert runtime_version("process", "process 1 (python 3.11.7)") == "process://1"
    assert runtime_version("podman", "containerd://1.7") == "containerd://1.7"


def test_host_facts(tmp_path: Path) -> None:
    facts = host_facts(tmp_path)
    capacity, allocatable, info = facts["capacity"], facts["allocatable"], facts["nodeInfo"]
    assert capacity["cpu"] == str(os.cpu_count()) and capacity["pods"] == "110"
    memory = int(capacity["memory"].removesuffix("Ki"))
    assert memory > 0 and int(allocatable["memory"].removesuffix("Ki")) == memory - 100 * 1024
    assert int(capacity["ephemeral-storage"].removesuffix("Ki")) > 0
    assert info["operatingSystem"] == "linux" and info["kubeletVersion"] == "v1.32.0-shoal"
    assert info["architecture"] in ("amd64", "arm64") and info["kernelVersion"] and info["osImage"]


async def test_status_transitions(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with ApiClient("https://127.0.0.1:1") as client:  # never called by status()
        node = NodeManager(client, ProcessDriver(tmp_path / "rt"), node_name="n1", node_ip="10.0.0.5",
                           kubelet_port=10250, data_dir=tmp_path, clock=clock, network_required=True)
        await node.refresh_facts()
        first = {c["type"]: c for c in node.status()["conditions"]}
        assert (first["Ready"]["status"], first["Ready"]["reason"]) == ("False", "KubeletNotReady")
        assert first["Ready"]["message"].startswith("container runtime network not ready")
        clock.advance(7)
        node.set_network_ready(True)
        status = node.status()
        second = {c["type"]: c for c in status["conditions"]}
        assert (second["Ready"]["status"], second["Ready"]["reason"]) == ("True", "KubeletReady")
        assert second["Ready"]["lastTransitionTime"] == "2023-11-14T22:13:27Z"
        assert second["MemoryPressure"]["lastTransitionTime"] == "2023-11-14T22:13:20Z"
        assert second["MemoryPressure"]["lastHeartbeatTime"] == "2023-11-14T22:13:27Z"
        assert status["addresses"] == [{"type": "InternalIP", "address": "10.0.0.5"},
                                       {"type": "Hostname", "address": "n1"}]
        assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
        assert status["nodeInfo"]["containerRuntimeVersion"] == "process://1"
        assert node.labels()["kubernetes.io/hostname"] == "n1"
        assert "node-role.kubernetes.io/control-plane" not in node.labels()

"""Server-side Table rows for pods: the printPod Ready/Status/Restarts logic and wide cells."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.resources.tables import meta, row


def running(name: str, ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": {"running": {}}, **extra}


def test_running_pod() -> None:
    pod = {
        "metadata": meta("web-1"),
        "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.42.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [running("a"), running("b", ready=False)],
        },
    }
    assert row("pods", pod) == [
        "web-1",
        "1/2",
        "Running",
        "0",
        "5m",
        "10.42.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_crashing_pod_shows_reason_and_last_restart() -> None:
    pod = {
        "metadata": meta("crash"),
        "spec": {"containers": [{"name": "a"}]},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.42.0.7"}],
            "containerStatuses": [
                {
                    "name": "a",
                    "ready": False,
                    "restartCount": 5,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2025-06-01T11:58:00Z"}},
                }
            ],
        },
    }
    assert row("pods", pod)[:5] == ["crash", "0/1", "CrashLoopBackOff", "5 (2m ago)", "5m"]
    assert row("pods", pod)[5] == "10.42.0.7"


@pytest.mark.parametrize(
    ("status", "extra_meta", "expected"),
    [
        ({"phase": "Pending"}, {}, "Pending"),
        ({"phase": "Running"}, {"deletionTimestamp": "2025-06-01T12:00:00Z"}, "Terminating"),
        ({"phase": "Succeeded"}, {"deletionTimestamp": "2025-06-01T12:00:00Z"}, "Succeeded"),
        ({"phase": "Failed", "reason": "Evicted"}, {}, "Evicted"),
        (
            {"phase": "Running", "reason": "NodeLost"},
            {"deletionTimestamp": "2025-06-01T12:00:00Z"},
            "Unknown",
        ),
        (
            {"phase": "Pending", "conditions": [{"type": "PodScheduled", "reason": "SchedulingGated"}]},
            {},
            "SchedulingGated",
        ),
        (
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
                ],
            },
            {},
            "Completed",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 137}}}],
            },
            {},
            "ExitCode:137",
        ),
        (
            {
                "phase": "Failed",
                "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 0, "signal": 9}}}],
            },
            {},
            "Signal:9",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}
                ],
            },
            {},
            "Init:0/1",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "init", "state": {"waiting": {"reason": "ImagePullBackOff"}}}
                ],
            },
            {},
            "Init:ImagePullBackOff",
        ),
        (
            {
                "phase": "Pending",
                "initContainerStatuses": [{"name": "init", "state": {"terminated": {"exitCode": 2}}}],
            },
            {},
            "Init:ExitCode:2",
        ),
    ],
)
def test_pod_status_column(status: dict[str, Any], extra_meta: dict[str, Any], expected: str) -> None:
    pod = {
        "metadata": meta("p", **extra_meta),
        "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "init"}]},
        "status": status,
    }
    assert row("pods", pod)[2] == expected


def test_sidecar_counts_toward_ready_and_readiness_gates() -> None:
    pod = {
        "metadata": meta("p"),
        "spec": {
            "containers": [{"name": "a"}],
            "initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "readinessGates": [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "example.com/lb", "status": "True"}],
            "initContainerStatuses": [running("proxy", started=True)],
            "containerStatuses": [running("a")],
        },
    }
    cells = row("pods", pod)
    assert cells[1:3] == ["2/2", "Running"]
    assert cells[8] == "1/2"

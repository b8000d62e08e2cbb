"""Pod status computation: container states, phase rules, conditions and their transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from shoal.agent.runtime.driver import ContainerStatus, State
from shoal.agent.status import ContainerView, PodView, Waiting, compute_status, container_status, pod_phase
from shoal.kube.objects import Obj

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 5, 1, 12, 0, 5, tzinfo=UTC)
NOW = 1_714_565_000.0  # 2024-05-01T12:03:20Z


def _c(cid: str, state: State, exit_code: int | None = None, reason: str = "") -> ContainerStatus:
    finished = T1 if state is State.EXITED else None
    return ContainerStatus(id=cid, sandbox_id="sb", name="app", state=state, image="img", image_id="sha256:abc",
                           exit_code=exit_code, reason=reason, started_at=T0, finished_at=finished)


def test_running_container_with_previous_attempt() -> None:
    view = ContainerView("app", "img:1", _c("c2", State.RUNNING), _c("c1", State.EXITED, 1), ready=True,
                         started=True, restart_count=1)
    assert container_status(view, "process") == {
        "name": "app", "state": {"running": {"startedAt": "2024-05-01T12:00:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2024-05-01T12:00:00Z",
                                     "finishedAt": "2024-05-01T12:00:05Z", "containerID": "process://c1"}},
        "ready": True, "restartCount": 1, "image": "img:1", "imageID": "sha256:abc", "started": True,
        "containerID": "process://c2"}


def test_crash_loop_shows_waiting_with_last_state() -> None:
    waiting = Waiting("CrashLoopBackOff", "back-off 10s restarting failed container=app pod=p_ns(u)")
    status = container_status(ContainerView("app", "img", _c("c1", State.EXITED, 2), waiting=waiting,
                                            ready=True, started=True, restart_count=3), "podman")
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": waiting.message}}
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert status["containerID"] == "podman://c1"
    assert (status["ready"], status["started"], status["restartCount"]) == (False, False, 3)


def test_not_created_and_oom_killed() -> None:
    assert container_status(ContainerView("app", "img"), "process")["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    pulled = container_status(ContainerView("app", "img", waiting=Waiting("ErrImagePull", "no registry")), "x")
    assert pulled["state"] == {"waiting": {"reason": "ErrImagePull", "message": "no registry"}}
    assert "containerID" not in pulled and pulled["imageID"] == ""
    oom = container_status(ContainerView("app", "img", _c("c1", State.EXITED, 137, "OOMKilled")), "podman")
    assert oom["state"]["terminated"]["reason"] == "OOMKilled"
    done = container_status(ContainerView("app", "img", _c("c1", State.EXITED, 0)), "podman")
    assert done["state"]["terminated"]["reason"] == "Completed"


def _st(state: str, code: int = 0, last: int | None = None, cid: bool = True) -> Obj:
    states: dict[str, Obj] = {"running": {"state": {"running": {}}},
                              "waiting": {"state": {"waiting": {"reason": "X"}}},
                              "terminated": {"state": {"terminated": {"exitCode": code}}}}
    body = states[state]
    body = {**body, "lastState": {"terminated": {"exitCode": last}} if last is not None else {}}
    if cid and state != "waiting":
        body["containerID"] = "process://x"
    return body


@pytest.mark.parametrize(("policy", "init", "app", "phase"), [
    ("Always", [], [_st("waiting")], "Pending"),
    ("Always", [], [_st("running"), _st("waiting")], "Pending"),
    ("Always", [], [_st("running"), _st("running")], "Running"),
    ("Always", [], [_st("terminated", 0)], "Running"),  # about to be restarted
    ("Always", [], [_st("waiting", last=1)], "Running"),  # CrashLoopBackOff
    ("OnFailure", [], [_st("terminated", 0)], "Succeeded"),
    ("OnFailure", [], [_st("terminated", 1)], "Running"),
    ("Never", [], [_st("terminated", 0), _st("terminated", 0)], "Succeeded"),
    ("Never", [], [_st("terminated", 0), _st("terminated", 3)], "Failed"),
    ("Never", [], [_st("running"), _st("terminated", 3)], "Running"),
    ("Always", [_st("running")], [_st("waiting")], "Pending"),
    ("Always", [_st("terminated", 0), _st("waiting")], [_st("waiting")], "Pending"),
    ("Always", [_st("waiting", last=1)], [_st("waiting")], "Pending"),
    ("Never", [_st("terminated", 1)], [_st("waiting")], "Failed"),
    ("Always", [_st("terminated", 0)], [_st("running")], "Running"),
])
def test_phase(policy: str, init: list[Obj], app: list[Obj], phase: str) -> None:
    assert pod_phase({"restartPolicy": policy}, init, app) == phase


@pytest.mark.parametrize(("policy", "app", "phase"), [
    ("Always", [_st("terminated", 0)], "Succeeded"),
    ("Always", [_st("terminated", 0), _st("terminated", 143)], "Failed"),
    ("OnFailure", [_st("terminated", 137)], "Failed"),
    ("Never", [_st("terminated", 0)], "Succeeded"),
    ("Always", [_st("running"), _st("terminated", 0)], "Running"),  # not all stopped yet
])
def test_phase_of_a_pod_stopped_for_deletion(policy: str, app: list[Obj], phase: str) -> None:
    """Issue 8 item 16: a pod stopped for deletion is never restarted (kubelet's podIsTerminal)."""
    assert pod_phase({"restartPolicy": policy}, [], app, terminal=True) == phase


def _pod(status: Obj | None = None, **spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "app"}, {"name": "side"}], **spec},
            "status": status or {"phase": "Pending", "qosClass": "BestEffort", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                 "lastTransitionTime": "2024-05-01T11:00:00Z"}]}}


def _view(app_ready: bool, side_ready: bool, init: list[ContainerView] | None = None) -> PodView:
    return PodView("process", "10.0.0.1", "127.0.0.1", True, init or [], [
        ContainerView("app", "img", _c("a1", State.RUNNING), ready=app_ready, started=True),
        ContainerView("side", "img", _c("s1", State.RUNNING), ready=side_ready, started=True)])


def _conditions(status: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in status["conditions"]}


def test_compute_status_ready_pod() -> None:
    status = compute_status(_pod(), _view(True, True), NOW)
    assert status["phase"] == "Running"
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in status["conditions"])
    assert _conditions(status)["Ready"]["lastTransitionTime"] == "2024-05-01T12:03:20Z"
    assert (status["podIP"], status["podIPs"], status["hostIP"], status["hostIPs"]) == (
        "127.0.0.1", [{"ip": "127.0.0.1"}], "10.0.0.1", [{"ip": "10.0.0.1"}])
    assert status["qosClass"] == "BestEffort" and status["startTime"] == "2024-05-01T12:03:20Z"
    assert "initContainerStatuses" not in status


def test_transition_times_only_move_on_change() -> None:
    first = compute_status(_pod(), _view(True, False), NOW)
    ready = _conditions(first)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [side]")
    again = compute_status(_pod(first), _view(True, False), NOW + 100)
    assert again == first  # nothing changed: same status, nothing to write
    later = compute_status(_pod(again), _view(True, True), NOW + 200)
    assert _conditions(later)["Ready"]["lastTransitionTime"] == "2024-05-01T12:06:40Z"
    assert _conditions(later)["Initialized"]["lastTransitionTime"] == "2024-05-01T12:03:20Z"
    assert later["startTime"] == first["startTime"]


def test_init_containers_pending() -> None:
    init = [ContainerView("setup", "img", _c("i1", State.RUNNING))]
    view = PodView("process", "10.0.0.1", "127.0.0.1", True, init,
                   [ContainerView("app", "img"), ContainerView("side", "img")])
    status = compute_status(_pod(initContainers=[{"name": "setup"}]), view, NOW)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    cond = _conditions(status)["Initialized"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [setup]")


def test_succeeded_pod_and_terminal_phase_sticks() -> None:
    view = PodView("process", "10.0.0.1", "127.0.0.1", True, [], [
        ContainerView("app", "img", _c("a1", State.EXITED, 0)), ContainerView("side", "img", _c("s", State.EXITED, 0))])
    status = compute_status(_pod(restartPolicy="Never"), view, NOW)
    assert status["phase"] == "Succeeded"
    assert _conditions(status)["Ready"]["reason"] == "PodCompleted"
    # A terminal phase never changes, whatever the runtime says later.
    again = compute_status(_pod(status, restartPolicy="Never"), _view(True, True), NOW)
    assert again["phase"] == "Succeeded"


def test_readiness_gates() -> None:
    pod = _pod(readinessGates=[{"conditionType": "example.com/lb"}])
    status = compute_status(pod, _view(True, True), NOW)
    cond = _conditions(status)["Ready"]
    assert (cond["status"], cond["reason"]) == ("False", "ReadinessGatesNotReady")
    assert _conditions(status)["ContainersReady"]["status"] == "True"
    pod["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    assert _conditions(compute_status(pod, _view(True, True), NOW))["Ready"]["status"] == "True"


def test_the_agent_waits_a_bounded_window_for_any_grace_period() -> None:
    """Issue 8 item 5 (the agent's side): the API takes any int64 grace period; the agent's
    shutdown window is at least MIN_GRACE and at most MAX_GRACE, never an overflowing timer."""
    from shoal.agent import sync

    assert sync._window(10**18) == sync.MAX_GRACE
    assert sync._window(0) == sync.MIN_GRACE
    assert sync._window(None) == sync.MIN_GRACE
    assert sync._window(30) == 30.0

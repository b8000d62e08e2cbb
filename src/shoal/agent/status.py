"""Pod status computation: pure functions from what the agent observed to ``pod.status``.

The pod worker gathers a :class:`PodView` (the sandbox, and per spec container the newest
runtime container, the one before it, a waiting reason decided by the sync pass, and the probe
results) and :func:`compute_status` turns it into the status the API should hold.  The worker
writes it through ``pods/status`` only when it differs from the current one (the function is
deterministic: same inputs, same dict, and ``lastTransitionTime`` of a condition only changes
when its ``status`` does).

Rules (kubelet ``generateAPIPodStatus``/``getPhase``, simplified):

* A container's ``state`` is ``running`` (runtime running), ``terminated`` (runtime exited and
  not about to restart) or ``waiting`` (not created yet — ``ContainerCreating``, or
  ``PodInitializing`` for app containers while init containers run — or a reason from the sync:
  ``CrashLoopBackOff``, ``ErrImagePull``, ``ImagePullBackOff``, ``CreateContainerConfigError``).
  ``lastState`` is the previous attempt's ``terminated`` (the exited current attempt when the
  state is ``waiting``).  ``ready`` needs a running container and a passed readiness probe;
  ``started`` a running container and a passed startup probe.
* Phase: ``Pending`` until init containers succeeded and every app container has started at
  least once; ``Running`` while one runs (or, with restartPolicy Always/OnFailure, while they
  are being restarted); all terminated: ``Succeeded`` if all exited 0, else ``Failed`` under
  restartPolicy Never (``Running`` under OnFailure, which restarts the failed ones).  An init
  container that failed under restartPolicy Never makes the pod ``Failed``.  A terminal phase
  never changes again.  A pod being deleted whose containers were stopped (``terminal``,
  kubelet's ``podIsTerminal``) is never restarted, whatever its restartPolicy: ``Succeeded``
  if every container exited 0, else ``Failed``.
* Conditions, in kubelet's order: ``PodReadyToStartContainers`` (sandbox with networking),
  ``Initialized``, ``Ready`` (ContainersReady and every readiness gate condition True),
  ``ContainersReady``; conditions the agent does not own (``PodScheduled`` ...) are kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from shoal.agent.runtime.driver import ContainerStatus, State
from shoal.kube.objects import Obj
from shoal.kube.times import format_time

__all__ = ["ContainerView", "PodView", "Waiting", "compute_status", "container_status", "pod_phase"]

TERMINAL = ("Succeeded", "Failed")
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")


@dataclass(frozen=True, slots=True)
class Waiting:
    reason: str
    message: str = ""


@dataclass(slots=True)
class ContainerView:
    """What the agent knows about one spec container."""

    name: str
    image: str
    current: ContainerStatus | None = None  # the newest attempt in the runtime
    previous: ContainerStatus | None = None  # the attempt before it (``logs --previous``)
    waiting: Waiting | None = None  # why it is not running, decided by the sync pass
    ready: bool = False  # readiness probe passed (or none)
    started: bool = False  # startup probe passed (or none)
    restart_count: int = 0


@dataclass(slots=True)
class PodView:
    runtime: str  # container ID scheme: "podman", "process"
    host_ip: str
    pod_ip: str = ""
    sandbox_ready: bool = False
    init_containers: list[ContainerView] = field(default_factory=list)
    containers: list[ContainerView] = field(default_factory=list)


def _time(moment: datetime | None) -> str | None:
    return format_time(moment.timestamp()) if moment is not None else None


def _terminated(c: ContainerStatus, runtime: str) -> Obj:
    code = c.exit_code if c.exit_code is not None else 0
    reason = c.reason or ("Completed" if code == 0 else "Error")
    return {"terminated": {"exitCode": code, "reason": reason, "startedAt": _time(c.started_at),
                           "finishedAt": _time(c.finished_at), "containerID": f"{runtime}://{c.id}"}}


def _waiting(waiting: Waiting) -> Obj:
    body: Obj = {"reason": waiting.reason}
    if waiting.message:
        body["message"] = waiting.message
    return {"waiting": body}


def container_status(view: ContainerView, runtime: str, default_waiting: str = "ContainerCreating") -> Obj:
    """One entry of ``containerStatuses`` / ``initContainerStatuses``."""
    current, previous = view.current, view.previous
    running = current is not None and current.state is State.RUNNING
    last: Obj = _terminated(previous, runtime) if previous is not None else {}
    if current is None or current.state in (State.CREATED, State.UNKNOWN):
        state = _waiting(view.waiting or Waiting(default_waiting))
    elif running:
        state = {"running": {"startedAt": _time(current.started_at)}}
    elif view.waiting is not None:
        state, last = _waiting(view.waiting), _terminated(current, runtime)
    else:
        state = _terminated(current, runtime)
    status: Obj = {"name": view.name, "state": state, "lastState": last, "ready": running and view.ready,
                   "restartCount": view.restart_count, "image": view.image,
                   "imageID": current.image_id if current is not None else "",
                   "started": running and view.started}
    if current is not None:
        status["containerID"] = f"{runtime}://{current.id}"
    return status


def _exit_code(state: Obj) -> int | None:
    terminated = state.get("terminated")
    return int(terminated.get("exitCode", 0)) if isinstance(terminated, dict) else None


def pod_phase(spec: Obj, init_statuses: list[Obj], statuses: list[Obj], terminal: bool = False) -> str:
    """kubelet's ``getPhase`` over computed container statuses (ignores the old phase);
    ``terminal``: the pod's containers will not be restarted (kubelet's ``podIsTerminal``)."""
    restart = spec.get("restartPolicy") or "Always"
    pending_init = failed_init = 0
    for status in init_statuses:
        state, last = status.get("state") or {}, status.get("lastState") or {}
        code = _exit_code(state)
        if code is not None:
            failed_init += code != 0
        elif "waiting" in state and _exit_code(last) is not None:
            failed_init += _exit_code(last) != 0
            pending_init += _exit_code(last) == 0
        else:
            pending_init += 1
    started_app = any(s.get("containerID") for s in statuses)
    if failed_init and restart == "Never" and not started_app:
        return "Failed"
    if (pending_init or failed_init) and not started_app:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state, last = status.get("state") or {}, status.get("lastState") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += _exit_code(state) == 0
        elif "waiting" in state and "terminated" in last:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if terminal:
            return "Succeeded" if stopped == succeeded else "Failed"
        if restart == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart == "Never" else "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if not ok and reason:
        cond["reason"] = reason
    if not ok and message:
        cond["message"] = message
    return cond


def _conditions(pod: Obj, phase: str, view: PodView, init_statuses: list[Obj],
                statuses: list[Obj]) -> list[Obj]:
    spec, old = pod.get("spec") or {}, (pod.get("status") or {}).get("conditions") or []
    incomplete = [s["name"] for s in init_statuses if _exit_code(s.get("state") or {}) != 0]
    initialized = not incomplete or any(s.get("containerID") for s in statuses) or phase == "Succeeded"
    unready = [s["name"] for s in statuses if not s.get("ready")]
    if phase == "Succeeded":
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
    else:
        containers_ready = _condition("ContainersReady", not unready, "ContainersNotReady",
                                      f"containers with unready status: [{' '.join(unready)}]")
    gate_problems = []
    by_type = {c.get("type"): c for c in old}
    for gate in spec.get("readinessGates") or []:
        kind = gate.get("conditionType")
        found = by_type.get(kind)
        if found is None:
            gate_problems.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif found.get("status") != "True":
            gate_problems.append(f'the status of pod readiness gate "{kind}" is not "True", but '
                                 f"{found.get('status')}")
    if containers_ready["status"] != "True":
        ready = {**containers_ready, "type": "Ready"}
    elif gate_problems:
        ready = _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(gate_problems))
    else:
        ready = _condition("Ready", True)
    return [
        _condition("PodReadyToStartContainers", view.sandbox_ready),
        _condition("Initialized", initialized, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete)}]"),
        ready,
        containers_ready,
    ]


def compute_status(pod: Obj, view: PodView, now: float, *, terminal: bool = False) -> Obj:
    """The status ``pod`` should have, given ``view``; ``now`` stamps new transitions;
    ``terminal`` as for :func:`pod_phase`."""
    spec = pod.get("spec") or {}
    old: Obj = pod.get("status") or {}
    init_statuses = [container_status(v, view.runtime) for v in view.init_containers]
    default = "PodInitializing" if any(_exit_code(s.get("state") or {}) != 0 for s in init_statuses) \
        else "ContainerCreating"
    statuses = [container_status(v, view.runtime, default) for v in view.containers]
    phase = old.get("phase") if old.get("phase") in TERMINAL else pod_phase(spec, init_statuses, statuses, terminal)
    stamp = format_time(now)
    previous = {c.get("type"): c for c in old.get("conditions") or []}
    conditions = []
    for cond in _conditions(pod, str(phase), view, init_statuses, statuses):
        before = previous.get(cond["type"])
        if before is not None and before.get("status") == cond["status"] and before.get("lastTransitionTime"):
            cond["lastTransitionTime"] = before["lastTransitionTime"]
        else:
            cond["lastTransitionTime"] = stamp
        conditions.append(cond)
    conditions += [c for c in old.get("conditions") or [] if c.get("type") not in KUBELET_CONDITIONS]
    status = copy.deepcopy(old)
    status.update({"phase": phase, "conditions": conditions, "hostIP": view.host_ip,
                   "hostIPs": [{"ip": view.host_ip}], "startTime": old.get("startTime") or stamp,
                   "containerStatuses": statuses})
    if view.pod_ip:
        status.update({"podIP": view.pod_ip, "podIPs": [{"ip": view.pod_ip}]})
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    return status

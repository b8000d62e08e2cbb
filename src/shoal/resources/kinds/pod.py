"""core/v1 Pod: pod-only defaults, create/update validation, the ``kubectl get pods`` row.

Defaults: the PodSpec defaults of :mod:`podspec` plus what Kubernetes applies to Pods only
(``SetDefaults_Pod``): ``enableServiceLinks: true`` and container ``resources.requests``
copied from ``limits`` where missing; and what the pod strategy sets on create:
``status.phase: Pending`` and ``status.qosClass``.  Admission-plugin effects (service account,
priority, default tolerations) are not applied here.

Updates: the spec is immutable except container images, ``activeDeadlineSeconds`` (set or
lowered), tolerations (additions only), scheduling gates (removals only) and
``terminationGracePeriodSeconds`` (negative -> 1), as in ``ValidatePodUpdate``.  One deliberate
difference: ``spec.nodeName`` may go from unset to set, because Shoal's binding subresource
stores the binding through this same validation.

The row follows the printers' ``printPod`` (Kubernetes 1.32), including init/sidecar
containers, "Terminating", and restarts shown as ``"3 (5m ago)"``.
"""

from __future__ import annotations

import copy
from datetime import datetime
from fractions import Fraction
from typing import Any

from shoal.kube import quantity, times
from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta, podspec
from shoal.resources.kinds.meta import as_dict, as_list, invalid
from shoal.resources.registry import Column, ResourceKind

UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _qos_class(spec: Obj) -> str:
    """``qos.GetPodQOS`` over cpu and memory."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for c in as_list(spec.get("initContainers")) + as_list(spec.get("containers")):
        resources = as_dict(as_dict(c).get("resources"))
        for part, totals in (("requests", requests), ("limits", limits)):
            found: set[str] = set()
            for name, value in as_dict(resources.get(part)).items():
                if name not in ("cpu", "memory"):
                    continue
                try:
                    amount = quantity.parse_quantity(value)
                except ValueError:
                    continue
                if amount != 0:
                    totals[name] = totals.get(name, Fraction(0)) + amount
                    found.add(name)
            if part == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == v for k, v in requests.items()) and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def default(obj: Obj) -> None:
    spec = meta.child(obj, "spec")
    if not isinstance(spec, dict):
        return
    podspec.default_pod_spec(spec)
    for key in ("initContainers", "containers"):
        for c in as_list(spec.get(key)):
            resources = as_dict(as_dict(c).get("resources"))
            limits = as_dict(resources.get("limits"))
            if limits:
                requests = meta.child(resources, "requests")
                if isinstance(requests, dict):
                    for name, value in limits.items():
                        requests.setdefault(name, value)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    status = meta.child(obj, "status")
    if isinstance(status, dict):
        if not status.get("phase"):
            status["phase"] = "Pending"
        if not status.get("qosClass"):
            status["qosClass"] = _qos_class(spec)


def _update_errors(new: Obj, old: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        new_list, old_list = as_list(munged.get(key)), as_list(old.get(key))
        if len(new_list) == len(old_list):
            for n, o in zip(new_list, old_list, strict=True):
                if isinstance(n, dict) and isinstance(o, dict) and "image" in o:
                    n["image"] = o["image"]
    new_deadline, old_deadline = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if new_deadline is None and old_deadline is not None:
        errs.append(invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer "
                            "to nil value"))
    elif meta.is_int(new_deadline) and meta.is_int(old_deadline) and new_deadline > old_deadline:
        errs.append(invalid("spec.activeDeadlineSeconds", new_deadline,
                            "must be less than or equal to previous value"))
    munged["activeDeadlineSeconds"] = old_deadline
    if "activeDeadlineSeconds" not in old:
        munged.pop("activeDeadlineSeconds")
    old_tols, new_tols = as_list(old.get("tolerations")), as_list(new.get("tolerations"))
    if all(t in new_tols for t in old_tols):
        _copy_key(munged, old, "tolerations")
    new_gates, old_gates = as_list(new.get("schedulingGates")), as_list(old.get("schedulingGates"))
    if all(g in old_gates for g in new_gates):
        _copy_key(munged, old, "schedulingGates")
    if not old.get("nodeName") and new.get("nodeName"):
        # Binding: Shoal's binding subresource writes through this validation.
        _copy_key(munged, old, "nodeName")
    old_grace = old.get("terminationGracePeriodSeconds")
    if meta.is_int(old_grace) and old_grace < 0 and new.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old:
        errs.append(meta.forbidden("spec", UPDATE_FORBIDDEN))
    return errs


def _copy_key(target: Obj, source: Obj, key: str) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def validate(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    spec = as_dict(obj.get("spec"))
    errs += podspec.validate_pod_spec(spec, "spec")
    for key in ("containers", "initContainers"):
        for i, c in enumerate(as_list(spec.get(key))):
            image = as_dict(c).get("image")
            if isinstance(image, str) and image and image.strip() != image:
                errs.append(invalid(f"spec.{key}[{i}].image", image,
                                    "must not have leading or trailing whitespace"))
    if old is not None:
        errs += _update_errors(spec, as_dict(old.get("spec")))
    return errs


# ---------------------------------------------------------------------------- printing


def _terminated_reason(term: Obj, prefix: str) -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _has_condition(status: Obj, kind: str) -> bool:
    return any(as_dict(c).get("type") == kind and as_dict(c).get("status") == "True"
               for c in as_list(status.get("conditions")))


def _later(current: str | None, candidate: Any) -> str | None:
    cand = times.parse_time(candidate)
    if cand is None:
        return current
    cur = times.parse_time(current)
    return candidate if cur is None or cand > cur else current


def status_cells(pod: Obj) -> tuple[str, str, str, int, str | None]:
    """(ready "1/2", status reason, restarts, restart count, last restart time) as printPod does."""
    spec, status = as_dict(pod.get("spec")), as_dict(pod.get("status"))
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    if any(as_dict(c).get("type") == "PodScheduled" and as_dict(c).get("reason") == "SchedulingGated"
           for c in as_list(status.get("conditions"))):
        reason = "SchedulingGated"
    total, ready = len(as_list(spec.get("containers"))), 0
    init_specs = {as_dict(c).get("name"): as_dict(c) for c in as_list(spec.get("initContainers"))}
    sidecar = {name for name, c in init_specs.items() if c.get("restartPolicy") == "Always"}
    total += len(sidecar)
    restarts, sidecar_restarts = 0, 0
    last: str | None = None
    last_sidecar: str | None = None
    initializing = False
    init_statuses = as_list(status.get("initContainerStatuses"))
    for i, cs in enumerate(init_statuses):
        cs = as_dict(cs)
        state, term_before = as_dict(cs.get("state")), as_dict(as_dict(cs.get("lastState")).get("terminated"))
        restarts += int(cs.get("restartCount") or 0)
        last = _later(last, term_before.get("finishedAt"))
        if cs.get("name") in sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar = _later(last_sidecar, term_before.get("finishedAt"))
        term, waiting = state.get("terminated"), as_dict(state.get("waiting"))
        if isinstance(term, dict) and term.get("exitCode", 0) == 0:
            continue
        if cs.get("name") in sidecar and cs.get("started") is True:
            ready += 1 if cs.get("ready") else 0
            continue
        if isinstance(term, dict):
            reason = _terminated_reason(term, "Init:")
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _has_condition(status, "Initialized"):
        restarts, last = sidecar_restarts, last_sidecar
        running = False
        for cs in reversed(as_list(status.get("containerStatuses"))):
            cs = as_dict(cs)
            state = as_dict(cs.get("state"))
            restarts += int(cs.get("restartCount") or 0)
            last = _later(last, as_dict(as_dict(cs.get("lastState")).get("terminated")).get("finishedAt"))
            waiting, term = as_dict(state.get("waiting")), state.get("terminated")
            if waiting.get("reason"):
                reason = str(waiting["reason"])
            elif isinstance(term, dict):
                reason = _terminated_reason(term, "")
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _has_condition(status, "Ready") else "NotReady"
    deleting = as_dict(pod.get("metadata")).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return f"{ready}/{total}", reason, str(restarts), restarts, last


def row(pod: Obj, now: datetime) -> list[Any]:
    ready, reason, restarts_text, restarts, last = status_cells(pod)
    if restarts and last:
        restarts_text = f"{restarts} ({times.age(last, now)} ago)"
    spec, status = as_dict(pod.get("spec")), as_dict(pod.get("status"))
    ips = as_list(status.get("podIPs"))
    ip = as_dict(ips[0]).get("ip") if ips else status.get("podIP")
    gates = as_list(spec.get("readinessGates"))
    gates_text = "<none>"
    if gates:
        true_count = sum(1 for g in gates if _has_condition(status, as_dict(g).get("conditionType", "")))
        gates_text = f"{true_count}/{len(gates)}"
    return [printing.name_of(pod), ready, reason, restarts_text, printing.age_of(pod, now),
            printing.none_if_empty(ip), printing.none_if_empty(spec.get("nodeName")),
            printing.none_if_empty(status.get("nominatedNodeName")), gates_text]


def fields(pod: Obj) -> dict[str, str]:
    spec, status = as_dict(pod.get("spec")), as_dict(pod.get("status"))
    ips = as_list(status.get("podIPs"))
    ip = as_dict(ips[0]).get("ip") if ips else status.get("podIP")
    return {
        "spec.nodeName": str(spec.get("nodeName") or ""),
        "spec.restartPolicy": str(spec.get("restartPolicy") or ""),
        "spec.schedulerName": str(spec.get("schedulerName") or ""),
        "spec.serviceAccountName": str(spec.get("serviceAccountName") or ""),
        "spec.hostNetwork": "true" if spec.get("hostNetwork") is True else "false",
        "status.phase": str(status.get("phase") or ""),
        "status.podIP": str(ip or ""),
        "status.nominatedNodeName": str(status.get("nominatedNodeName") or ""),
    }


POD = ResourceKind(
    group="", version="v1", kind="Pod", plural="pods", singular="pod", namespaced=True,
    short_names=("po",), categories=("all",), subresources=("status", "log", "binding", "exec", "portforward"),
    columns=(
        printing.NAME_COLUMN,
        Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", description="The aggregate status of the containers in this pod."),
        Column("Restarts", description="The number of times the containers in this pod have been "
               "restarted and when the last container in this pod has restarted."),
        printing.AGE_COLUMN,
        Column("IP", priority=1, description="podIP address allocated to the pod."),
        Column("Node", priority=1, description="NodeName indicates in which node this pod is scheduled."),
        Column("Nominated Node", priority=1, description="nominatedNodeName is set only when this pod "
               "preempts other pods on the node."),
        Column("Readiness Gates", priority=1, description="If specified, all readiness gates will be "
               "evaluated for pod readiness."),
    ),
    row=row, default=default, validate=validate, fields=fields,
)

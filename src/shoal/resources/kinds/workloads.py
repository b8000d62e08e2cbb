"""apps/v1 Deployment and ReplicaSet: defaults, validation, rows, field selectors.

Deployment defaults (pkg/apis/apps/v1 ``SetDefaults_Deployment``): ``replicas: 1``,
``strategy.type: RollingUpdate`` with ``rollingUpdate.maxUnavailable`` and ``maxSurge`` ``"25%"``
(only for the RollingUpdate strategy), ``revisionHistoryLimit: 10``,
``progressDeadlineSeconds: 600``, and the pod template's PodSpec defaults.
ReplicaSet defaults: ``replicas: 1`` and the template's PodSpec defaults.

Validation (``ValidateDeployment``, ``ValidateReplicaSet`` and their updates): the shared
replicated-spec rules of :func:`podspec.validate_replicated_spec` (replicas >= 0, selector
required, non-empty and matching the template labels, template restartPolicy Always); for
Deployments also the strategy (maxUnavailable/maxSurge non-negative ints or percents, not both
0, maxUnavailable <= 100%, no ``rollingUpdate`` with Recreate), revisionHistoryLimit >= 0 and
progressDeadlineSeconds > minReadySeconds.  On update the selector is immutable (apps/v1).
ReplicaSet field selector: ``status.replicas``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from shoal.kube import errors, selectors
from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta, podspec
from shoal.resources.kinds.container import set_if_unset, set_if_zero
from shoal.resources.kinds.meta import as_dict, invalid, is_int
from shoal.resources.registry import Column, ResourceKind

STRATEGIES = ("Recreate", "RollingUpdate")


def _selector_update_errors(spec: Obj, old: Obj | None) -> list[FieldError]:
    """apps/v1 makes ``spec.selector`` immutable."""
    if old is None or spec.get("selector") == as_dict(old.get("spec")).get("selector"):
        return []
    return [invalid("spec.selector", meta.go_label_selector(spec.get("selector")), meta.IMMUTABLE)]


def default_deployment(obj: Obj) -> None:
    spec = meta.child(obj, "spec")
    if not isinstance(spec, dict):
        return
    set_if_unset(spec, "replicas", 1)
    strategy = meta.child(spec, "strategy")
    if isinstance(strategy, dict):
        set_if_zero(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                rolling = strategy["rollingUpdate"] = {}
            if isinstance(rolling, dict):
                set_if_unset(rolling, "maxUnavailable", "25%")
                set_if_unset(rolling, "maxSurge", "25%")
    set_if_unset(spec, "revisionHistoryLimit", 10)
    set_if_unset(spec, "progressDeadlineSeconds", 600)
    podspec.default_template(spec.get("template"))


def _int_or_percent_errors(value: Any, path: str) -> list[FieldError]:
    """``ValidatePositiveIntOrPercent``."""
    if isinstance(value, str):
        return [invalid(path, meta.go_intstr(value), m) for m in naming.percent_errors(value)]
    if is_int(value):
        return [invalid(path, value, meta.NON_NEGATIVE)] if value < 0 else []
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _int_or_percent_value(value: Any) -> tuple[int | None, bool]:
    """(number, is_percent); number is None when the value is not understood."""
    if isinstance(value, str):
        match = re.fullmatch(r"([0-9]+)%", value)
        return (int(match.group(1)) if match else None), True
    return (value if is_int(value) else None), False


def _validate_strategy(strategy: Any, path: str) -> list[FieldError]:
    strategy = as_dict(strategy)
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [meta.forbidden(f"{path}.rollingUpdate",
                                   "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        shown = meta.GoValue(f'apps.DeploymentStrategy{{Type:"{kind or ""}", '
                                 "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}")
        return [meta.not_supported(path, shown, STRATEGIES)]
    if not isinstance(rolling, dict):
        return [meta.required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    rpath = f"{path}.rollingUpdate"
    max_unavailable, max_surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _int_or_percent_errors(max_unavailable, f"{rpath}.maxUnavailable")
    errs += _int_or_percent_errors(max_surge, f"{rpath}.maxSurge")
    unavailable, is_percent = _int_or_percent_value(max_unavailable)
    if unavailable == 0 and _int_or_percent_value(max_surge)[0] == 0:
        errs.append(invalid(f"{rpath}.maxUnavailable", meta.go_intstr(max_unavailable),
                            "may not be 0 when `maxSurge` is 0"))
    if is_percent and unavailable is not None and unavailable > 100:
        errs.append(invalid(f"{rpath}.maxUnavailable", meta.go_intstr(max_unavailable),
                            "must not be greater than 100%"))
    return errs


def validate_deployment(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    spec = as_dict(obj.get("spec"))
    errs += podspec.validate_replicated_spec(spec)
    errs += _validate_strategy(spec.get("strategy"), "spec.strategy")
    errs += meta.non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if is_int(deadline):
        errs += meta.non_negative("spec.progressDeadlineSeconds", deadline)
        min_ready = spec.get("minReadySeconds") or 0
        if is_int(min_ready) and deadline <= min_ready:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return errs + _selector_update_errors(spec, old)


def deployment_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    desired = spec.get("replicas", 1)
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    names, images = printing.container_cells(pod_spec.get("containers"))
    try:
        selector = selectors.selector_to_string(spec.get("selector"))
    except errors.ApiError:
        selector = "<invalid>"
    return [printing.name_of(obj), f"{status.get('readyReplicas', 0)}/{desired}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
            printing.age_of(obj, now), names, images, selector]


DEPLOYMENT = ResourceKind(
    group="apps", version="v1", kind="Deployment", plural="deployments", singular="deployment",
    namespaced=True, short_names=("deploy",), categories=("all",), subresources=("status", "scale"),
    columns=(
        printing.NAME_COLUMN,
        Column("Ready", description="Number of the pod with ready state"),
        Column("Up-to-date", description="Total number of non-terminated pods targeted by this deployment "
               "that have the desired template spec."),
        Column("Available", description="Total number of available pods (ready for at least "
               "minReadySeconds) targeted by this deployment."),
        printing.AGE_COLUMN,
        printing.CONTAINERS_COLUMN,
        printing.IMAGES_COLUMN,
        Column("Selector", priority=1, description="Label selector for pods. Existing ReplicaSets whose "
               "pods are selected by this will be the ones affected by this deployment."),
    ),
    row=deployment_row, default=default_deployment, validate=validate_deployment,
)


# ---------------------------------------------------------------------------- ReplicaSet


def default_replicaset(obj: Obj) -> None:
    spec = meta.child(obj, "spec")
    if isinstance(spec, dict):
        set_if_unset(spec, "replicas", 1)
        podspec.default_template(spec.get("template"))


def validate_replicaset(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    spec = as_dict(obj.get("spec"))
    return errs + podspec.validate_replicated_spec(spec) + _selector_update_errors(spec, old)


def replicaset_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    pod_spec = as_dict(as_dict(spec.get("template")).get("spec"))
    names, images = printing.container_cells(pod_spec.get("containers"))
    return [printing.name_of(obj), spec.get("replicas", 1), status.get("replicas", 0),
            status.get("readyReplicas", 0), printing.age_of(obj, now), names, images,
            selectors.format_label_selector(spec.get("selector"))]


def replicaset_fields(obj: Obj) -> dict[str, str]:
    return {"status.replicas": str(as_dict(obj.get("status")).get("replicas", 0))}


REPLICASET = ResourceKind(
    group="apps", version="v1", kind="ReplicaSet", plural="replicasets", singular="replicaset",
    namespaced=True, short_names=("rs",), categories=("all",), subresources=("status", "scale"),
    columns=(
        printing.NAME_COLUMN,
        Column("Desired", "integer", description="Replicas is the number of desired replicas."),
        Column("Current", "integer", description="Replicas is the most recently observed number of "
               "replicas."),
        Column("Ready", "integer", description="The number of ready replicas for this replica set."),
        printing.AGE_COLUMN,
        printing.CONTAINERS_COLUMN,
        printing.IMAGES_COLUMN,
        Column("Selector", priority=1, description="Selector is a label query over pods that should match "
               "the replica count."),
    ),
    row=replicaset_row, default=default_replicaset, validate=validate_replicaset,
    fields=replicaset_fields,
)

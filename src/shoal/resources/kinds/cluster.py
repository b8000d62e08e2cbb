"""Cluster-scoped core/v1 kinds: Namespace and Node.

Namespace: defaults the ``kubernetes.io/metadata.name`` label, ``spec.finalizers:
["kubernetes"]`` and ``status.phase: Active``.  The finalizer is added only when
``spec.finalizers`` is absent, because Kubernetes lets it be removed over the object's life
(via ``/finalize``): whoever removes it must store ``finalizers: []``, not drop the key.
Name is a DNS-1123 label.  Field selector: ``status.phase``.

Node: ``status.allocatable`` defaults to ``status.capacity``; ``podCIDR``/``podCIDRs`` are kept
consistent.  Validation checks CIDRs and taints; on update podCIDRs and providerID may only go
from unset to set.  The row follows ``printNode`` (Ready/NotReady/Unknown, SchedulingDisabled,
roles from ``node-role.kubernetes.io/<role>`` labels).  Field selector: ``spec.unschedulable``.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta, podspec
from shoal.resources.kinds.meta import as_dict, as_list, invalid
from shoal.resources.registry import ALL_VERBS, Column, ResourceKind

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ROLE_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"
CIDR_FORBIDDEN = "node updates may not change podCIDR except from \"\" to valid"
PROVIDER_FORBIDDEN = "node updates may not change providerID except from \"\" to valid"

# ---------------------------------------------------------------------------- Namespace


def default_namespace(obj: Obj) -> None:
    metadata = meta.child(obj, "metadata")
    if isinstance(metadata, dict) and metadata.get("name"):
        labels = metadata.get("labels")
        if not isinstance(labels, dict):
            labels = metadata["labels"] = {}
        labels[NAMESPACE_NAME_LABEL] = metadata["name"]
    spec = meta.child(obj, "spec")
    if isinstance(spec, dict) and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = meta.child(obj, "status")
    if isinstance(status, dict) and not status.get("phase"):
        status["phase"] = "Active"


def validate_namespace(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_label_errors, namespaced=False)
    for i, fin in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
        if isinstance(fin, str):
            errs += meta.name_errors(f"spec.finalizers[{i}]", fin, naming.qualified_name_errors)
    errs += meta.supported("status.phase", as_dict(obj.get("status")).get("phase"),
                           ("Active", "Terminating"), need=False)
    return errs


def namespace_row(obj: Obj, now: datetime) -> list[Any]:
    return [printing.name_of(obj), str(as_dict(obj.get("status")).get("phase") or ""),
            printing.age_of(obj, now)]


def namespace_fields(obj: Obj) -> dict[str, str]:
    return {"status.phase": str(as_dict(obj.get("status")).get("phase") or "")}


# ---------------------------------------------------------------------------- Node


def default_node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None:
        capacity = status.get("capacity")
        if isinstance(capacity, dict):
            status["allocatable"] = copy.deepcopy(capacity)
    spec = obj.get("spec")
    if isinstance(spec, dict):
        cidr, cidrs = spec.get("podCIDR"), spec.get("podCIDRs")
        if cidr and not cidrs:
            spec["podCIDRs"] = [cidr]
        elif isinstance(cidrs, list) and cidrs and not cidr:
            spec["podCIDR"] = cidrs[0]


def _validate_taints(taints: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        taint, tpath = as_dict(taint), f"{path}[{i}]"
        key, effect = str(taint.get("key") or ""), str(taint.get("effect") or "")
        errs += meta.name_errors(f"{tpath}.key", key, naming.qualified_name_errors)
        value = taint.get("value")
        if isinstance(value, str):
            errs += meta.name_errors(f"{tpath}.value", value, naming.label_value_errors)
        errs += meta.supported(f"{tpath}.effect", effect, podspec.TAINT_EFFECTS)
        if (key, effect) in seen:
            shown = meta.GoValue(f'core.Taint{{Key:"{key}", Effect:"{effect}"}}')
            errs.append(meta.duplicate(tpath, shown, "taints must be unique by key and effect pair"))
        seen.add((key, effect))
    return errs


def validate_node(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=False)
    spec = as_dict(obj.get("spec"))
    for i, cidr in enumerate(as_list(spec.get("podCIDRs"))):
        errs += [invalid(f"spec.podCIDRs[{i}]", cidr, m) for m in naming.cidr_errors(cidr)]
    errs += _validate_taints(as_list(spec.get("taints")), "spec.taints")
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        old_cidrs = as_list(old_spec.get("podCIDRs"))
        if old_cidrs and old_cidrs != as_list(spec.get("podCIDRs")):
            errs.append(meta.forbidden("spec.podCIDRs", CIDR_FORBIDDEN))
        if old_spec.get("providerID") and old_spec.get("providerID") != spec.get("providerID"):
            errs.append(meta.forbidden("spec.providerID", PROVIDER_FORBIDDEN))
    return errs


def node_roles(labels: Any) -> list[str]:
    roles: set[str] = set()
    for key, value in as_dict(labels).items():
        if key.startswith(ROLE_PREFIX) and key[len(ROLE_PREFIX):]:
            roles.add(key[len(ROLE_PREFIX):])
        elif key == ROLE_LABEL and value:
            roles.add(str(value))
    return sorted(roles)


def node_status(obj: Obj) -> str:
    conditions = {as_dict(c).get("type"): as_dict(c)
                  for c in as_list(as_dict(obj.get("status")).get("conditions"))}
    ready = conditions.get("Ready")
    status = ["Unknown"] if ready is None else ["Ready" if ready.get("status") == "True" else "NotReady"]
    if as_dict(obj.get("spec")).get("unschedulable") is True:
        status.append("SchedulingDisabled")
    return ",".join(status)


def _address(status: Obj, kind: str) -> str:
    for address in map(as_dict, as_list(status.get("addresses"))):
        if address.get("type") == kind:
            return str(address.get("address", ""))
    return "<none>"


def node_row(obj: Obj, now: datetime) -> list[Any]:
    status = as_dict(obj.get("status"))
    info = as_dict(status.get("nodeInfo"))
    return [printing.name_of(obj), node_status(obj),
            ",".join(node_roles(as_dict(obj.get("metadata")).get("labels"))) or "<none>",
            printing.age_of(obj, now), str(info.get("kubeletVersion") or ""),
            _address(status, "InternalIP"), _address(status, "ExternalIP"),
            printing.none_if_empty(info.get("osImage"), "<unknown>"),
            printing.none_if_empty(info.get("kernelVersion"), "<unknown>"),
            printing.none_if_empty(info.get("containerRuntimeVersion"), "<unknown>")]


def node_fields(obj: Obj) -> dict[str, str]:
    unschedulable = as_dict(obj.get("spec")).get("unschedulable") is True
    return {"spec.unschedulable": "true" if unschedulable else "false"}


NAMESPACE = ResourceKind(
    group="", version="v1", kind="Namespace", plural="namespaces", singular="namespace", namespaced=False,
    short_names=("ns",), subresources=("status", "finalize"),
    verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
    columns=(printing.NAME_COLUMN,
             Column("Status", description="The status of the namespace"),
             printing.AGE_COLUMN),
    row=namespace_row, default=default_namespace, validate=validate_namespace, fields=namespace_fields,
)

NODE = ResourceKind(
    group="", version="v1", kind="Node", plural="nodes", singular="node", namespaced=False,
    short_names=("no",), subresources=("status",),
    columns=(
        printing.NAME_COLUMN,
        Column("Status", description="The status of the node"),
        Column("Roles", description="The roles of the node"),
        printing.AGE_COLUMN,
        Column("Version", description="Kubelet Version reported by the node."),
        Column("Internal-IP", priority=1, description="List of addresses reachable to the node."),
        Column("External-IP", priority=1, description="List of addresses reachable to the node."),
        Column("OS-Image", priority=1, description="OS Image reported by the node from /etc/os-release."),
        Column("Kernel-Version", priority=1, description="Kernel Version reported by the node."),
        Column("Container-Runtime", priority=1, description="ContainerRuntime Version reported by the node."),
    ),
    row=node_row, default=default_node, validate=validate_node, fields=node_fields,
)

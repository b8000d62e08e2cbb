#!/usr/bin/env python3
"""Generate ``src/shoal/resources/schemas.json`` from the ``kubernetes`` client's models.

Development-time only: run ``.venv/bin/python scripts/gen_schemas.py`` after changing the
served kinds or upgrading the client, and commit the output.  The server never imports the
client; it reads the generated JSON.

The client's pydantic models carry Kubernetes' field names (camelCase aliases), field
descriptions and required lists, but not Kubernetes' definition names, int-or-string and
quantity types, or patch metadata.  This script:

* names each definition like Kubernetes does (``V1Deployment`` ->
  ``io.k8s.api.apps.v1.Deployment``, ``V1ObjectMeta`` ->
  ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``) from the tables below;
* collapses ``anyOf [X, null]`` to X, drops pydantic titles, ``default: null`` and the
  generator's "Attributes:" docstring boilerplate;
* turns ``anyOf [integer, string]`` into int-or-string, the listed fields into quantities,
  ``bytes`` maps into ``format: byte`` and untyped objects into free-form objects;
* wraps references that carry a description in ``allOf: [{$ref}]`` (as kube-openapi does);
* adds ``x-kubernetes-group-version-kind`` to top-level kinds and the strategic-merge-patch
  extensions (``x-kubernetes-patch-merge-key`` / ``-strategy``) Kubernetes declares.

The output has one definition per line, keys sorted, so diffs stay reviewable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from kubernetes.client import models
from pydantic.json_schema import models_json_schema

OUT = Path(__file__).resolve().parent.parent / "src" / "shoal" / "resources" / "schemas.json"
REF_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."

#: (client class, group, version, kind) of every top-level object schema we publish.
KINDS: list[tuple[str, str, str, str]] = [
    ("V1Namespace", "", "v1", "Namespace"),
    ("V1NamespaceList", "", "v1", "NamespaceList"),
    ("V1Pod", "", "v1", "Pod"),
    ("V1PodList", "", "v1", "PodList"),
    ("V1Binding", "", "v1", "Binding"),
    ("V1Service", "", "v1", "Service"),
    ("V1ServiceList", "", "v1", "ServiceList"),
    ("V1Endpoints", "", "v1", "Endpoints"),
    ("V1EndpointsList", "", "v1", "EndpointsList"),
    ("V1ConfigMap", "", "v1", "ConfigMap"),
    ("V1ConfigMapList", "", "v1", "ConfigMapList"),
    ("V1Secret", "", "v1", "Secret"),
    ("V1SecretList", "", "v1", "SecretList"),
    ("V1Node", "", "v1", "Node"),
    ("V1NodeList", "", "v1", "NodeList"),
    ("CoreV1Event", "", "v1", "Event"),
    ("CoreV1EventList", "", "v1", "EventList"),
    ("V1ServiceAccount", "", "v1", "ServiceAccount"),
    ("V1ServiceAccountList", "", "v1", "ServiceAccountList"),
    ("V1Deployment", "apps", "v1", "Deployment"),
    ("V1DeploymentList", "apps", "v1", "DeploymentList"),
    ("V1ReplicaSet", "apps", "v1", "ReplicaSet"),
    ("V1ReplicaSetList", "apps", "v1", "ReplicaSetList"),
    ("V1Lease", "coordination.k8s.io", "v1", "Lease"),
    ("V1LeaseList", "coordination.k8s.io", "v1", "LeaseList"),
    ("V1EndpointSlice", "discovery.k8s.io", "v1", "EndpointSlice"),
    ("V1EndpointSliceList", "discovery.k8s.io", "v1", "EndpointSliceList"),
    ("V1Scale", "autoscaling", "v1", "Scale"),
    ("V1Status", "", "v1", "Status"),
    ("V1DeleteOptions", "", "v1", "DeleteOptions"),
]

#: DeleteOptions is registered in every group (Kubernetes lists them all on the schema).
DELETE_OPTIONS_GROUPS = ["", "apps", "autoscaling", "coordination.k8s.io", "discovery.k8s.io"]

#: Client classes that are not core/v1, by Kubernetes package.
PACKAGES: dict[str, list[str]] = {
    META: ["ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement",
           "ManagedFieldsEntry", "OwnerReference", "Status", "StatusDetails", "StatusCause",
           "DeleteOptions", "Preconditions", "Condition", "ShardInfo"],
    "io.k8s.api.apps.v1.": ["Deployment", "DeploymentList", "DeploymentSpec", "DeploymentStatus",
                            "DeploymentCondition", "DeploymentStrategy", "RollingUpdateDeployment",
                            "ReplicaSet", "ReplicaSetList", "ReplicaSetSpec", "ReplicaSetStatus",
                            "ReplicaSetCondition"],
    "io.k8s.api.coordination.v1.": ["Lease", "LeaseList", "LeaseSpec"],
    "io.k8s.api.discovery.v1.": ["EndpointSlice", "EndpointSliceList", "Endpoint",
                                 "EndpointConditions", "EndpointHints", "ForZone", "ForNode"],
    "io.k8s.api.autoscaling.v1.": ["Scale", "ScaleSpec", "ScaleStatus"],
}
#: Client class-name prefixes used where a short name is ambiguous across groups.
PREFIXES = {"CoreV1": "io.k8s.api.core.v1.", "DiscoveryV1": "io.k8s.api.discovery.v1."}

#: Fields holding resource.Quantity values (scalars, or map values for maps).
QUANTITIES = {
    ("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests"),
    ("V1VolumeResourceRequirements", "limits"), ("V1VolumeResourceRequirements", "requests"),
    ("V1NodeStatus", "capacity"), ("V1NodeStatus", "allocatable"),
    ("V1PodSpec", "overhead"), ("V1PodStatus", "allocatedResources"),
    ("V1ContainerStatus", "allocatedResources"), ("V1EmptyDirVolumeSource", "sizeLimit"),
    ("V1ResourceFieldSelector", "divisor"), ("V1NodeAllocatableMappedResources", "quantity"),
    ("V1NodeAllocatableOverheadResources", "perContainer"),
    ("V1NodeAllocatableOverheadResources", "perPod"),
}

#: Strategic-merge-patch metadata from Kubernetes' Go struct tags:
#: (client class, field) -> (patch strategy, merge key or "", list-map keys).
PATCH: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {
    ("V1ObjectMeta", "finalizers"): ("merge", "", ()),
    ("V1ObjectMeta", "ownerReferences"): ("merge", "uid", ("uid",)),
    ("V1PodSpec", "volumes"): ("merge,retainKeys", "name", ("name",)),
    ("V1PodSpec", "initContainers"): ("merge", "name", ("name",)),
    ("V1PodSpec", "containers"): ("merge", "name", ("name",)),
    ("V1PodSpec", "ephemeralContainers"): ("merge", "name", ("name",)),
    ("V1PodSpec", "imagePullSecrets"): ("merge", "name", ("name",)),
    ("V1PodSpec", "hostAliases"): ("merge", "ip", ("ip",)),
    ("V1PodSpec", "topologySpreadConstraints"):
        ("merge", "topologyKey", ("topologyKey", "whenUnsatisfiable")),
    ("V1PodSpec", "resourceClaims"): ("merge,retainKeys", "name", ("name",)),
    ("V1PodSpec", "schedulingGates"): ("merge", "name", ("name",)),
    ("V1Container", "ports"): ("merge", "containerPort", ("containerPort", "protocol")),
    ("V1Container", "env"): ("merge", "name", ("name",)),
    ("V1Container", "volumeMounts"): ("merge", "mountPath", ("mountPath",)),
    ("V1Container", "volumeDevices"): ("merge", "devicePath", ("devicePath",)),
    ("V1EphemeralContainer", "ports"): ("merge", "containerPort", ("containerPort", "protocol")),
    ("V1EphemeralContainer", "env"): ("merge", "name", ("name",)),
    ("V1EphemeralContainer", "volumeMounts"): ("merge", "mountPath", ("mountPath",)),
    ("V1EphemeralContainer", "volumeDevices"): ("merge", "devicePath", ("devicePath",)),
    ("V1PodStatus", "conditions"): ("merge", "type", ("type",)),
    ("V1PodStatus", "podIPs"): ("merge", "ip", ("ip",)),
    ("V1PodStatus", "hostIPs"): ("merge", "ip", ("ip",)),
    ("V1PodStatus", "resourceClaimStatuses"): ("merge,retainKeys", "name", ("name",)),
    ("V1ServiceSpec", "ports"): ("merge", "port", ("port", "protocol")),
    ("V1ServiceStatus", "conditions"): ("merge", "type", ("type",)),
    ("V1ServiceAccount", "secrets"): ("merge", "name", ()),
    ("V1NodeSpec", "podCIDRs"): ("merge", "", ()),
    ("V1NodeStatus", "conditions"): ("merge", "type", ()),
    ("V1NodeStatus", "addresses"): ("merge", "type", ()),
    ("V1NamespaceStatus", "conditions"): ("merge", "type", ()),
    ("V1DeploymentSpec", "strategy"): ("retainKeys", "", ()),
    ("V1DeploymentStatus", "conditions"): ("merge", "type", ()),
    ("V1ReplicaSetStatus", "conditions"): ("merge", "type", ()),
}

#: Descriptions Kubernetes gives reference fields the client leaves undescribed.
REF_DESCRIPTIONS = {
    META + "ObjectMeta": "Standard object's metadata. More info: https://git.k8s.io/community/"
                         "contributors/devel/sig-architecture/api-conventions.md#metadata",
    META + "ListMeta": "Standard list metadata. More info: https://git.k8s.io/community/"
                       "contributors/devel/sig-architecture/api-conventions.md#types-kinds",
}

#: Definitions the client has no model for.
EXTRA = {
    META + "Patch": {
        "description": "Patch is provided to give a concrete name and type to the Kubernetes "
                       "PATCH request body.",
        "type": "object",
    },
}

INT_OR_STRING = {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True}
QUANTITY = {"type": "string", "format": "quantity", "x-kubernetes-int-or-string": True}


class GeneratorError(Exception):
    """The client's schema has a shape this generator does not know how to translate."""


def definition_name(cls: str) -> str:
    for prefix, package in PREFIXES.items():
        if cls.startswith(prefix):
            return package + cls[len(prefix):]
    if not cls.startswith("V1"):
        raise GeneratorError(f"cannot name client class {cls}")
    short = cls[2:]
    for package, names in PACKAGES.items():
        if short in names:
            return package + short
    return "io.k8s.api.core.v1." + short


def clean_description(text: str) -> str:
    return text.split("\n\nAttributes:", 1)[0].strip()


class Converter:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.names = {cls: definition_name(cls) for cls in defs}
        self.descriptions = {self.names[c]: clean_description(d.get("description", ""))
                             for c, d in defs.items()}

    def definition(self, cls: str) -> dict[str, Any]:
        src = self.defs[cls]
        if src.get("type") != "object":
            raise GeneratorError(f"{cls}: top-level type {src.get('type')!r}")
        out: dict[str, Any] = {"type": "object"}
        desc = clean_description(src.get("description", ""))
        if desc:
            out["description"] = desc
        props = {}
        for field, sub in src.get("properties", {}).items():
            props[field] = self.field(cls, field, sub)
        out["properties"] = props
        if src.get("required"):
            out["required"] = list(src["required"])
        return out

    def field(self, cls: str, field: str, src: dict[str, Any]) -> dict[str, Any]:
        desc = src.get("description")
        node = self.node(_strip_null(src), f"{cls}.{field}")
        if (cls, field) in QUANTITIES:
            node = self.quantity(node, f"{cls}.{field}")
        if "$ref" in node:
            target = node["$ref"][len(REF_PREFIX):]
            desc = desc or REF_DESCRIPTIONS.get(target) or self.descriptions.get(target, "")
            node = {"allOf": [node]}
        if desc:
            node["description"] = clean_description(desc)
        patch = PATCH.get((cls, field))
        if patch is not None:
            strategy, key, map_keys = patch
            node["x-kubernetes-patch-strategy"] = strategy
            if key:
                node["x-kubernetes-patch-merge-key"] = key
            if map_keys:
                node["x-kubernetes-list-type"] = "map"
                node["x-kubernetes-list-map-keys"] = list(map_keys)
        return node

    def quantity(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        if node.get("type") == "string":
            return dict(QUANTITY)
        if node.get("type") == "object" and node.get("additionalProperties", {}).get("type") == "string":
            return {"type": "object", "additionalProperties": dict(QUANTITY)}
        raise GeneratorError(f"{where}: quantity field has shape {node}")

    def node(self, src: dict[str, Any], where: str) -> dict[str, Any]:
        if "$ref" in src:
            return {"$ref": REF_PREFIX + self.names[src["$ref"][len(REF_PREFIX):]]}
        if "anyOf" in src:
            return self.any_of(src["anyOf"], where)
        kind = src.get("type")
        if kind in ("string", "integer", "number", "boolean"):
            out: dict[str, Any] = {"type": kind}
            if src.get("format") == "date-time":
                out["format"] = "date-time"
            elif src.get("format") not in (None, "date-time"):
                raise GeneratorError(f"{where}: format {src['format']!r}")
            return out
        if kind == "array":
            return {"type": "array", "items": self.node(src["items"], where + "[]")}
        if kind == "object":
            extra = src.get("additionalProperties")
            if extra is None or extra is True or extra == {}:
                return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            return {"type": "object", "additionalProperties": self.node(extra, where + "{}")}
        if not src:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        raise GeneratorError(f"{where}: unsupported schema {src}")

    def any_of(self, options: list[dict[str, Any]], where: str) -> dict[str, Any]:
        types = sorted(json.dumps(o, sort_keys=True) for o in options)
        if types == ['{"type": "integer"}', '{"type": "string"}']:
            return dict(INT_OR_STRING)
        if types == ['{"format": "binary", "type": "string"}', '{"type": "string"}']:
            return {"type": "string", "format": "byte"}
        raise GeneratorError(f"{where}: unsupported anyOf {options}")


def _strip_null(src: dict[str, Any]) -> dict[str, Any]:
    """``anyOf [X, null]`` -> X (keeping nothing else: title/default/description go)."""
    options = src.get("anyOf")
    if options is not None:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            return rest[0]
        return {"anyOf": rest}
    return {k: v for k, v in src.items() if k not in ("title", "default", "description")}


def generate() -> dict[str, Any]:
    classes = [getattr(models, cls) for cls, *_ in KINDS]
    _, top = models_json_schema([(c, "validation") for c in classes], ref_template=REF_PREFIX + "{model}")
    defs: dict[str, Any] = top["$defs"]
    conv = Converter(defs)
    out = {conv.names[cls]: conv.definition(cls) for cls in defs}
    for cls, group, version, kind in KINDS:
        groups = DELETE_OPTIONS_GROUPS if kind == "DeleteOptions" else [group]
        out[conv.names[cls]]["x-kubernetes-group-version-kind"] = [
            {"group": g, "version": version, "kind": kind} for g in groups]
    for (cls, field) in list(PATCH) + sorted(QUANTITIES):
        if field not in defs.get(cls, {}).get("properties", {}):
            raise GeneratorError(f"table entry {cls}.{field} matches no field")
    out.update(EXTRA)
    return out


def dump(schemas: dict[str, Any]) -> str:
    lines = [json.dumps(name) + ":" + json.dumps(schemas[name], sort_keys=True, separators=(",", ":"))
             for name in sorted(schemas)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> int:
    text = dump(generate())
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

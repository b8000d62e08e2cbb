"""API discovery: ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>/<version>``.

kubectl 1.32 asks for aggregated discovery (``apidiscovery.k8s.io/v2``) first and needs the
exact ``Content-Type: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList``
to take it (KUBE-API.md §1).  Clients that accept only plain JSON get the legacy documents.
All documents are computed once from the registry and cached.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from shoal.resources.registry import Registry, ResourceKind

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

_SUB_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "binding": ("", "v1", "Binding"),
    "exec": ("", "v1", "PodExecOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
    "log": ("", "v1", "Pod"),
    "eviction": ("policy", "v1", "Eviction"),
}
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "binding": ["create"],
    "exec": ["create", "get"],
    "portforward": ["create", "get"],
    "log": ["get"],
    "finalize": ["update"],
    "eviction": ["create"],
}


def wants_aggregated(accept: str | None) -> bool:
    return bool(accept) and "as=APIGroupDiscoveryList" in str(accept) and "v=v2" in str(accept)


class Discovery:
    def __init__(self, registry: Registry, server_address: str) -> None:
        self.registry = registry
        self.server_address = server_address

    def _kinds(self, group: str, version: str) -> list[ResourceKind]:
        return [k for k in self.registry if k.group == group and k.version == version]

    def _sub_kind(self, kind: ResourceKind, sub: str) -> tuple[str, str, str]:
        return _SUB_KINDS.get(sub, (kind.group, kind.version, kind.kind))

    @cached_property
    def api_versions(self) -> dict[str, Any]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}]}

    @cached_property
    def api_group_list(self) -> dict[str, Any]:
        groups = []
        for group, version in self.registry.group_versions():
            if not group:
                continue
            gv = {"groupVersion": f"{group}/{version}", "version": version}
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        kinds = self._kinds(group, version)
        if not kinds:
            return None
        resources: list[dict[str, Any]] = []
        for kind in kinds:
            entry: dict[str, Any] = {
                "name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
                "kind": kind.kind, "verbs": list(kind.verbs),
            }
            if kind.short_names:
                entry["shortNames"] = list(kind.short_names)
            if kind.categories:
                entry["categories"] = list(kind.categories)
            resources.append(entry)
            for sub in kind.subresources:
                g, v, k = self._sub_kind(kind, sub)
                sub_entry: dict[str, Any] = {"name": f"{kind.plural}/{sub}", "singularName": "",
                                             "namespaced": kind.namespaced, "kind": k,
                                             "verbs": _SUB_VERBS.get(sub, ["get"])}
                if g != kind.group:
                    sub_entry["group"], sub_entry["version"] = g, v
                resources.append(sub_entry)
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _aggregated_group(self, group: str) -> dict[str, Any]:
        versions = []
        for g, version in self.registry.group_versions():
            if g != group:
                continue
            resources = []
            for kind in self._kinds(group, version):
                entry: dict[str, Any] = {
                    "resource": kind.plural,
                    "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
                    "scope": "Namespaced" if kind.namespaced else "Cluster",
                    "singularResource": kind.singular,
                    "verbs": list(kind.verbs),
                }
                if kind.short_names:
                    entry["shortNames"] = list(kind.short_names)
                if kind.categories:
                    entry["categories"] = list(kind.categories)
                if kind.subresources:
                    entry["subresources"] = []
                    for sub in kind.subresources:
                        sg, sv, sk = self._sub_kind(kind, sub)
                        entry["subresources"].append({
                            "subresource": sub,
                            "responseKind": {"group": sg, "version": sv, "kind": sk},
                            "verbs": _SUB_VERBS.get(sub, ["get"]),
                        })
                resources.append(entry)
            versions.append({"version": version, "resources": resources, "freshness": "Current"})
        return {"metadata": {"name": group, "creationTimestamp": None}, "versions": versions}

    @cached_property
    def aggregated_core(self) -> dict[str, Any]:
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {}, "items": [self._aggregated_group("")]}

    @cached_property
    def aggregated_groups(self) -> dict[str, Any]:
        groups: list[str] = []
        for group, _ in self.registry.group_versions():
            if group and group not in groups:
                groups.append(group)
        return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {}, "items": [self._aggregated_group(g) for g in groups]}

    def group(self, group: str) -> dict[str, Any] | None:
        for entry in self.api_group_list["groups"]:
            if entry["name"] == group:
                return {"kind": "APIGroup", "apiVersion": "v1", **entry}
        return None

"""core/v1 Service: defaults, validation, the ``kubectl get services`` row.

Defaults (``SetDefaults_Service`` plus the REST layer's family defaults): ``type: ClusterIP``,
``sessionAffinity: None`` (ClientIP gets ``timeoutSeconds: 10800``), ports ``protocol: TCP``
and ``targetPort`` = ``port`` when missing, ``internalTrafficPolicy: Cluster`` (not for
ExternalName), ``externalTrafficPolicy: Cluster`` for NodePort/LoadBalancer (or ClusterIP with
externalIPs), ``allocateLoadBalancerNodePorts: true`` for LoadBalancer, and
``ipFamilies: [IPv4]`` / ``ipFamilyPolicy: SingleStack`` except for ExternalName.
``clusterIP`` and ``clusterIPs`` are made consistent; allocating a ClusterIP or a nodePort is the
API server's job, not this module's.

Validation (``ValidateService``): DNS-1035 name, supported type, ports required unless headless
or ExternalName, names required and unique with several ports, port and nodePort ranges
(nodePort 30000-32767, forbidden for ClusterIP), externalName for ExternalName; on update
an allocated clusterIP may not change.
Field selectors: ``spec.clusterIP``, ``spec.type``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta
from shoal.resources.kinds.container import PROTOCOLS, set_if_unset, set_if_zero
from shoal.resources.kinds.meta import as_dict, as_list, invalid, required
from shoal.resources.registry import Column, ResourceKind

TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
NODE_PORT_RANGE = (30000, 32767)
CLIENT_IP_TIMEOUT = 10800


def _externally_accessible(spec: Obj) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (kind == "ClusterIP" and bool(spec.get("externalIPs")))


def default(obj: Obj) -> None:
    spec = meta.child(obj, "spec")
    if not isinstance(spec, dict):
        return
    set_if_zero(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        if not isinstance(spec.get("sessionAffinityConfig"), dict):
            spec["sessionAffinityConfig"] = {}
        config = spec["sessionAffinityConfig"]
        if not isinstance(config.get("clientIP"), dict):
            config["clientIP"] = {}
        set_if_unset(config["clientIP"], "timeoutSeconds", CLIENT_IP_TIMEOUT)
    set_if_zero(spec, "type", "ClusterIP")
    for port in as_list(spec.get("ports")):
        if isinstance(port, dict):
            set_if_zero(port, "protocol", "TCP")
            if port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port.get("port")
    if _externally_accessible(spec):
        set_if_zero(spec, "externalTrafficPolicy", "Cluster")
    kind = spec["type"]
    if kind != "ExternalName":
        set_if_unset(spec, "internalTrafficPolicy", "Cluster")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]
        set_if_zero(spec, "ipFamilyPolicy", "SingleStack")
    if kind == "LoadBalancer":
        set_if_unset(spec, "allocateLoadBalancerNodePorts", True)
    cluster_ip, cluster_ips = spec.get("clusterIP"), spec.get("clusterIPs")
    if cluster_ip and not cluster_ips:
        spec["clusterIPs"] = [cluster_ip]
    elif cluster_ips and isinstance(cluster_ips, list) and not cluster_ip:
        spec["clusterIP"] = cluster_ips[0]


def _validate_ports(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    ports = as_list(spec.get("ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    low, high = NODE_PORT_RANGE
    for i, port in enumerate(ports):
        port, ppath = as_dict(port), f"spec.ports[{i}]"
        name = port.get("name")
        if len(ports) > 1 and not name:
            errs.append(required(f"{ppath}.name"))
        elif isinstance(name, str) and name:
            errs += meta.name_errors(f"{ppath}.name", name, naming.dns1123_label_errors)
            if name in names:
                errs.append(meta.duplicate(f"{ppath}.name", name))
            names.add(name)
        number, protocol = port.get("port"), port.get("protocol")
        errs += [invalid(f"{ppath}.port", number, m) for m in naming.port_num_errors(number)]
        errs += meta.supported(f"{ppath}.protocol", protocol, PROTOCOLS)
        target = port.get("targetPort")
        if isinstance(target, str):
            errs += meta.name_errors(f"{ppath}.targetPort", target, naming.port_name_errors)
        else:
            errs += [invalid(f"{ppath}.targetPort", target, m) for m in naming.port_num_errors(target)]
        if (protocol, number) in seen:
            errs.append(meta.duplicate(ppath, meta.GoValue(
                f'core.ServicePort{{Name:"", Protocol:"{protocol}", AppProtocol:(*string)(nil), '
                f'Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:""}}, '
                'NodePort:0}')))
        seen.add((protocol, number))
        node_port = port.get("nodePort")
        if not node_port:
            continue
        if spec.get("type") == "ClusterIP":
            errs.append(meta.forbidden(f"{ppath}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        elif not meta.is_int(node_port) or not low <= node_port <= high:
            errs.append(invalid(f"{ppath}.nodePort", node_port, "provided port is not in the valid range. "
                                f"The range of valid ports is {low}-{high}"))
        if (protocol, node_port) in node_ports:
            errs.append(meta.duplicate(f"{ppath}.nodePort", node_port))
        node_ports.add((protocol, node_port))
    return errs


def _validate_cluster_ips(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    cluster_ip, cluster_ips = spec.get("clusterIP") or "", as_list(spec.get("clusterIPs"))
    if cluster_ip and cluster_ips and cluster_ips[0] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", meta.GoValue(repr(cluster_ips)),
                            "first value must match `clusterIP`"))
    for i, ip in enumerate(cluster_ips):
        if ip not in ("", "None") and naming.ip_errors(ip):
            errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "must be empty, 'None' or a valid IP address"))
    kind = spec.get("type")
    if cluster_ip == "None" and kind in ("LoadBalancer", "NodePort"):
        errs.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    return errs


def _validate_policies(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    affinity = spec.get("sessionAffinity")
    errs += meta.supported("spec.sessionAffinity", affinity, ("ClientIP", "None"))
    timeout = as_dict(as_dict(spec.get("sessionAffinityConfig")).get("clientIP")).get("timeoutSeconds")
    if affinity == "ClientIP" and meta.is_int(timeout) and not 0 < timeout <= 86400:
        errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                            "must be greater than 0 and less than 86400"))
    external = spec.get("externalTrafficPolicy")
    if not _externally_accessible(spec):
        if external:
            errs.append(invalid("spec.externalTrafficPolicy", external,
                                "may only be set for externally-accessible services"))
    else:
        errs += meta.supported("spec.externalTrafficPolicy", external, ("Cluster", "Local"))
    internal = spec.get("internalTrafficPolicy")
    if internal is None and spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
        errs.append(required("spec.internalTrafficPolicy"))
    elif internal is not None and internal not in ("Cluster", "Local"):
        errs.append(meta.not_supported("spec.internalTrafficPolicy", internal, ("Cluster", "Local")))
    if spec.get("ipFamilyPolicy") is not None:
        errs += meta.supported("spec.ipFamilyPolicy", spec.get("ipFamilyPolicy"),
                               ("PreferDualStack", "RequireDualStack", "SingleStack"))
    for i, family in enumerate(as_list(spec.get("ipFamilies"))):
        errs += meta.supported(f"spec.ipFamilies[{i}]", family, ("IPv4", "IPv6"))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        errs += [invalid(f"spec.externalIPs[{i}]", ip, m) for m in naming.ip_errors(ip)]
    return errs


def validate(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1035_label_errors, namespaced=True)
    spec = as_dict(obj.get("spec"))
    kind = spec.get("type")
    errs += meta.supported("spec.type", kind, TYPES)
    headless = spec.get("clusterIP") == "None"
    if not as_list(spec.get("ports")) and not headless and kind != "ExternalName":
        errs.append(required("spec.ports"))
    errs += _validate_ports(spec)
    if kind == "ExternalName":
        cname = str(spec.get("externalName") or "").removesuffix(".")
        if cname:
            errs += meta.name_errors("spec.externalName", cname, naming.dns1123_subdomain_errors)
        else:
            errs.append(required("spec.externalName"))
    else:
        errs += _validate_cluster_ips(spec)
    errs += _validate_policies(spec)
    errs += meta.validate_labels(spec.get("selector"), "spec.selector")
    if old is not None:
        old_spec = as_dict(old.get("spec"))
        old_ip, new_ip = old_spec.get("clusterIP"), spec.get("clusterIP")
        if (old_ip and new_ip and old_ip != new_ip
                and "ExternalName" not in (kind, old_spec.get("type"))):
            errs.append(invalid("spec.clusterIPs[0]", new_ip, "may not change once set"))
    return errs


def external_ip(spec: Obj, status: Obj) -> str:
    """Printers' ``getServiceExternalIP`` (wide form, as the API server renders tables)."""
    kind, external = spec.get("type"), [str(ip) for ip in as_list(spec.get("externalIPs"))]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = {str(i.get("ip") or i.get("hostname")) for i in map(as_dict, as_list(
            as_dict(status.get("loadBalancer")).get("ingress"))) if i.get("ip") or i.get("hostname")}
        lb = sorted(ingress)
        return ",".join(lb + external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName") or "")
    return "<unknown>"


def port_string(ports: Any) -> str:
    pieces = []
    for port in map(as_dict, as_list(ports)):
        node_port = port.get("nodePort")
        if node_port:
            pieces.append(f"{port.get('port')}:{node_port}/{port.get('protocol', '')}")
        else:
            pieces.append(f"{port.get('port')}/{port.get('protocol', '')}")
    return ",".join(pieces) or "<none>"


def row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = as_dict(obj.get("spec")), as_dict(obj.get("status"))
    ips = as_list(spec.get("clusterIPs"))
    cluster_ip = ips[0] if ips else (spec.get("clusterIP") or "<none>")
    return [printing.name_of(obj), str(spec.get("type", "")), cluster_ip, external_ip(spec, status),
            port_string(spec.get("ports")), printing.age_of(obj, now),
            printing.format_labels(spec.get("selector"))]


def fields(obj: Obj) -> dict[str, str]:
    spec = as_dict(obj.get("spec"))
    return {"spec.clusterIP": str(spec.get("clusterIP") or ""), "spec.type": str(spec.get("type") or "")}


SERVICE = ResourceKind(
    group="", version="v1", kind="Service", plural="services", singular="service", namespaced=True,
    short_names=("svc",), categories=("all",), subresources=("status",),
    columns=(
        printing.NAME_COLUMN,
        Column("Type", description="type determines how the Service is exposed."),
        Column("Cluster-IP", description="clusterIP is the IP address of the service."),
        Column("External-IP", description="externalIPs is a list of IP addresses for which nodes in the "
               "cluster will also accept traffic for this service."),
        Column("Port(s)", description="The list of ports that are exposed by this service."),
        printing.AGE_COLUMN,
        Column("Selector", priority=1, description="Route service traffic to pods with label keys and "
               "values matching this selector."),
    ),
    row=row, default=default, validate=validate, fields=fields,
)

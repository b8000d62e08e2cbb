"""core/v1 Endpoints and discovery.k8s.io/v1 EndpointSlice: defaults, validation, rows.

Defaults: endpoint ports get ``protocol: TCP``; EndpointSlice ports also ``name: ""``.
Validation follows ``ValidateEndpoints`` and ``ValidateEndpointSlice`` (valid IPs for the
address type, 1-100 addresses per slice endpoint, ports 1-65535, port names DNS labels and
required when an Endpoints subset has several ports, addressType immutable).  Deliberate
difference: loopback and link-local addresses are accepted, because Shoal's ``process``
runtime gives pods addresses on 127.0.0.0/8.
Rows: ``printEndpoints`` ("10.42.0.5:80,... + 2 more...") and ``printEndpointSlice``.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta
from shoal.resources.kinds.container import PROTOCOLS, set_if_unset, set_if_zero
from shoal.resources.kinds.meta import as_dict, as_list, invalid, required
from shoal.resources.registry import Column, ResourceKind

ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
MAX_ADDRESSES = 100
MAX_ENDPOINTS = 1000

# ---------------------------------------------------------------------------- Endpoints


def default_endpoints(obj: Obj) -> None:
    for subset in as_list(obj.get("subsets")):
        for port in as_list(as_dict(subset).get("ports")):
            if isinstance(port, dict):
                set_if_zero(port, "protocol", "TCP")


def _validate_port(port: Obj, path: str, *, need_name: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    name = port.get("name") or ""
    if need_name and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += meta.name_errors(f"{path}.name", str(name), naming.dns1123_label_errors)
    number = port.get("port")
    if number is not None:
        errs += [invalid(f"{path}.port", number, m) for m in naming.port_num_errors(number)]
    errs += meta.supported(f"{path}.protocol", port.get("protocol"), PROTOCOLS)
    app = port.get("appProtocol")
    if isinstance(app, str):
        errs += meta.name_errors(f"{path}.appProtocol", app, naming.qualified_name_errors)
    return errs


def _validate_address(address: Obj, path: str) -> list[FieldError]:
    errs = [invalid(f"{path}.ip", address.get("ip"), m) for m in naming.ip_errors(address.get("ip"))]
    hostname = address.get("hostname")
    if isinstance(hostname, str) and hostname:
        errs += meta.name_errors(f"{path}.hostname", hostname, naming.dns1123_label_errors)
    node = address.get("nodeName")
    if isinstance(node, str):
        errs += meta.name_errors(f"{path}.nodeName", node, naming.dns1123_subdomain_errors)
    return errs


def validate_endpoints(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    for i, subset in enumerate(as_list(obj.get("subsets"))):
        subset, spath = as_dict(subset), f"subsets[{i}]"
        addresses, not_ready = as_list(subset.get("addresses")), as_list(subset.get("notReadyAddresses"))
        if not addresses and not not_ready:
            errs.append(required(spath, "must specify `addresses` or `notReadyAddresses`"))
        for key, items in (("addresses", addresses), ("notReadyAddresses", not_ready)):
            for j, address in enumerate(items):
                errs += _validate_address(as_dict(address), f"{spath}.{key}[{j}]")
        ports = as_list(subset.get("ports"))
        for j, port in enumerate(ports):
            port = as_dict(port)
            errs += _validate_port(port, f"{spath}.ports[{j}]", need_name=len(ports) > 1)
            if port.get("port") is None:
                errs.append(invalid(f"{spath}.ports[{j}].port", 0, "must be between 1 and 65535, inclusive"))
    return errs


def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(obj: Obj) -> str:
    """Printers' ``formatEndpoints`` for all ports."""
    subsets = as_list(obj.get("subsets"))
    if not subsets:
        return "<none>"
    items: list[str] = []
    count, limit, more = 0, 3, False
    for subset in map(as_dict, subsets):
        addresses = [str(as_dict(a).get("ip", "")) for a in as_list(subset.get("addresses"))]
        ports = as_list(subset.get("ports"))
        for port in map(as_dict, ports) if ports else [None]:
            count += len(addresses)
            for ip in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(ip if port is None else _host_port(ip, port.get("port")))
    text = ",".join(items)
    return f"{text} + {count - limit} more..." if more else text


def endpoints_row(obj: Obj, now: datetime) -> list[Any]:
    return [printing.name_of(obj), format_endpoints(obj), printing.age_of(obj, now)]


ENDPOINTS = ResourceKind(
    group="", version="v1", kind="Endpoints", plural="endpoints", singular="endpoints", namespaced=True,
    short_names=("ep",),
    columns=(printing.NAME_COLUMN,
             Column("Endpoints", description="The set of all endpoints is the union of all subsets."),
             printing.AGE_COLUMN),
    row=endpoints_row, default=default_endpoints, validate=validate_endpoints,
)

# ---------------------------------------------------------------------------- EndpointSlice


def default_slice(obj: Obj) -> None:
    for port in as_list(obj.get("ports")):
        if isinstance(port, dict):
            set_if_unset(port, "name", "")
            set_if_unset(port, "protocol", "TCP")


def _address_errors(kind: Any, address: Any, path: str) -> list[FieldError]:
    if kind == "FQDN":
        return meta.name_errors(path, str(address), naming.dns1123_subdomain_errors)
    if kind not in ("IPv4", "IPv6"):
        return []
    try:
        version: int = ipaddress.ip_address(address).version
    except ValueError:
        version = 0
    if version != int(kind[-1]):
        return [invalid(path, address, f"must be a valid {kind} address")]
    return []


def validate_slice(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    kind = obj.get("addressType")
    errs += meta.supported("addressType", kind, ADDRESS_TYPES)
    endpoints = as_list(obj.get("endpoints"))
    if len(endpoints) > MAX_ENDPOINTS:
        errs.append(invalid("endpoints", len(endpoints), f"must have at most {MAX_ENDPOINTS} items"))
    for i, endpoint in enumerate(endpoints):
        endpoint, epath = as_dict(endpoint), f"endpoints[{i}]"
        addresses = as_list(endpoint.get("addresses"))
        if not addresses:
            errs.append(required(f"{epath}.addresses", "must contain at least 1 address"))
        elif len(addresses) > MAX_ADDRESSES:
            errs.append(invalid(f"{epath}.addresses", len(addresses),
                                f"must have at most {MAX_ADDRESSES} items"))
        for j, address in enumerate(addresses):
            errs += _address_errors(kind, address, f"{epath}.addresses[{j}]")
        node, hostname = endpoint.get("nodeName"), endpoint.get("hostname")
        if isinstance(node, str):
            errs += meta.name_errors(f"{epath}.nodeName", node, naming.dns1123_subdomain_errors)
        if isinstance(hostname, str):
            errs += meta.name_errors(f"{epath}.hostname", hostname, naming.dns1123_label_errors)
    port_names: set[str] = set()
    for i, port in enumerate(as_list(obj.get("ports"))):
        port, ppath = as_dict(port), f"ports[{i}]"
        errs += _validate_port(port, ppath, need_name=False)
        name = str(port.get("name") or "")
        if name in port_names:
            errs.append(meta.duplicate(f"{ppath}.name", name))
        port_names.add(name)
    if old is not None:
        errs += meta.immutable("addressType", kind, old.get("addressType"))
    return errs


def slice_row(obj: Obj, now: datetime) -> list[Any]:
    ports = []
    for port in map(as_dict, as_list(obj.get("ports"))):
        number, name = port.get("port"), port.get("name")
        ports.append(str(number) if number is not None else (str(name) if name is not None else "*"))
    addresses = [str(a) for e in as_list(obj.get("endpoints")) for a in as_list(as_dict(e).get("addresses"))]
    return [printing.name_of(obj), str(obj.get("addressType") or ""), printing.list_with_more(ports),
            printing.list_with_more(addresses), printing.age_of(obj, now)]


ENDPOINTSLICE = ResourceKind(
    group="discovery.k8s.io", version="v1", kind="EndpointSlice", plural="endpointslices",
    singular="endpointslice", namespaced=True,
    columns=(printing.NAME_COLUMN,
             Column("AddressType", description="addressType specifies the type of address carried by this "
                    "EndpointSlice."),
             Column("Ports", description="ports specifies the list of network ports exposed by each endpoint "
                    "in this slice."),
             Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
             printing.AGE_COLUMN),
    row=slice_row, default=default_slice, validate=validate_slice,
)

"""ClusterIP and NodePort allocation for Services.

Each allocated address or port is a key in the store (``/registry/ranges/serviceips/<ip>``,
``/registry/ranges/servicenodeports/<port>``) created with create-if-absent, so two API
servers sharing one etcd can never hand out the same value.  The value is the owning
Service's key.

Invariants: a Service of type ClusterIP/NodePort/LoadBalancer always has a unique
``spec.clusterIP`` from the service CIDR (10.43.0.0/16 by default; 10.43.0.1 is reserved for
``default/kubernetes``) unless it is headless (``None``); NodePort and LoadBalancer ports have
unique ``nodePort`` s in 30000-32767.  ``spec.clusterIP`` is immutable.  Values are released
when the Service is deleted or stops using them.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.kube import errors
from shoal.kube.objects import Obj
from shoal.resources.registry import ResourceKind
from shoal.store.interface import KeyExistsError, KeyNotFoundError, Store

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
NODE_PORT_RANGE = (30000, 32767)

Release = Callable[[], Awaitable[None]]


async def _noop() -> None:
    return None


def _service_key(obj: Obj) -> str:
    meta = obj["metadata"]
    return f"/registry/services/{meta['namespace']}/{meta['name']}"


def _field(path: str, detail: str, value: Any = None, type_: str = "FieldValueInvalid") -> errors.FieldError:
    return errors.FieldError(path, type_, detail, value)


class ServiceAllocator:
    def __init__(self, store: Store, cidr: str = "10.43.0.0/16") -> None:
        self.store = store
        self.network = ipaddress.ip_network(cidr)
        self.reserved_ip = str(self.network.network_address + 1)

    async def _claim(self, key: str, owner: str) -> bool:
        try:
            await self.store.create(key, owner.encode())
        except KeyExistsError:
            current = await self.store.get(key)
            return current is not None and current.value.decode() == owner
        return True

    async def _free(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except KeyNotFoundError:
            return

    async def allocate(self, kind: ResourceKind, new: Obj, old: Obj | None, dry_run: bool) -> Release:
        if kind.plural != "services":
            return _noop
        spec = new.setdefault("spec", {})
        svc_type = spec.get("type", "ClusterIP")
        owner = _service_key(new)
        claimed: list[str] = []
        name = new["metadata"]["name"]

        async def release() -> None:
            for key in claimed:
                await self._free(key)

        try:
            if svc_type != "ExternalName":
                await self._allocate_ip(spec, old, owner, name, claimed, dry_run)
            if svc_type in ("NodePort", "LoadBalancer"):
                await self._allocate_ports(spec, old, owner, name, claimed, dry_run)
            else:
                for port in spec.get("ports") or []:
                    if isinstance(port, dict) and port.get("nodePort"):
                        raise errors.invalid("Service", "", name, [_field(
                            "spec.ports[0].nodePort", "may not be used when `type` is 'ClusterIP'",
                            port["nodePort"], "FieldValueForbidden")])
        except BaseException:
            await release()
            raise
        return release if not dry_run else _noop

    async def _allocate_ip(self, spec: Obj, old: Obj | None, owner: str, name: str,
                           claimed: list[str], dry_run: bool) -> None:
        old_ip = (old or {}).get("spec", {}).get("clusterIP")
        wanted = spec.get("clusterIP") or ""
        if old is not None and old_ip:
            if wanted and wanted != old_ip:
                raise errors.invalid("Service", "", name, [_field(
                    "spec.clusterIPs[0]", "field is immutable", wanted)])
            spec["clusterIP"], spec["clusterIPs"] = old_ip, [old_ip]
            return
        if wanted == "None":
            spec["clusterIPs"] = ["None"]
            return
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError as exc:
                raise errors.invalid("Service", "", name, [_field(
                    "spec.clusterIPs[0]", "must be a valid IP address", wanted)]) from exc
            if address not in self.network:
                raise errors.invalid("Service", "", name, [_field(
                    "spec.clusterIPs[0]", f"failed to allocate IP {wanted}: provided IP is not in the "
                    f"valid range. The range of valid IPs is {self.network}", [wanted])])
            if not dry_run:
                if not await self._claim(IP_PREFIX + wanted, owner):
                    raise errors.invalid("Service", "", name, [_field(
                        "spec.clusterIPs", f"failed to allocate IP {wanted}: provided IP is already "
                        "allocated", [wanted])])
                claimed.append(IP_PREFIX + wanted)
            spec["clusterIPs"] = [wanted]
            return
        hosts = self.network.num_addresses - 2
        start = random.randrange(hosts)
        for step in range(hosts):
            candidate = str(self.network.network_address + 1 + (start + step) % hosts)
            if candidate == self.reserved_ip and owner != "/registry/services/default/kubernetes":
                continue
            if dry_run or await self._claim(IP_PREFIX + candidate, owner):
                if not dry_run:
                    claimed.append(IP_PREFIX + candidate)
                spec["clusterIP"], spec["clusterIPs"] = candidate, [candidate]
                return
        raise errors.internal("failed to allocate a serviceIP: range is full")

    async def _allocate_ports(self, spec: Obj, old: Obj | None, owner: str, name: str,
                              claimed: list[str], dry_run: bool) -> None:
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                     for p in (old or {}).get("spec", {}).get("ports") or [] if isinstance(p, dict)}
        low, high = NODE_PORT_RANGE
        for index, port in enumerate(spec.get("ports") or []):
            if not isinstance(port, dict):
                continue
            wanted = port.get("nodePort") or old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if wanted:
                if not isinstance(wanted, int) or not low <= wanted <= high:
                    raise errors.invalid("Service", "", name, [_field(
                        f"spec.ports[{index}].nodePort", f"provided port is not in the valid range. "
                        f"The range of valid ports is {low}-{high}", wanted)])
                if not dry_run and not await self._claim(PORT_PREFIX + str(wanted), owner):
                    raise errors.invalid("Service", "", name, [_field(
                        f"spec.ports[{index}].nodePort", "provided port is already allocated", wanted)])
                if not dry_run and wanted not in old_ports.values():
                    claimed.append(PORT_PREFIX + str(wanted))
                port["nodePort"] = wanted
                continue
            start = random.randrange(high - low + 1)
            for step in range(high - low + 1):
                candidate = low + (start + step) % (high - low + 1)
                if dry_run or await self._claim(PORT_PREFIX + str(candidate), owner):
                    if not dry_run:
                        claimed.append(PORT_PREFIX + str(candidate))
                    port["nodePort"] = candidate
                    break
            else:
                raise errors.internal("failed to allocate a nodePort: range is full")

    def _holdings(self, obj: Obj | None) -> set[str]:
        if obj is None:
            return set()
        spec = obj.get("spec") or {}
        keys = set()
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            keys.add(IP_PREFIX + spec["clusterIP"])
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and port.get("nodePort"):
                keys.add(PORT_PREFIX + str(port["nodePort"]))
        return keys

    async def release_unused(self, kind: ResourceKind, new: Obj | None, old: Obj) -> None:
        if kind.plural != "services":
            return
        for key in self._holdings(old) - self._holdings(new):
            await self._free(key)

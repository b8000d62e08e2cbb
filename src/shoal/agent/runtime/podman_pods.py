"""The sandbox half of the podman driver: podman pods for Kubernetes pods, cold or warm.

:class:`PodmanSandboxes` is mixed into :class:`~shoal.agent.runtime.podman.PodmanDriver` (which
provides ``ensure_network`` and ``_infra_image``).  A Kubernetes pod's sandbox is either

* *cold*: a podman pod created for it, named ``shoal_<ns>_<name>_<uid8>`` and labelled with
  the pod's identity (``create_sandbox`` finds and restarts one created before, so a retry after
  an agent crash never duplicates it); or
* *warm*: a started pod of the :class:`~shoal.agent.runtime.podman_warm.WarmPool`, claimed for
  it (identity in the claim file), when the pod needs no hostPorts or DNS options.

``list_sandboxes`` reports both kinds with the pod's uid and labels, hides unclaimed warm pods,
and inspects an infra container only when its IP is not known yet (``_ips`` caches it while the
infra runs), so a relist costs one API call plus one per new pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from typing import Any, NamedTuple

from shoal.agent.runtime import podman_spec as spec_
from shoal.agent.runtime.driver import NotFoundError, SandboxSpec, SandboxStatus, State
from shoal.agent.runtime.podman_api import PodmanApi
from shoal.agent.runtime.podman_cmd import PodmanError, PodmanNotFoundError
from shoal.agent.runtime.podman_warm import WARM, Claim, ClaimStore, WarmPod, WarmPool
from shoal.kube.times import parse_time

__all__ = ["PodInfo", "PodmanSandboxes"]


class PodInfo(NamedTuple):
    """What containers of a sandbox need: the name prefix, and for warm pods hostname + hosts file."""

    name: str
    hostname: str = ""
    hosts_file: str = ""


class PodmanSandboxes:
    """Sandbox methods of the podman driver (a mixin; see the module docstring)."""

    network: str
    scope_labels: dict[str, str]
    api: PodmanApi
    claims: ClaimStore | None
    pool: WarmPool
    _ips: dict[str, str]
    _pods: dict[str, PodInfo]

    async def ensure_network(self) -> None:
        raise NotImplementedError

    async def _infra_image(self) -> str:
        raise NotImplementedError

    async def stop_container(self, container_id: str, grace_seconds: float) -> None:
        raise NotImplementedError

    async def create_sandbox(self, spec: SandboxSpec) -> SandboxStatus:
        """Claim a warm pod, or create and start one; the same pod (name and uid) created
        before is reused."""
        await self.ensure_network()
        if self.claims is not None and not spec.dns_servers and not spec.dns_searches and not any(
                p.host_port for p in spec.ports):
            warm = await self.pool.take()
            if warm is not None:
                return await self._claim(warm, spec, self.claims)
        name = spec_.pod_name(spec)
        body = spec_.sandbox_create_body(spec, name=name, network=self.network, infra_image=await self._infra_image(),
                                         labels=spec_.sandbox_labels(spec, self.scope_labels))
        try:
            pod_id = str((await self.api.call("POST", "/pods/create", body=body))["Id"])
        except PodmanError as exc:
            existing = await self._pod_inspect(name) if "in use" in exc.message else None
            if existing is None or (existing.get("Labels") or {}).get(spec_.POD_UID_LABEL) != spec.pod_uid:
                raise
            await self.api.call("POST", f"/pods/{existing['Id']}/start")
            return await self._sandbox_status(str(existing["Id"]))
        try:
            await self.api.call("POST", f"/pods/{pod_id}/start")
            return await self._sandbox_status(pod_id)
        except BaseException:
            await self.remove_sandbox(pod_id)
            raise

    async def _claim(self, warm: WarmPod, spec: SandboxSpec, claims: ClaimStore) -> SandboxStatus:
        labels = spec_.sandbox_labels(spec, self.scope_labels)
        claim = Claim(pod_uid=spec.pod_uid, pod_name=spec_.pod_name(spec), hostname=spec.hostname[:63],
                      labels=labels)
        hosts = await asyncio.to_thread(claims.put, warm.id, claim, warm.ip)
        self._pods[warm.id] = PodInfo(claim.pod_name, claim.hostname, hosts)
        self._ips[warm.id] = warm.ip
        return SandboxStatus(id=warm.id, pod_uid=spec.pod_uid, ip=warm.ip, ready=True, labels=labels,
                             created_at=parse_time(warm.created))

    async def _new_warm_pod(self) -> WarmPod:
        name = f"shoal_warm_{secrets.token_hex(6)}"
        labels = {**self.scope_labels, spec_.MANAGED_LABEL: WARM}
        body = spec_.sandbox_create_body(None, name=name, network=self.network,
                                         infra_image=await self._infra_image(), labels=labels)
        pod_id = str((await self.api.call("POST", "/pods/create", body=body))["Id"])
        try:
            await self.api.call("POST", f"/pods/{pod_id}/start")
            status = await self._sandbox_status(pod_id)
        except BaseException:
            await self.remove_sandbox(pod_id)
            raise
        return WarmPod(pod_id, status.ip, status.created_at.isoformat() if status.created_at else "")

    async def _adopt_warm_pods(self) -> list[WarmPod]:
        """Unclaimed warm pods left by an earlier agent: running ones join the pool, others go."""
        adopted: list[WarmPod] = []
        for pod in await self._list_pods(WARM):
            if self.claims and self.claims.get(str(pod["Id"])):
                continue
            status = await self._sandbox_status(str(pod["Id"]))
            if status.ready and status.ip:
                adopted.append(WarmPod(status.id, status.ip, str(pod.get("Created") or "")))
            else:
                await self.remove_sandbox(status.id)
        return adopted

    async def stop_sandbox(self, sandbox_id: str, grace_seconds: float) -> None:
        """Stop the running containers (with the grace period), then the infra container, whose
        stop makes CNI tear the network down and gives the IP back to the node's pool.  (The
        API's ``pods/{id}/stop`` of podman 4.3 does nothing for a "Degraded" pod, one with
        exited containers: exactly the pods that have ended.)"""
        pod = await self._pod_inspect(sandbox_id)
        if pod is None:
            raise NotFoundError(f"sandbox {sandbox_id} not found")
        infra = str(pod.get("InfraContainerID") or "")
        running = [str(c["Id"]) for c in pod.get("Containers") or []
                   if c.get("State") == "running" and c.get("Id") != infra]
        await asyncio.gather(*(self.stop_container(c, grace_seconds) for c in running))
        if infra:
            with contextlib.suppress(PodmanNotFoundError):
                await self.stop_container(infra, grace_seconds)
        self._ips.pop(sandbox_id, None)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove the pod and all its containers (idempotent)."""
        self.pool.forget(sandbox_id)
        with contextlib.suppress(PodmanNotFoundError):
            await self.api.call("DELETE", f"/pods/{sandbox_id}", params={"force": True, "timeout": 0})
        if self.claims is not None:
            await asyncio.to_thread(self.claims.remove, sandbox_id)
        self._ips.pop(sandbox_id, None)
        self._pods.pop(sandbox_id, None)

    async def _list_pods(self, managed: str = "true", ids: list[str] | None = None,
                         extra: list[str] | None = None) -> list[dict[str, Any]]:
        filters = {"label": self._label_filters(managed) + (extra or [])}
        if ids is not None:
            filters["id"] = ids
        pods = await self.api.call("GET", "/pods/json", params={"filters": filters}) or []
        return [p for p in pods if self._in_scope(p.get("Labels") or {}, managed)]

    async def list_sandboxes(self, pod_uid: str | None = None) -> list[SandboxStatus]:
        """The node's pods (or pod ``pod_uid``'s: podman then computes the status of those only);
        unclaimed warm pods are not listed (they belong to no pod yet)."""
        out: list[SandboxStatus] = []
        pods = await self._list_pods(extra=[f"{spec_.POD_UID_LABEL}={pod_uid}"] if pod_uid else [])
        claimed = await asyncio.to_thread(self.claims.ids, pod_uid) if self.claims is not None else []
        if claimed:
            pods += await self._list_pods(WARM, ids=claimed)
        for pod in pods:
            pod_id, labels = str(pod["Id"]), dict(pod.get("Labels") or {})
            if labels.get(spec_.MANAGED_LABEL) == WARM:
                claim = self.claims.get(pod_id) if self.claims is not None else None
                if claim is None:
                    continue
                labels = claim.labels
                self._pods.setdefault(pod_id, PodInfo(claim.pod_name, claim.hostname,
                                                       self.claims.hosts_file(pod_id) if self.claims else ""))
            running = any(c.get("Id") == pod.get("InfraId") and str(c.get("Status")).lower() == "running"
                          for c in pod.get("Containers") or [])
            ip = self._ips.get(pod_id, "") if running else ""
            if running and not ip:
                ip = (await self._sandbox_status(pod_id)).ip
            out.append(SandboxStatus(id=pod_id, pod_uid=labels.get(spec_.POD_UID_LABEL, ""), ip=ip, ready=running,
                                     labels=labels, created_at=parse_time(pod.get("Created"))))
        return out

    async def _pod_inspect(self, name_or_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = await self.api.call("GET", f"/pods/{name_or_id}/json")
        except PodmanNotFoundError:
            return None
        return result

    async def _sandbox_status(self, pod_id: str) -> SandboxStatus:
        pod = await self._pod_inspect(pod_id)
        if pod is None:
            raise NotFoundError(f"sandbox {pod_id} not found")
        infra = await self._inspect_many([pod["InfraContainerID"]])
        labels = dict(pod.get("Labels") or {})
        running = bool(infra) and spec_.container_state(infra[0]) is State.RUNNING
        ip = spec_.network_ip(infra[0], self.network) if running else ""
        if ip:
            self._ips[str(pod["Id"])] = ip
        return SandboxStatus(id=str(pod["Id"]), pod_uid=labels.get(spec_.POD_UID_LABEL, ""), ip=ip, ready=running,
                             labels=labels, created_at=parse_time(pod.get("Created")))

    async def _pod_info(self, sandbox_id: str) -> PodInfo:
        known = self._pods.get(sandbox_id)
        if known is not None:
            return known
        claim = self.claims.get(sandbox_id) if self.claims is not None else None
        if claim is not None and self.claims is not None:
            info = PodInfo(claim.pod_name, claim.hostname, self.claims.hosts_file(sandbox_id))
        else:
            pod = await self._pod_inspect(sandbox_id)
            if pod is None:
                raise NotFoundError(f"sandbox {sandbox_id} not found")
            info = PodInfo(str(pod["Name"]))
        self._pods[sandbox_id] = info
        return info

    async def _inspect_many(self, ids: list[str]) -> list[dict[str, Any]]:
        """Container inspects of several IDs; ones removed meanwhile are skipped."""
        async def one(container_id: str) -> dict[str, Any] | None:
            try:
                found: dict[str, Any] = await self.api.call("GET", f"/containers/{container_id}/json")
            except PodmanNotFoundError:
                return None
            return found

        return [c for c in await asyncio.gather(*(one(i) for i in ids)) if c is not None]

    def _label_filters(self, managed: str = "true") -> list[str]:
        return [f"{spec_.MANAGED_LABEL}={managed}", *(f"{k}={v}" for k, v in sorted(self.scope_labels.items()))]

    def _in_scope(self, labels: Mapping[str, str], managed: str = "true") -> bool:
        return labels.get(spec_.MANAGED_LABEL) == managed and all(
            labels.get(k) == v for k, v in self.scope_labels.items())

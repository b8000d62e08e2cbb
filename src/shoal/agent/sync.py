"""One level-triggered sync pass for one pod (kubelet ``SyncPod``/``SyncTerminatingPod``).

:meth:`PodSyncer.sync` compares the pod the API wants (from the informer cache) with what the
runtime has (sandboxes and containers carrying the pod's uid label) and closes the gap:

1. **Gone from the API** (or never ours): stop and remove every runtime object of the uid
   (2 s grace), remove its volumes.  **Being deleted** (``deletionTimestamp``, kubelet's
   ``SyncTerminatingPod`` then the status manager's ``canBeDeleted``): first, if a container
   runs, drain its Service endpoints (the ``drain`` hook, :mod:`shoal.agent.drain`); stop the containers
   with ``deletionGracePeriodSeconds`` (event Killing "Stopping container x") and the sandbox;
   write the pod's final status (containers ``terminated``, Ready/ContainersReady False, the
   phase kubelet gives a terminal pod: Succeeded if every container exited 0, else Failed);
   only then remove the containers, the sandbox and the volumes and ``DELETE`` the pod with
   grace period 0 and a uid precondition, which completes the deletion.  So a client watching
   the pod sees it stop before it sees it DELETED.
2. **Terminal** (phase Succeeded/Failed): nothing is (re)started; the sandbox is stopped, which
   releases the pod IP (``status.podIP`` keeps it, as in Kubernetes); containers stay for logs.
3. Otherwise: volumes (FailedMount on error); the sandbox (re-created, after removing what
   was left of the old one, if none is ready); init containers one by one, each must exit 0;
   then every app container: start it if it never ran; kill it (event Killing) when its
   liveness/startup probe failed or its spec changed; restart it per ``restartPolicy`` with
   CrashLoopBackOff (:class:`~shoal.agent.backoff.Backoff`, kubelet's message and BackOff
   event).  Older attempts are removed, keeping the newest and the one before it
   (``logs --previous``).
4. Status: :func:`~shoal.agent.status.compute_status` over a fresh runtime view, written
   through ``pods/status`` (a merge patch carrying the uid as precondition) only on change.

The returned :class:`~shoal.agent.podworker.SyncResult` asks for the next pass when a backoff
ends, or after ``resync_interval`` (to refresh ConfigMap/Secret volumes).  Runtime and API
errors propagate to the worker, which logs them and retries with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.agent import containers as ct
from shoal.agent.backoff import Backoff, to_epoch
from shoal.agent.envs import SourceCache
from shoal.agent.podworker import SyncResult
from shoal.agent.probes import ProbeManager, RunningContainer
from shoal.agent.runtime import driver as rt
from shoal.agent.status import ContainerView, PodView, Waiting, compute_status
from shoal.agent.volumes import VolumeError, VolumeManager
from shoal.client import resources
from shoal.client.errors import ConflictError, NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube import objects
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj
from shoal.kube.times import go_duration

__all__ = ["PodSyncer"]

log = logging.getLogger(__name__)

#: kubelet's minimum shutdown window: even a grace period of 0 gives SIGTERM this long.
MIN_GRACE = 2.0
#: The longest shutdown window the agent waits (a year): the API takes any int64 grace period,
#: which no timer or runtime call can hold; beyond a year it makes no difference.
MAX_GRACE = 365 * 24 * 3600.0
ORPHAN_GRACE = MIN_GRACE
TERMINAL = ("Succeeded", "Failed")


def _pod_ref(pod: Obj) -> str:
    meta = objects.meta(pod)
    return f"{meta.get('name')}_{meta.get('namespace')}({meta.get('uid')})"


def _should_restart(policy: str, exit_code: int | None) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


class PodSyncer:
    def __init__(self, *, client: ApiClient, driver: rt.RuntimeDriver, clock: Clock, probes: ProbeManager,
                 volumes: VolumeManager, starter: ct.ContainerStarter, record: ct.Recorder,
                 lookup: Callable[[str], Obj | None], node_ip: str, crash_backoff: Backoff,
                 resync_interval: float = 30.0,
                 drain: Callable[[str], Awaitable[object]] | None = None,
                 services: Callable[[str], list[Obj]] | None = None) -> None:
        self.client = client
        self.driver = driver
        self.clock = clock
        self.probes = probes
        self.volumes = volumes
        self.starter = starter
        self.record = record
        self.lookup = lookup
        self.node_ip = node_ip
        self.crash_backoff = crash_backoff
        self.resync_interval = resync_interval
        #: Drain before kill (agent/drain.py): awaited before a deleted pod's containers stop.
        self.drain = drain
        #: The Services of a namespace, from the agent's informer (pods' Service variables).
        self.services = services
        self.runtime_name = driver.name
        #: uid -> (resourceVersion the write was based on, status written)
        self._written: dict[str, tuple[str, Obj]] = {}
        self._oom_reported: dict[str, set[str]] = {}  # uid -> container IDs

    async def sync(self, uid: str) -> SyncResult:
        pod = self.lookup(uid)
        runtime = await ct.observe(self.driver, uid)
        if pod is None:
            if not runtime.empty or uid in self.volumes.known_pods():
                log.info("pod %s is gone from the API: removing its containers", uid)
                await self._teardown(None, runtime, ORPHAN_GRACE)
            self._forget(uid)
            return SyncResult(done=True)
        meta = objects.meta(pod)
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if grace is None:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 0
            if self.drain is not None and any(c.state is rt.State.RUNNING for c in runtime.containers):
                await self.drain(uid)
            await self._terminate(self._with_written_status(pod), runtime, _window(grace))
            with contextlib.suppress(NotFoundError, ConflictError):
                await self.client.delete(resources.PODS, str(meta.get("name")), str(meta.get("namespace")),
                                         grace_period_seconds=0, uid=uid)
            self._forget(uid)
            return SyncResult(done=True)
        pod = self._with_written_status(pod)
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            self.probes.remove_pod(uid)
            ready = [s for s in runtime.sandboxes if s.ready]
            if ready:  # like kubelet: an ended pod gives its IP back; its containers stay for logs
                for sandbox in ready:
                    await self.driver.stop_sandbox(sandbox.id, MIN_GRACE)
                runtime = await ct.observe(self.driver, uid)
            if not runtime.empty:
                await self._write_status(pod, runtime, {})
            return SyncResult()
        return await self._sync_live(pod, runtime)

    # -- a pod that should run ----------------------------------------------------------------

    async def _sync_live(self, pod: Obj, runtime: ct.RuntimePod) -> SyncResult:
        uid, spec = str(objects.meta(pod).get("uid")), pod.get("spec") or {}
        sources = SourceCache(self.client, str(objects.meta(pod).get("namespace")), services=self.services)
        waits: dict[str, Waiting] = {}
        wake = [self.resync_interval]
        sandbox = runtime.sandbox()
        try:
            volumes = await self.volumes.prepare(pod, sources, sandbox.ip if sandbox else "")
        except VolumeError as exc:
            await self.record(pod, "", "Warning", "FailedMount", str(exc))
            await self._write_status(pod, runtime, {})
            raise
        if sandbox is None:
            if spec.get("restartPolicy") == "Never" and runtime.containers:
                # The sandbox died after containers ran: restartPolicy Never runs nothing again.
                await self._write_status(pod, runtime, {})
                return SyncResult()
            sandbox = await self._new_sandbox(pod, runtime)
            runtime = ct.RuntimePod(uid, [sandbox])
        initialized = await self._sync_init(pod, runtime, sandbox, volumes, sources, waits, wake)
        if initialized:
            for container in spec.get("containers") or []:
                await self._sync_app(pod, container, runtime, sandbox, volumes, sources, waits, wake)
        runtime = await ct.observe(self.driver, uid, runtime.sandboxes)
        await self._collect_garbage(pod, runtime)
        self._update_probes(pod, runtime)
        if (await self._write_status(pod, runtime, waits)).get("phase") in TERMINAL:
            return SyncResult(resync=0.0)  # the pod just ended: the next pass stops its sandbox
        return SyncResult(resync=max(0.0, min(wake)))

    async def _new_sandbox(self, pod: Obj, runtime: ct.RuntimePod) -> rt.SandboxStatus:
        meta, spec = objects.meta(pod), pod.get("spec") or {}
        if not runtime.empty:
            await self.record(pod, "", "Normal", "SandboxChanged",
                              "Pod sandbox changed, it will be killed and re-created.")
            await self._remove_all(runtime, ORPHAN_GRACE)
        ports = tuple(rt.PortMapping(int(p.get("containerPort", 0)), str(p.get("protocol") or "TCP"),
                                     int(p.get("hostPort") or 0), str(p.get("hostIP") or ""))
                      for c in spec.get("containers") or [] for p in c.get("ports") or [] if p.get("hostPort"))
        labels = {ct.LABEL_POD_UID: str(meta.get("uid")), ct.LABEL_POD_NAME: str(meta.get("name")),
                  ct.LABEL_POD_NAMESPACE: str(meta.get("namespace"))}
        sandbox_spec = rt.SandboxSpec(
            pod_uid=str(meta.get("uid")), namespace=str(meta.get("namespace")), name=str(meta.get("name")),
            hostname=str(spec.get("hostname") or meta.get("name"))[:63], labels=labels, ports=ports)
        # No DNS options on the sandbox: each container gets the pod's resolv.conf as a bind
        # mount (shoal.agent.resolvconf), so warm sandboxes serve pods of any namespace.
        try:
            return await self.driver.create_sandbox(sandbox_spec)
        except rt.RuntimeDriverError as exc:
            await self.record(pod, "", "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            await self._write_status(pod, runtime, {})
            raise

    async def _sync_init(self, pod: Obj, runtime: ct.RuntimePod, sandbox: rt.SandboxStatus, volumes: Any,
                         sources: SourceCache, waits: dict[str, Waiting], wake: list[float]) -> bool:
        """Advance the init containers; True once all of them succeeded (or app containers ran)."""
        spec = pod.get("spec") or {}
        if any(runtime.attempts(str(c.get("name"))) for c in spec.get("containers") or []):
            return True
        for container in spec.get("initContainers") or []:
            name = str(container.get("name"))
            attempts = runtime.attempts(name)
            latest = attempts[0] if attempts else None
            if latest is not None and latest.state is rt.State.EXITED and latest.exit_code == 0:
                continue
            if latest is not None and latest.state is rt.State.RUNNING:
                return False
            await self._start_or_restart(pod, container, "init", latest, sandbox, volumes, sources, waits, wake)
            return False
        return True

    async def _sync_app(self, pod: Obj, container: Obj, runtime: ct.RuntimePod, sandbox: rt.SandboxStatus,
                        volumes: Any, sources: SourceCache, waits: dict[str, Waiting], wake: list[float]) -> None:
        uid, name = str(objects.meta(pod).get("uid")), str(container.get("name"))
        attempts = runtime.attempts(name)
        latest = attempts[0] if attempts else None
        if latest is not None and latest.state is rt.State.RUNNING:
            reason = self.probes.kill_reason(uid, name, latest.id)
            if reason is None and latest.labels.get(ct.LABEL_HASH, "") not in ("", ct.container_hash(container)):
                reason = f"Container {name} definition changed, will be restarted"
            if reason is None:
                return
            await self.record(pod, name, "Normal", "Killing", reason)
            await self.driver.stop_container(latest.id, self._kill_grace(pod, container, reason))
            latest = await self.driver.inspect_container(latest.id)
        await self._start_or_restart(pod, container, "app", latest, sandbox, volumes, sources, waits, wake)

    def _kill_grace(self, pod: Obj, container: Obj, reason: str) -> float:
        """The pod's grace period, or the failed probe's own ``terminationGracePeriodSeconds``."""
        grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
        for kind in ("liveness", "startup"):
            probe = container.get(f"{kind}Probe") or {}
            if f"failed {kind} probe" in reason and probe.get("terminationGracePeriodSeconds") is not None:
                grace = probe["terminationGracePeriodSeconds"]
        return _window(grace)

    async def _start_or_restart(self, pod: Obj, container: Obj, kind: str, latest: rt.ContainerStatus | None,
                                sandbox: rt.SandboxStatus, volumes: Any, sources: SourceCache,
                                waits: dict[str, Waiting], wake: list[float]) -> None:
        meta, name = objects.meta(pod), str(container.get("name"))
        policy = str((pod.get("spec") or {}).get("restartPolicy") or "Always")
        if latest is None:
            attempt = self._first_attempt(pod, name)
        elif latest.state is rt.State.EXITED:
            if not _should_restart("OnFailure" if kind == "init" and policy == "Always" else policy,
                                   latest.exit_code):
                return
            key = f"{meta.get('uid')}/{name}/{ct.container_hash(container)}"
            finished = to_epoch(latest.finished_at) or self.clock.now()
            remaining = self.crash_backoff.remaining(key, finished)
            if remaining > 0:
                delay = go_duration(self.crash_backoff.get(key))
                await self.record(pod, name, "Warning", "BackOff",
                                  f"Back-off restarting failed container {name} in pod {_pod_ref(pod)}")
                waits[name] = Waiting("CrashLoopBackOff", f"back-off {delay} restarting failed "
                                                          f"container={name} pod={_pod_ref(pod)}")
                wake.append(remaining)
                return
            self.crash_backoff.next(key, finished)
            attempt = ct.attempt_of(latest) + 1
        else:  # created but never started, or unknown: replace it
            await self.driver.remove_container(latest.id)
            attempt = ct.attempt_of(latest)
        waiting = await self.starter.start(pod, container, kind=kind, attempt=attempt, sandbox=sandbox,
                                           volumes=volumes, sources=sources)
        start_key = f"{meta.get('uid')}/{name}/start"
        if waiting is None:
            self.crash_backoff.reset(start_key)
            return
        waits[name] = waiting
        retry = self.starter.pull_retry_in(pod, str(container.get("image")))
        if waiting.reason == "ErrImagePull":
            retry = min(retry, 1.0)  # come back soon to show ImagePullBackOff while waiting
        wake.append(retry if retry > 0 else self.crash_backoff.next(start_key))

    async def _report_oom(self, pod: Obj, runtime: ct.RuntimePod) -> None:
        """A Warning ``OOMKilling`` event, once per container killed by the kernel's OOM killer
        (a container the API status already shows as OOMKilled was reported before a restart
        of this agent)."""
        reported = self._oom_reported.get(runtime.uid)
        if reported is None:
            reported = self._oom_reported[runtime.uid] = self._oom_in_status(pod)
        for container in runtime.containers:
            if container.reason != "OOMKilled" or container.id in reported:
                continue
            reported.add(container.id)
            name = container.labels.get(ct.LABEL_CONTAINER, container.name)
            await self.record(pod, name, "Warning", "OOMKilling",
                              f"Memory cgroup out of memory: killed container {name} ({container.id[:12]}) "
                              f"of pod {_pod_ref(pod)}")

    def _oom_in_status(self, pod: Obj) -> set[str]:
        """IDs of the containers the pod's API status shows terminated with reason OOMKilled."""
        status = pod.get("status") or {}
        prefix = f"{self.runtime_name}://"
        found: set[str] = set()
        for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            for state in (entry.get("state") or {}, entry.get("lastState") or {}):
                terminated = state.get("terminated") or {}
                cid = str(terminated.get("containerID") or "")
                if terminated.get("reason") == "OOMKilled" and cid.startswith(prefix):
                    found.add(cid.removeprefix(prefix))
        return found

    def _first_attempt(self, pod: Obj, name: str) -> int:
        """Attempt number for a container the runtime has none of: continue the API's count."""
        status = pod.get("status") or {}
        for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            if entry.get("name") == name and entry.get("containerID"):
                return int(entry.get("restartCount") or 0) + 1
        return 0

    async def _collect_garbage(self, pod: Obj, runtime: ct.RuntimePod) -> None:
        """Keep the newest attempt and the one before it of each container; remove the rest."""
        spec = pod.get("spec") or {}
        names = {str(c.get("name")) for c in (spec.get("containers") or []) + (spec.get("initContainers") or [])}
        seen = {c.labels.get(ct.LABEL_CONTAINER, c.name) for c in runtime.containers}
        for name in seen:
            attempts = runtime.attempts(name)
            extra = attempts[2:] if name in names else attempts
            for old in extra:
                if old.state is rt.State.RUNNING:
                    await self.driver.stop_container(old.id, ORPHAN_GRACE)
                await self.driver.remove_container(old.id)

    # -- probes and status ----------------------------------------------------------------------

    def _update_probes(self, pod: Obj, runtime: ct.RuntimePod) -> None:
        sandbox = runtime.sandbox()
        previous = {s.get("containerID"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        running: dict[str, RunningContainer] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            name = str(container.get("name"))
            attempts = runtime.attempts(name)
            if attempts and attempts[0].state is rt.State.RUNNING:
                current = attempts[0]
                before = previous.get(f"{self.runtime_name}://{current.id}") or {}
                running[name] = RunningContainer(current.id, to_epoch(current.started_at) or self.clock.now(),
                                                 was_ready=bool(before.get("ready")),
                                                 was_started=bool(before.get("started")))
        self.probes.update_pod(pod, sandbox.ip if sandbox else "", running)

    def _view(self, pod: Obj, runtime: ct.RuntimePod, waits: dict[str, Waiting]) -> PodView:
        uid, spec = str(objects.meta(pod).get("uid")), pod.get("spec") or {}
        sandbox = runtime.sandbox()
        view = PodView(self.runtime_name, self.node_ip, sandbox.ip if sandbox else "", sandbox is not None)
        counts = {s.get("name"): int(s.get("restartCount") or 0)
                  for s in ((pod.get("status") or {}).get("containerStatuses") or [])
                  + ((pod.get("status") or {}).get("initContainerStatuses") or [])}
        for key, target in (("initContainers", view.init_containers), ("containers", view.containers)):
            for container in spec.get(key) or []:
                name = str(container.get("name"))
                attempts = runtime.attempts(name)
                current = attempts[0] if attempts else None
                previous = attempts[1] if len(attempts) > 1 else None
                running = current is not None and current.state is rt.State.RUNNING
                target.append(ContainerView(
                    name, str(container.get("image")), current, previous, waits.get(name),
                    ready=running and current is not None and self.probes.ready(uid, name, current.id),
                    started=running and current is not None and self.probes.started(uid, name, current.id),
                    restart_count=ct.attempt_of(current) if current is not None else counts.get(name, 0)))
        return view

    def _with_written_status(self, pod: Obj) -> Obj:
        """The cached pod, with our last written status if the cache has not caught up yet."""
        written = self._written.get(str(objects.meta(pod).get("uid")))
        if written is not None and written[0] == objects.meta(pod).get("resourceVersion"):
            return {**pod, "status": written[1]}
        return pod

    async def _write_status(self, pod: Obj, runtime: ct.RuntimePod, waits: dict[str, Waiting], *,
                            terminal: bool = False) -> Obj:
        """Write the status the pod should have, when it changed; returns that status.
        ``terminal``: the pod is being deleted and its containers were stopped for good."""
        await self._report_oom(pod, runtime)
        meta = objects.meta(pod)
        uid = str(meta.get("uid"))
        status = compute_status(pod, self._view(pod, runtime, waits), self.clock.now(), terminal=terminal)
        old = pod.get("status") or {}
        if status == old:
            return status
        body: Obj = {key: status.get(key) for key in set(status) | set(old)}
        patch = {"metadata": {"uid": uid}, "status": body}
        updated = await self.client.patch(resources.PODS, str(meta.get("name")), patch,
                                          str(meta.get("namespace")), subresource="status")
        self._written[uid] = (str(meta.get("resourceVersion")), status)
        log.debug("pod %s/%s status written (rv %s): phase %s", meta.get("namespace"), meta.get("name"),
                  objects.meta(updated).get("resourceVersion"), status.get("phase"))
        return status

    # -- stopping ---------------------------------------------------------------------------------

    async def _terminate(self, pod: Obj, runtime: ct.RuntimePod, grace: float) -> None:
        """A pod being deleted: stop everything, write its final status, then remove it all."""
        uid = runtime.uid
        self.probes.remove_pod(uid)
        await self._record_killing(pod, runtime)
        await self._stop_all(runtime, grace)
        for sandbox in runtime.sandboxes:
            if sandbox.ready:
                with contextlib.suppress(rt.NotFoundError):
                    await self.driver.stop_sandbox(sandbox.id, MIN_GRACE)
        runtime = await ct.observe(self.driver, uid)
        if runtime.containers:
            # The pod is already gone or was replaced (uid precondition): nothing to report.
            with contextlib.suppress(NotFoundError, ConflictError):
                await self._write_status(pod, runtime, {}, terminal=True)
        await self._remove_all(runtime, grace)
        await asyncio.to_thread(self.volumes.cleanup, uid)

    async def _teardown(self, pod: Obj | None, runtime: ct.RuntimePod, grace: float) -> None:
        uid = runtime.uid
        self.probes.remove_pod(uid)
        if pod is not None:
            await self._record_killing(pod, runtime)
        await self._remove_all(runtime, grace)
        await asyncio.to_thread(self.volumes.cleanup, uid)

    async def _record_killing(self, pod: Obj, runtime: ct.RuntimePod) -> None:
        for container in runtime.containers:
            if container.state is rt.State.RUNNING:
                name = container.labels.get(ct.LABEL_CONTAINER, container.name)
                await self.record(pod, name, "Normal", "Killing", f"Stopping container {name}")

    async def _stop_all(self, runtime: ct.RuntimePod, grace: float) -> None:
        """Stop the running containers together, each with ``grace``; a vanished one is fine."""
        running = [c for c in runtime.containers if c.state is rt.State.RUNNING]
        results = await asyncio.gather(*(self.driver.stop_container(c.id, grace) for c in running),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, rt.NotFoundError)]
        if errors:
            raise errors[0]

    async def _remove_all(self, runtime: ct.RuntimePod, grace: float) -> None:
        await self._stop_all(runtime, grace)
        for container in runtime.containers:
            with contextlib.suppress(rt.NotFoundError):
                await self.driver.remove_container(container.id)
        for sandbox in runtime.sandboxes:
            with contextlib.suppress(rt.NotFoundError):
                await self.driver.remove_sandbox(sandbox.id)

    def _forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        self._oom_reported.pop(uid, None)
        self.starter.forget_pod(uid)
        self.crash_backoff.reset_prefix(f"{uid}/")


def _window(grace: object) -> float:
    """A grace period in seconds as the agent waits it: at least MIN_GRACE, at most MAX_GRACE."""
    seconds = float(grace) if isinstance(grace, int | float) else 0.0
    return min(max(seconds, MIN_GRACE), MAX_GRACE)


"""Warm sandboxes: started podman pods kept ready for the next Kubernetes pod of the node.

Starting a pod's infra container (CNI network set-up plus runc) is ~60 % of a pod start.  The
podman driver therefore keeps started, unclaimed pods on the node network ("warm"), and
``create_sandbox`` *claims* one instead of creating a pod, when the Kubernetes pod needs
nothing that is fixed at pod creation (hostPorts, DNS options); otherwise it creates a pod as
before.  After each claim the pool is refilled in the background, one pod at a time: at once
when the pool ran empty or a claim waits, else :data:`QUIET` seconds after the claim (a pod
start competes with the claiming pod's own container start).

Sizing under bursts: the pool rests at ``size`` pods.  A claim that finds it empty while a
warm pod is being started waits for that pod (it is further along than a new one would be)
instead of starting its own; only when there is none, or another claim already waits for it,
does the pod fall back to a cold start.  A claim that empties the pool, or finds it empty,
grows the target (doubling, at most ``max_size``) so that the next burst is covered; after
:data:`IDLE` seconds without a claim the target returns to ``size`` and the surplus pods are
removed.

Invariants:

* A warm pod carries ``shoal.managed=warm`` (not ``true``) plus the driver's scope labels, and
  no pod identity.  Lists of the node's pods and containers filter on ``shoal.managed=true``, so
  podman never makes them wait for a warm pod that is being started; claimed warm pods are
  listed by ID.  Podman
  labels cannot change after creation, so the identity of a claimed warm pod (uid,
  name, namespace, hostname, labels) lives in a *claim* file ``<state_dir>/claims/<pod id>``
  written (atomically) before ``create_sandbox`` returns.  ``list_sandboxes`` reports claimed
  warm pods with that identity and hides unclaimed ones, so an agent restart finds claimed
  pods again and never hands a claimed pod out twice.
* A warm pod shares only the cgroup, IPC and network namespaces; each container gets its own
  UTS namespace named after the claiming pod, and an agent-written /etc/hosts
  (``<state_dir>/hosts/<pod id>``: localhost plus "<pod IP> <hostname>", as kubelet writes).
* Unclaimed warm pods found at start-up are taken back into the pool if their infra runs, and
  removed otherwise.  Refill errors are logged and retried with a doubling back-off (≤ 30 s).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shoal.kube.files import atomic_write

__all__ = ["WARM", "Claim", "ClaimStore", "WarmPod", "WarmPool"]

log = logging.getLogger(__name__)

#: The ``shoal.managed`` label value of warm pods (and their infra containers).
WARM = "warm"
_REFILL_BACKOFF_MAX = 30.0
#: Seconds after a claim before a pool that is not empty is refilled.
QUIET = 0.15
#: How far a burst of claims may grow the pool: up to this many times its resting size.
GROWTH = 2
#: Seconds without a claim after which a grown pool goes back to its resting size.
IDLE = 120.0


@dataclass(frozen=True, slots=True)
class Claim:
    """Who claimed a warm pod: what :class:`~shoal.agent.runtime.driver.SandboxStatus` reports."""

    pod_uid: str
    pod_name: str  # the podman-style name used for the pod's containers
    hostname: str
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class WarmPod:
    id: str
    ip: str
    created: str


class ClaimStore:
    """Claim files and managed hosts files under ``state_dir`` (claims cached in memory after the
    first read; this store is their only writer)."""

    def __init__(self, state_dir: Path) -> None:
        self.claims = state_dir / "claims"
        self.hosts = state_dir / "hosts"
        self._cache: dict[str, Claim] | None = None

    def _all(self) -> dict[str, Claim]:
        if self._cache is None:
            found: dict[str, Claim] = {}
            if self.claims.is_dir():
                for path in self.claims.iterdir():
                    if not path.name.startswith("."):
                        data: dict[str, Any] = orjson.loads(path.read_bytes())
                        found[path.name] = Claim(
                            pod_uid=str(data["pod_uid"]), pod_name=str(data["pod_name"]),
                            hostname=str(data["hostname"]),
                            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()})
            self._cache = found
        return self._cache

    def get(self, pod_id: str) -> Claim | None:
        return self._all().get(pod_id)

    def ids(self, pod_uid: str | None = None) -> list[str]:
        """IDs of the claimed pods (of pod ``pod_uid`` only, when given)."""
        return sorted(i for i, c in self._all().items() if pod_uid is None or c.pod_uid == pod_uid)

    def put(self, pod_id: str, claim: Claim, ip: str) -> str:
        """Record the claim and write the pod's hosts file; returns the hosts file path."""
        self.claims.mkdir(parents=True, exist_ok=True)
        self.hosts.mkdir(parents=True, exist_ok=True)
        hosts = self.hosts / pod_id
        atomic_write(hosts, (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                              f"{ip}\t{claim.hostname}\n").encode(), 0o644)
        atomic_write(self.claims / pod_id, orjson.dumps({
            "pod_uid": claim.pod_uid, "pod_name": claim.pod_name, "hostname": claim.hostname,
            "labels": claim.labels}), 0o644)
        self._all()[pod_id] = claim
        return str(hosts)

    def hosts_file(self, pod_id: str) -> str:
        return str(self.hosts / pod_id)

    def remove(self, pod_id: str) -> None:
        self._all().pop(pod_id, None)
        (self.claims / pod_id).unlink(missing_ok=True)
        (self.hosts / pod_id).unlink(missing_ok=True)


class WarmPool:
    """Started, unclaimed pods; :meth:`take` hands one out, a background task refills.

    ``create`` makes and starts one warm pod (returning it); ``adopt`` returns the warm pods that
    exist, run and are unclaimed (called once, before the first refill); ``remove`` removes one
    (when the pool shrinks).  ``size`` is the resting size; under a burst of claims the target
    grows up to ``max_size`` and falls back to ``size`` after ``idle`` seconds without a claim
    (see the module docstring); a refill waits ``quiet`` seconds after a claim while pods remain.
    ``clock`` is a monotonic clock in seconds."""

    def __init__(self, size: int, *, create: Callable[[], Awaitable[WarmPod]],
                 adopt: Callable[[], Awaitable[list[WarmPod]]],
                 remove: Callable[[str], Awaitable[None]] | None = None, max_size: int | None = None,
                 idle: float = IDLE, quiet: float = QUIET, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = max(0, size)
        self.max_size = max(self.size, max_size if max_size is not None else self.size * GROWTH)
        self.target = self.size
        self.idle = idle
        self.quiet = quiet
        self._create = create
        self._adopt = adopt
        self._remove = remove
        self._clock = clock
        self._ready: list[WarmPod] = []
        self._waiters: collections.deque[asyncio.Future[WarmPod | None]] = collections.deque()
        self._creating = False
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._adopted = False
        self._last_take = -math.inf
        self.hits = 0
        self.handoffs = 0
        self.misses = 0

    @property
    def ready(self) -> list[WarmPod]:
        return list(self._ready)

    async def take(self) -> WarmPod | None:
        """A started warm pod, removed from the pool: a ready one, else the one being started
        (awaited) unless another claim waits for it already; None when there is neither.
        Schedules a refill, and on a miss grows the target."""
        self._last_take = self._clock()
        if self._ready:
            self.hits += 1
            found = self._ready.pop(0)
            if not self._ready:
                self._grow()
            self.kick()
            return found
        self._grow()
        if not self._creating or self._waiters:
            self.misses += 1
            self.kick()
            return None
        waiter: asyncio.Future[WarmPod | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.kick()
        handed = await waiter
        if handed is None:
            self.misses += 1
        else:
            self.handoffs += 1
        return handed

    def _grow(self) -> None:
        self.target = min(self.max_size, max(self.target + 1, self.target * 2))

    def kick(self) -> None:
        """Ask for a refill (starts the refill task on first use, in the running loop)."""
        if self.size <= 0:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._refill_loop(), name="podman-warm-pool")
        self._wanted.set()

    def forget(self, pod_id: str) -> None:
        self._ready = [p for p in self._ready if p.id != pod_id]

    async def close(self) -> None:
        """Stop refilling; the pods already made stay (and are adopted by the next pool)."""
        self._ready = []
        self._adopted = False
        self._answer_waiters(None)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _answer_waiters(self, pod: WarmPod | None) -> WarmPod | None:
        """Give ``pod`` to the first claim still waiting (None to all when ``pod`` is None);
        returns ``pod`` if nobody took it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if waiter.done():  # the claiming task was cancelled
                continue
            waiter.set_result(pod)
            if pod is not None:
                return None
        return pod

    async def _refill_loop(self) -> None:
        delay = 1.0
        while True:
            await self._wait_for_work()
            # While warm pods remain, let the claiming pod's container start get ahead first:
            # starting a pod competes with it for CPU and podman's locks.
            if self._ready and not self._waiters:
                await asyncio.sleep(max(0.0, self.quiet - (self._clock() - self._last_take)))
            try:
                if not self._adopted:
                    self._ready += await self._adopt()
                    self._adopted = True
                await self._shrink_if_idle()
                while len(self._ready) < self.target or self._waiters:
                    self._creating = True
                    try:
                        made = await self._create()
                    finally:
                        self._creating = False
                    left = self._answer_waiters(made)
                    if left is not None:
                        self._ready.append(left)
                delay = 1.0
            except Exception as exc:  # logged, retried with back-off; waiting claims go cold
                self._answer_waiters(None)
                log.warning("warm sandbox refill failed (retrying in %.0f s): %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _REFILL_BACKOFF_MAX)
                self._wanted.set()

    async def _wait_for_work(self) -> None:
        """Until a refill is asked for, or (while grown) until the pool has been idle long enough."""
        while not self._wanted.is_set():
            if not self._grown():
                await self._wanted.wait()
                break
            remaining = self._last_take + self.idle - self._clock()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), remaining)
        self._wanted.clear()

    def _grown(self) -> bool:
        """Above the resting size: grown by a burst, or more warm pods adopted than it holds."""
        return self.target > self.size or (self._remove is not None and len(self._ready) > self.size)

    async def _shrink_if_idle(self) -> None:
        if not self._grown() or self._clock() - self._last_take < self.idle:
            return
        self.target = self.size
        while len(self._ready) > self.target and self._remove is not None:
            surplus = self._ready.pop()  # out of the pool first: no claim may take it meanwhile
            try:
                await self._remove(surplus.id)
            except BaseException:
                self._ready.append(surplus)  # still there: removed on the next try, or claimed
                raise

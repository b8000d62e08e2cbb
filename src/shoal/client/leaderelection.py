"""Leader election over ``coordination.k8s.io/v1`` Lease objects, with client-go's semantics.

Candidates share one Lease (``kube-system/<name>`` by default).  Its spec names the
``holderIdentity``, ``leaseDurationSeconds`` (15), ``acquireTime``, ``renewTime`` and the
number of ``leaseTransitions``.  :meth:`LeaseLeadership.try_acquire_or_renew`:

* creates the Lease if there is none (the creator leads);
* otherwise, if another holder's lease is still *valid*, fails.  Validity is judged, as in
  client-go, on this process's clock: the lease is valid until ``leaseDurationSeconds`` after
  the moment this candidate last saw the Lease's spec *change* - never on the timestamps in
  it, so clock skew between machines does not matter;
* otherwise takes or renews it with an update carrying the Lease's resourceVersion, so of two
  racing candidates exactly one wins (the other gets a conflict and keeps waiting).  Taking
  it from someone else (or from nobody) counts a transition; renewing keeps ``acquireTime``.

:meth:`LeaseLeadership.lead` (the controller manager's ``Leadership`` seam) tries every
``retry_period`` (jittered, 2 s) until it leads, runs ``term(leading)``, and renews every
``retry_period``.  A renewal that has not succeeded within ``renew_deadline`` (10 s) - or that
finds another holder - ends the term: ``leading`` is set and the term must wind down.  Since
``renew_deadline < leaseDuration``, a leader stops acting before anyone else may start.  When
``stop`` is set the Lease is released (holder cleared, duration 1 s) so another candidate takes
over at once; a crashed leader's Lease is taken over once it expires.
:meth:`LeaseLeadership.run_while_leader` runs a coroutine only while leading and cancels it
when leadership ends.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from shoal.client import resources
from shoal.client.errors import AlreadyExistsError, ApiClientError, ConflictError, NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock, MonotonicClock, WallTime, utcnow
from shoal.kube.objects import Obj
from shoal.kube.times import format_micro

__all__ = ["JITTER", "LeaseLeadership", "default_identity", "server_identity"]

log = logging.getLogger(__name__)

Term = Callable[[asyncio.Event], Awaitable[None]]
#: Acquire attempts wait ``retry_period * (1 + random() * JITTER)`` (client-go's JitterFactor).
JITTER = 1.2


def default_identity() -> str:
    """``<hostname>_<uuid>``, unique per process, as kube-controller-manager uses."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def server_identity(client: ApiClient) -> str:
    """``<hostname>_<host:port of the API it talks to>``: unique per server, stable across restarts.

    An all-in-one ``shoal server`` runs its controllers against its own address, so no two live
    servers share this identity, while a restarted one (same host, same port) recognises the
    Lease as its own and leads again at once instead of waiting ``leaseDurationSeconds`` for its
    previous life's Lease to expire."""
    return f"{socket.gethostname()}_{urlsplit(client.server_url).netloc}"


class LeaseLeadership:
    """One candidate for the Lease ``namespace/name`` (see the module docstring)."""

    def __init__(self, client: ApiClient, name: str, identity: str, clock: Clock | None = None, *,
                 namespace: str = "kube-system", lease_duration: int = 15, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, release_on_stop: bool = True, wall: WallTime = utcnow) -> None:
        if not lease_duration > renew_deadline > retry_period * JITTER > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period * 1.2 > 0")
        self.client = client
        self.name = name
        self.identity = identity
        self.namespace = namespace
        self.clock: Clock = clock or MonotonicClock()
        self.wall = wall
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_stop = release_on_stop
        self._observed: Obj | None = None  # the Lease spec last seen
        self._observed_at = 0.0  # when (self.clock) it was first seen as it is
        #: Terms started (acquisitions), for observers and tests.
        self.terms = 0

    @property
    def is_leader(self) -> bool:
        return self._observed is not None and self._observed.get("holderIdentity") == self.identity

    @property
    def holder(self) -> str:
        """The holder as last observed ("" if none or not observed yet)."""
        return str((self._observed or {}).get("holderIdentity") or "")

    def _observe(self, lease: Obj) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed = copy.deepcopy(spec)
            self._observed_at = self.clock.now()

    # -- one attempt ----------------------------------------------------------------------

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease; True if this candidate now holds it."""
        now = format_micro(self.wall())
        wanted: Obj = {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_duration,
                       "acquireTime": now, "renewTime": now}
        try:
            lease = await self.client.get(resources.LEASES, self.name, self.namespace)
        except NotFoundError:
            body = {"apiVersion": resources.LEASES.api_version, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**wanted, "leaseTransitions": 0}}
            try:
                self._observe(await self.client.create(resources.LEASES, body, self.namespace))
            except AlreadyExistsError:
                return False
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        if holder and holder != self.identity and self._observed_at + duration > self.clock.now():
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            wanted["acquireTime"] = spec.get("acquireTime") or now
            wanted["leaseTransitions"] = transitions
        else:
            wanted["leaseTransitions"] = transitions + 1
        body = copy.deepcopy(lease)
        body["spec"] = {**spec, **wanted}
        try:
            self._observe(await self.client.update(resources.LEASES, body))
        except ConflictError:
            return False
        return True

    async def release(self) -> bool:
        """Give the Lease up if this candidate holds it (holder cleared, duration 1 s)."""
        try:
            lease = await self.client.get(resources.LEASES, self.name, self.namespace)
        except NotFoundError:
            return False
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        now = format_micro(self.wall())
        body = copy.deepcopy(lease)
        body["spec"] = {**spec, "holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                        "renewTime": now}
        try:
            self._observe(await self.client.update(resources.LEASES, body))
        except ConflictError:
            return False
        log.info("leader election %s/%s: %s released the lease", self.namespace, self.name, self.identity)
        return True

    # -- loops ----------------------------------------------------------------------------

    async def _pause(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep ``seconds`` on the clock; True if ``stop`` was set first (or already)."""
        if stop.is_set():
            return True
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()
            await asyncio.wait((sleeper, stopper))
        return stop.is_set()

    async def _attempt(self, within: float) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), timeout=max(within, 0.001))
        except (ApiClientError, TimeoutError) as exc:
            log.warning("leader election %s/%s: attempt failed: %s", self.namespace, self.name, exc or "timeout")
            return False

    async def _acquire(self, stop: asyncio.Event) -> bool:
        """Try until this candidate leads (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self._attempt(self.renew_deadline):
                self.terms += 1
                log.info("leader election %s/%s: %s became the leader", self.namespace, self.name, self.identity)
                return True
            if await self._pause(stop, self.retry_period * (1 + random.random() * JITTER)):
                break
        return False

    async def _renew(self, stop: asyncio.Event) -> bool:
        """Renew within ``renew_deadline``; False if that failed or another holder appeared."""
        deadline = self.clock.now() + self.renew_deadline
        while True:
            remaining = deadline - self.clock.now()
            if remaining <= 0:
                return False
            if await self._attempt(remaining):
                return True
            if self.holder not in ("", self.identity):
                return False
            if await self._pause(stop, min(self.retry_period, remaining)):
                return True  # stopping: the term ends through ``stop``

    async def _keep_leading(self, stop: asyncio.Event, leading: asyncio.Event) -> None:
        try:
            while not await self._pause(stop, self.retry_period):
                if not await self._renew(stop):
                    log.warning("leader election %s/%s: %s lost the lease (holder now %r)", self.namespace,
                                self.name, self.identity, self.holder)
                    return
        finally:
            leading.set()

    async def lead(self, stop: asyncio.Event, term: Term) -> None:
        """Run ``term(leading)`` whenever this candidate leads, until ``stop`` is set.

        ``leading`` is set when leadership ends (lost, or ``stop``).  A term that returns
        early keeps the leadership until then; an exception from it ends everything."""
        try:
            while not stop.is_set():
                if not await self._acquire(stop):
                    break
                leading = asyncio.Event()
                keeper = asyncio.ensure_future(self._keep_leading(stop, leading))
                try:
                    await term(leading)
                    await leading.wait()
                finally:
                    leading.set()
                    keeper.cancel()
                    await asyncio.wait((keeper,))
                error = None if keeper.cancelled() else keeper.exception()
                if error is not None:
                    raise error
        finally:
            if self.release_on_stop and self.is_leader:
                try:
                    await self.release()
                except ApiClientError as exc:
                    log.warning("leader election %s/%s: could not release the lease: %s", self.namespace,
                                self.name, exc)

    async def run_while_leader(self, stop: asyncio.Event,
                               work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        """Run ``work(leading)`` only while leading; cancel it when leadership ends.

        On ``stop`` it gets ``retry_period`` to return by itself first; on a lost lease it is
        cancelled at once.  Its exceptions propagate."""
        async def term(leading: asyncio.Event) -> None:
            task = asyncio.ensure_future(work(leading))
            ended = asyncio.ensure_future(leading.wait())
            try:
                await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
                if not task.done() and stop.is_set():
                    await asyncio.wait((task,), timeout=self.retry_period)
            finally:
                ended.cancel()
                task.cancel()
                await asyncio.wait((task, ended))
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

        await self.lead(stop, term)

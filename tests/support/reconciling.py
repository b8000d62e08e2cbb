"""Driving real controllers pass by pass against the in-process API (:mod:`tests.support.api_harness`).

A :class:`Rig` owns a real :class:`~shoal.client.rest.ApiClient` on the harness, an
:class:`~shoal.client.informer.InformerFactory`, a :class:`~shoal.kube.clock.FakeClock`
(the controllers' queue/expectations clock) and a :class:`ManualWall` (their wall clock, for
``minReadySeconds``, conditions and events).  A test builds its controllers on those, then::

    async with rig.running(controller):        # informers listed and watching
        await rig.reconcile(controller, key)   # caches caught up first, then one pass

No worker runs: the test decides which key is reconciled when, and time moves only with
:meth:`Rig.advance`.  :meth:`Rig.reconcile` waits until every informer of the running
controllers reflects the store (:meth:`ApiHarness.caught_up`), so a pass always sees the writes
of the passes before it, and returns the delay of a :class:`~shoal.client.controller.RequeueAfter`
(or ``None``).  :meth:`Rig.mark_ready` plays the kubelet for a pod (phase Running, Ready since
the wall clock's now) through the ``pods/status`` subresource.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from shoal.client import resources
from shoal.client.controller import Controller, RequeueAfter
from shoal.client.informer import Informer, InformerFactory
from shoal.client.rest import ApiClient
from shoal.kube.clock import FakeClock
from shoal.kube.objects import Obj
from tests.support import kubelet
from tests.support.api_harness import ApiHarness, informers_running

__all__ = ["START", "ManualWall", "Rig"]

#: The wall clock's start: whole seconds, as metav1.Time stores them.
START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


class ManualWall:
    """A wall clock (``() -> datetime``) that moves only when told to."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Rig:
    def __init__(self, harness: ApiHarness, client: ApiClient) -> None:
        self.harness = harness
        self.client = client
        self.informers = InformerFactory(client)
        self.clock = FakeClock(1000.0)
        self.wall = ManualWall()
        self._running: list[Informer] = []

    @classmethod
    async def create(cls, harness: ApiHarness) -> Rig:
        return cls(harness, await harness.client(user_agent="controller-test"))

    @contextlib.asynccontextmanager
    async def running(self, *controllers: Controller) -> AsyncIterator[Rig]:
        """Run the informers of ``controllers`` (synced on entry) until the block ends."""
        informers: list[Informer] = []
        for controller in controllers:
            informers += [i for i in controller.informers if all(i is not j for j in informers)]
        async with informers_running(self.informers, *informers):
            self._running = informers
            try:
                yield self
            finally:
                self._running = []

    async def settle(self) -> None:
        """Wait until the running informers reflect the store."""
        await self.harness.caught_up(*self._running)

    async def reconcile(self, controller: Controller, key: str) -> float | None:
        """One pass of ``controller`` for ``key`` on fresh caches; the RequeueAfter delay, if any."""
        await self.settle()
        try:
            await controller.reconcile(key)
        except RequeueAfter as requeue:
            return requeue.seconds
        return None

    def advance(self, seconds: float) -> None:
        """Move both clocks."""
        self.wall.advance(seconds)
        self.clock.advance(seconds)

    async def mark_ready(self, pod: Obj, *, ready: bool = True) -> Obj:
        """What a kubelet writes for a running pod, at the rig's wall time."""
        return await kubelet.mark_ready(self.client, pod, ready=ready, since=self.wall())

    async def pods(self, namespace: str, *, active: bool = True) -> list[Obj]:
        """The namespace's pods from the API (without those being deleted, unless ``active=False``)."""
        items: list[Obj] = (await self.client.list(resources.PODS, namespace))["items"]
        return [p for p in items if not (active and p["metadata"].get("deletionTimestamp"))]

    async def events(self, namespace: str, reason: str) -> list[Obj]:
        items: list[Obj] = (await self.client.list(resources.EVENTS, namespace))["items"]
        return [e for e in items if e.get("reason") == reason]

"""The scheduler: watch pods and nodes, decide one pod at a time, bind concurrently.

``Scheduler(client).run(stop)`` runs until ``stop`` is set.  Every call of ``run`` starts from
scratch (fresh informers, cache and queue), so a leader elector may call it once per term.

Flow:

1. Informers on Pods and Nodes feed the :class:`~shoal.scheduler.cache.SchedulerCache`
   (nodes; pods with ``spec.nodeName``) and the
   :class:`~shoal.scheduler.queue.SchedulingQueue` (pods this scheduler is responsible for:
   no ``spec.nodeName``, ``spec.schedulerName`` equal to ``name`` or absent, no
   ``deletionTimestamp``, not terminal).  Handlers only touch memory.
2. The loop pops a key, re-reads the pod from the informer and runs
   :meth:`~shoal.scheduler.algorithm.Algorithm.schedule` over the cache: synchronous, so
   decisions are strictly sequential.  The chosen node gets the pod *assumed* at once.
3. The binding runs as a task; at most ``parallel_binds`` such tasks are in flight, so
   throughput is not one HTTP round trip per pod.  Events (``Scheduled``, ``FailedScheduling``)
   go to an :class:`~shoal.scheduler.events.EventQueue` and are written in the background,
   never holding up a binding.  A failed binding forgets the assumption and retries with
   backoff (a 409 "already assigned" too: the informer then reports the pod bound and drops
   it from the queue); a 404 (pod gone) just drops the attempt.
4. An unschedulable pod backs off (1 s → 10 s) and is retried at once when a node is added or
   changes schedulable attributes, or a pod leaves a node.  The ``PodScheduled=False``
   condition is written by a bounded task too (only when it changes); the same message is
   posted as a ``FailedScheduling`` Event at most once per ``max_backoff`` seconds per pod
   (Kubernetes' event spam filter does the same job).

A bug in one attempt is logged with its traceback and the pod is retried with backoff; it
does not stop the loop.  Stopping waits for in-flight writes and queued Events.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

from shoal.client import resources
from shoal.client.errors import ApiClientError, ConflictError, NotFoundError
from shoal.client.events import EventRecorder
from shoal.client.informer import EventHandler, Informer, wait_for_sync
from shoal.client.rest import ApiClient
from shoal.kube.clock import Clock, MonotonicClock
from shoal.kube.objects import Obj
from shoal.scheduler import plugins
from shoal.scheduler.algorithm import Algorithm, FitError
from shoal.scheduler.binding import Binder
from shoal.scheduler.cache import SchedulerCache
from shoal.scheduler.events import EventQueue
from shoal.scheduler.framework import FilterPlugin, ScorePlugin
from shoal.scheduler.nodeinfo import InvalidNodeError
from shoal.scheduler.podinfo import InvalidPodError, PodInfo, is_terminal, pod_key
from shoal.scheduler.queue import QueueClosedError, SchedulingQueue

__all__ = ["DEFAULT_SCHEDULER_NAME", "Scheduler"]

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"


class Scheduler:
    def __init__(self, client: ApiClient, *, clock: Clock | None = None, rng: random.Random | None = None,
                 name: str = DEFAULT_SCHEDULER_NAME, parallel_binds: int = 16,
                 percentage_of_nodes_to_score: int = 0, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0, filters: list[FilterPlugin] | None = None,
                 scores: list[ScorePlugin] | None = None) -> None:
        self.client = client
        self.clock: Clock = clock or MonotonicClock()
        self.name = name
        self.parallel_binds = parallel_binds
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.algorithm = Algorithm(filters if filters is not None else plugins.default_filters(),
                                   scores if scores is not None else plugins.default_scores(),
                                   rng=rng, percentage_of_nodes_to_score=percentage_of_nodes_to_score)
        self._recorder = EventRecorder(client, name)
        self._fresh_state()
        #: Pods bound / attempts that found no node, since construction.
        self.scheduled = 0
        self.unschedulable = 0

    def _fresh_state(self) -> None:
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue(self.clock, initial_backoff=self.initial_backoff,
                                     max_backoff=self.max_backoff)
        self.pods = Informer(self.client, resources.PODS)
        self.nodes = Informer(self.client, resources.NODES)
        self.events = EventQueue(self._recorder)
        self.binder = Binder(self.client, self.events)
        self._slots = asyncio.Semaphore(self.parallel_binds)
        self._tasks: set[asyncio.Task[None]] = set()
        self._reported: dict[str, tuple[str, float]] = {}

    # -- running -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule until ``stop`` is set.  Restartable: each call starts with empty state."""
        self._fresh_state()
        self.pods.add_event_handler(EventHandler(self._on_pod_add, self._on_pod_update, self._on_pod_delete))
        self.nodes.add_event_handler(EventHandler(self._on_node_add, self._on_node_update, self._on_node_delete))
        informers_stop, events_stop = asyncio.Event(), asyncio.Event()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.pods.run(informers_stop), name=f"{self.name}-pods")
            group.create_task(self.nodes.run(informers_stop), name=f"{self.name}-nodes")
            group.create_task(self.events.run(events_stop), name=f"{self.name}-events")
            try:
                if await wait_for_sync((self.pods, self.nodes), stop):
                    log.info("scheduler %s: caches synced (%d nodes), scheduling", self.name,
                             len(self.cache.nodes()))
                    loop = group.create_task(self._loop(), name=f"{self.name}-loop")
                    await stop.wait()
                    self.queue.close()
                    await loop
                    while self._tasks:  # in-flight writes finish; their errors were logged
                        await asyncio.wait(set(self._tasks))
            finally:
                self.queue.close()
                for task in self._tasks:  # only left on an abnormal exit (crash, cancellation)
                    task.cancel()
                informers_stop.set()
                events_stop.set()  # the event workers write what is queued, then return
        log.info("scheduler %s: stopped", self.name)

    async def _loop(self) -> None:
        while True:
            try:
                key = await self.queue.pop()
            except QueueClosedError:
                return
            try:
                await self._schedule_one(key)
            except Exception:
                log.exception("scheduler %s: scheduling %s failed; retrying with backoff", self.name, key)
                self.cache.forget(key)
                self.queue.failed(key)
            await asyncio.sleep(0)  # let bindings and informer events run between decisions

    async def _schedule_one(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not self._responsible(pod) or self.cache.is_assumed(key):
            self.queue.done(key)
            return
        try:
            info = PodInfo.of(pod)
            node = self.algorithm.schedule(info, self.cache.nodes(), self.cache.table())
        except (FitError, InvalidPodError) as exc:
            self.unschedulable += 1
            self.queue.failed(key)
            message = exc.message if isinstance(exc, FitError) else str(exc)
            log.info("scheduler %s: %s unschedulable: %s", self.name, key, message)
            await self._slots.acquire()
            self._spawn(self._report(pod, message))
            return
        self.cache.assume(info, node.name)
        await self._slots.acquire()
        self._spawn(self._bind(info, node.name))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler %s: write task failed", self.name, exc_info=task.exception())

    async def _bind(self, info: PodInfo, node: str) -> None:
        try:
            await self.binder.bind(info.pod, node)
        except NotFoundError as exc:
            log.info("scheduler %s: binding %s to %s dropped (pod gone): %s", self.name, info.key, node, exc)
            self.cache.forget(info.key)
            self.queue.done(info.key)
        except ConflictError as exc:
            # Usually "already assigned" (the informer will say where, and drop the key); if it
            # was a lost write race, the retry binds it.
            log.info("scheduler %s: binding %s to %s conflicted: %s", self.name, info.key, node, exc)
            self.cache.forget(info.key)
            self.queue.failed(info.key)
        except ApiClientError as exc:
            log.warning("scheduler %s: binding %s to %s failed: %s", self.name, info.key, node, exc)
            self.cache.forget(info.key)
            self.queue.failed(info.key)
            await self.binder.report_unschedulable(info.pod, f"Binding rejected: {exc}")
        else:
            self.scheduled += 1
            self.queue.done(info.key)
            self._reported.pop(info.key, None)

    async def _report(self, pod: Obj, message: str) -> None:
        key = pod_key(pod)
        now = self.clock.now()
        last = self._reported.get(key)
        event = last is None or last[0] != message or now - last[1] >= self.max_backoff
        if event:
            self._reported[key] = (message, now)
        await self.binder.report_unschedulable(pod, message, event=event)

    # -- informer handlers (memory only) -------------------------------------------------

    def _responsible(self, pod: Obj) -> bool:
        spec = pod.get("spec") or {}
        return (not spec.get("nodeName") and (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) == self.name
                and not (pod.get("metadata") or {}).get("deletionTimestamp") and not is_terminal(pod))

    def _on_pod_add(self, pod: Obj) -> None:
        self._pod_changed(None, pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        self._pod_changed(old, new)

    def _pod_changed(self, old: Obj | None, pod: Obj) -> None:
        key = pod_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        if node or is_terminal(pod):
            self.queue.delete(key)
            self._reported.pop(key, None)
            if not node or is_terminal(pod):
                if self.cache.remove_pod(key):
                    self.queue.move_all_to_active()
                return
            if self.cache.confirm(key, str(node)):
                return
            try:
                self.cache.add_pod(PodInfo.of(pod), str(node))
            except InvalidPodError:
                log.exception("scheduler %s: cannot account for pod %s on %s", self.name, key, node)
            return
        if self.cache.is_assumed(key):
            return  # a stale version of a pod being bound: the binding decides
        if not self._responsible(pod):
            self.queue.delete(key)
            return
        if key in self.queue:
            if old is not None and _scheduling_inputs(old) != _scheduling_inputs(pod):
                self.queue.activate(key)
            return
        priority = (pod.get("spec") or {}).get("priority")
        self.queue.add(key, priority if isinstance(priority, int) else 0)

    def _on_pod_delete(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        self._reported.pop(key, None)
        if self.cache.remove_pod(key):
            self.queue.move_all_to_active()

    def _on_node_add(self, node: Obj) -> None:
        self._node_changed(node)

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self._node_changed(new)

    def _node_changed(self, node: Obj) -> None:
        try:
            changed = self.cache.upsert_node(node)
        except InvalidNodeError:
            log.exception("scheduler %s: ignoring node", self.name)
            return
        if changed:
            self.queue.move_all_to_active()

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(str((node.get("metadata") or {}).get("name", "")))


def _scheduling_inputs(pod: Obj) -> tuple[Any, Any]:
    """What a pending pod's scheduling depends on: its spec and labels."""
    return pod.get("spec"), (pod.get("metadata") or {}).get("labels")

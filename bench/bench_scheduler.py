"""Scheduler benchmark: 1000 registered Nodes, N pods, a real API server.

Run: ``.venv/bin/python bench/bench_scheduler.py [--nodes 1000] [--pods 2000] [--parallel-binds 16]``.

A real ``shoal server`` runs with ``--disable agent,proxy,controllers,scheduler`` (no agents, no
containers: Nodes are plain API objects with Ready=True and 8 cpu / 32Gi / 110 pods), and the
scheduler under test runs in this process, with a watch of its own (separate connection)
that timestamps each binding.  Nodes and pods are created by a separate process
(``--create``, 8 requests in flight), as a real client would be.  Pods request 100m / 128Mi
and belong to 20 owners.  Printed:

(a) end-to-end throughput, as the watch sees the bindings:

    * backlog — all N pods are created first; then the scheduler starts.  Throughput is N over
      the time from the scheduler's caches being synced to the last binding seen; per-pod
      latency is each pod's binding time from that same moment (queue wait included);
    * streaming — the scheduler runs while the N pods are created.  Throughput is N over
      first create → last binding; per-pod latency is binding seen − create answered.

    Each binding is one POST pods/binding (plus one Event create, written in the
    background).  CPU seconds per pod of the API server, of this process and of the creator
    show which one bounds the figures: on 2 cores it is not the decisions.

(b) pure decision throughput: the filter + score loop (with assume) over an in-process cache of
    the same nodes, no I/O, for Kubernetes' adaptive ``percentageOfNodesToScore`` (420 of
    1000 nodes) and for 100 % (every node scored); on the vectorized path the scheduler takes
    for these pods, and on the per-node Python path (pods with host ports or node affinity).

Every loop is bounded by the pod count and every wait by a timeout; traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import sys
import tempfile
import time
from contextlib import aclosing
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from shoal.scheduler import Scheduler, plugins
from shoal.scheduler.algorithm import Algorithm
from shoal.scheduler.cache import SchedulerCache
from shoal.scheduler.podinfo import PodInfo
from tests.support.server import ShoalProcess

TIMEOUT = 300.0
OWNERS = 20
IN_FLIGHT = 8


def node(index: int) -> Obj:
    name = f"node-{index:04d}"
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": capacity, "allocatable": capacity,
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}}


def pod(namespace: str, index: int) -> Obj:
    owner = f"owner-{index % OWNERS}"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{index:05d}", "namespace": namespace, "uid": f"{namespace}-{index}",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                              "uid": f"{namespace}-{owner}", "controller": True}]},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


# -- the creator process -----------------------------------------------------------------


async def create_objects(kubeconfig: str, what: str, namespace: str, count: int) -> dict[str, float]:
    """Create ``count`` nodes or pods; returns name -> wall time the create was answered."""
    answered: dict[str, float] = {}
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with ApiClient.from_kubeconfig(kubeconfig) as client:

        async def one(index: int) -> None:
            async with gate:
                if what == "nodes":
                    obj = await client.create(resources.NODES, node(index))
                else:
                    obj = await client.create(resources.PODS, pod(namespace, index))
                answered[obj["metadata"]["name"]] = time.time()

        await asyncio.gather(*(one(index) for index in range(count)))
    return answered


class Creator:
    """Runs ``--create`` in a child process; ``cpu`` is its CPU seconds once finished."""

    def __init__(self, server: ShoalProcess, what: str, namespace: str, count: int) -> None:
        self.args = [sys.executable, __file__, "--create", what, "--kubeconfig", str(server.kubeconfig),
                     "--namespace", namespace, "--count", str(count)]
        self.cpu = 0.0

    async def run(self) -> dict[str, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = await asyncio.create_subprocess_exec(*self.args, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(child.communicate(), TIMEOUT)
        if child.returncode != 0:
            raise RuntimeError(f"creator exited with {child.returncode}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        answered = orjson.loads(out)
        assert isinstance(answered, dict)
        return answered


# -- measuring ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used by the API server and by this process between two points."""

    def __init__(self, server: ShoalProcess) -> None:
        assert server.proc is not None
        self.pid = server.proc.pid
        self.server, self.here = cpu_seconds(self.pid), time.process_time()

    def report(self, pods: int, creator: float = 0.0) -> str:
        server, here = cpu_seconds(self.pid) - self.server, time.process_time() - self.here
        line = (f"    CPU per pod: API server {server / pods * 1000:.2f} ms, scheduler process (with its "
                f"watch) {here / pods * 1000:.2f} ms")
        return line + (f", creator {creator / pods * 1000:.2f} ms" if creator else "")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(label: str, count: int, seconds: float, latencies: list[float]) -> str:
    return (f"{label}: {count} pods in {seconds:.2f} s = {count / seconds:.0f} pods/s; "
            f"per-pod latency p50 {pct(latencies, 0.5):.2f} ms, p99 {pct(latencies, 0.99):.2f} ms")


class BindWatch:
    """Records, per pod name, the wall time a watch first shows it with ``spec.nodeName``."""

    def __init__(self, client: ApiClient, namespace: str, count: int) -> None:
        self.client, self.namespace, self.count = client, namespace, count
        self.bound: dict[str, float] = {}
        self.all_bound = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.client.list(resources.PODS, self.namespace)
        for item in listed["items"]:
            self._see(item)
        self._task = asyncio.create_task(self._watch(listed["metadata"]["resourceVersion"]))

    async def _watch(self, version: str) -> None:
        stream = self.client.watch(resources.PODS, self.namespace, resource_version=version, timeout_seconds=600)
        async with aclosing(stream) as events:
            async for event in events:
                if event.type in ("ADDED", "MODIFIED"):
                    self._see(event.object)
                if self.all_bound.is_set():
                    return

    def _see(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if obj["spec"].get("nodeName") and name not in self.bound:
            self.bound[name] = time.time()
            if len(self.bound) >= self.count:
                self.all_bound.set()

    async def wait(self) -> float:
        """Wait until all are bound; the wall time of the last binding.  Fails at once if the
        watch ends first (e.g. the server dropped it for falling behind: 410)."""
        bound = asyncio.ensure_future(self.all_bound.wait())
        waiting = {bound} | ({self._task} if self._task is not None else set())
        await asyncio.wait(waiting, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        bound.cancel()
        if not self.all_bound.is_set():
            if self._task is not None and self._task.done() and self._task.exception() is not None:
                raise RuntimeError(f"the bench's watch ended after {len(self.bound)} of {self.count} bindings: "
                                   f"{self._task.exception()}")
            raise TimeoutError(f"{len(self.bound)} of {self.count} pods bound after {TIMEOUT} s")
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return max(self.bound.values())


async def running(scheduler: Scheduler) -> tuple[asyncio.Event, asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    deadline = time.time() + TIMEOUT
    while not (scheduler.pods.has_synced and scheduler.nodes.has_synced):
        if task.done():
            task.result()
        if time.time() > deadline:
            raise TimeoutError("scheduler caches did not sync")
        await asyncio.sleep(0.005)
    return stop, task


async def drained(scheduler: Scheduler) -> None:
    deadline = time.time() + TIMEOUT
    while scheduler.events.pending or scheduler.events.written < scheduler.scheduled:
        if time.time() > deadline:
            raise TimeoutError("events were not written")
        await asyncio.sleep(0.01)


# -- the phases --------------------------------------------------------------------------


async def end_to_end(server: ShoalProcess, pods: int, nodes: int, parallel_binds: int) -> list[str]:
    lines = []
    async with ApiClient.from_kubeconfig(server.kubeconfig) as client, \
            ApiClient.from_kubeconfig(server.kubeconfig) as watcher_client:
        began = time.time()
        await Creator(server, "nodes", "", nodes).run()
        lines.append(f"registered {nodes} nodes in {time.time() - began:.2f} s")
        for namespace in ("backlog", "streaming"):
            await client.create(resources.NAMESPACES, {"metadata": {"name": namespace}})

        # backlog: every pod exists before the scheduler starts
        began = time.time()
        await Creator(server, "pods", "backlog", pods).run()
        took = time.time() - began
        lines.append(f"created {pods} pods in {took:.2f} s ({pods / took:.0f} creates/s, no scheduler running)")
        watch = BindWatch(watcher_client, "backlog", pods)
        await watch.start()
        scheduler = Scheduler(client, rng=random.Random(1), parallel_binds=parallel_binds)
        started = time.time()
        stop, task = await running(scheduler)
        synced = time.time()
        meter = CpuMeter(server)
        done = await watch.wait()
        lines.append(f"scheduler start → caches synced ({nodes} nodes, {pods} pods): {synced - started:.2f} s")
        lines.append(summary("(a) end-to-end, backlog (synced → all bound, watched)", pods, done - synced,
                             [at - synced for at in watch.bound.values()]))
        lines.append(meter.report(pods))
        await drained(scheduler)
        lines.append(f"    Scheduled events all written {time.time() - done:.2f} s after the last binding")

        # streaming: the scheduler works while the pods are being created
        watch = BindWatch(watcher_client, "streaming", pods)
        await watch.start()
        meter = CpuMeter(server)
        creator = Creator(server, "pods", "streaming", pods)
        began = time.time()
        created = await creator.run()
        creates_done = max(created.values())
        done = await watch.wait()
        lines.append(f"streaming: {pods} creates took {creates_done - began:.2f} s; "
                     f"last binding {max(0.0, done - creates_done) * 1000:.0f} ms after the last create")
        lines.append(summary("(a) end-to-end, streaming (first create → all bound, watched)", pods, done - began,
                             [watch.bound[name] - at for name, at in created.items()]))
        lines.append(meter.report(pods, creator.cpu))
        await drained(scheduler)
        stop.set()
        await asyncio.wait_for(task, 60)
        lines.append(f"scheduler counters: scheduled {scheduler.scheduled}, unschedulable attempts "
                     f"{scheduler.unschedulable}, events dropped {scheduler.events.dropped}")
    return lines


def decisions(pods: int, nodes: int, percentage: int, vector: bool = True) -> str:
    cache = SchedulerCache()
    for index in range(nodes):
        cache.upsert_node(node(index))
    algorithm = Algorithm(plugins.default_filters(), plugins.default_scores(), rng=random.Random(1),
                          percentage_of_nodes_to_score=percentage)
    objects = [pod("decisions", index) for index in range(pods)]
    latencies = []
    began = time.perf_counter()
    for obj in objects:
        start = time.perf_counter()
        info = PodInfo.of(obj)
        chosen = algorithm.schedule(info, cache.nodes(), cache.table() if vector else None)
        cache.assume(info, chosen.name)
        latencies.append(time.perf_counter() - start)
    elapsed = time.perf_counter() - began
    label = "adaptive (Kubernetes default)" if percentage == 0 else f"{percentage}% of nodes"
    label += ", vectorized (what the scheduler runs)" if vector else ", per-node Python path"
    return summary(f"(b) decisions only, {nodes} nodes, {label}", pods, elapsed, latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--parallel-binds", type=int, default=16)
    parser.add_argument("--skip-decisions", action="store_true")
    parser.add_argument("--create", choices=("nodes", "pods"), help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", default="", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.create:  # the creator child process
        answered = asyncio.run(create_objects(args.kubeconfig, args.create, args.namespace, args.count))
        sys.stdout.buffer.write(orjson.dumps(answered))
        return
    if not args.skip_decisions:
        for vector in (True, False):
            print(decisions(args.pods, args.nodes, 0, vector))
            print(decisions(args.pods, args.nodes, 100, vector))
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
        server = ShoalProcess(Path(tmp) / "data", disable="agent,proxy,controllers,scheduler")
        server.start()
        try:
            for line in asyncio.run(end_to_end(server, args.pods, args.nodes, args.parallel_binds)):
                print(line, flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

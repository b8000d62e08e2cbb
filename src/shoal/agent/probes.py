"""Liveness, readiness and startup probes (kubelet ``prober``), one asyncio task per probe.

:class:`ProbeManager` runs a worker for each probe of each *running container instance*
(pod uid, container name, container ID).  A worker waits ``initialDelaySeconds`` after the
container started, then probes every ``periodSeconds`` on the injected clock:

* ``httpGet`` to ``host`` (default: the pod IP) and the port (a number, or a named
  ``containerPort``), ``scheme`` HTTP/HTTPS (no certificate check, as kubelet), ``path`` and
  ``httpHeaders``; a status 200-399 is success.  ``tcpSocket``: a connection is success.
  ``exec``: exit code 0 (through ``driver.exec`` with ``timeoutSeconds``).  ``grpc`` probes are
  not supported and always fail with a message saying so.
* A result flips to failure after ``failureThreshold`` consecutive failures and to success after
  ``successThreshold`` consecutive successes (1 for liveness and startup).  Initial results:
  liveness success, readiness failure, startup unknown (not started) — except that a container
  the pod's status already showed ready/started (the agent restarted) starts from that.
* Liveness and readiness probes do not run until the startup probe (if any) succeeded; the
  startup probe stops once it succeeded.  A liveness or startup worker stops after its result
  turned to failure: the pod worker kills the container (:meth:`ProbeManager.kill_reason`), and
  the next container instance gets fresh workers.
* Every failed probe records a Warning event ``Unhealthy`` ("Readiness probe failed: HTTP probe
  failed with statuscode: 500"); every result change calls ``on_change(pod uid)`` so the pod
  worker syncs the pod (status, restart).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from shoal.agent.runtime.driver import RuntimeDriver, RuntimeDriverError
from shoal.kube.clock import Clock
from shoal.kube.objects import Obj

__all__ = ["ProbeManager", "ProbeOutcome", "RunningContainer", "resolve_port", "run_probe"]

log = logging.getLogger(__name__)

Kind = Literal["liveness", "readiness", "startup"]
KINDS: tuple[Kind, ...] = ("startup", "liveness", "readiness")
#: record(pod, container name, event type, reason, message)
Recorder = Callable[[Obj, str, str, str, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    success: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class RunningContainer:
    container_id: str
    started_at: float  # epoch seconds
    was_ready: bool = False  # the pod's status showed this instance ready
    was_started: bool = False


def resolve_port(port: Any, container: Obj) -> int:
    """A probe port: an int, a numeric string, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for declared in container.get("ports") or []:
        if declared.get("name") == text:
            return int(declared.get("containerPort", 0))
    raise ValueError(f"port {text!r} not found in container {container.get('name')!r}")


def _describe(exc: BaseException) -> str:
    """Go's wording for the usual network errors (what users search for), else the error text."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connect: connection refused"
    if any(isinstance(e, TimeoutError | httpx.TimeoutException) for e in chain):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    if any(isinstance(e, OSError) and e.errno is not None for e in chain):
        failed = next(e for e in chain if isinstance(e, OSError) and e.errno is not None)
        return f"connect: {failed.strerror or failed}".lower()
    return str(exc) or type(exc).__name__


async def run_probe(probe: Obj, *, container: Obj, container_id: str, pod_ip: str, driver: RuntimeDriver,
                    http: httpx.AsyncClient) -> ProbeOutcome:
    """Run one probe once."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    try:
        if isinstance(probe.get("httpGet"), dict):
            action = probe["httpGet"]
            scheme = str(action.get("scheme") or "HTTP").lower()
            host = action.get("host") or pod_ip
            path = str(action.get("path") or "/")
            path = path if path.startswith("/") else "/" + path
            url = f"{scheme}://{host}:{resolve_port(action.get('port'), container)}{path}"
            headers = {"User-Agent": "kube-probe/1.32", "Accept": "*/*"}
            headers.update({str(h.get("name")): str(h.get("value", "")) for h in action.get("httpHeaders") or []})
            try:
                response = await http.get(url, headers=headers, timeout=timeout)
            except (httpx.HTTPError, OSError) as exc:
                return ProbeOutcome(False, f'Get "{url}": {_describe(exc)}')
            if 200 <= response.status_code < 400:
                return ProbeOutcome(True)
            return ProbeOutcome(False, f"HTTP probe failed with statuscode: {response.status_code}")
        if isinstance(probe.get("tcpSocket"), dict):
            action = probe["tcpSocket"]
            host = action.get("host") or pod_ip
            port = resolve_port(action.get("port"), container)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (OSError, TimeoutError) as exc:
                return ProbeOutcome(False, f"dial tcp {host}:{port}: {_describe(exc)}")
            writer.close()
            await writer.wait_closed()
            return ProbeOutcome(True)
        if isinstance(probe.get("exec"), dict):
            command = [str(part) for part in probe["exec"].get("command") or []]
            try:
                result = await driver.exec(container_id, command, timeout)
            except RuntimeDriverError as exc:
                return ProbeOutcome(False, f"command {command!r} failed: {exc}")
            output = (result.stdout + result.stderr).decode(errors="replace")
            return ProbeOutcome(result.exit_code == 0, output)
        if isinstance(probe.get("grpc"), dict):
            return ProbeOutcome(False, "grpc probes are not supported by shoal")
        return ProbeOutcome(False, "probe has no handler")
    except ValueError as exc:
        return ProbeOutcome(False, str(exc))


@dataclass(slots=True)
class _Worker:
    kind: Kind
    probe: Obj
    running: RunningContainer
    result: bool | None
    successes: int = 0
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ProbeManager:
    def __init__(self, driver: RuntimeDriver, clock: Clock, *, on_change: Callable[[str], None],
                 record: Recorder) -> None:
        self.driver = driver
        self.clock = clock
        self.on_change = on_change
        self.record = record
        self._http = httpx.AsyncClient(verify=False, trust_env=False, follow_redirects=False)
        self._workers: dict[tuple[str, str, Kind], _Worker] = {}
        self._pods: dict[str, tuple[Obj, str]] = {}  # uid -> (pod, pod IP)

    # -- what the pod worker asks --------------------------------------------------------------

    def _worker(self, uid: str, name: str, kind: Kind, container_id: str) -> _Worker | None:
        worker = self._workers.get((uid, name, kind))
        return worker if worker is not None and worker.running.container_id == container_id else None

    def _has_probe(self, uid: str, name: str, kind: Kind) -> bool:
        pod = self._pods.get(uid, ({}, ""))[0]
        container = _container(pod, name)
        return container is not None and isinstance(container.get(f"{kind}Probe"), dict)

    def ready(self, uid: str, name: str, container_id: str) -> bool:
        if not self._has_probe(uid, name, "readiness"):
            return self.started(uid, name, container_id)
        worker = self._worker(uid, name, "readiness", container_id)
        return worker is not None and worker.result is True and self.started(uid, name, container_id)

    def started(self, uid: str, name: str, container_id: str) -> bool:
        if not self._has_probe(uid, name, "startup"):
            return True
        worker = self._worker(uid, name, "startup", container_id)
        return worker is not None and worker.result is True

    def kill_reason(self, uid: str, name: str, container_id: str) -> str | None:
        """Why the container must be killed (a failed liveness or startup probe), or None."""
        for kind in ("startup", "liveness"):
            worker = self._worker(uid, name, kind, container_id)
            if worker is not None and worker.result is False:
                return f"Container {name} failed {kind} probe, will be restarted"
        return None

    # -- keeping workers in line with the runtime ------------------------------------------------

    def update_pod(self, pod: Obj, pod_ip: str, running: dict[str, RunningContainer]) -> None:
        """Run workers for exactly the probes of the ``running`` containers of ``pod``."""
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        self._pods[uid] = (pod, pod_ip)
        for key in [k for k in self._workers if k[0] == uid]:
            worker, container = self._workers[key], _container(pod, key[1])
            current = running.get(key[1])
            if (current is None or current.container_id != worker.running.container_id or container is None
                    or container.get(f"{key[2]}Probe") != worker.probe):
                self._stop(key)
        for name, current in running.items():
            container = _container(pod, name)
            for kind in KINDS:
                probe = (container or {}).get(f"{kind}Probe")
                if not isinstance(probe, dict) or (uid, name, kind) in self._workers:
                    continue
                initial = {"liveness": True, "readiness": current.was_ready,
                           "startup": True if current.was_started else None}[kind]
                worker = _Worker(kind, probe, current, initial)
                self._workers[(uid, name, kind)] = worker
                worker.task = asyncio.create_task(self._run(uid, name, worker),
                                                  name=f"probe-{kind}-{uid[:8]}-{name}")

    def remove_pod(self, uid: str) -> None:
        for key in [k for k in self._workers if k[0] == uid]:
            self._stop(key)
        self._pods.pop(uid, None)

    def _stop(self, key: tuple[str, str, Kind]) -> None:
        worker = self._workers.pop(key)
        if worker.task is not None:
            worker.task.cancel()

    async def close(self) -> None:
        tasks = [w.task for w in self._workers.values() if w.task is not None]
        self._workers.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self._http.aclose()

    # -- the worker ---------------------------------------------------------------------------

    async def _run(self, uid: str, name: str, worker: _Worker) -> None:
        probe = worker.probe
        delay = worker.running.started_at + float(probe.get("initialDelaySeconds") or 0) - self.clock.now()
        if delay > 0:
            await self.clock.sleep(delay)
        period = float(probe.get("periodSeconds") or 10)
        while True:
            if self._should_probe(uid, name, worker):
                try:
                    stop = await self._probe_once(uid, name, worker)
                except Exception:
                    log.exception("probe %s of %s/%s failed unexpectedly", worker.kind, uid, name)
                    stop = False
                if stop:
                    return
            await self.clock.sleep(period)

    def _should_probe(self, uid: str, name: str, worker: _Worker) -> bool:
        if worker.kind == "startup":
            return worker.result is not True
        return self.started(uid, name, worker.running.container_id)

    async def _probe_once(self, uid: str, name: str, worker: _Worker) -> bool:
        """Probe, update the result; True when the worker should stop (liveness/startup failed)."""
        pod, pod_ip = self._pods.get(uid, ({}, ""))
        container = _container(pod, name) or {"name": name}
        outcome = await run_probe(worker.probe, container=container, container_id=worker.running.container_id,
                                  pod_ip=pod_ip, driver=self.driver, http=self._http)
        before = worker.result
        if outcome.success:
            worker.failures, worker.successes = 0, worker.successes + 1
            threshold = int(worker.probe.get("successThreshold") or 1) if worker.kind == "readiness" else 1
            if worker.successes >= threshold:
                worker.result = True
        else:
            worker.successes, worker.failures = 0, worker.failures + 1
            await self.record(pod, name, "Warning", "Unhealthy",
                              f"{worker.kind.capitalize()} probe failed: {outcome.message}")
            if worker.failures >= int(worker.probe.get("failureThreshold") or 3):
                worker.result = False
        if worker.result != before:
            log.info("%s probe of %s/%s: %s -> %s", worker.kind, uid[:8], name, before, worker.result)
            self.on_change(uid)
        return worker.result is False and worker.kind in ("liveness", "startup")


def _container(pod: Obj, name: str) -> Obj | None:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == name:
            return dict(container)
    return None

"""podman's REST API (libpod v4) over a unix socket, served by a ``podman system service``.

Forking the ``podman`` CLI costs ~50 ms of start-up per call (Go runtime, storage, locks), and a
pod start needs several calls; the API answers the same requests in 2-15 ms.  The podman
driver therefore sends its hot-path calls (pods, containers, image lookups) here and keeps the
CLI (:mod:`.podman_cmd`) for rare or streaming work (network set-up, pulls, image builds, exec).

* :class:`PodmanService` runs one ``podman system service --time=0 unix://SOCK`` per distinct
  podman configuration (binary, ``--root``/``--runroot``, network namespace) and process, with
  the same global flags and ``CONTAINERS_CONF`` as the CLI calls (``--runtime runc``, the
  ulimits file), so both see the same storage and defaults.  It is started on first use, shared
  by every driver of this process with that configuration, dies with this process
  (``PR_SET_PDEATHSIG``), and is also stopped (by PID) at interpreter exit.  Containers do not
  depend on it: conmon supervises them, so they outlive a service or agent restart.
* :class:`PodmanApi` is one driver's client of a service: JSON in and out, errors turned into
  the driver's typed errors — 404 or a "no such" message → :class:`.podman_cmd.PodmanNotFoundError`,
  anything else ≥ 400 → :class:`.podman_cmd.PodmanError` carrying podman's own message.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import hashlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx
import orjson

from shoal.agent.runtime.podman_cmd import PodmanCli, PodmanError, PodmanNotFoundError, is_not_found

__all__ = ["PodmanApi", "PodmanService"]

API_PREFIX = "/v4.0.0/libpod"
#: How long a starting service may take to answer ``_ping``.
_START_TIMEOUT = 30.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the forked child, before exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class PodmanService:
    """One ``podman system service`` process (see the module docstring)."""

    _shared: ClassVar[dict[tuple[str, ...], PodmanService]] = {}
    _shared_lock = threading.Lock()

    def __init__(self, cli: PodmanCli, env: Mapping[str, str]) -> None:
        self.cli = cli
        self.env = dict(env)
        key = "|".join([cli.podman, *cli.global_args(), cli.netns or "", str(os.getpid()), str(id(self))])
        self.socket = Path(tempfile.gettempdir()) / f"shoal-podman-{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"
        self._process: subprocess.Popen[bytes] | None = None
        self._argv: list[str] = []
        self._ready = False
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, cli: PodmanCli, env: Mapping[str, str]) -> PodmanService:
        """The process-wide service for ``cli``'s configuration (created, not yet started)."""
        key = (cli.podman, *cli.global_args(), cli.netns or "", *sorted(f"{k}={v}" for k, v in env.items()))
        with cls._shared_lock:
            found = cls._shared.get(key)
            if found is None:
                found = cls._shared[key] = cls(cli, env)
                atexit.register(found.stop)
            return found

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def ready(self) -> bool:
        """Running and answered ``_ping`` once."""
        return self._ready and self.running

    def spawn(self) -> None:
        """Start the service process unless it runs (call from the event-loop thread: the
        process dies with the thread that forked it)."""
        with self._lock:
            if self.running:
                return
            self._ready = False
            self.socket.unlink(missing_ok=True)
            self._argv = self.cli.argv("system", "service", "--time=0", f"unix://{self.socket}")
            self._process = subprocess.Popen(
                self._argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env={**os.environ, **self.env}, preexec_fn=_die_with_parent, start_new_session=True)

    async def wait_ready(self) -> None:
        """Wait until the spawned service answers ``_ping``; raises PodmanError if it dies or hangs."""
        deadline = time.monotonic() + _START_TIMEOUT
        while not self.ready and not await asyncio.to_thread(self._answers):
            process = self._process
            if process is None or process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process and process.stderr else ""
                self.stop()
                raise PodmanError(self._argv, -1, f"podman system service exited: {stderr.strip()[-500:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise PodmanError(self._argv, -1, f"podman system service did not answer within {_START_TIMEOUT}s")
            await asyncio.sleep(0.02)
        self._ready = True

    def _answers(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=2) as client:
                return client.get(f"http://podman{API_PREFIX}/_ping").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        """Stop the service process (ours, by PID): SIGTERM, then SIGKILL after 5 s."""
        with self._lock:
            process, self._process = self._process, None
            self._ready = False
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
            if process is not None and process.stderr is not None:
                process.stderr.close()
            self.socket.unlink(missing_ok=True)


class PodmanApi:
    """A client of one :class:`PodmanService`; created lazily, closed with :meth:`close`."""

    def __init__(self, service: PodmanService) -> None:
        self.service = service
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock = asyncio.Lock()

    async def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is loop and self.service.ready:
            return self._client
        if not self.service.ready:
            async with self._start_lock:
                if not self.service.running:
                    self.service.spawn()
                await self.service.wait_ready()
        if self._client is not None:
            if self._loop is loop:
                await self._client.aclose()
            self._client = None
        self._client = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self.service.socket)),
                                         base_url=f"http://podman{API_PREFIX}", timeout=httpx.Timeout(300.0))
        self._loop = loop
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                   body: Any = None, time_limit: float | None = None) -> Any:
        """One API request; the decoded JSON answer (None when empty).  Raises typed errors."""
        client = await self._http()
        content = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await client.request(method, path, params=_query(params), content=content, headers=headers,
                                            timeout=time_limit if time_limit is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TimeoutException as exc:
            raise PodmanError([method, path], -1, f"podman API {method} {path} timed out") from exc
        except httpx.TransportError as exc:
            raise PodmanError([method, path], -1, f"podman API {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            message = _error_message(response)
            if response.status_code == 404 or is_not_found(message):
                raise PodmanNotFoundError(message)
            raise PodmanError([method, path], response.status_code, message)
        if not response.content:
            return None
        return orjson.loads(response.content)


def _query(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            out[key] = orjson.dumps(value).decode()
        else:
            out[key] = str(value)
    return out


def _error_message(response: httpx.Response) -> str:
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(payload, dict):
        return str(payload.get("message") or payload.get("cause") or payload)
    return str(payload)

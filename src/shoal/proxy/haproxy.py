"""The HAProxy process of a node: started and supervised in master-worker mode, driven through
its runtime API.

``HAProxy(binary, run_dir)``: ``run_dir`` holds ``haproxy.cfg``, the master CLI
(``master.sock``), the worker's runtime API (``admin.sock``), the liveness listener
(``alive.sock``) and ``haproxy.pid``.

Contract and invariants
-----------------------
1. :meth:`HAProxy.start` validates the file (``haproxy -c``) and then either *adopts* a master
   that a previous run of this data dir left running (its pid file names a live ``haproxy``
   process whose master CLI answers): it is reloaded with the new file and keeps serving
   through a Shoal restart - or starts a new master.  A master Shoal starts is its child;
   :meth:`HAProxy.wait` returns when it exits.
2. :meth:`HAProxy.reload` validates first: a file HAProxy refuses raises
   :class:`HAProxyError` with HAProxy's message, and the running worker keeps serving.  A
   valid reload hands the listening sockets to the new worker (``expose-fd listeners``); the
   old one finishes its connections (at most 30 s, ``hard-stop-after``).  It returns once the
   new worker answers on the runtime API.
3. :meth:`HAProxy.command` sends runtime-API commands on one connection and returns HAProxy's
   answer; an answer that reports a failure raises :class:`HAProxyError` (the caller then
   reloads from the file, which is always the truth).
4. :meth:`HAProxy.stop` stops only the master this object started or adopted, by its pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path

from shoal.kube.files import atomic_write
from shoal.proxy.addresses import netns_command

__all__ = ["SUCCESS_PREFIXES", "HAProxy", "HAProxyError"]

log = logging.getLogger(__name__)

#: How the runtime API's answers to the commands the proxy sends begin when they succeed
#: (most successes print nothing); any other line is a failure.
SUCCESS_PREFIXES = ("IP changed", "no need to change", "New server registered", "port changed")


#: HAProxy's own messages that say nothing a user needs: every frontend and backend of an old
#: worker announces "Proxy … stopped" on each reload (2,000 lines at 1,000 Services).
_ROUTINE = ("New worker", "Loading success", "Reloading HAProxy", "haproxy version is",
            "path to executable", "Former worker")


async def _relay_messages(stream: asyncio.StreamReader) -> None:
    """HAProxy's stderr into the log (warnings and alerts, without the routine lines), until
    the master closes it."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        body = text.split(": ", 1)[-1]
        if not text or body.startswith(_ROUTINE) or (body.startswith("Proxy ") and " stopped " in body):
            continue
        (log.error if text.startswith("[ALERT]") else log.warning)("haproxy: %s", text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HAProxyError(RuntimeError):
    pass


class HAProxy:
    def __init__(self, binary: str, run_dir: Path, *, netns: str | None = None) -> None:
        self.binary = binary
        self.run_dir = run_dir
        self.netns = netns
        self.config_path = run_dir / "haproxy.cfg"
        self.master_socket = run_dir / "master.sock"
        self.admin_socket = run_dir / "admin.sock"
        self.alive_socket = run_dir / "alive.sock"
        self.pid_path = run_dir / "haproxy.pid"
        self._process: asyncio.subprocess.Process | None = None
        self._messages: asyncio.Future[None] | None = None
        self._pid: int | None = None
        self.reloads = 0

    def _argv(self, *args: str) -> list[str]:
        return netns_command(self.netns, [self.binary, *args])

    async def check(self, text: str) -> None:
        """Validate ``text`` as a configuration (invariant 2) without running it."""
        candidate = self.run_dir / "haproxy.cfg.new"
        atomic_write(candidate, text.encode(), fsync=False)
        proc = await asyncio.create_subprocess_exec(*self._argv("-c", "-q", "-f", str(candidate)),
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise HAProxyError(f"haproxy refused the configuration: {out.decode(errors='replace').strip()}")
        os.replace(candidate, self.config_path)

    async def start(self, text: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        await self.check(text)
        pid = self._running_master()
        if pid is not None:
            log.info("service proxy: adopting the HAProxy master %d left by an earlier run", pid)
            self._pid = pid
            await self._reload_checked()
            return
        for path in (self.master_socket, self.admin_socket, self.alive_socket):
            path.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            *self._argv("-W", "-db", "-S", f"{self.master_socket},mode,600", "-f", str(self.config_path),
                        "-p", str(self.pid_path)),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            start_new_session=True)
        assert self._process.stderr is not None
        self._messages = asyncio.ensure_future(_relay_messages(self._process.stderr))
        self._pid = self._process.pid
        await self._wait_worker(None, within=10.0)

    def _running_master(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        if not any(part.endswith(b"haproxy") for part in cmdline[:4]) or str(self.config_path).encode() not in cmdline:
            return None
        return pid if self.master_socket.exists() else None

    async def reload(self, text: str) -> None:
        await self.check(text)
        await self._reload_checked()

    async def _reload_checked(self) -> None:
        before = await self._worker_pid()
        await self._send_master("reload", within=5.0)
        await self._wait_worker(before, within=10.0)
        self.reloads += 1

    async def _send_master(self, line: str, *, within: float) -> str:
        """``line`` on the master CLI.  Right after a reload the new worker can answer before
        the re-executed master listens again (connection refused, about one reload in ten
        back to back): a refused connection delivered nothing, so it is tried again."""
        deadline = time.monotonic() + within
        while True:
            try:
                return await self._send(self.master_socket, line)
            except (ConnectionRefusedError, FileNotFoundError) as exc:
                if time.monotonic() > deadline:
                    raise HAProxyError(f"haproxy's master CLI did not accept a connection within "
                                       f"{within:.0f}s: {exc}") from exc
                await asyncio.sleep(0.01)

    async def _worker_pid(self) -> int | None:
        try:
            info = await self._send(self.admin_socket, "show info")
        except OSError:
            return None
        for line in info.splitlines():
            if line.startswith("Pid:"):
                return int(line.split(":", 1)[1])
        return None

    async def _wait_worker(self, old_pid: int | None, *, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            pid = await self._worker_pid()
            if pid is not None and pid != old_pid:
                return
            if self._process is not None and self._process.returncode is not None:
                raise HAProxyError(f"haproxy exited with {self._process.returncode} while starting")
            if time.monotonic() > deadline:
                raise HAProxyError("haproxy's new worker did not answer on its runtime API within "
                                   f"{within:.0f}s")
            await asyncio.sleep(0.02)

    async def command(self, commands: list[str]) -> str:
        """Run ``commands`` (invariant 3)."""
        if not commands:
            return ""
        answer = await self._send(self.admin_socket, ";".join(commands))
        failures = [line for line in answer.splitlines() if line.strip() and not line.startswith(SUCCESS_PREFIXES)]
        if failures:
            raise HAProxyError(f"runtime API: {'; '.join(failures)} (commands: {'; '.join(commands)[:300]})")
        return answer

    async def _send(self, path: Path, line: str) -> str:
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(line.encode() + b"\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.read(), 10.0)).decode(errors="replace")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def wait(self) -> int:
        """Until the master exits (its exit code), for a master this object started; for an
        adopted one, until its pid is gone."""
        if self._process is not None:
            return await self._process.wait()
        while self._pid is not None and _alive(self._pid):  # noqa: ASYNC110 - not our child: poll
            await asyncio.sleep(0.5)
        return -1

    async def stop(self) -> None:
        """Stop the master (and so its workers) this object started or adopted (invariant 4)."""
        pid, self._pid = self._pid, None
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), 10.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                await self._process.wait()
        if self._messages is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._messages, 5.0)
        self.pid_path.unlink(missing_ok=True)

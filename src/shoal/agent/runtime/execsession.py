"""Interactive exec sessions backed by a local subprocess (``podman exec`` or a plain process).

:class:`SubprocessExecSession` implements the ``ExecSession`` protocol of
:mod:`shoal.agent.runtime.driver`:

* without a TTY, stdout and stderr are separate pipes (stream 1 and 2); stdin is a pipe when
  requested, else ``/dev/null``;
* with a TTY, the command runs on a fresh pseudo-terminal (it becomes the session's
  controlling terminal, so ``resize`` reaches it as SIGWINCH); all output is stream 1 and
  ``close_stdin`` sends end-of-file (Ctrl-D) since a terminal cannot be half-closed.

``output()`` ends when the process has exited and its output is drained; ``wait()`` returns
the exit code (128 + signal number for a signal, like a shell).  ``kill()`` kills the local
process only: for ``podman exec`` the command inside the container may outlive it.

:class:`ExecTimeoutError` is raised by the drivers' ``exec`` when the timeout expires (it is
also a :class:`TimeoutError`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import AsyncIterator, Mapping, Sequence

from shoal.agent.runtime.driver import RuntimeDriverError

_EOF = object()
_READ_SIZE = 65536


class ExecTimeoutError(RuntimeDriverError, TimeoutError):
    """An exec did not finish within its timeout."""


def exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def run_to_completion(argv: Sequence[str], time_limit: float, *, env: Mapping[str, str] | None = None,
                            cwd: str | None = None) -> tuple[int, bytes, bytes]:
    """Run ``argv`` (stdin /dev/null) in a session of its own; returns (exit status, stdout, stderr).

    After ``time_limit`` seconds the whole process group is killed and :class:`ExecTimeoutError`
    raised.  OSError (e.g. command not found) propagates.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), time_limit)
    except BaseException as exc:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        if isinstance(exc, TimeoutError):
            raise ExecTimeoutError(f"{list(argv)!r} timed out after {time_limit}s") from None
        raise
    assert proc.returncode is not None
    return exit_status(proc.returncode), stdout, stderr


def _set_controlling_tty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class SubprocessExecSession:
    """An ExecSession over a child process; create it with :meth:`start`."""

    def __init__(self, process: asyncio.subprocess.Process, master_fd: int | None) -> None:
        self._process = process
        self._master = master_fd
        self._queue: asyncio.Queue[tuple[int, bytes] | object] = asyncio.Queue()
        self._open_streams = 0
        self._readers: list[asyncio.Task[None]] = []
        self._master_eof = asyncio.Event()

    @classmethod
    async def start(cls, argv: Sequence[str], *, stdin: bool, tty: bool, env: Mapping[str, str] | None = None,
                    cwd: str | None = None) -> SubprocessExecSession:
        if tty:
            master, slave = pty.openpty()
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                    start_new_session=True, preexec_fn=_set_controlling_tty,
                )
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            session = cls(process, master)
            session._watch_master()
            return session
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True,
        )
        session = cls(process, None)
        assert process.stdout is not None and process.stderr is not None
        session._pump(1, process.stdout)
        session._pump(2, process.stderr)
        return session

    def _pump(self, stream: int, reader: asyncio.StreamReader) -> None:
        self._open_streams += 1

        async def run() -> None:
            try:
                while data := await reader.read(_READ_SIZE):
                    await self._queue.put((stream, data))
            finally:
                await self._queue.put(_EOF)

        self._readers.append(asyncio.ensure_future(run()))

    def _watch_master(self) -> None:
        assert self._master is not None
        self._open_streams = 1
        loop = asyncio.get_running_loop()
        fd = self._master

        def on_readable() -> None:
            try:
                data = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:  # EIO: the last process holding the terminal has gone
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data:
                self._queue.put_nowait((1, data))
            else:
                loop.remove_reader(fd)
                self._signal_master_eof()

        loop.add_reader(fd, on_readable)

    def _signal_master_eof(self) -> None:
        if not self._master_eof.is_set():
            self._master_eof.set()
            self._queue.put_nowait(_EOF)

    async def write_stdin(self, data: bytes) -> None:
        if self._master is not None:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self._master, view)
                except BlockingIOError:
                    await asyncio.sleep(0.01)
                    continue
                view = view[written:]
            return
        if self._process.stdin is None:
            raise RuntimeDriverError("this exec session has no stdin")
        self._process.stdin.write(data)
        await self._process.stdin.drain()

    async def close_stdin(self) -> None:
        if self._master is not None:
            await self.write_stdin(b"\x04")
            return
        if self._process.stdin is not None and not self._process.stdin.is_closing():
            self._process.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self._process.stdin.wait_closed()

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        while self._open_streams > 0:
            item = await self._queue.get()
            if item is _EOF:
                self._open_streams -= 1
                continue
            assert isinstance(item, tuple)
            yield item

    async def resize(self, width: int, height: int) -> None:
        if self._master is None:
            return
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    async def wait(self) -> int:
        code = await self._process.wait()
        if self._readers:
            await asyncio.gather(*self._readers)
        if self._master is not None:
            # Output still buffered in the terminal arrives before EIO; give it a moment.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._master_eof.wait(), 2.0)
        self._close_master()
        return exit_status(code)

    async def kill(self) -> None:
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        await self._process.wait()
        for task in self._readers:
            task.cancel()
        self._close_master()

    def _close_master(self) -> None:
        if self._master is None:
            return
        fd, self._master = self._master, None
        with contextlib.suppress(ValueError, RuntimeError):
            asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        self._signal_master_eof()

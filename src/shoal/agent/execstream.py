"""One ``kubectl exec`` session on the agent: an accepted WebSocket bound to a runtime exec.

:func:`serve` starts the command through the driver's ``exec_stream`` and runs two tasks:

* output: each ``(stream, data)`` chunk becomes a frame on channel 1 or 2 (only for the streams
  the client asked for; with a TTY everything goes to stdout), then, once the process has
  exited, the exit Status on channel 3 (:func:`shoal.kube.remotecommand.exit_status`) and a close
  with code 1000.  Every output byte is sent before the Status.
* input: channel 0 goes to the process's stdin, ``\\xff\\x00`` (v5) closes it, channel 4
  resizes the TTY.  Stdin that the process no longer reads (it exited, or closed its end) is
  dropped, so the exit code still arrives.  A malformed frame closes the socket with 1002.

If the client goes away first, the process is killed.  If the command cannot be started, or
the driver fails while it runs, the client gets an InternalError Status on channel 3 and the
close (kubectl prints it and exits 1).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from shoal.agent.runtime.driver import ExecSession, RuntimeDriverError
from shoal.kube import remotecommand

log = logging.getLogger(__name__)


class ExecDriver(Protocol):
    async def exec_stream(self, container_id: str, command: list[str], *, stdin: bool,
                          tty: bool) -> ExecSession: ...


async def serve(ws: WebSocket, driver: ExecDriver, container_id: str, options: remotecommand.ExecOptions,
                protocol: str) -> None:
    """Run the command for an accepted WebSocket until it exits or the client leaves."""
    try:
        session = await driver.exec_stream(container_id, list(options.command), stdin=options.stdin,
                                           tty=options.tty)
    except RuntimeDriverError as exc:
        log.info("exec %s in %s failed to start: %s", list(options.command), container_id, exc)
        await ws.send_bytes(remotecommand.status_frame(
            remotecommand.error_status(f"error executing command in container: {exc}")))
        await ws.close(1000)
        return
    output = asyncio.create_task(_output(ws, session, options), name="exec-output")
    reader = asyncio.create_task(_input(ws, session, options, protocol), name="exec-input")
    exited = False
    handled: set[asyncio.Task[Any]] = set()
    try:
        await asyncio.wait({output, reader}, return_when=asyncio.FIRST_COMPLETED)
        handled = {task for task in (output, reader) if task.done()}
        if output.done():
            exit_code = output.result()
            if exit_code is not None:
                exited = True
                await ws.send_bytes(remotecommand.status_frame(remotecommand.exit_status(exit_code, options.command)))
                await ws.close(1000)
        else:
            reader.result()  # the client left (or sent a bad frame: raises)
    except WebSocketDisconnect:
        log.debug("exec client of %s disconnected", container_id)
    except RuntimeDriverError as exc:
        log.warning("exec in %s failed: %s", container_id, exc)
        await ws.send_bytes(remotecommand.status_frame(remotecommand.error_status(f"error executing command: {exc}")))
        await ws.close(1000)
    except remotecommand.FrameError as exc:
        log.warning("exec client of %s sent a bad frame: %s", container_id, exc)
        await ws.close(1002)
    finally:
        for task in (output, reader):
            task.cancel()
        results = await asyncio.gather(output, reader, return_exceptions=True)
        if not exited:
            await session.kill()
        for task, result in zip((output, reader), results, strict=True):
            # What the first finished task raised was handled above; a late failure of the other is logged.
            if task not in handled and isinstance(result, Exception) and not isinstance(result, WebSocketDisconnect):
                log.warning("exec in %s: %s", container_id, result, exc_info=result)


async def _output(ws: WebSocket, session: ExecSession, options: remotecommand.ExecOptions) -> int | None:
    """Relay output, then return the exit code; None if the client went away first."""
    try:
        async for stream, data in session.output():
            channel = remotecommand.STDOUT if options.tty else stream
            wanted = options.stdout if channel == remotecommand.STDOUT else options.stderr
            if wanted and data:
                await ws.send_bytes(remotecommand.encode(channel, data))
    except WebSocketDisconnect:
        return None
    return await session.wait()


async def _input(ws: WebSocket, session: ExecSession, options: remotecommand.ExecOptions, protocol: str) -> None:
    """Relay client frames to the session until the client disconnects."""
    stdin_open = options.stdin
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("bytes")
        if raw is None:
            raw = (message.get("text") or "").encode()
        channel, payload = remotecommand.decode(raw)
        if channel == remotecommand.STDIN and stdin_open:
            try:
                await session.write_stdin(payload)
            except (OSError, RuntimeDriverError) as exc:
                log.debug("exec stdin closed by the process: %s", exc)
                stdin_open = False
        elif channel == remotecommand.CLOSE and protocol == remotecommand.V5 and payload[:1] == b"\x00":
            if stdin_open:
                stdin_open = False
                try:
                    await session.close_stdin()
                except (OSError, RuntimeDriverError) as exc:
                    log.debug("exec stdin already closed: %s", exc)
        elif channel == remotecommand.RESIZE:
            width, height = remotecommand.decode_resize(payload)
            await session.resize(width, height)
        elif channel not in (remotecommand.STDIN, remotecommand.CLOSE):
            raise remotecommand.FrameError(f"unexpected channel {channel} from the client")

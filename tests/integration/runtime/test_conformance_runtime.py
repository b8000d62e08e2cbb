"""The RuntimeDriver contract, checked on podman and on the process driver alike.

Commands are written for both worlds: ``sh`` is busybox inside the demo image and the host's
shell for the process driver.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable

import pytest

from shoal.agent.runtime.demo_image import DEMO_IMAGE
from shoal.agent.runtime.driver import ContainerSpec, RuntimeDriver, SandboxSpec, State
from shoal.kube.times import parse_time
from tests.integration.runtime.helpers import DriverFactory, log_lines, run_container, wait_log, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SpecFactory = Callable[..., SandboxSpec]


def shell(name: str, script: str, **kwargs: object) -> ContainerSpec:
    return ContainerSpec(name=name, image=DEMO_IMAGE, command=("sh", "-c", script),
                         labels={"shoal.container.attempt": "0"}, **kwargs)  # type: ignore[arg-type]


async def test_version(driver: RuntimeDriver) -> None:
    version = await driver.version()
    assert version.startswith(driver.name)


async def test_configure_network_is_idempotent_and_gives_pods_their_addresses(
        driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    # The suite's podman drivers are built on their own subnet (the agent's, without one, get it
    # here from the podCIDR); the process driver has no pod network and ignores the CIDR.
    cidr = str(getattr(driver, "subnet", "") or "10.99.254.0/24")
    assert driver.needs_pod_cidr is False
    await driver.configure_network(cidr)
    await driver.configure_network(cidr)  # again: nothing changes
    sandbox = await driver.create_sandbox(sandbox_spec())
    if driver.isolated:
        assert ipaddress.ip_address(sandbox.ip) in ipaddress.ip_network(cidr)
    else:
        assert sandbox.ip == "127.0.0.1"
    await driver.remove_sandbox(sandbox.id)


async def test_sandbox_create_list_remove(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    spec = sandbox_spec("web")
    sandbox = await driver.create_sandbox(spec)
    assert sandbox.pod_uid == spec.pod_uid
    assert sandbox.ready and sandbox.ip
    assert sandbox.labels["shoal.pod.uid"] == spec.pod_uid
    listed = [s for s in await driver.list_sandboxes() if s.id == sandbox.id]
    assert [s.pod_uid for s in listed] == [spec.pod_uid]
    again = await driver.create_sandbox(spec)  # idempotent for the same pod
    assert again.id == sandbox.id
    await driver.remove_sandbox(sandbox.id)
    assert sandbox.id not in {s.id for s in await driver.list_sandboxes()}
    await driver.remove_sandbox(sandbox.id)  # removing twice is fine


async def test_stop_sandbox_keeps_exited_containers_and_logs(driver: RuntimeDriver,
                                                             sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    done = await run_container(driver, sandbox.id, shell("done", "echo finished"))
    await wait_state(driver, done, State.EXITED)
    still = await run_container(driver, sandbox.id, shell("still", "echo up; sleep 30"))
    await wait_log(driver, still, "up")
    await driver.stop_sandbox(sandbox.id, grace_seconds=2)
    (stopped,) = [s for s in await driver.list_sandboxes() if s.id == sandbox.id]
    assert not stopped.ready and not stopped.ip
    statuses = {c.name: c for c in await driver.list_containers(sandbox.id)}
    assert {name: c.state for name, c in statuses.items()} == {"done": State.EXITED, "still": State.EXITED}
    assert statuses["done"].exit_code == 0
    assert await log_lines(driver, done) == ["finished"]
    await driver.stop_sandbox(sandbox.id, grace_seconds=2)  # stopping twice is fine
    await driver.remove_sandbox(sandbox.id)


async def test_container_runs_and_is_inspected(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await driver.create_container(sandbox.id, shell("main", "echo up; sleep 30"))
    created = await driver.inspect_container(container_id)
    assert created.state is State.CREATED and created.started_at is None
    await driver.start_container(container_id)
    status = await wait_state(driver, container_id, State.RUNNING)
    assert status.name == "main"
    assert status.sandbox_id == sandbox.id
    assert status.started_at is not None and status.exit_code is None
    assert status.labels["shoal.container.attempt"] == "0"
    listed = await driver.list_containers(sandbox.id)
    assert [c.id for c in listed] == [container_id]
    await driver.remove_container(container_id)
    assert await driver.list_containers(sandbox.id) == []


@pytest.mark.parametrize(("code", "reason"), [(0, "Completed"), (3, "Error")])
async def test_exit_code_and_reason(driver: RuntimeDriver, sandbox_spec: SpecFactory, code: int,
                                    reason: str) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("job", f"exit {code}"))
    status = await wait_state(driver, container_id, State.EXITED)
    assert (status.exit_code, status.reason) == (code, reason)
    assert status.started_at is not None and status.finished_at is not None
    assert status.finished_at >= status.started_at


async def test_stop_trapped_sigterm_exits_promptly(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    script = "trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
    container_id = await run_container(driver, sandbox.id, shell("trap", script))
    await wait_log(driver, container_id, "ready")
    started = time.monotonic()
    await driver.stop_container(container_id, grace_seconds=20)
    assert time.monotonic() - started < 5
    status = await driver.inspect_container(container_id)
    assert (status.state, status.exit_code) == (State.EXITED, 0)
    assert "bye" in await log_lines(driver, container_id)


async def test_stop_kills_after_grace_when_sigterm_ignored(driver: RuntimeDriver,
                                                           sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    script = "trap '' TERM; echo ready; while :; do sleep 0.1; done"
    container_id = await run_container(driver, sandbox.id, shell("stubborn", script))
    await wait_log(driver, container_id, "ready")
    started = time.monotonic()
    await driver.stop_container(container_id, grace_seconds=1)
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 8
    status = await driver.inspect_container(container_id)
    assert (status.state, status.exit_code, status.reason) == (State.EXITED, 137, "Error")


async def test_logs_plain_tail_timestamps_since(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    script = "echo one; sleep 0.05; echo two; sleep 0.05; echo three; sleep 0.05; echo oops >&2"
    container_id = await run_container(driver, sandbox.id, shell("talker", script))
    await wait_state(driver, container_id, State.EXITED)
    assert await log_lines(driver, container_id) == ["one", "two", "three", "oops"]
    assert await log_lines(driver, container_id, tail=2) == ["three", "oops"]
    assert await log_lines(driver, container_id, tail=0) == []
    stamped = await log_lines(driver, container_id, timestamps=True)
    stamps = [parse_time(line.split(" ", 1)[0]) for line in stamped]
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "two", "three", "oops"]
    assert all(stamps) and stamps == sorted(stamps, key=lambda t: t.timestamp() if t else 0)
    assert await log_lines(driver, container_id, since=stamps[2]) == ["three", "oops"]


async def test_logs_follow_sees_new_lines_and_ends(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    script = "echo first; sleep 1; echo second; sleep 0.3"
    container_id = await run_container(driver, sandbox.id, shell("slow", script))
    await wait_log(driver, container_id, "first")
    received: list[str] = []
    started = time.monotonic()

    async def follow() -> None:
        async for line in driver.logs(container_id, follow=True):
            received.append(line.decode().rstrip("\n"))

    await asyncio.wait_for(follow(), timeout=15)  # ends by itself once the container exited
    assert received == ["first", "second"]
    assert time.monotonic() - started < 10


async def test_logs_follow_tail_zero_gets_only_new_lines(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    script = "i=0; while :; do echo line$i; i=$((i+1)); sleep 0.2; done"
    container_id = await run_container(driver, sandbox.id, shell("ticker", script))
    await wait_log(driver, container_id, "line1")
    before = set(await log_lines(driver, container_id))
    stream = driver.logs(container_id, follow=True, tail=0)
    line = (await asyncio.wait_for(anext(stream), timeout=5)).decode().rstrip("\n")
    await stream.aclose()  # type: ignore[attr-defined]
    assert line.startswith("line") and line not in before


async def test_exec_returns_output_and_exit_code(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("main", "sleep 30", env={"GREETING": "hi"}))
    await wait_state(driver, container_id, State.RUNNING)
    result = await driver.exec(container_id, ["sh", "-c", 'echo "$GREETING"; echo err >&2; exit 4'], timeout=10)
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"hi\n", b"err\n")
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await driver.exec(container_id, ["sleep", "10"], timeout=0.5)
    assert time.monotonic() - started < 5


async def test_exec_stream_echoes_stdin(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("main", "sleep 30"))
    await wait_state(driver, container_id, State.RUNNING)
    session = await driver.exec_stream(container_id, ["sh", "-c", "cat; echo done >&2"], stdin=True, tty=False)
    await session.write_stdin(b"hello\nworld\n")
    await session.close_stdin()
    streams: dict[int, bytes] = {1: b"", 2: b""}

    async def collect() -> None:
        async for stream, data in session.output():
            streams[stream] += data

    await asyncio.wait_for(collect(), timeout=10)
    assert await asyncio.wait_for(session.wait(), timeout=10) == 0
    assert streams == {1: b"hello\nworld\n", 2: b"done\n"}


async def test_exec_stream_tty(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("main", "sleep 30"))
    await wait_state(driver, container_id, State.RUNNING)
    session = await driver.exec_stream(container_id, ["sh", "-c", "test -t 0 && echo is-a-tty; exit 5"],
                                       stdin=True, tty=True)
    await session.resize(100, 30)
    output = b""

    async def collect() -> None:
        nonlocal output
        async for stream, data in session.output():
            assert stream == 1
            output += data

    await asyncio.wait_for(collect(), timeout=10)
    assert await asyncio.wait_for(session.wait(), timeout=10) == 5
    assert b"is-a-tty" in output


async def test_env_command_and_args(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    spec = ContainerSpec(name="args", image=DEMO_IMAGE, command=("sh", "-c"),
                         args=('echo "$FOO|$0|$1"', "first arg", "second"), env={"FOO": "bar baz"})
    container_id = await run_container(driver, sandbox.id, spec)
    await wait_state(driver, container_id, State.EXITED)
    assert await log_lines(driver, container_id) == ["bar baz|first arg|second"]
    # args without command: the demo image has no entrypoint, so args are the command line
    args_only = ContainerSpec(name="argsonly", image=DEMO_IMAGE, args=("sh", "-c", "echo only args"))
    other_id = await run_container(driver, sandbox.id, args_only)
    await wait_state(driver, other_id, State.EXITED)
    assert await log_lines(driver, other_id) == ["only args"]


async def test_new_driver_instance_recovers_running_container(driver_factory: DriverFactory,
                                                              driver: RuntimeDriver,
                                                              sandbox_spec: SpecFactory) -> None:
    spec = sandbox_spec("survivor")
    sandbox = await driver.create_sandbox(spec)
    container_id = await run_container(driver, sandbox.id, shell("main", "echo alive; sleep 30"))
    await wait_state(driver, container_id, State.RUNNING)
    restarted = driver_factory.new()
    sandboxes = [s for s in await restarted.list_sandboxes() if s.pod_uid == spec.pod_uid]
    assert [s.id for s in sandboxes] == [sandbox.id]
    containers = await restarted.list_containers(sandbox.id)
    assert [(c.id, c.state) for c in containers] == [(container_id, State.RUNNING)]
    assert (await restarted.create_sandbox(spec)).id == sandbox.id  # no duplicate pod
    assert await log_lines(restarted, container_id) == ["alive"]
    await restarted.stop_container(container_id, grace_seconds=1)
    assert (await driver.inspect_container(container_id)).state is State.EXITED


async def test_stats_of_running_container(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("busy", "i=0; while [ $i -lt 20000 ]; do "
                                                                         "i=$((i+1)); done; sleep 30"))
    await wait_state(driver, container_id, State.RUNNING)
    await asyncio.sleep(0.3)
    stats = await driver.stats(container_id)
    assert stats.cpu_usage_ns > 0
    assert stats.memory_working_set_bytes > 0

"""process-driver-only behaviour: containers outlive the agent process, lost supervisors."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.agent.runtime import process as process_module
from shoal.agent.runtime.driver import ContainerSpec, RuntimeDriver, RuntimeDriverError, SandboxSpec, State
from shoal.agent.runtime.process import ProcessDriver
from tests.integration.runtime.helpers import run_container, wait_log, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60),
              pytest.mark.parametrize("driver_kind", ["process"], indirect=True)]

SpecFactory = Callable[..., SandboxSpec]


def shell(name: str, script: str) -> ContainerSpec:
    return ContainerSpec(name=name, image="any/image:1", command=("sh", "-c", script))


async def test_container_outlives_the_agent_process(driver: RuntimeDriver) -> None:
    assert isinstance(driver, ProcessDriver)
    agent = textwrap.dedent(f"""
        import asyncio, json, sys
        from pathlib import Path
        from shoal.agent.runtime.process import ProcessDriver
        from shoal.agent.runtime.driver import ContainerSpec, SandboxSpec

        async def main():
            d = ProcessDriver(Path({str(driver.state.root)!r}))
            sb = await d.create_sandbox(SandboxSpec(pod_uid="u1", namespace="ns", name="p", hostname="p"))
            cid = await d.create_container(sb.id, ContainerSpec(
                name="c", image="x", command=("sh", "-c", "echo hello; sleep 30")))
            await d.start_container(cid)
            print(json.dumps({{"sandbox": sb.id, "container": cid}}), flush=True)

        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", agent, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    ids = json.loads(out)
    status = await driver.inspect_container(ids["container"])  # the agent that started it is gone
    assert status.state is State.RUNNING
    await wait_log(driver, ids["container"], "hello")
    assert [c.id for c in await driver.list_containers(ids["sandbox"])] == [ids["container"]]
    await driver.stop_container(ids["container"], grace_seconds=2)
    assert (await driver.inspect_container(ids["container"])).exit_code == 143


async def test_lost_supervisor_is_survived(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    """If the supervisor is killed, the command goes on; once it ends the exit code is unknown (255)."""
    assert isinstance(driver, ProcessDriver)
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await run_container(driver, sandbox.id, shell("orphan", "echo up; sleep 30"))
    await wait_log(driver, container_id, "up")
    started = json.loads((driver.state.container_dir(container_id) / "started.json").read_text())
    os.kill(started["supervisor_pid"], signal.SIGKILL)  # our own (grand)child, by PID
    await asyncio.sleep(0.2)
    assert (await driver.inspect_container(container_id)).state is State.RUNNING
    await driver.stop_container(container_id, grace_seconds=2)
    status = await wait_state(driver, container_id, State.EXITED)
    assert (status.exit_code, status.reason) == (255, "Error")


async def test_command_not_found_fails_the_start(driver: RuntimeDriver, sandbox_spec: SpecFactory) -> None:
    sandbox = await driver.create_sandbox(sandbox_spec())
    container_id = await driver.create_container(sandbox.id, ContainerSpec(
        name="bad", image="x", command=("/nonexistent/shoal-binary",)))
    with pytest.raises(RuntimeDriverError, match="failed to start"):
        await driver.start_container(container_id)
    status = await driver.inspect_container(container_id)
    assert (status.state, status.exit_code) == (State.EXITED, 127)


def test_unsafe_driver_is_flagged(tmp_path: Path, caplog: pytest.LogCaptureFixture, driver: RuntimeDriver) -> None:
    assert driver.isolated is False
    assert "UNSAFE" in (ProcessDriver.__doc__ or "")
    process_module._warned = False
    with caplog.at_level(logging.WARNING, logger="shoal.agent.runtime.process"):
        ProcessDriver(tmp_path / "a")
        ProcessDriver(tmp_path / "b")
    warnings = [r for r in caplog.records if "WITHOUT any isolation" in r.getMessage()]
    assert len(warnings) == 1

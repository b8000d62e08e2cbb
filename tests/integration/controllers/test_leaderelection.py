"""Lease-based leader election against a live API server, with short (2 s) leases."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from shoal.client import resources
from shoal.client.leaderelection import LeaseLeadership
from shoal.client.rest import ApiClient
from shoal.controllers.manager import CONTROLLERS, ControllerManager
from tests.integration.controllers.helpers import eventually

pytestmark = pytest.mark.e2e

LEASE = 2  # seconds


@dataclass
class Board:
    """Who is working right now, and the most that ever worked at once."""

    active: set[str] = field(default_factory=set)
    most: int = 0
    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)

    def work(self, name: str) -> Callable[[asyncio.Event], Awaitable[None]]:
        async def run(leading: asyncio.Event) -> None:
            self.active.add(name)
            self.most = max(self.most, len(self.active))
            self.started[name] = time.monotonic()
            try:
                await asyncio.Event().wait()  # work until cancelled
            finally:
                self.active.discard(name)
                self.ended[name] = time.monotonic()
        return run


def candidate(client: ApiClient, lease: str, name: str, *, release_on_stop: bool = True) -> LeaseLeadership:
    return LeaseLeadership(client, lease, name, lease_duration=LEASE, renew_deadline=1.5, retry_period=0.2,
                           release_on_stop=release_on_stop)


@contextlib.asynccontextmanager
async def campaigning(candidate: LeaseLeadership, board: Board) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(candidate.run_while_leader(stop, board.work(candidate.identity)))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10.0)


async def lease_of(client: ApiClient, name: str) -> dict[str, object]:
    spec = (await client.get(resources.LEASES, name, "kube-system"))["spec"]
    assert isinstance(spec, dict)
    return spec


async def test_one_leads_and_the_other_takes_over_when_it_stops(client: ApiClient) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    board = Board()
    a, b = candidate(client, lease, "a"), candidate(client, lease, "b")
    async with campaigning(a, board) as stop_a, campaigning(b, board) as stop_b:
        await eventually(lambda: _some(board), what="a leader")
        await asyncio.sleep(1.0)  # several renewals and failed attempts later
        assert board.most == 1 and len(board.active) == 1
        leader = next(iter(board.active))
        spec = await lease_of(client, lease)
        assert spec["holderIdentity"] == leader and spec["leaseDurationSeconds"] == LEASE
        assert spec["leaseTransitions"] == 0 and spec["renewTime"] != spec["acquireTime"]
        first, other = (a, b) if leader == "a" else (b, a)
        {"a": stop_a, "b": stop_b}[leader].set()
        began = time.monotonic()
        await eventually(lambda: _leading(board, other.identity), within=LEASE + 1.0, what="a takeover")
        assert time.monotonic() - began < LEASE, "a released lease is taken at once"
        assert board.most == 1
        assert board.ended[first.identity] <= board.started[other.identity]
        spec = await lease_of(client, lease)
        assert spec["holderIdentity"] == other.identity and spec["leaseTransitions"] == 1


async def test_a_crashed_leader_is_replaced_after_its_lease_expires(client: ApiClient) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    board = Board()
    crasher = candidate(client, lease, "crasher", release_on_stop=False)
    async with campaigning(crasher, board) as stop_crasher:
        await eventually(lambda: _leading(board, "crasher"), what="the first leader")
        heir = candidate(client, lease, "heir")
        async with campaigning(heir, board):
            await asyncio.sleep(0.5)
            assert board.active == {"crasher"}
            stop_crasher.set()  # stops renewing without releasing: a crash, as far as the lease shows
            began = time.monotonic()
            await eventually(lambda: _leading(board, "heir"), within=LEASE + 3.0, what="the takeover")
            waited = time.monotonic() - began
        assert LEASE - 0.5 <= waited <= LEASE + 2.0, waited
        assert board.most == 1


async def test_the_leader_stops_working_when_another_holder_appears(client: ApiClient) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    board = Board()
    leader = candidate(client, lease, "leader")
    async with campaigning(leader, board):
        await eventually(lambda: _leading(board, "leader"), what="the leader")
        current = await client.get(resources.LEASES, lease, "kube-system")
        current["spec"].update({"holderIdentity": "intruder", "leaseDurationSeconds": 60})
        await client.update(resources.LEASES, current)
        began = time.monotonic()
        await eventually(lambda: _none(board), within=3.0, what="the work cancelled")
        assert time.monotonic() - began < 1.5
        await asyncio.sleep(0.5)
        assert not board.active, "no new term while the intruder's lease is valid"


async def test_a_manager_runs_its_controllers_only_while_leading(client: ApiClient) -> None:
    lease = f"test-{uuid.uuid4().hex[:6]}"
    table = {"nodeipam": CONTROLLERS["nodeipam"]}
    first = ControllerManager(client, controllers=table, leadership=candidate(client, lease, "m1"))
    second = ControllerManager(client, controllers=table, leadership=candidate(client, lease, "m2"))
    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(first.run(stop_first)), asyncio.create_task(second.run(stop_second))]
    try:
        await eventually(lambda: _one_running(first, second), what="one manager running")
        await asyncio.sleep(0.6)
        assert bool(first.controllers) != bool(second.controllers)
        leader, follower, stop_leader = (first, second, stop_first) if first.controllers else \
            (second, first, stop_second)
        stop_leader.set()
        await eventually(lambda: _running(follower), within=LEASE + 1.0, what="the other manager taking over")
        assert not leader.controllers
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15.0)


async def _some(board: Board) -> bool:
    return bool(board.active)


async def _none(board: Board) -> bool:
    return not board.active


async def _leading(board: Board, name: str) -> bool:
    return board.active == {name}


async def _running(manager: ControllerManager) -> bool:
    return bool(manager.controllers)


async def _one_running(first: ControllerManager, second: ControllerManager) -> bool:
    return bool(first.controllers) or bool(second.controllers)

"""The background Event queue: order, bounded capacity, draining on stop."""

from __future__ import annotations

import asyncio

from shoal.kube.objects import Obj
from shoal.scheduler.events import EventQueue


class ListRecorder:
    """Records into a list; ``gate`` (when given) holds every write until it is set."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.seen: list[tuple[str, str, str]] = []

    async def record(self, obj: Obj, type_: str, reason: str, message: str, field_path: str = "") -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.seen.append((obj["metadata"]["name"], reason, message))


def obj(name: str) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"}}


async def test_events_are_written_in_order_and_drained_on_stop() -> None:
    recorder = ListRecorder()
    events = EventQueue(recorder, workers=1)
    stop = asyncio.Event()
    runner = asyncio.create_task(events.run(stop))
    events.post(obj("a"), "Normal", "Scheduled", "one")
    await asyncio.sleep(0.01)
    assert recorder.seen == [("a", "Scheduled", "one")]
    events.post(obj("b"), "Normal", "Scheduled", "two")
    events.post(obj("c"), "Warning", "FailedScheduling", "three")
    stop.set()
    await asyncio.wait_for(runner, 1.0)
    assert [name for name, _, _ in recorder.seen] == ["a", "b", "c"]
    assert (events.pending, events.written, events.dropped) == (0, 3, 0)


async def test_a_full_queue_drops_the_oldest() -> None:
    gate = asyncio.Event()
    recorder = ListRecorder(gate)
    events = EventQueue(recorder, workers=1, capacity=2)
    stop = asyncio.Event()
    runner = asyncio.create_task(events.run(stop))
    events.post(obj("in-flight"), "Normal", "Scheduled", "")
    await asyncio.sleep(0.01)  # the worker holds "in-flight" at the gate
    for name in ("old", "mid", "new"):
        events.post(obj(name), "Normal", "Scheduled", "")
    assert (events.pending, events.dropped) == (2, 1)
    gate.set()
    stop.set()
    await asyncio.wait_for(runner, 1.0)
    assert [name for name, _, _ in recorder.seen] == ["in-flight", "mid", "new"]

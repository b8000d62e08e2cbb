"""Server slots: how a backend's endpoints map onto HAProxy servers, and the runtime commands
that move one set of endpoints to the next without a reload.

Every HAProxy backend has ``capacity`` servers named ``s1`` … ``sN``.  A slot holds one
endpoint (address and port) or is free (in maintenance, address ``127.0.0.1:1``).  Changing
the endpoints of a backend is a list of runtime-API commands (:meth:`SlotTable.update`):

* a removed endpoint's slot goes to ``maint`` (its open connections finish; no new ones);
* a new endpoint takes a free slot: ``set server … addr``, then ``state ready`` or ``drain``;
* an endpoint whose state changed gets ``state ready`` / ``state drain``;
* when no slot is free the table grows: ``add server`` (with the same check options), then
  ``enable health`` and ``enable server``, as HAProxy 2.6 keeps a runtime-added server in
  maintenance with its checks off.

Invariants
----------
1. An endpoint keeps its slot for as long as it is an endpoint (no reshuffle, so HAProxy's
   per-server state - connections, stickiness, check history - follows the endpoint).
2. Commands of one update touch only this backend and leave it equal to what
   :meth:`SlotTable.servers` renders into the configuration file, so a reload (which drops
   runtime changes) restores exactly the same state.
3. Capacity only grows; a backend starts with :data:`MIN_SLOTS` or twice its endpoints.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shoal.proxy.model import DRAIN, Endpoint

__all__ = ["CHECK", "FREE_ADDRESS", "MIN_SLOTS", "Server", "SlotTable"]

MIN_SLOTS = 4
#: HAProxy's active health check of every server: every 400 ms, down after 2 failures (an idle
#: dead endpoint is out within about 0.8 s), up after 1 success; three refused connections in a
#: row while serving mark it down at once (``observe layer4``: under traffic, within
#: milliseconds; one alone may be a full accept backlog, and is retried elsewhere).
#: Checks cost CPU in proportion to servers / interval: 3,000 servers at 250 ms took 32-41 % of
#: a core with no traffic at all (bench/bench_proxy.py).
CHECK = ("check inter 400ms fastinter 400ms downinter 1s fall 2 rise 1 "
         "observe layer4 error-limit 3 on-error mark-down")
FREE_ADDRESS = ("127.0.0.1", 1)


@dataclass(frozen=True, slots=True)
class Server:
    """One slot as the configuration file declares it."""

    name: str
    ip: str
    port: int
    #: ``ready``, ``drain`` or ``maint`` (a free slot).
    state: str

    def line(self) -> str:
        extra = {"maint": " disabled", "drain": " weight 0"}.get(self.state, "")
        return f"server {self.name} {self.ip}:{self.port} {CHECK}{extra}"


class SlotTable:
    """The slots of one backend."""

    def __init__(self, backend: str, endpoints: Iterable[Endpoint] = ()) -> None:
        self.backend = backend
        initial = sorted(endpoints)
        self.capacity = max(MIN_SLOTS, 2 * len(initial))
        self._slots: list[Endpoint | None] = [*initial, *[None] * (self.capacity - len(initial))]

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(sorted(e for e in self._slots if e is not None))

    def servers(self) -> list[Server]:
        out = []
        for i, endpoint in enumerate(self._slots):
            if endpoint is None:
                out.append(Server(f"s{i + 1}", *FREE_ADDRESS, "maint"))
            else:
                out.append(Server(f"s{i + 1}", endpoint.ip, endpoint.port, endpoint.state))
        return out

    def update(self, endpoints: Iterable[Endpoint]) -> list[str]:
        """Move to ``endpoints``; the runtime-API commands that do the same in HAProxy."""
        wanted = {(e.ip, e.port): e for e in endpoints}
        commands: list[str] = []
        be = self.backend
        for i, current in enumerate(self._slots):
            if current is None:
                continue
            new = wanted.pop((current.ip, current.port), None)
            if new is None:
                self._slots[i] = None
                commands.append(f"set server {be}/s{i + 1} state maint")
            elif new.state != current.state:
                self._slots[i] = new
                commands.append(_state(be, i, new.state))
        for endpoint in sorted(wanted.values()):
            try:
                i = self._slots.index(None)
            except ValueError:
                i = len(self._slots)
                self._slots.append(endpoint)
                self.capacity += 1
                commands += [f"add server {be}/s{i + 1} {endpoint.ip}:{endpoint.port} {CHECK}",
                             f"enable health {be}/s{i + 1}"]
                if endpoint.state == DRAIN:
                    commands.append(f"set server {be}/s{i + 1} weight 0")
                commands.append(f"enable server {be}/s{i + 1}")
                continue
            self._slots[i] = endpoint
            commands += [f"set server {be}/s{i + 1} addr {endpoint.ip} port {endpoint.port}",
                         _state(be, i, endpoint.state)]
        return commands


def _state(backend: str, index: int, state: str) -> str:
    """``ready`` restores the weight a ``drain`` written as ``weight 0`` in the file took away."""
    name = f"{backend}/s{index + 1}"
    if state == DRAIN:
        return f"set server {name} state drain"
    return f"set server {name} weight 1; set server {name} state ready"

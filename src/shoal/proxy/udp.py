"""UDP Service ports: nftables DNAT from the Service's addresses to its ready endpoints.

HAProxy 2.6 carries TCP only, so the proxy writes one nftables table per proxy
(:func:`table_name`) in the node's network namespace, replaced whole and atomically on every
change (``nft -f -``: one transaction, so no packet sees half a ruleset):

* chain ``services``: per :class:`~shoal.proxy.model.UdpRule` and bound address,
  ``ip daddr A udp dport P dnat ip to numgen random mod N map { i : ip . port }`` - a random
  ready endpoint per new flow (conntrack keeps a flow on its endpoint);
* hooked at ``prerouting`` (from pods, through the bridge's gateway) and ``output`` (from the
  node itself);
* ``postrouting`` masquerades what was DNATed from a non-loopback source, so a pod reaching a
  Service whose endpoint is on its own bridge gets the answer back through the node (no
  hairpin problem without br_netfilter).

Contract and invariants
-----------------------
1. :func:`render` is pure and deterministic (sorted), so an unchanged model gives the same
   text and :meth:`NftUdp.apply` writes nothing.
2. A rule without endpoints is left out: the ClusterIP is local (on ``lo``), so the kernel
   answers ICMP port unreachable at once - never a silent drop.
3. No UDP rule with endpoints, no table.  :meth:`NftUdp.clear` deletes the table (at stop).  An ``nft`` failure raises
   :class:`NftError` with nft's message.
4. Known limit: when an endpoint goes away, flows already tracked keep their old endpoint
   until their conntrack entry expires (kube-proxy deletes those entries; not done here).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable

from shoal.proxy.addresses import netns_command
from shoal.proxy.model import UdpRule

__all__ = ["NftError", "NftUdp", "render", "table_name"]


class NftError(RuntimeError):
    pass


def table_name(owner: str) -> str:
    return "shoal_udp_" + hashlib.sha256(owner.encode()).hexdigest()[:8]


def render(table: str, rules: Iterable[UdpRule]) -> str:
    lines = []
    for rule in sorted(rules, key=lambda r: r.name):
        if not rule.endpoints:
            continue
        targets = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(sorted(rule.endpoints)))
        for address, port in sorted(rule.binds):
            lines.append(f"    ip daddr {address} udp dport {port} dnat ip to numgen random mod "
                         f"{len(rule.endpoints)} map {{ {targets} }}")
    return (f"table ip {table}\nflush table ip {table}\ntable ip {table} {{\n  chain services {{\n"
            + "".join(f"{line}\n" for line in lines) + "  }\n"
            "  chain prerouting { type nat hook prerouting priority dstnat; policy accept; jump services; }\n"
            "  chain output { type nat hook output priority -100; policy accept; jump services; }\n"
            "  chain postrouting { type nat hook postrouting priority srcnat; policy accept; "
            "ct status dnat ip saddr != 127.0.0.0/8 masquerade; }\n}\n")


class NftUdp:
    def __init__(self, owner: str, netns: str | None = None, binary: str = "nft") -> None:
        self.table = table_name(owner)
        self.netns = netns
        self.binary = binary
        self._applied: str | None = None

    async def _nft(self, *args: str, script: str | None = None) -> None:
        argv = netns_command(self.netns, [self.binary, *args])
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate(script.encode() if script is not None else None)
        if proc.returncode != 0:
            raise NftError(f"nft {' '.join(args)}: {out.decode(errors='replace').strip()}")

    async def apply(self, rules: Iterable[UdpRule]) -> bool:
        """Make the table match ``rules``; whether anything was written (invariant 1)."""
        rules = [r for r in rules if r.endpoints]
        if not rules:  # nothing to carry: no table at all
            if self._applied is None:
                return False
            await self.clear()
            return True
        text = render(self.table, rules)
        if text == self._applied:
            return False
        await self._nft("-f", "-", script=text)
        self._applied = text
        return True

    async def clear(self) -> None:
        if self._applied is None:
            return
        self._applied = None
        await self._nft("delete", "table", "ip", self.table)

"""The Service addresses a node's proxy listens on, kept on the node's loopback interface.

This kernel has no dummy interfaces and no IPVS, so each ClusterIP is a ``/32`` on ``lo`` with
a label of this proxy's own (``lo:s`` and 8 hex digits of its run directory, so two Shoal
instances on one host never take each other's addresses away): the node delivers traffic to it
locally (from the node itself and, through the pod bridge's gateway, from pods), where HAProxy
listens.  :func:`add_to_loopback` / :func:`remove_from_loopback` are the one netlink path for
an address on ``lo`` (cluster DNS uses them too, for its own address), and
:func:`netns_command` the one way a node-namespace command is run.

Contract and invariants
-----------------------
1. :meth:`LoopbackAddresses.sync` makes the labelled addresses exactly ``wanted``: adds the
   missing (an address that is already there is fine), removes the labelled ones no longer
   wanted, and never touches an address without the label - those are not Shoal's.
2. It works in the node's network namespace (``netns``, as ``shoal up`` nodes are) or in the
   process's own.
3. Netlink failures other than "already there" / "already gone" raise ``OSError``.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
from collections.abc import Iterable

from pyroute2 import IPRoute, NetNS
from pyroute2.netlink.exceptions import NetlinkError

__all__ = ["LoopbackAddresses", "add_to_loopback", "label_for", "netns_command", "remove_from_loopback"]


def netns_command(netns: str | None, argv: list[str]) -> list[str]:
    """``argv`` run in network namespace ``netns`` (``nsenter --net``, not ``ip netns exec``,
    which hides the cgroup mounts), or as is without one."""
    return ["nsenter", f"--net=/run/netns/{netns}", "--", *argv] if netns else argv


def add_to_loopback(ipr: IPRoute | NetNS, address: str, *, label: str | None = None) -> bool:
    """``address`` as a host route (/32, /128) on ``lo`` of the namespace ``ipr`` is in;
    False when it was there already.  Other netlink failures raise ``OSError``."""
    ip = ipaddress.ip_address(address)
    index = ipr.link_lookup(ifname="lo")[0]
    extra = {"label": label} if label else {}
    try:
        ipr.addr("add", index=index, address=str(ip), prefixlen=ip.max_prefixlen, **extra)
    except NetlinkError as exc:
        if exc.code == errno.EEXIST:
            return False
        raise OSError(exc.code, f"adding {address} to lo: {exc}") from exc
    return True


def remove_from_loopback(ipr: IPRoute | NetNS, address: str) -> None:
    """Take ``address`` off ``lo`` (gone already is fine)."""
    ip = ipaddress.ip_address(address)
    index = ipr.link_lookup(ifname="lo")[0]
    try:
        ipr.addr("del", index=index, address=str(ip), prefixlen=ip.max_prefixlen)
    except NetlinkError as exc:
        if exc.code not in (errno.EADDRNOTAVAIL, errno.ENOENT, errno.ESRCH):
            raise OSError(exc.code, f"removing {address} from lo: {exc}") from exc


def label_for(owner: str) -> str:
    """The address label of the proxy whose run directory is ``owner`` (at most 15 bytes)."""
    return "lo:s" + hashlib.sha256(owner.encode()).hexdigest()[:8]


class LoopbackAddresses:
    def __init__(self, owner: str, netns: str | None = None) -> None:
        self.label = label_for(owner)
        self.netns = netns

    def _open(self) -> IPRoute | NetNS:
        return NetNS(self.netns) if self.netns else IPRoute()

    def current(self) -> set[str]:
        with self._open() as ipr:
            return {str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(label=self.label)}

    def sync(self, wanted: Iterable[str]) -> tuple[set[str], set[str]]:
        """Invariant 1; returns (added, removed)."""
        target = set(wanted)
        with self._open() as ipr:
            have = {str(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(label=self.label)}
            added, removed = target - have, have - target
            for address in sorted(added):
                add_to_loopback(ipr, address, label=self.label)
            for address in sorted(removed):
                remove_from_loopback(ipr, address)
        return added, removed

"""Where cluster DNS listens: the listen address on the loopback interface, sockets in a netns.

:func:`bind_sockets` returns the UDP and TCP sockets of the DNS server, bound to ``host:port``.
When ``host`` is not an address of the network namespace yet and ``add_address`` is true, it
first adds it to the loopback interface ``lo`` as a /32 (with pyroute2; an address that is
already there, EEXIST, is fine, so it is idempotent) — on this machine's kernel there are no
dummy interfaces, and an address on ``lo`` is reachable from the node and from its pods, whose
packets the node routes.  The result tells whether this call added the address, so that
:func:`remove_address` can take away only what it added.

With ``netns`` (a name under ``/run/netns`` or a path) all of it happens inside that network
namespace: a fresh thread enters it with ``setns(2)`` (which moves only the calling thread),
makes the netlink socket and the server sockets there, and ends — a socket keeps the namespace
it was made in, so the server then serves that namespace from the agent's own threads.  No
pooled thread ever changes namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Bound", "bind_sockets", "in_netns", "remove_address"]

CLONE_NEWNET = 0x40000000
#: Tries to find one free port for both UDP and TCP when any port will do.
PORT_ATTEMPTS = 20
T = TypeVar("T")


@dataclass(slots=True)
class Bound:
    udp: socket.socket
    tcp: socket.socket
    #: True when this bind added ``host`` to ``lo`` (remove it again on stop).
    added_address: bool


def _netns_path(netns: str) -> str:
    return netns if netns.startswith("/") else f"/run/netns/{netns}"


def in_netns(netns: str | None, func: Callable[[], T]) -> T:
    """``func()`` run in network namespace ``netns`` (``None``: here, in this thread)."""
    if netns is None:
        return func()
    result: list[T] = []
    failure: list[BaseException] = []

    def enter_and_run() -> None:
        try:
            fd = os.open(_netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns({_netns_path(netns)}): {os.strerror(code)}")
            finally:
                os.close(fd)
            result.append(func())
        except BaseException as exc:  # handed to the caller's thread, raised there
            failure.append(exc)

    thread = threading.Thread(target=enter_and_run, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def _is_local(host: str) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True


def _add_to_loopback(host: str) -> bool:
    """Add ``host``/32 (or /128) to ``lo``; False when it was there already."""
    from pyroute2 import IPRoute

    from shoal.proxy.addresses import add_to_loopback

    with IPRoute() as ipr:
        return add_to_loopback(ipr, host)


def remove_address(host: str, netns: str | None = None) -> None:
    """Take ``host`` off ``lo`` again (gone already is fine)."""
    def remove() -> None:
        from pyroute2 import IPRoute

        from shoal.proxy.addresses import remove_from_loopback

        with IPRoute() as ipr:
            remove_from_loopback(ipr, host)

    in_netns(netns, remove)


def _pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same ``host:port`` (``port`` 0: one the kernel picks)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    try:
        udp.bind((host, port))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((host, udp.getsockname()[1]))
        tcp.listen(128)
        udp.setblocking(False)
        tcp.setblocking(False)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    return udp, tcp


def bind_sockets(host: str, port: int, *, netns: str | None = None, add_address: bool = True) -> Bound:
    """The server's UDP and TCP sockets on ``host:port`` (see the module docstring)."""
    def bind() -> Bound:
        added = False
        if add_address and not _is_local(host):
            added = _add_to_loopback(host)
        try:
            for attempt in range(PORT_ATTEMPTS):
                try:
                    udp, tcp = _pair(host, port)
                except OSError as exc:
                    # Port 0: the UDP port the kernel chose may be taken for TCP; choose again.
                    if port != 0 or exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS - 1:
                        raise
                    continue
                return Bound(udp, tcp, added)
            raise AssertionError("unreachable")
        except BaseException:
            if added:
                remove_address(host)
            raise

    return in_netns(netns, bind)

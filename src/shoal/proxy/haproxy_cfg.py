"""The HAProxy configuration file of a node's service proxy, rendered from the proxy's state.

:func:`render` is pure: the global and default sections (master-worker, the runtime API on a
unix socket whose listeners the master hands to each new worker, so a reload drops no
connection), then one ``frontend`` per :class:`~shoal.proxy.model.Frontend` and one ``backend``
per backend with the servers of its :class:`~shoal.proxy.slots.SlotTable`.

Contract and invariants
-----------------------
1. The file is always the whole truth: a reload (or an HAProxy restart) from it restores every
   endpoint and state the runtime API has set since (runtime changes are lost on reload).
2. Layer-7 backends retry a request whose connection failed or got an empty answer, on
   another server (``retry-on conn-failure empty-response``, ``option redispatch 1``), so a
   replica that died between two health checks costs no failed request; TCP backends
   redispatch failed connections.
3. A backend without a usable server answers at once: 503 in HTTP mode, a closed connection in
   TCP mode; never a hang.
4. Names are the model's (``ns.name.port[.local]``): Kubernetes names are DNS labels, so they
   are valid HAProxy identifiers and never collide.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from shoal.proxy.model import Backend, Frontend
from shoal.proxy.slots import SlotTable

__all__ = ["default_threads", "render", "render_service"]

GLOBAL = """\
global
    master-worker
    nbthread {threads}
    stats socket {admin} mode 600 level admin expose-fd listeners
    stats timeout 2m
    hard-stop-after 30s

defaults
    timeout connect 1s
    timeout client 1h
    timeout server 1h
    timeout client-fin 5s
    timeout tunnel 1h
    retries 3
    option redispatch 1

frontend shoal-alive
    mode http
    bind unix@{alive}
    http-request return status 200

"""

_HTTP_BACKEND = """\
    mode http
    option http-keep-alive
    retry-on conn-failure empty-response
    timeout http-keep-alive 30s
"""


def render_frontend(frontend: Frontend) -> str:
    lines = [f"frontend {frontend.name}", f"    mode {frontend.mode}"]
    if frontend.mode == "http":
        lines += ["    timeout http-request 30s"]
    lines += [f"    bind {ip}:{port}" for ip, port in frontend.binds]
    lines.append(f"    default_backend {frontend.backend}")
    return "\n".join(lines) + "\n\n"


def render_backend(backend: Backend, slots: SlotTable) -> str:
    lines = [f"backend {backend.name}"]
    if backend.mode == "http":
        lines.append(_HTTP_BACKEND.rstrip("\n"))
    else:
        lines.append("    mode tcp")
    lines.append("    balance roundrobin")
    if backend.affinity_seconds:
        lines += [f"    stick-table type ip size 100k expire {backend.affinity_seconds}s", "    stick on src"]
    lines += [f"    {server.line()}" for server in slots.servers()]
    return "\n".join(lines) + "\n\n"


def render_service(frontends: Iterable[Frontend], backends: Iterable[Backend],
                   slots: Mapping[str, SlotTable]) -> str:
    """One Service's sections (cached by the proxy per Service)."""
    return "".join(render_frontend(f) for f in frontends if f.binds) + "".join(
        render_backend(b, slots[b.name]) for b in backends)


def default_threads() -> int:
    """HAProxy's worker threads: half the CPUs, at least one.  The proxy shares its node with
    the pods it serves; on 2 CPUs one thread gave 0.68 of direct throughput against a very fast
    backend where two threads gave 0.43-0.53 (bench/bench_proxy.py)."""
    return max(1, (os.cpu_count() or 1) // 2)


def render(admin_socket: Path, alive_socket: Path, sections: Iterable[str], *, threads: int = 0) -> str:
    """The whole file; ``alive_socket`` is an always-present listener (HAProxy refuses to run
    without one) that answers 200, for the supervisor's liveness check; ``threads`` 0 is
    :func:`default_threads`."""
    return GLOBAL.format(admin=admin_socket, alive=alive_socket,
                         threads=threads or default_threads()) + "".join(sections)

"""The ``shoal`` command line.

``shoal server`` runs the all-in-one control plane (see :mod:`shoal.server`).  Its flags are
a contract other tools and tests rely on:
``--data-dir DIR --bind ADDR --port N --datastore sqlite|etcd://HOST:PORT[,HOST:PORT]
--disable agent,dns,proxy,controllers,scheduler``.  ``shoal agent --server URL --token T`` runs a
node's components (:func:`shoal.components.node_components`) through the same component runner
(:mod:`shoal.runner`) until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from shoal import components
from shoal.api.connlimits import ConnectionLimits
from shoal.server import COMPONENTS, Server, ServerConfig, default_data_dir

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Shoal: a container orchestrator that speaks the Kubernetes API.")


def _check_runtime(runtime: str) -> None:
    from shoal.agent.config import DRIVER_KINDS

    if runtime and runtime not in DRIVER_KINDS:
        raise typer.BadParameter(f"must be {' or '.join(DRIVER_KINDS)}", param_hint="--runtime")


@app.command()
def server(
    data_dir: Annotated[Path | None, typer.Option(
        help="State directory (store, keys, kubeconfig.yaml); default /var/lib/shoal for root.")] = None,
    bind: Annotated[str, typer.Option(help="Address the HTTPS API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS API port.")] = 6443,
    datastore: Annotated[str, typer.Option(help="sqlite, or etcd://HOST:PORT[,HOST:PORT...]")] = "sqlite",
    disable: Annotated[str, typer.Option(help="Comma-separated components not to run: "
                                              "agent,dns,proxy,controllers,scheduler")] = "",
    compact_interval: Annotated[float, typer.Option(
        help="Seconds of history kept for watches and paginated lists before compaction.")] = 300.0,
    node_name: Annotated[str, typer.Option(help="This machine's node name (default: host name).")] = "",
    runtime: Annotated[str, typer.Option(help="Container runtime: podman (default when installed) or "
                                              "process (UNSAFE: no isolation).")] = "",
    kubelet_port: Annotated[int, typer.Option(help="The node agent's API port (logs, exec); 0 = any.")] = 10250,
    cluster_cidr: Annotated[str, typer.Option(help="Pod address range; each node gets a /24.")] = "10.42.0.0/16",
    tls_handshake_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to complete the TLS handshake.")] = ConnectionLimits.tls_handshake_timeout,
    request_header_timeout: Annotated[float, typer.Option(
        help="Seconds a client has to send a request's headers.")] = ConnectionLimits.header_timeout,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a keep-alive connection may wait for its next request.")] = ConnectionLimits.idle_timeout,
    max_connections: Annotated[int, typer.Option(
        help="Concurrent connections in all (kept below the open-file limit).")] = ConnectionLimits.max_connections,
    max_connections_per_address: Annotated[int, typer.Option(
        help="Concurrent connections from one client address.")] = ConnectionLimits.per_address,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Run the all-in-one Shoal server (API, store, controllers, scheduler, node agent)."""
    disabled = frozenset(part.strip() for part in disable.split(",") if part.strip())
    unknown = disabled - COMPONENTS
    if unknown:
        raise typer.BadParameter(f"unknown components: {', '.join(sorted(unknown))}", param_hint="--disable")
    _check_runtime(runtime)
    if datastore != "sqlite" and not datastore.startswith("etcd://"):
        raise typer.BadParameter("must be sqlite or etcd://HOST:PORT[,HOST:PORT]", param_hint="--datastore")
    try:
        limits = ConnectionLimits(tls_handshake_timeout=tls_handshake_timeout, header_timeout=request_header_timeout,
                                  idle_timeout=idle_timeout, max_connections=max_connections,
                                  per_address=max_connections_per_address)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=data_dir or default_data_dir(), bind=bind, port=port,
                          datastore=datastore, disable=disabled, compact_interval=compact_interval,
                          node_name=node_name, runtime=runtime, kubelet_port=kubelet_port,
                          cluster_cidr=cluster_cidr, connection_limits=limits)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop it
        asyncio.run(Server(config).run())


@app.command()
def agent(
    server: Annotated[str, typer.Option(help="The API server URL, e.g. https://10.0.0.1:6443.")],
    token: Annotated[str, typer.Option(help="A bearer token for the API server.")],
    ca_file: Annotated[Path | None, typer.Option(help="The cluster CA certificate (DATA/tls/ca.crt).")] = None,
    insecure_skip_tls_verify: Annotated[bool, typer.Option(
        help="Do not verify the API server's certificate (unsafe; for trying things out).")] = False,
    node_name: Annotated[str, typer.Option(help="Node name (default: host name).")] = "",
    data_dir: Annotated[Path, typer.Option(help="The agent's state directory.")] = Path("/var/lib/shoal-agent"),
    runtime: Annotated[str, typer.Option(help="podman or process (UNSAFE: no isolation).")] = "",
    node_ip: Annotated[str, typer.Option(help="The address the API server reaches this node at.")] = "127.0.0.1",
    kubelet_port: Annotated[int, typer.Option(help="The agent's API port (logs, exec); 0 = any.")] = 10250,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Join this machine to a Shoal cluster as a node and run its pods."""
    import socket

    from shoal import runner
    from shoal.agent.config import AgentConfig
    from shoal.client.rest import ApiClient

    if ca_file is None and not insecure_skip_tls_verify:
        raise typer.BadParameter("give the cluster CA (--ca-file) or --insecure-skip-tls-verify",
                                 param_hint="--ca-file")
    _check_runtime(runtime)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = AgentConfig(node_name=node_name or socket.gethostname(), data_dir=data_dir, runtime=runtime,
                         node_ip=node_ip, kubelet_port=kubelet_port,
                         ca_pem=ca_file.read_bytes() if ca_file is not None else None)

    def connect() -> ApiClient:
        return ApiClient(server, token, ca_file=str(ca_file) if ca_file else None,
                         insecure=insecure_skip_tls_verify, user_agent="shoal-agent")

    async def main_loop() -> None:
        asyncio.get_running_loop().call_later(components.HEAP_SETTLE_SECONDS, components.freeze_heap)
        await runner.run_process(components.node_components(config, connect))

    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop at once
        asyncio.run(main_loop())


@app.command("demo-image")
def demo_image() -> None:
    """Build the offline demo image (busybox web server on port 8080) if missing; print its name."""
    from shoal.agent.runtime.demo_image import DEMO_IMAGE, ensure_demo_image_sync

    ensure_demo_image_sync()
    typer.echo(DEMO_IMAGE)


@app.command()
def version() -> None:
    """Print Shoal's version."""
    from importlib.metadata import version as dist_version

    typer.echo(f"shoal {dist_version('shoal')} (Kubernetes API v1.32)")


def main() -> None:
    app()

"""The ``shoal`` command line.

``shoal server`` runs the all-in-one control plane (see :mod:`shoal.server`).  Its flags are
a contract other tools and tests rely on:
``--data-dir DIR --bind ADDR --port N --datastore sqlite|etcd://HOST:PORT[,HOST:PORT]
--disable agent,proxy,controllers,scheduler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from shoal.server import COMPONENTS, Server, ServerConfig, default_data_dir

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Shoal: a container orchestrator that speaks the Kubernetes API.")


@app.command()
def server(
    data_dir: Annotated[Path | None, typer.Option(
        help="State directory (store, keys, kubeconfig.yaml); default /var/lib/shoal for root.")] = None,
    bind: Annotated[str, typer.Option(help="Address the HTTPS API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTPS API port.")] = 6443,
    datastore: Annotated[str, typer.Option(help="sqlite, or etcd://HOST:PORT[,HOST:PORT...]")] = "sqlite",
    disable: Annotated[str, typer.Option(help="Comma-separated components not to run: "
                                              "agent,proxy,controllers,scheduler")] = "",
    compact_interval: Annotated[float, typer.Option(
        help="Seconds of history kept for watches and paginated lists before compaction.")] = 300.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    """Run the all-in-one Shoal server (API, store, controllers) on this machine."""
    disabled = frozenset(part.strip() for part in disable.split(",") if part.strip())
    unknown = disabled - COMPONENTS
    if unknown:
        raise typer.BadParameter(f"unknown components: {', '.join(sorted(unknown))}", param_hint="--disable")
    if datastore != "sqlite" and not datastore.startswith("etcd://"):
        raise typer.BadParameter("must be sqlite or etcd://HOST:PORT[,HOST:PORT]", param_hint="--datastore")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(data_dir=data_dir or default_data_dir(), bind=bind, port=port,
                          datastore=datastore, disable=disabled, compact_interval=compact_interval)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is the normal way to stop it
        asyncio.run(Server(config).run())


@app.command()
def version() -> None:
    """Print Shoal's version."""
    from importlib.metadata import version as dist_version

    typer.echo(f"shoal {dist_version('shoal')} (Kubernetes API v1.32)")


def main() -> None:
    app()

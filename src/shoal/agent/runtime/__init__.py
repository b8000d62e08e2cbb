"""Container runtime drivers for the node agent, and the one factory that builds them.

:func:`make_driver` builds the :class:`~shoal.agent.runtime.driver.RuntimeDriver` an
:class:`~shoal.agent.config.AgentConfig` asks for; the protocol, its data types and errors live
in :mod:`shoal.agent.runtime.driver`.

Contract and invariants
-----------------------
* The driver is complete when returned: nothing of it is changed from outside afterwards.  A
  podman driver is built without a subnet (``needs_pod_cidr`` is True); the agent hands it the
  node's podCIDR through the protocol's ``configure_network`` once the control plane assigned it.
* podman: the bridge network ``config.podman_network`` (default ``shoal-<node>``), every object
  labelled ``shoal.node=<node>``, warm-pod claims under ``<data_dir>/podman``;
  process: state under ``<data_dir>/process-runtime``.
* ``config.runtime == ""`` resolves to podman when ``config.podman_binary`` is installed, else to
  the process runtime with a warning (:func:`default_kind`).
* Drivers are imported lazily, so using one never imports the other.
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from shoal.agent.config import DRIVER_KINDS
from shoal.agent.runtime.driver import RuntimeDriver

if TYPE_CHECKING:
    from shoal.agent.config import AgentConfig

__all__ = ["DRIVER_KINDS", "default_kind", "make_driver"]

log = logging.getLogger(__name__)


def default_kind(podman_binary: str = "podman") -> str:
    """``podman`` when ``podman_binary`` is installed, else ``process`` (with a warning)."""
    if shutil.which(podman_binary):
        return "podman"
    log.warning("podman is not installed: using the UNSAFE process runtime (no isolation)")
    return "process"


def make_driver(config: AgentConfig) -> RuntimeDriver:
    """The runtime driver for the node ``config`` describes (see the module docstring)."""
    kind = config.runtime or default_kind(config.podman_binary)
    if kind == "podman":
        from shoal.agent.runtime.podman import PodmanDriver

        return PodmanDriver(config.podman_network or f"shoal-{config.node_name}", "",
                            podman=config.podman_binary, root=config.podman_root,
                            runroot=config.podman_runroot, netns=config.netns,
                            labels={"shoal.node": config.node_name}, state_dir=config.data_dir / "podman",
                            warm_sandboxes=config.warm_sandboxes)
    if kind == "process":
        from shoal.agent.runtime.process import ProcessDriver

        return ProcessDriver(config.data_dir / "process-runtime")
    raise AssertionError(f"AgentConfig let through runtime {kind!r}")  # validated in AgentConfig

"""Container runtime drivers for the node agent.

``make_driver("podman", network=..., subnet=...)`` or ``make_driver("process", state_dir=...)``
builds a :class:`~shoal.agent.runtime.driver.RuntimeDriver`; the protocol, its data types and
errors live in :mod:`shoal.agent.runtime.driver`.  Drivers are imported lazily so that using one
never imports the other.
"""

from __future__ import annotations

from typing import Any

from shoal.agent.runtime.driver import RuntimeDriver

DRIVER_KINDS = ("podman", "process")


def make_driver(kind: str, **opts: Any) -> RuntimeDriver:
    """A driver of ``kind`` ("podman" or "process") built with ``opts`` as keyword arguments.

    podman: ``network``, ``subnet`` and optionally ``gateway``, ``podman``, ``root``, ``runroot``,
    ``allow_privileged``, ``netns``, ``labels``, ``pull_timeout``;
    process: ``state_dir``.  Raises ValueError for an unknown kind.
    """
    if kind == "podman":
        from shoal.agent.runtime.podman import PodmanDriver

        return PodmanDriver(**opts)
    if kind == "process":
        from pathlib import Path

        from shoal.agent.runtime.process import ProcessDriver

        state_dir = opts.pop("state_dir")
        return ProcessDriver(Path(state_dir), **opts)
    raise ValueError(f"unknown runtime driver {kind!r} (expected one of {', '.join(DRIVER_KINDS)})")


__all__ = ["DRIVER_KINDS", "make_driver"]

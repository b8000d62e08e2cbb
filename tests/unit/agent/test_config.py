"""AgentConfig: defaults, immutability and the field that a bad value names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from shoal.agent.config import WARM_SANDBOXES, AgentConfig, AgentConfigError


def test_defaults_and_immutability(tmp_path: Path) -> None:
    config = AgentConfig(node_name="n1", data_dir=tmp_path, labels={"zone": "a"})
    assert (config.node_ip, config.kubelet_port, config.runtime, config.lease_duration) == ("127.0.0.1", 10250, "", 10)
    assert config.warm_sandboxes == WARM_SANDBOXES and config.ca_pem is None and not config.control_plane
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.node_name = "n2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.labels["zone"] = "b"  # type: ignore[index]
    assert hash(config) == hash(dataclasses.replace(config))
    moved = dataclasses.replace(config, kubelet_port=0)
    assert (moved.kubelet_port, moved.labels, config.kubelet_port) == (0, {"zone": "a"}, 10250)


@pytest.mark.parametrize(("change", "field"), [
    ({"node_name": ""}, "node_name"),
    ({"runtime": "docker"}, "runtime"),
    ({"kubelet_port": 70000}, "kubelet_port"),
    ({"kubelet_port": -1}, "kubelet_port"),
    ({"warm_sandboxes": -1}, "warm_sandboxes"),
    ({"lease_duration": 0}, "lease_duration"),
    ({"relist_interval": -0.5}, "relist_interval"),
    ({"backoff_initial": 20.0, "backoff_max": 10.0}, "backoff_initial"),
])
def test_a_bad_value_names_its_field(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    with pytest.raises(AgentConfigError, match=f"agent config: {field}: ") as raised:
        AgentConfig(**{"node_name": "n1", "data_dir": tmp_path, **change})
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)

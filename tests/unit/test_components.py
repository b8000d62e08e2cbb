"""The component catalogue: its names, lazy imports, and freeze_heap (what is alive is moved out
of the collector's reach, garbage is collected first)."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from shoal import components
from shoal.agent.config import AgentConfig


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_heap_collects_then_freezes() -> None:
    Cycle()  # garbage (a reference cycle): collected, not frozen
    alive = [Cycle()]
    try:
        components.freeze_heap()
        assert gc.get_freeze_count() > 0
        assert not [o for o in gc.get_objects() if type(o) is Cycle]  # frozen objects are not listed
        assert alive[0].me is alive[0]
    finally:
        gc.unfreeze()
    assert len([o for o in gc.get_objects() if type(o) is Cycle]) == 1  # only the live one is left


def test_the_catalogue_names_what_disable_accepts(tmp_path: Path) -> None:
    from shoal.server import COMPONENTS

    connect = components.kubeconfig_client(tmp_path / "kubeconfig.yaml")
    node = components.node_components(AgentConfig(node_name="n1", data_dir=tmp_path), connect)
    assert [c.name for c in node] == ["agent", "proxy", "dns"]  # what every node runs (shoal agent, shoal server)
    catalogue = [components.controllers(connect, "10.42.0.0/16"), components.scheduler(connect), *node]
    assert {c.name for c in catalogue} <= COMPONENTS


def test_the_wiring_imports_no_component_until_it_runs() -> None:
    code = ("import sys, shoal.components, shoal.runner, shoal.agent.config\n"
            "loaded = [m for m in sys.modules if m.startswith(('shoal.controllers', 'shoal.scheduler', "
            "'shoal.agent.agent', 'shoal.agent.runtime', 'shoal.proxy', 'shoal.api', 'shoal.store'))]\n"
            "print(loaded)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"

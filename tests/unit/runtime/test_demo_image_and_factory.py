"""The demo image's root filesystem, its name matching, ``make_driver`` and ``configure_network``."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from shoal.agent.config import AgentConfig
from shoal.agent.runtime import DRIVER_KINDS, make_driver
from shoal.agent.runtime.demo_image import (
    APPLETS,
    DEMO_IMAGE,
    DEMO_IMAGE_V2,
    build_rootfs_tar,
    is_demo_image,
    recipe_hash,
)
from shoal.agent.runtime.driver import RuntimeDriverError
from shoal.agent.runtime.podman import PodmanDriver
from shoal.agent.runtime.process import ProcessDriver


def test_rootfs_has_busybox_applets_and_scripts(tmp_path: Path) -> None:
    tar_path = tmp_path / "rootfs.tar"
    build_rootfs_tar(tar_path)
    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["bin/busybox"].isfile() and members["bin/busybox"].mode & 0o111
        for applet in ("sh", "httpd", "hostname", "cat", "sleep", "wget", "nc", "dd", "yes", *APPLETS):
            assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
        serve = tar.extractfile("bin/serve")
        assert serve is not None
        script = serve.read().decode()
        assert "httpd -f -p" in script and "trap" in script and "hostname" in script
        assert members["tmp"].mode == 0o1777
    assert len(recipe_hash()) == 16


@pytest.mark.parametrize(("image", "expected"), [
    (DEMO_IMAGE, True), (DEMO_IMAGE_V2, True), ("shoal-demo:1", True), ("localhost/shoal-demo", True),
    ("localhost/shoal-demo@sha256:" + "0" * 64, True), ("docker.io/library/nginx:1", False),
    ("localhost/shoal-demo-other:1", False),
])
def test_is_demo_image(image: str, expected: bool) -> None:
    assert is_demo_image(image) is expected


async def test_make_driver_builds_the_configured_runtime(tmp_path: Path) -> None:
    assert DRIVER_KINDS == ("podman", "process")
    process = make_driver(AgentConfig(node_name="n1", data_dir=tmp_path, runtime="process"))
    assert isinstance(process, ProcessDriver) and process.isolated is False
    assert process.state.root == tmp_path / "process-runtime" and process.needs_pod_cidr is False
    await process.configure_network("10.42.3.0/24")  # no pod network: nothing to do
    podman = make_driver(AgentConfig(node_name="n1", data_dir=tmp_path, runtime="podman", warm_sandboxes=2,
                                     podman_root="/r", podman_runroot="/rr"))
    assert isinstance(podman, PodmanDriver) and podman.isolated is True
    try:
        # No subnet yet: the agent hands it the podCIDR through configure_network.
        assert (podman.network, podman.subnet, podman.needs_pod_cidr) == ("shoal-n1", "", True)
        assert podman.scope_labels == {"shoal.node": "n1"}
        assert podman.claims is not None and podman.pool.size == 2
        assert podman.cli.argv("ps") == ["podman", "--runtime", "runc", "--root", "/r", "--runroot", "/rr", "ps"]
        named = make_driver(AgentConfig(node_name="n1", data_dir=tmp_path, runtime="podman",
                                        podman_network="custom"))
        assert isinstance(named, PodmanDriver) and named.network == "custom"
        await named.close()
    finally:
        await podman.close()


def test_make_driver_resolves_the_default_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    driver = make_driver(AgentConfig(node_name="n1", data_dir=tmp_path, podman_binary="no-such-podman"))
    assert isinstance(driver, ProcessDriver)


async def test_podman_configure_network_refuses_another_subnet() -> None:
    driver = PodmanDriver("n", "10.99.250.0/24")
    try:
        assert driver.needs_pod_cidr is False
        with pytest.raises(RuntimeDriverError, match=r"configured on 10\.99\.250\.0/24"):
            await driver.configure_network("10.42.0.0/24")  # refused before podman is asked anything
        assert driver.subnet == "10.99.250.0/24"
    finally:
        await driver.close()

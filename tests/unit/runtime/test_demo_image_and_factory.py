"""The demo image's root filesystem, its name matching, and ``make_driver``."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from shoal.agent.runtime import DRIVER_KINDS, make_driver
from shoal.agent.runtime.demo_image import (
    APPLETS,
    DEMO_IMAGE,
    DEMO_IMAGE_V2,
    build_rootfs_tar,
    is_demo_image,
    recipe_hash,
)
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


def test_make_driver(tmp_path: Path) -> None:
    assert DRIVER_KINDS == ("podman", "process")
    driver = make_driver("process", state_dir=str(tmp_path))
    assert isinstance(driver, ProcessDriver) and driver.isolated is False
    podman = make_driver("podman", network="n", subnet="10.99.250.0/24")
    assert podman.name == "podman" and podman.isolated is True
    with pytest.raises(ValueError, match="unknown runtime driver"):
        make_driver("docker")

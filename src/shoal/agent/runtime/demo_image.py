"""The offline demo image: busybox-static packed into an image with ``podman import``.

No registry is reachable, so Shoal builds its own tiny image from Debian's busybox-static
(``/usr/bin/busybox``): a root filesystem with ``/bin/busybox``, symlinks for the applets
tests and probes use, ``/etc/passwd``/``/etc/group``, and two scripts:

* ``/bin/serve`` (the image CMD): writes ``$(hostname)`` to ``/tmp/www/index.html`` and runs
  ``httpd -f -p ${PORT:-8080}``; it traps SIGTERM, stops httpd and exits 0, so a pod stops
  gracefully instead of waiting for SIGKILL (PID 1 ignores signals it does not handle).
* ``/bin/pause``: sleeps until SIGTERM; the podman driver uses it as the pod's infra command
  (this image doubles as the infra image, since no pause image can be pulled).

Invariants: :data:`DEMO_IMAGE` and :data:`DEMO_IMAGE_V2` name the same image; the image
carries the label ``shoal.demo.hash`` (a hash of its content recipe) and is rebuilt only when
it is missing or the recipe changed, so :func:`ensure_demo_image` is idempotent and takes
one ``podman image inspect`` when the image is present.  Builds are serialized per podman
storage with a file lock, so parallel callers do not race.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import io
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import orjson

from shoal.agent.runtime.podman_cmd import PodmanCli, PodmanError

DEMO_IMAGE = "localhost/shoal-demo:1"
DEMO_IMAGE_V2 = "localhost/shoal-demo:2"
DEMO_REPOSITORY = "localhost/shoal-demo"
DEMO_PORT = 8080
PAUSE_COMMAND = "/bin/pause"
BUSYBOX = "/usr/bin/busybox"

APPLETS = (
    "sh", "ash", "httpd", "hostname", "cat", "sleep", "echo", "ls", "env", "wget", "nc", "kill",
    "ps", "head", "tail", "dd", "yes", "true", "false", "id", "mkdir", "rm", "touch", "grep",
    "sed", "awk", "date", "ip", "ping", "test", "[", "printf", "wc", "tr", "uname", "free", "top",
    "timeout", "seq", "sort", "cut", "vi", "mv", "cp", "ln", "pwd", "whoami", "nslookup", "stat",
)

SERVE_SCRIPT = """#!/bin/sh
# Serves this pod's hostname over HTTP; exits 0 on SIGTERM/SIGINT.
mkdir -p /tmp/www
hostname > /tmp/www/index.html
httpd -f -p "${PORT:-8080}" -h /tmp/www &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT
wait "$pid"
"""

PAUSE_SCRIPT = """#!/bin/sh
# Infra container: holds the pod's namespaces until SIGTERM.
trap 'exit 0' TERM INT HUP
while :; do sleep 3600 & wait $!; done
"""

_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnobody:x:65534:\n",
    "etc/hostname": "shoal-demo\n",
    "bin/serve": SERVE_SCRIPT,
    "bin/pause": PAUSE_SCRIPT,
}

_DIRS = ("bin", "etc", "tmp", "root", "www", "proc", "sys", "dev", "run", "var", "var/tmp")


@functools.cache
def recipe_hash(busybox: str = BUSYBOX) -> str:
    """A short hash of everything the image is made of (rebuild when it changes)."""
    digest = hashlib.sha256()
    digest.update(Path(busybox).read_bytes())
    for name in sorted(_FILES):
        digest.update(name.encode() + b"\0" + _FILES[name].encode() + b"\0")
    digest.update("\0".join(APPLETS).encode())
    return digest.hexdigest()[:16]


def build_rootfs_tar(dest: Path, busybox: str = BUSYBOX) -> None:
    """Write the image's root filesystem as a tar file at ``dest``."""
    with tarfile.open(dest, "w") as tar:
        for directory in _DIRS:
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory in ("tmp", "var/tmp") else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox", recursive=False)
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, content in _FILES.items():
            data = content.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))


async def ensure_demo_image(podman: str = "podman", *, global_args: Sequence[str] = (),
                            cli: PodmanCli | None = None) -> str:
    """Build the demo image if missing or stale; returns its image ID (``sha256:...``).

    ``cli`` (a configured :class:`PodmanCli`) takes precedence over ``podman``/``global_args``;
    ``global_args`` may carry ``--root``/``--runroot`` for a node's own storage.
    """
    runner = cli or _cli_from_args(podman, global_args)
    wanted = recipe_hash()
    current = await _image_id_if_current(runner, wanted)
    if current is not None:
        return current
    lock_path = Path(tempfile.gettempdir()) / f"shoal-demo-image-{_storage_key(runner)}.lock"
    lock = await asyncio.to_thread(_acquire_lock, lock_path)
    try:
        current = await _image_id_if_current(runner, wanted)
        if current is not None:
            return current
        with tempfile.TemporaryDirectory(prefix="shoal-demo-") as tmp:
            tar_path = Path(tmp) / "rootfs.tar"
            await asyncio.to_thread(build_rootfs_tar, tar_path)
            await runner.run(
                "import", "--quiet",
                "--change", 'CMD ["/bin/serve"]',
                "--change", f"EXPOSE {DEMO_PORT}",
                "--change", "ENV PATH=/bin",
                "--change", "WORKDIR /",
                "--change", f"LABEL shoal.demo.hash={wanted}",
                "--message", "shoal demo image (busybox-static)",
                str(tar_path), DEMO_IMAGE,
            )
        await runner.run("tag", DEMO_IMAGE, DEMO_IMAGE_V2)
        found = await _image_id_if_current(runner, wanted)
        if found is None:
            raise PodmanError(["import"], 0, f"{DEMO_IMAGE} not found after import")
        return found
    finally:
        lock.close()


def ensure_demo_image_sync(podman: str = "podman", *, global_args: Sequence[str] = ()) -> str:
    """Blocking wrapper of :func:`ensure_demo_image` for the CLI."""
    return asyncio.run(ensure_demo_image(podman, global_args=global_args))


def is_demo_image(image: str) -> bool:
    return image.split("@", 1)[0].rsplit(":", 1)[0] in (DEMO_REPOSITORY, "shoal-demo")


async def _image_id_if_current(cli: PodmanCli, wanted: str) -> str | None:
    """The image ID when both tags exist and carry the wanted recipe hash, else None."""
    result = await cli.run("image", "inspect", "--format", "json", DEMO_IMAGE, DEMO_IMAGE_V2, check=False)
    if result.returncode != 0:
        return None
    images = orjson.loads(result.stdout)
    ids = {img["Id"] for img in images}
    labels = (images[0].get("Config") or {}).get("Labels") or {}
    if len(ids) != 1 or labels.get("shoal.demo.hash") != wanted:
        return None
    return f"sha256:{ids.pop()}"


def _cli_from_args(podman: str, global_args: Sequence[str]) -> PodmanCli:
    args = list(global_args)
    root = _flag_value(args, "--root")
    runroot = _flag_value(args, "--runroot")
    return PodmanCli(podman, root=root, runroot=runroot)


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _storage_key(cli: PodmanCli) -> str:
    return hashlib.sha256(f"{cli.root}|{cli.runroot}".encode()).hexdigest()[:12]


def _acquire_lock(path: Path) -> io.TextIOWrapper:
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
    except BaseException:
        handle.close()
        raise
    return handle


def busybox_path() -> str:
    """The busybox binary (the process driver runs the demo with it)."""
    found = shutil.which("busybox") or (BUSYBOX if Path(BUSYBOX).exists() else None)
    if found is None:
        raise FileNotFoundError("busybox not found (install busybox-static)")
    return found

"""A small, really full disk for tests: a tmpfs mounted in a test's directory (the tests run as root).

:func:`tmpfs` mounts one (mode 0700) and unmounts it afterwards, even when the test fails
(lazily if a file on it is still open);
:func:`fill` writes a filler file until the file system has not one byte left and returns
its path (delete it to free the space again).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fill", "tmpfs"]


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of ``size`` (mount's syntax: ``16m``) mounted on the new directory ``path``."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            # Still in use (a file left open by a failed test): detach it now; the kernel frees
            # it when the last file is closed.
            subprocess.run(["umount", "--lazy", str(path)], check=True)


def fill(directory: Path) -> Path:
    """Write ``directory/filler`` until the file system has no byte left; returns its path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            for _ in range(1 << 16):  # bounded: 64 GiB at most
                try:
                    if os.write(fd, block) < chunk:
                        continue
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    if os.statvfs(directory).f_bavail != 0:
        raise AssertionError(f"{directory} still has free blocks after filling it")
    return filler

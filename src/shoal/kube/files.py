"""Atomic file writes: a reader sees the old content or the new, never a part.

:func:`atomic_write` writes to a unique temporary file in the target's directory, gives it its
mode (default 0600: private unless asked otherwise) before any data is written, so a secret is
never readable by others even briefly, and renames it over the target with ``os.replace``.  Invariants:

1. The target is replaced whole or not at all; on any error the temporary file is removed and
   the target is untouched.
2. With ``fsync=True`` (the default) the data is on disk before the rename, so a crash right
   after the call leaves the new content; ``fsync=False`` is for state that is rebuilt anyway
   and written often (a crash may then leave the old content, never a torn file).
3. Missing parent directories are created.
4. Writers in several threads or processes never share a temporary file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_json"]


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o600, *,
                 fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` (str is written as UTF-8) atomically, with ``mode``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            if fsync:
                tmp.flush()
                os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], data: Any, mode: int = 0o600, *, fsync: bool = True) -> None:
    """:func:`atomic_write` of ``data`` as JSON."""
    atomic_write(path, json.dumps(data), mode=mode, fsync=fsync)

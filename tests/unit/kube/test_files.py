"""Atomic file writes (shoal.kube.files): whole replacement, the mode from the start, no leftovers."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from shoal.kube.files import atomic_write, atomic_write_json


def test_write_creates_parents_and_replaces_the_content(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "file"
    atomic_write(target, b"one")
    atomic_write(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["file"]  # no temporary file left


def test_mode_is_private_by_default_and_as_asked(tmp_path: Path) -> None:
    atomic_write(tmp_path / "secret", b"k")
    atomic_write(tmp_path / "public", b"p", 0o644)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "public").stat().st_mode) == 0o644


def test_replacing_keeps_no_old_inode(tmp_path: Path) -> None:
    target = tmp_path / "file"
    atomic_write(target, b"old")
    reader = target.open("rb")  # a reader of the old file keeps reading the old content
    atomic_write(target, b"new", fsync=False)
    assert reader.read() == b"old"
    reader.close()
    assert target.read_bytes() == b"new"


def test_a_failed_write_leaves_the_target_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "file"
    atomic_write(target, b"old")

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_json(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "state.json", {"a": [1, 2]}, 0o644, fsync=False)
    assert json.loads((tmp_path / "state.json").read_text()) == {"a": [1, 2]}

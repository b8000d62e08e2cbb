"""Volumes as host directories: emptyDir, configMap/secret files (items, modes, updates), errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from shoal.agent.envs import SourceCache
from shoal.agent.volumes import VolumeError, VolumeManager
from shoal.kube.objects import Obj


def _pod(*volumes: Obj) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "labels": {"app": "web"}},
            "spec": {"volumes": list(volumes)}}


def _sources(data: dict[str, str] | None = None) -> SourceCache:
    objects: list[Obj] = [{"kind": "Secret", "metadata": {"name": "sec"},
                           "data": {"token": base64.b64encode(b"t0k").decode()}}]
    if data is not None:
        objects.append({"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
    return SourceCache(None, "ns", objects=objects)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o644)


def _files(path: str) -> dict[str, tuple[str, int]]:
    root = Path(path)
    return {str(p.relative_to(root)): (p.read_text(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*")) if p.is_file()}


async def test_empty_dir_config_map_secret_downward(tmp_path: Path) -> None:
    manager = VolumeManager(tmp_path, node_ip="10.0.0.1")
    pod = _pod({"name": "scratch", "emptyDir": {}},
               {"name": "conf", "configMap": {"name": "cfg", "defaultMode": 0o640}},
               {"name": "some", "configMap": {"name": "cfg",
                                              "items": [{"key": "b", "path": "sub/b.txt", "mode": 0o600}]}},
               {"name": "creds", "secret": {"secretName": "sec", "defaultMode": 0o400}},
               {"name": "info", "downwardAPI": {"items": [
                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}})
    volumes = await manager.prepare(pod, _sources({"a": "1", "b": "2"}))
    scratch = Path(volumes["scratch"].path)
    assert scratch.is_relative_to(tmp_path / "pods" / "uid-1") and not volumes["scratch"].read_only
    assert _files(str(scratch)) == {}
    assert _files(volumes["conf"].path) == {"a": ("1", 0o640), "b": ("2", 0o640)}
    assert volumes["conf"].read_only
    assert _files(volumes["some"].path) == {"sub/b.txt": ("2", 0o600)}
    assert _files(volumes["creds"].path) == {"token": ("t0k", 0o400)}
    assert _files(volumes["info"].path) == {"labels": ('app="web"', 0o644), "name": ("p", 0o644)}

    # An update rewrites changed keys in place and drops removed ones; emptyDir content stays.
    _write(scratch / "kept", "data")
    pod["spec"]["volumes"] = [v for v in pod["spec"]["volumes"] if v["name"] != "some"]
    volumes = await manager.prepare(pod, _sources({"a": "10"}))
    assert _files(volumes["conf"].path) == {"a": ("10", 0o640)}
    assert _files(str(scratch)) == {"kept": ("data", 0o644)}
    assert manager.known_pods() == ["uid-1"]
    manager.cleanup("uid-1")
    assert manager.known_pods() == []


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "v", "configMap": {"name": "missing"}}, 'configmap "missing" not found'),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "z"}]}},
     "configmap references non-existent config key: zz"),
    ({"name": "v", "secret": {"secretName": "nope"}}, 'secret "nope" not found'),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "../escape"}]}}, "invalid path"),
    ({"name": "v", "persistentVolumeClaim": {"claimName": "c"}}, "unsupported volume type persistentVolumeClaim"),
])
async def test_volume_errors(tmp_path: Path, volume: Obj, message: str) -> None:
    manager = VolumeManager(tmp_path, node_ip="10.0.0.1")
    with pytest.raises(VolumeError) as caught:
        await manager.prepare(_pod(volume), _sources({"a": "1"}))
    assert str(caught.value).startswith('MountVolume.SetUp failed for volume "v" : ')
    assert message in str(caught.value)


async def test_optional_sources_make_empty_volumes(tmp_path: Path) -> None:
    manager = VolumeManager(tmp_path, node_ip="10.0.0.1")
    volumes = await manager.prepare(_pod(
        {"name": "c", "configMap": {"name": "missing", "optional": True}},
        {"name": "p", "projected": {"defaultMode": 0o644, "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}},
            {"secret": {"name": "sec"}}]}}), _sources({"a": "1"}))
    assert _files(volumes["c"].path) == {}
    assert _files(volumes["p"].path) == {"a": ("1", 0o644), "token": ("t0k", 0o644)}


async def test_host_path(tmp_path: Path) -> None:
    manager = VolumeManager(tmp_path / "data", node_ip="10.0.0.1")
    target = tmp_path / "host" / "dir"
    volumes = await manager.prepare(_pod({"name": "h", "hostPath": {"path": str(target), "type": "DirectoryOrCreate"}}),
                                    _sources())
    assert volumes["h"].path == str(target) and target.is_dir()
    with pytest.raises(VolumeError, match="not a file"):
        await manager.prepare(_pod({"name": "h", "hostPath": {"path": str(target), "type": "File"}}), _sources())

"""Pod volumes as host directories under the agent's data dir.

Layout: ``<data_dir>/pods/<pod uid>/volumes/<type>/<volume name>``.  :meth:`VolumeManager.prepare`
makes every volume of a pod ready and returns where each one lives on the host:

* ``emptyDir``: an empty directory (mode 0777), created once and kept across container restarts
  (``medium: Memory`` is a plain directory too);
* ``configMap`` / ``secret``: one file per key (or per ``items`` entry, at its ``path``), mode
  ``items[].mode`` or ``defaultMode``; mounted read-only.  Every sync rewrites changed files in
  place (write to a temporary name, then rename), so a running container sees updates, and
  removes files whose key went away.  A missing object (or an ``items`` key that does not exist)
  raises :class:`VolumeError` unless ``optional: true``, which makes an empty volume;
* ``downwardAPI``: files from ``fieldRef`` (pod metadata) items; ``projected``: the configMap,
  secret and downwardAPI sources merged into one directory (service account tokens are not
  projected);
* ``hostPath``: the host path itself (created for ``DirectoryOrCreate``).

Other volume types raise :class:`VolumeError`.  :meth:`VolumeManager.cleanup` removes a pod's
directory once its containers are gone.  Invariant: nothing outside ``<data_dir>/pods/<uid>`` is
ever written, except a ``hostPath`` the pod asked for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shoal.agent.envs import EnvError, SourceCache, field_value
from shoal.kube.files import atomic_write
from shoal.kube.objects import Obj

__all__ = ["HostVolume", "VolumeError", "VolumeManager"]

class VolumeError(Exception):
    """A volume could not be set up (reported as a ``FailedMount`` event)."""

    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


@dataclass(frozen=True, slots=True)
class HostVolume:
    path: str
    read_only: bool = False


def _safe_relative(path: str, volume: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise VolumeError(volume, f"invalid path {path!r}: must be relative and must not contain '..'")
    return rel


def _sync_files(directory: Path, files: dict[PurePosixPath, tuple[bytes, int]]) -> None:
    """Make ``directory`` hold exactly ``files`` (relative path -> (content, mode))."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {directory.joinpath(*rel.parts) for rel in files}
    for rel, (content, mode) in files.items():
        target = directory.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_file() and target.read_bytes() == content:
            if (target.stat().st_mode & 0o7777) != mode:
                target.chmod(mode)
            continue
        atomic_write(target, content, mode, fsync=False)
    for existing in sorted(directory.rglob("*"), reverse=True):
        if existing.is_file() and existing not in wanted:
            existing.unlink()
        elif existing.is_dir() and not any(existing.iterdir()):
            existing.rmdir()


class VolumeManager:
    def __init__(self, data_dir: str | os.PathLike[str], *, node_ip: str) -> None:
        self.root = Path(data_dir) / "pods"
        self.node_ip = node_ip

    def pod_dir(self, uid: str) -> Path:
        return self.root / uid

    async def prepare(self, pod: Obj, sources: SourceCache, pod_ip: str = "") -> dict[str, HostVolume]:
        """Set up every volume of ``pod``; returns volume name -> host directory."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            raise VolumeError("", "pod has no uid")
        base = self.pod_dir(uid) / "volumes"
        result: dict[str, HostVolume] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = str(volume.get("name") or "")
            if isinstance(volume.get("emptyDir"), dict):
                path = base / "empty-dir" / name
                if not path.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    path.chmod(0o777)
                result[name] = HostVolume(str(path))
            elif isinstance(volume.get("hostPath"), dict):
                result[name] = self._host_path(name, volume["hostPath"])
            else:
                kind, files = await self._files(pod, name, volume, sources, pod_ip)
                path = base / kind / name
                await asyncio.to_thread(_sync_files, path, files)
                result[name] = HostVolume(str(path), read_only=True)
        return result

    def cleanup(self, uid: str) -> None:
        """Remove the pod's volume directories (call after its containers are removed)."""
        path = self.pod_dir(uid)
        if path.exists():
            shutil.rmtree(path)

    def known_pods(self) -> list[str]:
        """UIDs that have a directory here (for cleaning up after pods the agent missed)."""
        return [p.name for p in self.root.iterdir() if p.is_dir()] if self.root.is_dir() else []

    def _host_path(self, name: str, source: Obj) -> HostVolume:
        path = str(source.get("path") or "")
        kind = source.get("type") or ""
        if kind == "DirectoryOrCreate":
            Path(path).mkdir(parents=True, exist_ok=True)
        elif kind == "Directory" and not Path(path).is_dir():
            raise VolumeError(name, f"hostPath type check failed: {path} is not a directory")
        elif kind == "File" and not Path(path).is_file():
            raise VolumeError(name, f"hostPath type check failed: {path} is not a file")
        return HostVolume(path)

    async def _files(self, pod: Obj, name: str, volume: Obj, sources: SourceCache,
                     pod_ip: str) -> tuple[str, dict[PurePosixPath, tuple[bytes, int]]]:
        if isinstance(volume.get("configMap"), dict):
            source = volume["configMap"]
            return "configmap", await self._keyed(name, "configmap", str(source.get("name") or ""), source,
                                                  source, sources)
        if isinstance(volume.get("secret"), dict):
            source = volume["secret"]
            return "secret", await self._keyed(name, "secret", str(source.get("secretName") or ""), source,
                                               source, sources)
        if isinstance(volume.get("downwardAPI"), dict):
            return "downward-api", self._downward(pod, name, volume["downwardAPI"], volume["downwardAPI"],
                                                  pod_ip)
        if isinstance(volume.get("projected"), dict):
            projected = volume["projected"]
            files: dict[PurePosixPath, tuple[bytes, int]] = {}
            for part in projected.get("sources") or []:
                if isinstance(part.get("configMap"), dict):
                    source = part["configMap"]
                    files.update(await self._keyed(name, "configmap", str(source.get("name") or ""), source,
                                                   projected, sources))
                elif isinstance(part.get("secret"), dict):
                    source = part["secret"]
                    files.update(await self._keyed(name, "secret", str(source.get("name") or ""), source,
                                                   projected, sources))
                elif isinstance(part.get("downwardAPI"), dict):
                    files.update(self._downward(pod, name, part["downwardAPI"], projected, pod_ip))
            return "projected", files
        kinds = sorted(k for k in volume if k != "name")
        raise VolumeError(name, f"unsupported volume type {', '.join(kinds) or '(none)'}")

    async def _keyed(self, volume: str, kind: str, obj_name: str, source: Obj, modes: Obj,
                     sources: SourceCache) -> dict[PurePosixPath, tuple[bytes, int]]:
        data = await sources.source(kind, obj_name)
        optional = bool(source.get("optional"))
        if data is None:
            if optional:
                return {}
            raise VolumeError(volume, f'{kind} "{obj_name}" not found')
        default_mode = int(modes.get("defaultMode", 0o644))
        items = source.get("items")
        if not items:
            return {_safe_relative(key, volume): (value, default_mode) for key, value in data.items()}
        files: dict[PurePosixPath, tuple[bytes, int]] = {}
        for item in items:
            key = str(item.get("key") or "")
            if key not in data:
                if optional:
                    continue
                raise VolumeError(volume, f"{kind} references non-existent config key: {key}")
            files[_safe_relative(str(item.get("path") or key), volume)] = (
                data[key], int(item.get("mode", default_mode)))
        return files

    def _downward(self, pod: Obj, volume: str, source: Obj, modes: Obj,
                  pod_ip: str) -> dict[PurePosixPath, tuple[bytes, int]]:
        default_mode = int(modes.get("defaultMode", 0o644))
        files: dict[PurePosixPath, tuple[bytes, int]] = {}
        for item in source.get("items") or []:
            ref = item.get("fieldRef")
            if not isinstance(ref, dict):
                raise VolumeError(volume, "only fieldRef items are supported in downwardAPI volumes")
            try:
                value = field_value(pod, str(ref.get("fieldPath") or ""), node_ip=self.node_ip, pod_ip=pod_ip)
            except EnvError as exc:
                raise VolumeError(volume, str(exc)) from exc
            files[_safe_relative(str(item.get("path") or ""), volume)] = (
                value.encode(), int(item.get("mode", default_mode)))
        return files

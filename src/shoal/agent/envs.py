"""A container's environment and command line, resolved as the kubelet does.

:func:`resolve_env` builds the environment of one container: first ``envFrom`` (ConfigMaps and
Secrets, each key under its ``prefix``), then ``env`` in order, where a later entry replaces an
earlier one of the same name.  ``env[].value`` may reference variables defined before it with
``$(NAME)``; ``valueFrom`` reads a ConfigMap or Secret key (through :class:`SourceCache`, one
API read per object per sync), a pod field (``fieldRef``) or a resource limit/request
(``resourceFieldRef``).  :func:`expand_command` then expands ``$(NAME)`` in ``command`` and
``args`` with the final environment.

Expansion follows Kubernetes (``third_party/forked/golang/expansion``): ``$(NAME)`` becomes the
value when ``NAME`` is defined and stays literally as ``$(NAME)`` when not; ``$$`` is an escaped
``$``; an unterminated ``$(`` is kept as is.

Service variables (kubelet's ``getServiceEnvVarMap``): for every Service of the pod's namespace
with a ClusterIP (not headless, not ExternalName) when ``spec.enableServiceLinks`` is not false,
and always for the ``kubernetes`` Service of ``default`` (the "master" service; a Service named
``kubernetes`` in the pod's own namespace takes its place), :func:`service_env` gives
``NAME_SERVICE_HOST``, ``NAME_SERVICE_PORT`` (the first port), ``NAME_SERVICE_PORT_<PORTNAME>``
per named port and the docker-link ones ``NAME_PORT=tcp://ip:port``, ``NAME_PORT_<port>_<PROTO>``
with ``_PROTO``, ``_PORT`` and ``_ADDR`` (``NAME`` upper-cased, dashes to underscores).  They
come first: an explicit ``env`` or ``envFrom`` variable of the same name wins, and ``$(NAME)``
in ``env`` values and in the command line can refer to them.

A reference that cannot be satisfied raises :class:`EnvError` with Kubernetes' message
(``configmap "cfg" not found``, ``couldn't find key k in Secret ns/s``); the agent reports it as
the container's waiting reason ``CreateContainerConfigError``.  ``optional: true`` references
that are missing are skipped silently, as in Kubernetes.
"""

from __future__ import annotations

import base64
import contextlib
import math
from collections.abc import Callable, Iterable

from shoal.client import resources
from shoal.client.errors import NotFoundError
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from shoal.kube.quantity import parse_quantity

__all__ = ["MASTER_SERVICES", "EnvError", "SourceCache", "expand", "expand_command", "field_value", "resolve_env",
           "service_env"]

#: Services of ``default`` whose variables every pod gets (kubelet's ``masterServices``).
MASTER_SERVICES = ("kubernetes",)

class EnvError(Exception):
    """A container's configuration refers to something that does not exist."""


class SourceCache:
    """ConfigMaps and Secrets of one namespace, each read from the API at most once, and the
    Services a pod's environment names (listed once, when a container first needs them).

    Make a new one per pod sync so that changes are picked up by the next sync.  With
    ``services`` (a namespace → its Services lister over the agent's informer) Services come from
    that cache; otherwise they are listed from the API.  ``objects``
    preloads ConfigMaps/Secrets/Services (by their ``kind``; Services of any namespace); with
    ``client=None`` nothing else exists (a static source, for nodes without an API connection
    and for tests)."""

    def __init__(self, client: ApiClient | None, namespace: str, *, objects: Iterable[Obj] = (),
                 services: Callable[[str], list[Obj]] | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self._cache: dict[tuple[str, str], Obj | None] = {}
        self._services: list[Obj] | None = None
        #: The Services of a namespace from a local cache (the agent's informer): no API request.
        self._lister = services
        plurals = {"ConfigMap": resources.CONFIGMAPS.plural, "Secret": resources.SECRETS.plural}
        for obj in objects:
            if obj.get("kind") == "Service":
                self._services = [*(self._services or []), obj]
                continue
            plural = plurals.get(str(obj.get("kind")))
            if plural is None:
                raise ValueError(f"SourceCache holds ConfigMaps, Secrets and Services, not {obj.get('kind')!r}")
            self._cache[(plural, str((obj.get("metadata") or {}).get("name")))] = obj

    async def services(self, *, same_namespace: bool) -> list[Obj]:
        """The Services of this namespace (when ``same_namespace``) and the master Services of
        ``default``."""
        if self._services is None and self._lister is not None:
            found = list(self._lister(self.namespace)) if same_namespace else []
            if self.namespace != "default" or not same_namespace:
                found += [svc for svc in self._lister("default")
                          if (svc.get("metadata") or {}).get("name") in MASTER_SERVICES]
            if not same_namespace:
                return found
            self._services = found
        if self._services is None:
            found = []
            if self.client is not None:
                if same_namespace:
                    found += (await self.client.list(resources.SERVICES, self.namespace)).get("items") or []
                if self.namespace != "default" or not same_namespace:
                    for name in MASTER_SERVICES:
                        with contextlib.suppress(NotFoundError):
                            found.append(await self.client.get(resources.SERVICES, name, "default"))
            if not same_namespace:
                return found  # not cached: a later caller may want the namespace's too
            self._services = found
        return self._services

    async def _get(self, ref: resources.ResourceRef, name: str) -> Obj | None:
        key = (ref.plural, name)
        if key not in self._cache:
            if self.client is None:
                return None
            try:
                self._cache[key] = await self.client.get(ref, name, self.namespace)
            except NotFoundError:
                self._cache[key] = None
        return self._cache[key]

    async def config_map(self, name: str) -> dict[str, bytes] | None:
        """The ConfigMap's ``data`` and ``binaryData`` as bytes, or ``None`` if it does not exist."""
        obj = await self._get(resources.CONFIGMAPS, name)
        if obj is None:
            return None
        data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(str(v)) for k, v in (obj.get("binaryData") or {}).items()})
        return data

    async def secret(self, name: str) -> dict[str, bytes] | None:
        """The Secret's decoded ``data`` (plus ``stringData``), or ``None`` if it does not exist."""
        obj = await self._get(resources.SECRETS, name)
        if obj is None:
            return None
        data = {k: base64.b64decode(str(v)) for k, v in (obj.get("data") or {}).items()}
        data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return data

    async def source(self, kind: str, name: str) -> dict[str, bytes] | None:
        return await (self.config_map(name) if kind == "configmap" else self.secret(name))


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand ``$(NAME)`` references in ``text`` (see the module docstring for the rules)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char != "$" or i + 1 >= n:
            out.append(char)
            i += 1
            continue
        follower = text[i + 1]
        if follower == "$":
            out.append("$")
            i += 2
        elif follower == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            value = lookup(text[i + 2:end])
            out.append(value if value is not None else text[i:end + 1])
            i = end + 1
        else:
            out.append("$" + follower)
            i += 2
    return "".join(out)


def expand_command(container: Obj, env: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``command`` and ``args`` with ``$(NAME)`` expanded from ``env``."""
    command = tuple(expand(str(part), env.get) for part in container.get("command") or [])
    args = tuple(expand(str(part), env.get) for part in container.get("args") or [])
    return command, args


def _label_key(path: str, prefix: str) -> str | None:
    """``metadata.labels['app']`` -> ``app``."""
    if path.startswith(prefix + "['") and path.endswith("']"):
        return path[len(prefix) + 2:-2]
    return None


def field_value(pod: Obj, path: str, *, node_ip: str, pod_ip: str) -> str:
    """The value of a ``fieldRef.fieldPath`` for ``pod`` (env variables and downwardAPI files)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": node_ip, "status.hostIPs": node_ip,
        "status.podIP": pod_ip, "status.podIPs": pod_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    for prefix, mapping in (("metadata.labels", meta.get("labels")),
                            ("metadata.annotations", meta.get("annotations"))):
        key = _label_key(path, prefix)
        if key is not None:
            return str((mapping or {}).get(key, ""))
        if path == prefix:
            return "\n".join(f'{k}="{v}"' for k, v in sorted((mapping or {}).items()))
    raise EnvError(f"unsupported fieldPath: {path}")


def resource_value(pod: Obj, container: Obj, ref: Obj, allocatable: dict[str, str]) -> str:
    """A ``resourceFieldRef`` value: ceil(quantity / divisor); unset limits are the node's."""
    name = ref.get("containerName") or container.get("name")
    target = next((c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == name),
                  container)
    resource = str(ref.get("resource") or "")
    part, _, kind = resource.partition(".")
    if part not in ("limits", "requests") or kind not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported container resource: {resource}")
    declared = ((target.get("resources") or {}).get(part) or {}).get(kind)
    if declared is None:
        declared = allocatable.get(kind, "0") if part == "limits" else "0"
    try:
        quantity = parse_quantity(declared)
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError as exc:
        raise EnvError(f"invalid quantity in {resource}: {exc}") from exc
    if divisor == 0:
        raise EnvError(f"divisor of {resource} must not be zero")
    return str(math.ceil(quantity / divisor))


async def _key_ref(sources: SourceCache, kind: str, ref: Obj) -> str | None:
    name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
    label = "ConfigMap" if kind == "configmap" else "Secret"
    data = await sources.source(kind, name)
    if data is None:
        if ref.get("optional"):
            return None
        raise EnvError(f'{kind} "{name}" not found')
    if key not in data:
        if ref.get("optional"):
            return None
        raise EnvError(f"couldn't find key {key} in {label} {sources.namespace}/{name}")
    return data[key].decode("utf-8", errors="replace")


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(services: Iterable[Obj], namespace: str, *, enable_service_links: bool = True) -> dict[str, str]:
    """The Service variables of a pod in ``namespace`` (kubelet's ``getServiceEnvVarMap`` and
    ``envvars.FromServices``); ``services`` may hold Services of any namespace."""
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None") or not spec.get("ports"):
            continue
        name = str(meta.get("name"))
        if meta.get("namespace") == "default" and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif meta.get("namespace") == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name]["spec"]
        ip, ports = str(spec["clusterIP"]), spec["ports"]
        prefix = _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for port in ports:
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(str(port['name']))}"] = str(port.get("port"))
        host = f"[{ip}]" if ":" in ip else ip
        for index, port in enumerate(ports):
            protocol = str(port.get("protocol") or "TCP")
            url = f"{protocol.lower()}://{host}:{port.get('port')}"
            if index == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{port.get('port')}_{protocol.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = protocol.lower()
            env[f"{port_prefix}_PORT"] = str(port.get("port"))
            env[f"{port_prefix}_ADDR"] = ip
    return env


async def resolve_env(pod: Obj, container: Obj, sources: SourceCache, *, node_ip: str, pod_ip: str,
                      allocatable: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of ``container`` (see the module docstring); raises :class:`EnvError`."""
    links = (pod.get("spec") or {}).get("enableServiceLinks") is not False
    services = service_env(await sources.services(same_namespace=links), sources.namespace,
                           enable_service_links=links)
    env: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return env[name] if name in env else services.get(name)

    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, field in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(field)
            if not isinstance(ref, dict):
                continue
            data = await sources.source(kind, str(ref.get("name") or ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'{kind} "{ref.get("name")}" not found')
            for key, raw in data.items():
                if key and "=" not in key:
                    env[prefix + key] = raw.decode("utf-8", errors="replace")
    for var in container.get("env") or []:
        name = str(var.get("name") or "")
        if not name:
            continue
        source = var.get("valueFrom")
        if not isinstance(source, dict):
            env[name] = expand(str(var.get("value") or ""), lookup)
            continue
        value: str | None
        if isinstance(source.get("configMapKeyRef"), dict):
            value = await _key_ref(sources, "configmap", source["configMapKeyRef"])
        elif isinstance(source.get("secretKeyRef"), dict):
            value = await _key_ref(sources, "secret", source["secretKeyRef"])
        elif isinstance(source.get("fieldRef"), dict):
            value = field_value(pod, str(source["fieldRef"].get("fieldPath") or ""), node_ip=node_ip,
                                pod_ip=pod_ip)
        elif isinstance(source.get("resourceFieldRef"), dict):
            value = resource_value(pod, container, source["resourceFieldRef"], allocatable or {})
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return {**services, **env}

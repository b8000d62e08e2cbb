"""Container defaulting and validation (core/v1 ``Container``), shared by every pod template.

Defaults follow pkg/apis/core/v1/defaults.go: ``terminationMessagePath``
``/dev/termination-log``, ``terminationMessagePolicy: File``, ``imagePullPolicy`` (``Always``
for ``:latest`` or no tag, else ``IfNotPresent``), ``resources: {}``, ports ``protocol: TCP``,
probes ``timeoutSeconds 1 / periodSeconds 10 / successThreshold 1 / failureThreshold 3``,
``httpGet`` ``path: /`` and ``scheme: HTTP``, ``fieldRef.apiVersion: v1``.  All are "set when
unset", so defaulting twice changes nothing.

Validation follows pkg/apis/core/validation (``validateContainers`` and friends) with the
same paths and messages, e.g. ``spec.containers[0].image: Required value``.
"""

from __future__ import annotations

import re
from typing import Any

from shoal.kube import quantity
from shoal.kube.errors import FieldError
from shoal.resources import naming
from shoal.resources.kinds import meta
from shoal.resources.kinds.meta import as_dict, as_list, invalid, is_int, required

PROTOCOLS = ("SCTP", "TCP", "UDP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*" \
          r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*"
                        r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
                        r":[0-9A-Fa-f]{32,})?$")


def image_tag(image: Any) -> str:
    """The tag kubelet would pull: "latest" when none is given, "" for a digest or a bad name."""
    if not isinstance(image, str) or not _REFERENCE.match(image):
        return ""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "" if digest else "latest"


def set_if_unset(d: dict[str, Any], key: str, value: Any) -> None:
    """Default a Go pointer field: only when absent or null."""
    if d.get(key) is None:
        d[key] = value


def set_if_zero(d: dict[str, Any], key: str, value: Any) -> None:
    """Default a Go value field: when absent, null, "" or 0."""
    current = d.get(key)
    if current is None or current == "" or (is_int(current) and current == 0):
        d[key] = value


def _default_handler(handler: dict[str, Any]) -> None:
    http = handler.get("httpGet")
    if isinstance(http, dict):
        set_if_zero(http, "path", "/")
        set_if_zero(http, "scheme", "HTTP")


def default_container(c: dict[str, Any], host_network: bool) -> None:
    set_if_zero(c, "terminationMessagePath", "/dev/termination-log")
    set_if_zero(c, "terminationMessagePolicy", "File")
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = "Always" if image_tag(c.get("image")) == "latest" else "IfNotPresent"
    set_if_unset(c, "resources", {})
    for port in as_list(c.get("ports")):
        if isinstance(port, dict):
            set_if_zero(port, "protocol", "TCP")
            if host_network and not port.get("hostPort") and port.get("containerPort"):
                port["hostPort"] = port["containerPort"]
    for name in PROBES:
        probe = c.get(name)
        if isinstance(probe, dict):
            for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10),
                               ("successThreshold", 1), ("failureThreshold", 3)):
                set_if_zero(probe, key, value)
            _default_handler(probe)
    for hook in as_dict(c.get("lifecycle")).values():
        if isinstance(hook, dict):
            _default_handler(hook)
    for env in as_list(c.get("env")):
        ref = as_dict(as_dict(as_dict(env).get("valueFrom")).get("fieldRef"))
        if ref:
            set_if_zero(ref, "apiVersion", "v1")


# ---------------------------------------------------------------------------- validation


def _port_or_name(value: Any, path: str) -> list[FieldError]:
    """``ValidatePortNumOrName`` for an IntOrString."""
    if isinstance(value, str):
        return meta.name_errors(path, value, naming.port_name_errors)
    if value is None:
        return [required(path)]
    return [invalid(path, value, m) for m in naming.port_num_errors(value)]


def _validate_handler(handler: dict[str, Any], path: str) -> list[FieldError]:
    present = [h for h in HANDLERS if handler.get(h) is not None]
    if not present:
        return [required(path, "must specify a handler type")]
    errs = [meta.forbidden(f"{path}.{h}", "may not specify more than 1 handler type") for h in present[1:]]
    kind, body = present[0], as_dict(handler[present[0]])
    if kind == "exec" and not as_list(body.get("command")):
        errs.append(required(f"{path}.exec.command"))
    elif kind == "httpGet":
        if not body.get("path"):
            errs.append(required(f"{path}.httpGet.path"))
        errs += _port_or_name(body.get("port"), f"{path}.httpGet.port")
        errs += meta.supported(f"{path}.httpGet.scheme", body.get("scheme"), ("HTTP", "HTTPS"))
    elif kind == "tcpSocket":
        errs += _port_or_name(body.get("port"), f"{path}.tcpSocket.port")
    elif kind == "grpc":
        errs += [invalid(f"{path}.grpc.port", body.get("port"), m)
                 for m in naming.port_num_errors(body.get("port"))]
    return errs


def _validate_probe(name: str, probe: dict[str, Any], path: str) -> list[FieldError]:
    errs = _validate_handler(probe, path)
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        errs += meta.non_negative(f"{path}.{key}", probe.get(key))
    grace = probe.get("terminationGracePeriodSeconds")
    if is_int(grace) and grace <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than 0"))
    threshold = probe.get("successThreshold")
    if name != "readinessProbe" and is_int(threshold) and threshold != 1:
        errs.append(invalid(f"{path}.successThreshold", threshold, "must be 1"))
    return errs


def _validate_ports(ports: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port, ppath = as_dict(port), f"{path}[{i}]"
        name = port.get("name")
        if isinstance(name, str) and name:
            errs += meta.name_errors(f"{ppath}.name", name, naming.port_name_errors)
            if name in names:
                errs.append(meta.duplicate(f"{ppath}.name", name))
            names.add(name)
        cport = port.get("containerPort")
        if not cport:
            errs.append(required(f"{ppath}.containerPort"))
        else:
            errs += [invalid(f"{ppath}.containerPort", cport, m) for m in naming.port_num_errors(cport)]
        if port.get("hostPort"):
            errs += [invalid(f"{ppath}.hostPort", port["hostPort"], m)
                     for m in naming.port_num_errors(port["hostPort"])]
        errs += meta.supported(f"{ppath}.protocol", port.get("protocol"), PROTOCOLS)
    return errs


def _validate_env(envs: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, env in enumerate(envs):
        env, epath = as_dict(env), f"{path}[{i}]"
        name = env.get("name")
        if not name:
            errs.append(required(f"{epath}.name"))
        elif isinstance(name, str) and (not all(32 <= ord(ch) <= 126 for ch in name) or "=" in name):
            errs.append(invalid(f"{epath}.name", name, "a valid environment variable name must consist "
                                "only of printable ASCII characters other than '='"))
        source = env.get("valueFrom")
        if source is None:
            continue
        refs = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                if as_dict(source).get(k) is not None]
        if env.get("value"):
            errs.append(invalid(f"{epath}.valueFrom", "", "may not be specified when `value` is not empty"))
        if len(refs) != 1:
            errs.append(invalid(f"{epath}.valueFrom", "", "may not have more than one field specified at a "
                                "time" if refs else "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                "`configMapKeyRef` or `secretKeyRef`"))
        for ref in refs:
            body = as_dict(as_dict(source)[ref])
            if ref in ("configMapKeyRef", "secretKeyRef") and not body.get("key"):
                errs.append(required(f"{epath}.valueFrom.{ref}.key"))
            if ref == "fieldRef" and not body.get("fieldPath"):
                errs.append(required(f"{epath}.valueFrom.fieldRef.fieldPath"))
    return errs


def _validate_resources(resources: dict[str, Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Any]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        for name, value in as_dict(resources.get(part)).items():
            rpath = f"{path}.{part}[{name}]"
            if name not in STANDARD_RESOURCES and not name.startswith("hugepages-") and "/" not in name:
                errs.append(invalid(rpath, name, "must be a standard resource for containers"))
            try:
                amount = quantity.parse_quantity(value)
            except ValueError as exc:
                errs.append(invalid(rpath, value, str(exc)))
                continue
            if amount < 0:
                errs.append(invalid(rpath, value, meta.NON_NEGATIVE))
            parsed[part][name] = (amount, value)
    for name, (request, shown) in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit[0]:
            errs.append(invalid(f"{path}.requests[{name}]", str(shown),
                                f"must be less than or equal to {name} limit of {limit[1]}"))
    return errs


def _validate_mounts(mounts: list[Any], path: str, volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, mount in enumerate(mounts):
        mount, mpath = as_dict(mount), f"{path}[{i}]"
        name, mount_path = mount.get("name"), mount.get("mountPath")
        if not name:
            errs.append(required(f"{mpath}.name"))
        elif name not in volumes:
            errs.append(meta.not_found(f"{mpath}.name", name))
        if not mount_path:
            errs.append(required(f"{mpath}.mountPath"))
        elif mount_path in seen:
            errs.append(invalid(f"{mpath}.mountPath", mount_path, "must be unique"))
        else:
            seen.add(mount_path)
    return errs


def validate_container(c: dict[str, Any], path: str, volumes: set[str], *, init: bool) -> list[FieldError]:
    """One container; name uniqueness across the pod is checked by the caller."""
    errs: list[FieldError] = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    elif isinstance(name, str):
        errs += meta.name_errors(f"{path}.name", name, naming.dns1123_label_errors)
    if not c.get("image"):
        errs.append(required(f"{path}.image"))
    errs += meta.supported(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), PULL_POLICIES)
    errs += meta.supported(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
                           MESSAGE_POLICIES)
    policy = c.get("restartPolicy")
    if policy is not None:
        if not init:
            errs.append(meta.forbidden(f"{path}.restartPolicy", "may not be set for non-init containers"))
        elif policy != "Always":
            errs.append(meta.not_supported(f"{path}.restartPolicy", policy, ("Always",)))
    errs += _validate_ports(as_list(c.get("ports")), f"{path}.ports")
    errs += _validate_env(as_list(c.get("env")), f"{path}.env")
    for i, source in enumerate(as_list(c.get("envFrom"))):
        prefix = as_dict(source).get("prefix")
        if isinstance(prefix, str) and "=" in prefix:
            errs.append(invalid(f"{path}.envFrom[{i}].prefix", prefix,
                                "a valid environment variable name must consist only of printable ASCII "
                                "characters other than '='"))
    errs += _validate_mounts(as_list(c.get("volumeMounts")), f"{path}.volumeMounts", volumes)
    for probe in PROBES:
        if isinstance(c.get(probe), dict):
            errs += _validate_probe(probe, c[probe], f"{path}.{probe}")
    for hook, handler in as_dict(c.get("lifecycle")).items():
        if isinstance(handler, dict) and handler.get("sleep") is None:
            errs += _validate_handler(handler, f"{path}.lifecycle.{hook}")
    errs += _validate_resources(as_dict(c.get("resources")), f"{path}.resources")
    return errs

"""core/v1 ConfigMap, Secret and ServiceAccount: defaults, validation, rows.

* ConfigMap (``ValidateConfigMap``): keys of ``data`` and ``binaryData`` are config keys and
  disjoint, total size at most 1 MiB; ``immutable: true`` freezes data and itself.
* Base64 of ``[]byte`` fields (Secret ``data``, ConfigMap ``binaryData``) is read as Go's
  ``StdEncoding`` reads it, skipping ``\\r`` and ``\\n``; a line-wrapped value is stored as one
  line (the same bytes), as Kubernetes' decode and re-encode leaves it.
* Secret: ``type`` defaults to ``Opaque``; ``stringData`` is merged into ``data`` (base64) and
  dropped, as the Kubernetes conversion does, so stored Secrets never carry ``stringData``.
  ``ValidateSecret``: data keys are config keys, values base64, total at most 1 MiB, type-specific
  required keys (``kubernetes.io/tls`` needs ``tls.crt``/``tls.key`` ...); ``type`` is immutable.
  Field selector: ``type``.
* ServiceAccount: only metadata validation.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from shoal.kube.errors import FieldError
from shoal.kube.objects import Obj
from shoal.resources import naming, printing
from shoal.resources.kinds import meta
from shoal.resources.kinds.meta import as_dict, as_list, invalid, required
from shoal.resources.registry import Column, ResourceKind

MAX_SIZE = 1024 * 1024
IMMUTABLE_SET = "field is immutable when `immutable` is set"


def _decoded(value: Any) -> bytes | None:
    """The bytes of a ``[]byte`` field's base64 text, as Go's ``StdEncoding`` reads it (it skips
    ``\\r`` and ``\\n``, so PEM-style wrapped lines decode), or None when it is not base64."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _unwrap_base64(values: Any) -> None:
    """Rewrite line-wrapped base64 values of ``values`` (a dict) as one line.

    Kubernetes decodes ``[]byte`` fields into bytes and encodes them again on the way out, so
    the line breaks of a wrapped value are gone from the stored object; the bytes are the same."""
    if not isinstance(values, dict):
        return
    for key, value in values.items():
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            raw = _decoded(value)
            if raw is not None:
                values[key] = base64.b64encode(raw).decode()


def _key_errors(keys: Any, prefix: str) -> list[FieldError]:
    return [invalid(f"{prefix}[{key}]", key, msg)
            for key in as_dict(keys) for msg in naming.config_key_errors(key)]


def _immutable_errors(obj: Obj, old: Obj, parts: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    errs: list[FieldError] = []
    if obj.get("immutable") is not True:
        errs.append(meta.forbidden("immutable", IMMUTABLE_SET))
    errs += [meta.forbidden(part, IMMUTABLE_SET) for part in parts if obj.get(part) != old.get(part)]
    return errs


# ---------------------------------------------------------------------------- ConfigMap


def default_configmap(obj: Obj) -> None:
    _unwrap_base64(obj.get("binaryData"))


def validate_configmap(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    errs += _key_errors(data, "data")
    errs += [invalid(f"data[{key}]", key, "duplicate of key present in binaryData")
             for key in data if key in binary]
    errs += _key_errors(binary, "binaryData")
    size = sum(len(v.encode()) for v in data.values() if isinstance(v, str))
    for key, value in binary.items():
        raw = _decoded(value)
        if raw is None:
            errs.append(invalid(f"binaryData[{key}]", "<binary data>", "must be base64-encoded"))
        else:
            size += len(raw)
    if size > MAX_SIZE:
        errs.append(meta.too_long("", MAX_SIZE))
    if old is not None:
        errs += _immutable_errors(obj, old, ("data", "binaryData"))
    return errs


def configmap_row(obj: Obj, now: datetime) -> list[Any]:
    count = len(as_dict(obj.get("data"))) + len(as_dict(obj.get("binaryData")))
    return [printing.name_of(obj), count, printing.age_of(obj, now)]


# ---------------------------------------------------------------------------- Secret

_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"
    _unwrap_base64(obj.get("data"))
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


def _type_errors(obj: Obj, data: dict[str, Any]) -> list[FieldError]:
    kind = obj.get("type")
    errs: list[FieldError] = []
    if kind == "kubernetes.io/service-account-token":
        annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            errs += [required("data[username]"), required("data[password]")]
    elif kind in _REQUIRED_KEYS:
        for key in _REQUIRED_KEYS[kind]:
            if key not in data or (kind == "kubernetes.io/ssh-auth" and not data[key]):
                errs.append(required(f"data[{key}]"))
        if kind in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
            key = _REQUIRED_KEYS[kind][0]
            raw = _decoded(data.get(key))
            if raw is not None:
                try:
                    json.loads(raw)
                except ValueError as exc:
                    errs.append(invalid(f"data[{key}]", "<secret contents redacted>", str(exc)))
    return errs


def validate_secret(obj: Obj, old: Obj | None) -> list[FieldError]:
    errs = meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)
    data = as_dict(obj.get("data"))
    errs += _key_errors(data, "data")
    size = 0
    for key, value in data.items():
        raw = _decoded(value)
        if raw is None:
            errs.append(invalid(f"data[{key}]", "<secret contents redacted>", "must be base64-encoded"))
        else:
            size += len(raw)
    if size > MAX_SIZE:
        errs.append(meta.too_long("data", MAX_SIZE))
    errs += _type_errors(obj, data)
    if old is not None:
        errs += meta.immutable("type", obj.get("type"), old.get("type"))
        errs += _immutable_errors(obj, old, ("data",))
    return errs


def secret_row(obj: Obj, now: datetime) -> list[Any]:
    return [printing.name_of(obj), str(obj.get("type") or ""), len(as_dict(obj.get("data"))),
            printing.age_of(obj, now)]


def secret_fields(obj: Obj) -> dict[str, str]:
    return {"type": str(obj.get("type") or "")}


# ---------------------------------------------------------------------------- ServiceAccount


def validate_serviceaccount(obj: Obj, old: Obj | None) -> list[FieldError]:
    return meta.validate_object_meta(obj, naming.dns1123_subdomain_errors, namespaced=True)


def serviceaccount_row(obj: Obj, now: datetime) -> list[Any]:
    return [printing.name_of(obj), len(as_list(obj.get("secrets"))), printing.age_of(obj, now)]


CONFIGMAP = ResourceKind(
    group="", version="v1", kind="ConfigMap", plural="configmaps", singular="configmap", namespaced=True,
    short_names=("cm",),
    columns=(printing.NAME_COLUMN,
             Column("Data", description="Data contains the configuration data."),
             printing.AGE_COLUMN),
    row=configmap_row, default=default_configmap, validate=validate_configmap,
)

SECRET = ResourceKind(
    group="", version="v1", kind="Secret", plural="secrets", singular="secret", namespaced=True,
    columns=(printing.NAME_COLUMN,
             Column("Type", description="Used to facilitate programmatic handling of secret data."),
             Column("Data", description="Data contains the secret data."),
             printing.AGE_COLUMN),
    row=secret_row, default=default_secret, validate=validate_secret, fields=secret_fields,
)

SERVICEACCOUNT = ResourceKind(
    group="", version="v1", kind="ServiceAccount", plural="serviceaccounts", singular="serviceaccount",
    namespaced=True, short_names=("sa",),
    columns=(printing.NAME_COLUMN,
             Column("Secrets", description="Secrets is a list of the secrets in the same namespace that pods "
                    "running using this ServiceAccount are allowed to use."),
             printing.AGE_COLUMN),
    row=serviceaccount_row, validate=validate_serviceaccount,
)

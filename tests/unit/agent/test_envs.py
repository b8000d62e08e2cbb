"""Environment resolution: $(VAR) expansion, valueFrom sources, envFrom, errors."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from shoal.agent.envs import EnvError, SourceCache, expand, expand_command, field_value, resolve_env
from shoal.kube.objects import Obj

VARS = {"A": "alpha", "B": "beta", "EMPTY": ""}


@pytest.mark.parametrize(("text", "expected"), [
    ("plain", "plain"),
    ("$(A)", "alpha"),
    ("x-$(A)-$(B)-y", "x-alpha-beta-y"),
    ("$(MISSING)", "$(MISSING)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("cost: $5", "cost: $5"),
    ("end$", "end$"),
    ("$(A", "$(A"),
    ("$(EMPTY)x", "x"),
    ("$($(A))", "$($(A))"),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, VARS.get) == expected


def _pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "labels": {"app": "web", "tier": "a"},
                         "annotations": {"note": "hi"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "sa", **spec}}


def _sources() -> SourceCache:
    return SourceCache(None, "ns1", objects=[
        {"kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"mode": "fast", "level": "3"},
         "binaryData": {"bin": base64.b64encode(b"raw").decode()}},
        {"kind": "Secret", "metadata": {"name": "sec"}, "data": {"password": base64.b64encode(b"s3cret").decode()}},
    ])


async def _env(container: Obj, pod: Obj | None = None) -> dict[str, str]:
    return await resolve_env(pod or _pod(), container, _sources(), node_ip="10.0.0.1", pod_ip="10.42.0.7",
                             allocatable={"cpu": "4", "memory": "8Gi"})


async def test_values_and_expansion_in_order() -> None:
    env = await _env({"name": "c", "env": [
        {"name": "HOST", "value": "db"},
        {"name": "URL", "value": "postgres://$(HOST):$(PORT)/x"},  # PORT is defined later: stays literal
        {"name": "PORT", "value": "5432"},
        {"name": "URL2", "value": "$(HOST):$(PORT)"},
        {"name": "HOST", "value": "override"},
    ]})
    assert env == {"HOST": "override", "URL": "postgres://db:$(PORT)/x", "PORT": "5432", "URL2": "db:5432"}


async def test_value_from_sources_and_fields() -> None:
    env = await _env({"name": "c", "resources": {"limits": {"memory": "256Mi"}, "requests": {"cpu": "250m"}}, "env": [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
        {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}},
        {"name": "OPTKEY", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "x", "optional": True}}},
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
    ]})
    assert env == {"MODE": "fast", "PW": "s3cret", "NAME": "web", "NS": "ns1", "UID": "u-1", "APP": "web",
                   "NOTE": "hi", "NODE": "node-1", "POD_IP": "10.42.0.7", "HOST_IP": "10.0.0.1", "MEM_MI": "256",
                   "CPU_LIMIT": "4", "CPU_REQ_M": "250"}


async def test_env_from_with_prefix_then_env_overrides() -> None:
    env = await _env({"name": "c", "envFrom": [
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
        {"secretRef": {"name": "sec"}},
        {"configMapRef": {"name": "absent", "optional": True}},
    ], "env": [{"name": "password", "value": "plain"}]})
    assert env == {"CFG_mode": "fast", "CFG_level": "3", "CFG_bin": "raw", "password": "plain"}


@pytest.mark.parametrize(("var", "message"), [
    ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
    ({"configMapKeyRef": {"name": "cfg", "key": "k"}}, "couldn't find key k in ConfigMap ns1/cfg"),
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"secretKeyRef": {"name": "sec", "key": "k"}}, "couldn't find key k in Secret ns1/sec"),
    ({"fieldRef": {"fieldPath": "spec.bogus"}}, "unsupported fieldPath: spec.bogus"),
    ({"resourceFieldRef": {"resource": "limits.gpu"}}, "unsupported container resource: limits.gpu"),
])
async def test_missing_references_are_errors(var: Obj, message: str) -> None:
    with pytest.raises(EnvError) as caught:
        await _env({"name": "c", "env": [{"name": "X", "valueFrom": var}]})
    assert str(caught.value) == message


async def test_env_from_missing_source() -> None:
    with pytest.raises(EnvError, match='secret "gone" not found'):
        await _env({"name": "c", "envFrom": [{"secretRef": {"name": "gone"}}]})


def test_expand_command_uses_final_env() -> None:
    command, args = expand_command({"command": ["sh", "-c", "echo $(MSG) $$(MSG)"], "args": ["$(N)", "$(X)"]},
                                   {"MSG": "hello", "N": "3"})
    assert command == ("sh", "-c", "echo hello $(MSG)")
    assert args == ("3", "$(X)")


def test_field_value_for_whole_label_map() -> None:
    assert field_value(_pod(), "metadata.labels", node_ip="", pod_ip="") == 'app="web"\ntier="a"'


def test_source_cache_rejects_other_kinds() -> None:
    with pytest.raises(ValueError, match="Pod"):
        SourceCache(None, "ns", objects=[{"kind": "Pod", "metadata": {"name": "x"}}])

"""Tests for shoal.api.protobuf: Kubernetes protobuf request bodies -> JSON-form objects.

Fixtures in fixtures/protobuf/ are real request bodies captured from kubectl v1.32 (dispatched by
/usr/bin/kubectl against a throwaway HTTPS server reporting minor 32):

* ``<name>.bin``: the POST body of ``kubectl create ...`` (e.g. ``create secret generic s1
  --from-literal=user=admin --from-literal=pw=s3cr3t``, ``create deployment web --image=demo:1
  --replicas=3 --port=8080``, ``create service nodeport np1 --tcp=80:8080 --node-port=30080``, ``create
  quota q1 --hard=cpu=1,memory=1G,pods=2``, ``create job j1 --image=busybox -- echo hi``).
* ``<name>.json``: the same command with ``--dry-run=client -o json``, i.e. the JSON kubectl itself
  makes of the very same Go object.  Decoding the protobuf must give exactly that.
* ``pod_debug_copy.bin``: ``kubectl debug rich --copy-to=rich-copy --keep-labels --keep-annotations
  --keep-liveness --keep-readiness --keep-startup --set-image=app=demo:3`` after the server answered
  GET pods/rich with a pod using most PodSpec features.  kubectl POSTs that pod (renamed, image set,
  nodeName/uid/status dropped) as protobuf; ``pod_debug_copy.json`` is that object.

Hand-built messages below use field numbers from the upstream generated.proto files.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from shoal.api import protobuf, protobuf_schema
from shoal.api.protobuf import (
    WireError,
    decode_k8s_protobuf,
    decode_k8s_protobuf_detailed,
    iter_fields,
    read_varint,
)
from shoal.kube.errors import ApiError

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
EXPECTED = sorted(p.stem for p in FIXTURES.glob("*.json"))


# --- a minimal protobuf encoder for hand-built bodies -------------------------------------------

def varint(n: int) -> bytes:
    n &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key) + ld(2, value))


def envelope(api_version: str, kind: str, raw: bytes, encoding: str = "") -> bytes:
    unknown = ld(1, ld(1, api_version) + ld(2, kind)) + ld(2, raw) + ld(3, encoding) + ld(4, "")
    return b"k8s\x00" + unknown


def secret(raw: bytes) -> bytes:
    return envelope("v1", "Secret", raw)


def bad_request(body: bytes) -> str:
    with pytest.raises(ApiError) as info:
        decode_k8s_protobuf(body)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    return info.value.message


# --- real kubectl captures -----------------------------------------------------------------------

@pytest.mark.parametrize("name", EXPECTED)
def test_decodes_kubectl_capture_exactly(name: str) -> None:
    decoded = decode_k8s_protobuf_detailed((FIXTURES / f"{name}.bin").read_bytes())
    assert decoded.object == json.loads((FIXTURES / f"{name}.json").read_text())
    assert decoded.unknown_fields == ()


def test_fixture_set_covers_every_create_generator() -> None:
    kinds = {json.loads((FIXTURES / f"{n}.json").read_text())["kind"] for n in EXPECTED}
    assert kinds == {"Secret", "ConfigMap", "Namespace", "Deployment", "Service", "ServiceAccount",
                     "ResourceQuota", "Pod"}


def test_secret_data_is_base64_of_raw_bytes() -> None:
    obj = decode_k8s_protobuf((FIXTURES / "secret_generic.bin").read_bytes())
    assert obj == {
        "kind": "Secret", "apiVersion": "v1",
        "metadata": {"name": "s1", "creationTimestamp": None},
        "data": {"pw": base64.b64encode(b"s3cr3t").decode(), "user": "YWRtaW4="},
    }


def test_configmap_binary_data_and_text_data() -> None:
    obj = decode_k8s_protobuf((FIXTURES / "configmap.bin").read_bytes())
    assert obj["data"] == {"a": "b", "conf.txt": "hello file\nline2\n"}
    assert base64.b64decode(obj["binaryData"]["blob.bin"]) == b"\x00\x01\xffbin"


def test_deployment_keeps_explicit_zero_replicas() -> None:
    obj = decode_k8s_protobuf((FIXTURES / "deployment_ns_labels.bin").read_bytes())
    assert obj["spec"]["replicas"] == 0
    assert obj["metadata"]["namespace"] == "team-a"
    assert obj["spec"]["strategy"] == {}
    assert obj["status"] == {}


def test_service_target_port_int_or_string() -> None:
    obj = decode_k8s_protobuf((FIXTURES / "service_named_port.bin").read_bytes())
    assert [p["targetPort"] for p in obj["spec"]["ports"]] == ["http", 8443]
    assert obj["status"] == {"loadBalancer": {}}


def test_debug_copy_pod_keeps_pointer_zeroes_and_falses() -> None:
    pod = decode_k8s_protobuf((FIXTURES / "pod_debug_copy.bin").read_bytes())
    spec = pod["spec"]
    app = spec["containers"][0]
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert app["securityContext"]["runAsUser"] == 0
    assert app["securityContext"]["runAsNonRoot"] is False
    assert app["env"][1] == {"name": "EMPTY"}
    assert app["env"][5]["valueFrom"]["resourceFieldRef"]["divisor"] == "1Mi"
    assert app["livenessProbe"]["httpGet"]["port"] == "http"
    assert app["readinessProbe"]["tcpSocket"]["port"] == 8080
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert spec["securityContext"]["supplementalGroups"] == [1000, 2000]
    assert spec["volumes"][1]["configMap"]["name"] == "app-config"  # inline LocalObjectReference
    assert spec["volumes"][0] == {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    assert spec["tolerations"][1]["tolerationSeconds"] == 300
    assert pod["metadata"]["annotations"] == {"note": "hello", "empty": ""}


def test_unsupported_kind_is_rejected() -> None:
    message = bad_request((FIXTURES / "job.bin").read_bytes())
    assert message == ('protobuf request bodies of kind "Job" in version "batch/v1" are not '
                       "supported; send application/json instead")


def test_kind_must_match_its_api_version() -> None:
    assert 'kind "Deployment" in version "v1"' in bad_request(envelope("v1", "Deployment", b""))


# --- envelope and malformed input ----------------------------------------------------------------

def test_missing_magic() -> None:
    assert "magic" in bad_request(b'{"kind":"Secret"}')


def test_empty_kind() -> None:
    assert "does not name a kind" in bad_request(envelope("v1", "", b""))


def test_content_encoding_is_refused() -> None:
    assert 'contentEncoding "gzip"' in bad_request(envelope("v1", "Secret", b"", encoding="gzip"))


@pytest.mark.parametrize("cut", [1, 5, 20, 40])
def test_truncated_capture_is_bad_request(cut: int) -> None:
    body = (FIXTURES / "deployment.bin").read_bytes()
    assert "invalid protobuf body" in bad_request(body[:-cut])


def test_length_beyond_message_names_the_path() -> None:
    meta = b"\x0a\x7fs1"  # name claims 127 bytes; its parent holds 2
    message = bad_request(secret(ld(1, meta)))
    assert message.startswith("invalid protobuf body for v1, Kind=Secret: metadata: field 1: length")


def test_wrong_wire_type_for_known_field() -> None:
    message = bad_request(secret(vi(3, 7)))  # Secret.type is a string
    assert message == ("invalid protobuf body for v1, Kind=Secret: type: wire type 0 where a "
                       "length-delimited value was expected")


def test_string_where_varint_expected() -> None:
    deployment = ld(2, ld(1, "three"))  # DeploymentSpec.replicas is int32
    message = bad_request(envelope("apps/v1", "Deployment", deployment))
    assert "spec.replicas: wire type 2 where a varint was expected" in message


@pytest.mark.parametrize("raw", [
    b"\x0b",                       # field 1, wire type 3 (start group)
    b"\x0e",                       # field 1, wire type 6 (invalid)
    b"\x00\x00",                   # field number 0
    b"\x18" + b"\xff" * 11,        # varint longer than 10 bytes
    b"\x18\x80",                   # truncated varint
    b"\x1d\x00\x00",               # truncated fixed32
    b"\x19\x00",                   # truncated fixed64
])
def test_malformed_wire_data(raw: bytes) -> None:
    assert "invalid protobuf body" in bad_request(secret(raw))


# --- unknown fields ------------------------------------------------------------------------------

def test_unknown_fields_are_skipped_and_reported() -> None:
    meta = ld(1, "s1") + ld(50, "future") + vi(51, 1)
    raw = ld(1, meta) + entry(2, "k", b"v") + vi(99, 3) + ld(98, b"x") + b"\xbd\x06\x01\x02\x03\x04"
    raw += b"\xb9\x06" + bytes(8)  # field 103 fixed32 and 103 fixed64
    decoded = decode_k8s_protobuf_detailed(secret(raw))
    assert decoded.object == {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s1"},
                              "data": {"k": "dg=="}}
    found = [(u.path, u.message, u.number, u.wire_type) for u in decoded.unknown_fields]
    # A message's own fields are read before its nested messages are decoded.
    assert found == [("", "Secret", 99, 0), ("", "Secret", 98, 2), ("", "Secret", 103, 5),
                     ("", "Secret", 103, 1), ("metadata", "ObjectMeta", 50, 2),
                     ("metadata", "ObjectMeta", 51, 0)]
    assert str(decoded.unknown_fields[4]) == "metadata: unknown field number 50 in ObjectMeta (wire type 2)"
    assert str(decoded.unknown_fields[0]).startswith("<root>: unknown field number 99 in Secret")


def test_unknown_field_deep_in_pod_template_has_indexed_path() -> None:
    container = ld(1, "c") + ld(2, "img") + vi(200, 1)
    spec = ld(3, ld(2, ld(2, container)))  # DeploymentSpec.template.spec.containers
    decoded = decode_k8s_protobuf_detailed(envelope("apps/v1", "Deployment", ld(2, spec)))
    assert decoded.object["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "img"}]
    assert [u.path for u in decoded.unknown_fields] == ["spec.template.spec.containers[0]"]


# --- value types ---------------------------------------------------------------------------------

def test_time_is_rfc3339_seconds_and_empty_time_is_null() -> None:
    meta = ld(8, vi(1, 1_700_000_000) + vi(2, 999)) + ld(9, b"")
    obj = decode_k8s_protobuf(secret(ld(1, meta)))
    assert obj["metadata"] == {"creationTimestamp": "2023-11-14T22:13:20Z", "deletionTimestamp": None}


def test_time_before_epoch_and_out_of_range() -> None:
    obj = decode_k8s_protobuf(secret(ld(1, ld(8, vi(1, -86400)))))
    assert obj["metadata"]["creationTimestamp"] == "1969-12-31T00:00:00Z"
    assert "timestamp out of range" in bad_request(secret(ld(1, ld(8, vi(1, 2**62)))))


def test_object_meta_owner_references_finalizers_managed_fields() -> None:
    owner = ld(5, "apps/v1") + ld(1, "ReplicaSet") + ld(3, "web-abc") + ld(4, "u-1") + vi(6, 1) + vi(7, 0)
    managed = (ld(1, "kubectl") + ld(2, "Update") + ld(3, "v1") + ld(4, vi(1, 0)) + ld(6, "FieldsV1")
               + ld(7, ld(1, b'{"f:data":{}}')) + ld(8, ""))
    meta = (ld(1, "p") + ld(3, "ns") + ld(5, "") + vi(7, 0) + vi(10, 0) + entry(11, "app", "web")
            + entry(12, "note", "") + ld(13, owner) + ld(14, "example.com/a") + ld(14, "b") + ld(17, managed))
    obj = decode_k8s_protobuf(envelope("v1", "Pod", ld(1, meta)))
    assert obj["metadata"] == {
        "name": "p", "namespace": "ns", "deletionGracePeriodSeconds": 0,
        "labels": {"app": "web"}, "annotations": {"note": ""},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                             "uid": "u-1", "controller": True, "blockOwnerDeletion": False}],
        "finalizers": ["example.com/a", "b"],
        "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                           "time": "1970-01-01T00:00:00Z", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:data": {}}}],
    }


def test_fields_v1_must_be_json() -> None:
    meta = ld(17, ld(7, ld(1, b"{nope")))
    assert "managedFields[0].fieldsV1: fieldsV1 is not JSON" in bad_request(secret(ld(1, meta)))


def test_rolling_update_int_or_string_and_selector() -> None:
    rolling = ld(1, vi(1, 1) + ld(3, "25%")) + ld(2, vi(1, 0) + vi(2, 2))
    selector = entry(1, "app", "web") + ld(2, ld(1, "tier") + ld(2, "In") + ld(3, "a") + ld(3, "b"))
    spec = (vi(1, 2) + ld(2, selector) + ld(4, ld(1, "RollingUpdate") + ld(2, rolling)) + vi(5, 0)
            + vi(6, 0) + vi(7, 0) + vi(9, 600))
    obj = decode_k8s_protobuf(envelope("apps/v1", "Deployment", ld(2, spec)))
    assert obj["spec"] == {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}},
        "revisionHistoryLimit": 0,
        "progressDeadlineSeconds": 600,
    }


def test_empty_int_or_string_and_quantity_are_zero() -> None:
    port = ld(1, ld(4, b"") + vi(3, 80))  # ServiceSpec.ports[0].targetPort = {}
    obj = decode_k8s_protobuf(envelope("v1", "Service", ld(2, port)))
    assert obj["spec"]["ports"] == [{"port": 80, "targetPort": 0}]
    quota = ld(2, ld(1, ld(1, "pods") + ld(2, b"")) + ld(1, ld(1, "cpu")))
    assert decode_k8s_protobuf(envelope("v1", "ResourceQuota", quota))["spec"] == {
        "hard": {"pods": "0", "cpu": "0"}}


def test_replicaset_status_and_conditions() -> None:
    cond = ld(1, "ReplicaFailure") + ld(2, "True") + ld(3, vi(1, 60)) + ld(4, "") + ld(5, "")
    status = vi(1, 0) + vi(2, 0) + vi(3, 4) + ld(6, cond)
    obj = decode_k8s_protobuf(envelope("apps/v1", "ReplicaSet", ld(3, status)))
    assert obj["status"] == {"replicas": 0, "observedGeneration": 4, "conditions": [
        {"type": "ReplicaFailure", "status": "True", "lastTransitionTime": "1970-01-01T00:01:00Z"}]}


def test_negative_int32_and_packed_repeated_int64() -> None:
    security = vi(2, 0) + ld(4, varint(5) + varint(2**40)) + vi(4, 7)  # runAsUser 0; packed + unpacked
    spec = ld(14, security) + vi(25, -5 & 0xFFFF_FFFF_FFFF_FFFF)
    obj = decode_k8s_protobuf(envelope("v1", "Pod", ld(2, spec)))
    assert obj["spec"] == {"securityContext": {"runAsUser": 0, "supplementalGroups": [5, 2**40, 7]},
                           "priority": -5}


def test_singular_messages_merge_and_scalars_last_wins() -> None:
    raw = ld(1, ld(1, "first") + entry(11, "a", "1")) + ld(1, ld(1, "second") + entry(11, "b", "2"))
    raw += ld(3, "Opaque") + ld(3, "")
    obj = decode_k8s_protobuf(secret(raw))
    assert obj == {"kind": "Secret", "apiVersion": "v1",
                   "metadata": {"name": "second", "labels": {"a": "1", "b": "2"}}}


def test_invalid_utf8_becomes_replacement_character() -> None:
    obj = decode_k8s_protobuf(secret(ld(1, ld(1, b"bad\xffname"))))
    assert obj["metadata"]["name"] == "bad\ufffdname"


def test_map_entry_unknown_field_and_missing_key() -> None:
    decoded = decode_k8s_protobuf_detailed(secret(ld(4, ld(2, "v") + vi(3, 1))))
    assert decoded.object["stringData"] == {"": "v"}
    assert [(u.path, u.number) for u in decoded.unknown_fields] == [("stringData", 3)]


# --- wire reader and schema invariants -----------------------------------------------------------

def test_read_varint() -> None:
    assert read_varint(b"\xac\x02", 0) == (300, 2)
    assert read_varint(b"\x00\x96\x01", 1) == (150, 3)
    assert read_varint(varint(-1), 0) == (2**64 - 1, 10)
    with pytest.raises(WireError, match="truncated"):
        read_varint(b"\x80\x80", 0)


def test_iter_fields_all_wire_types() -> None:
    data = vi(1, 150) + b"\x11" + (7).to_bytes(8, "little") + ld(3, "hi")
    data += b"\x25" + (9).to_bytes(4, "little")
    assert [(f.number, f.wire_type, f.value) for f in iter_fields(data)] == [
        (1, 0, 150), (2, 1, 7), (3, 2, b"hi"), (4, 5, 9)]


def test_schema_references_and_numbers_are_consistent() -> None:
    for name, fields in protobuf_schema.MESSAGES.items():
        numbers = [f.number for f in fields]
        names = [f.name for f in fields]
        assert len(set(numbers)) == len(numbers), name
        assert len(set(names)) == len(names), name
        for f in fields:
            if f.type is protobuf_schema.T.MESSAGE:
                assert f.message in protobuf_schema.MESSAGES, (name, f.name)
            else:
                assert f.message is None and not f.inline, (name, f.name)
    assert set(protobuf_schema.KINDS.values()) <= set(protobuf_schema.MESSAGES)


def test_public_api() -> None:
    obj: dict[str, Any] = protobuf.decode_k8s_protobuf((FIXTURES / "namespace.bin").read_bytes())
    assert obj == {"kind": "Namespace", "apiVersion": "v1",
                   "metadata": {"name": "n1", "creationTimestamp": None}, "spec": {}, "status": {}}

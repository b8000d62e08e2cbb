"""Decode Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) into JSON form.

Since client-go 1.31 the typed clients behind ``kubectl create secret|configmap|namespace|deployment|
service|serviceaccount|quota`` and ``kubectl debug --copy-to`` POST protobuf, with no JSON fallback.
The body is the magic ``k8s\\x00`` followed by a ``runtime.Unknown`` envelope::

    1: TypeMeta {1: apiVersion, 2: kind}   2: raw (the typed message)
    3: contentEncoding (must be empty)     4: contentType

:func:`decode_k8s_protobuf` returns the object exactly as kubectl would have sent it as JSON (the
``--dry-run=client -o json`` form): ``kind`` and ``apiVersion`` from the envelope, zero scalars
dropped per Go's ``omitempty`` (see :mod:`shoal.api.protobuf_schema`), ``metadata.creationTimestamp``
``null``, Secret ``data``/ConfigMap ``binaryData`` values base64, IntOrString as int or string,
Quantity as string, Time as RFC3339 (seconds precision: like the apiserver, nanos are dropped).

Invariants:

* Malformed wire data (truncated varints or lengths, group/invalid wire types, a known field with
  the wrong wire type, field number 0) and unsupported kinds raise
  :class:`~shoal.kube.errors.ApiError` 400 BadRequest naming the JSON path of the problem.
* Unknown field numbers never stop decoding: they are skipped and returned by
  :func:`decode_k8s_protobuf_detailed` so the caller can warn (``fieldValidation=Warn``) or refuse
  (``Strict``).
* Repeated singular message fields merge (protobuf semantics); repeated scalars keep the last value.
* Invalid UTF-8 in strings becomes U+FFFD, as the apiserver's JSON encoder would print it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.api import protobuf_schema as schema
from shoal.api.decode import decode_json
from shoal.api.protobuf_schema import Card, Field, T
from shoal.kube import errors

MAGIC = b"k8s\x00"
WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALARS = frozenset({T.STRING, T.BYTES, T.INT32, T.INT64, T.BOOL})
_VARINTS = frozenset({T.INT32, T.INT64, T.BOOL})


class WireError(ValueError):
    """The bytes are not valid protobuf wire format."""


@dataclass(frozen=True, slots=True)
class WireField:
    """One field as read off the wire: an int for varint/fixed wire types, bytes for length-delimited."""

    number: int
    wire_type: int
    value: int | bytes


@dataclass(frozen=True, slots=True)
class UnknownField:
    """A field number the schema does not know, found in ``message`` at JSON ``path``."""

    path: str
    message: str
    number: int
    wire_type: int

    def __str__(self) -> str:
        where = self.path or "<root>"
        return f"{where}: unknown field number {self.number} in {self.message} (wire type {self.wire_type})"


@dataclass(frozen=True, slots=True)
class DecodedObject:
    object: dict[str, Any]
    api_version: str
    kind: str
    unknown_fields: tuple[UnknownField, ...]


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a base-128 varint at ``pos``; return (value as unsigned 64-bit, next position)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFF_FFFF_FFFF_FFFF, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def iter_fields(data: bytes) -> Iterator[WireField]:
    """Yield the fields of one message in wire order.  Raises :class:`WireError`."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: int | bytes
        if wire_type == WIRE_VARINT:
            value, pos = read_varint(data, pos)
        elif wire_type in (WIRE_FIXED64, WIRE_FIXED32):
            size = 8 if wire_type == WIRE_FIXED64 else 4
            if pos + size > end:
                raise WireError(f"field {number}: truncated fixed{size * 8}")
            value = int.from_bytes(data[pos:pos + size], "little")
            pos += size
        elif wire_type == WIRE_LEN:
            length, pos = read_varint(data, pos)
            if length > end - pos:
                raise WireError(f"field {number}: length {length} exceeds the {end - pos} bytes left")
            value = data[pos:pos + length]
            pos += length
        else:
            raise WireError(f"field {number}: unsupported wire type {wire_type}")
        yield WireField(number, wire_type, value)


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Decoder:
    def __init__(self, what: str) -> None:
        self.what = what
        self.unknown: list[UnknownField] = []

    def error(self, path: str, detail: str) -> errors.ApiError:
        return errors.bad_request(f"invalid protobuf body for {self.what}: {path or '<root>'}: {detail}")

    def fields(self, data: bytes, path: str) -> list[WireField]:
        try:
            return list(iter_fields(data))
        except WireError as exc:
            raise self.error(path, str(exc)) from exc

    def message(self, name: str, data: bytes, path: str) -> dict[str, Any]:
        by_number = schema.BY_NUMBER[name]
        values: dict[int, Any] = {}
        chunks: dict[int, bytearray] = {}  # singular message fields: concatenation == protobuf merge
        for wf in self.fields(data, path):
            f = by_number.get(wf.number)
            if f is None:
                self.unknown.append(UnknownField(path, name, wf.number, wf.wire_type))
                continue
            sub = _join(path, f.name)
            if f.card is Card.MAP:
                key, item = self.map_entry(f, wf, sub)
                values.setdefault(f.number, {})[key] = item
            elif f.card is Card.REPEATED:
                items = values.setdefault(f.number, [])
                items.extend(self.repeated(f, wf, f"{sub}[{len(items)}]"))
            elif f.type in _SCALARS:
                values[f.number] = self.scalar(f.type, wf, sub)
            else:
                chunks.setdefault(f.number, bytearray()).extend(self.payload(wf, sub))
        out: dict[str, Any] = {}
        for f in schema.MESSAGES[name]:
            if f.number in chunks:
                value = self.wrapped(f, bytes(chunks[f.number]), _join(path, f.name))
                if f.inline:
                    out.update(value)
                else:
                    out[f.name] = value
            elif f.number in values and (f.card is not Card.SINGLE or f.keep or values[f.number]):
                out[f.name] = values[f.number]
        return out

    def payload(self, wf: WireField, path: str) -> bytes:
        if not isinstance(wf.value, bytes):
            raise self.error(path, f"wire type {wf.wire_type} where a length-delimited value was expected")
        return wf.value

    def scalar(self, kind: T, wf: WireField, path: str) -> Any:
        if kind in _VARINTS:
            if wf.wire_type != WIRE_VARINT or not isinstance(wf.value, int):
                raise self.error(path, f"wire type {wf.wire_type} where a varint was expected")
            if kind is T.BOOL:
                return wf.value != 0
            return _signed(wf.value, 32 if kind is T.INT32 else 64)
        raw = self.payload(wf, path)
        if kind is T.BYTES:
            return base64.b64encode(raw).decode("ascii")
        return raw.decode("utf-8", errors="replace")

    def repeated(self, f: Field, wf: WireField, path: str) -> list[Any]:
        if f.type in _VARINTS and wf.wire_type == WIRE_LEN:  # packed
            packed, pos, out = self.payload(wf, path), 0, []
            try:
                while pos < len(packed):
                    value, pos = read_varint(packed, pos)
                    out.append(self.scalar(f.type, WireField(f.number, WIRE_VARINT, value), path))
            except WireError as exc:
                raise self.error(path, str(exc)) from exc
            return out
        if f.type in _SCALARS:
            return [self.scalar(f.type, wf, path)]
        return [self.wrapped(f, self.payload(wf, path), path)]

    def map_entry(self, f: Field, wf: WireField, path: str) -> tuple[str, Any]:
        key = ""
        value: Any = self.wrapped(f, b"", path) if f.type is T.QUANTITY else ""
        for entry in self.fields(self.payload(wf, path), path):
            if entry.number == 1:
                key = self.scalar(T.STRING, entry, path)
            elif entry.number == 2 and f.type in _SCALARS:
                value = self.scalar(f.type, entry, f"{path}[{key}]")
            elif entry.number == 2:
                value = self.wrapped(f, self.payload(entry, path), f"{path}[{key}]")
            else:
                self.unknown.append(UnknownField(path, "map entry", entry.number, entry.wire_type))
        return key, value

    def wrapped(self, f: Field, data: bytes, path: str) -> Any:
        """Decode a message-typed value: a nested object, or one of the JSON-scalar wrappers."""
        if f.type is T.MESSAGE:
            if f.message is None:
                raise errors.internal(f"protobuf schema field {f.name} names no message")
            return self.message(f.message, data, path)
        if f.type is T.FIELDS_V1:
            return self.fields_v1(data, path)
        name = {T.TIME: "Timestamp", T.INT_OR_STRING: "IntOrString", T.QUANTITY: "Quantity"}[f.type]
        inner = self.message(name, data, path)
        if f.type is T.QUANTITY:
            return inner.get("string") or "0"
        if f.type is T.INT_OR_STRING:
            return inner.get("strVal", "") if inner.get("type", 0) == 1 else inner.get("intVal", 0)
        if not data:  # metav1.Time marshals its zero value as an empty message
            return None
        try:
            when = _EPOCH + timedelta(seconds=inner.get("seconds", 0))
        except OverflowError as exc:
            raise self.error(path, "timestamp out of range") from exc
        return f"{when.year:04d}-{when:%m-%dT%H:%M:%S}Z"

    def fields_v1(self, data: bytes, path: str) -> Any:
        raw = b""
        for wf in self.fields(data, path):
            if wf.number == 1:
                raw = self.payload(wf, path)
            else:
                self.unknown.append(UnknownField(path, "FieldsV1", wf.number, wf.wire_type))
        if not raw:
            return None
        try:
            return decode_json(raw, "fieldsV1").value  # bounded: no RecursionError on deep input
        except errors.ApiError as exc:
            raise self.error(path, f"fieldsV1 is not JSON: {exc.message}") from exc


def _envelope(body: bytes) -> tuple[str, str, bytes, str]:
    """Split ``k8s\\0`` + runtime.Unknown into (apiVersion, kind, raw, contentEncoding)."""
    if not body.startswith(MAGIC):
        raise errors.bad_request("protobuf body does not start with the Kubernetes magic prefix 'k8s\\x00'")
    decoder = _Decoder("runtime.Unknown envelope")
    api_version = kind = encoding = ""
    raw = b""
    for wf in decoder.fields(body[len(MAGIC):], ""):
        if wf.number == 1:
            for tm in decoder.fields(decoder.payload(wf, "typeMeta"), "typeMeta"):
                if tm.number == 1:
                    api_version = decoder.scalar(T.STRING, tm, "typeMeta.apiVersion")
                elif tm.number == 2:
                    kind = decoder.scalar(T.STRING, tm, "typeMeta.kind")
        elif wf.number == 2:
            raw = decoder.payload(wf, "raw")
        elif wf.number == 3:
            encoding = decoder.scalar(T.STRING, wf, "contentEncoding")
    return api_version, kind, raw, encoding


def decode_k8s_protobuf_detailed(body: bytes) -> DecodedObject:
    """Decode a protobuf request body; also report the field numbers that were skipped."""
    api_version, kind, raw, encoding = _envelope(body)
    if not kind:
        raise errors.bad_request("protobuf envelope does not name a kind (typeMeta.kind is empty)")
    message = schema.KINDS.get((api_version, kind))
    if message is None:
        raise errors.bad_request(
            f'protobuf request bodies of kind "{kind}" in version "{api_version}" are not supported; '
            "send application/json instead")
    if encoding:
        raise errors.bad_request(f'unsupported protobuf contentEncoding "{encoding}"')
    decoder = _Decoder(f"{api_version}, Kind={kind}")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    obj.update(decoder.message(message, raw, ""))
    return DecodedObject(obj, api_version, kind, tuple(decoder.unknown))


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into the JSON-form object (see the module docstring)."""
    return decode_k8s_protobuf_detailed(body).object

"""Pod templates of Deployments and ReplicaSets: normal form, equality, the pod-template-hash.

A Deployment's *new* ReplicaSet is the one whose template equals the Deployment's template
once the ``pod-template-hash`` label is ignored (``EqualIgnoreHash``).  Equality is judged on
the :func:`normalize`-d forms: ``None``, ``{}`` and ``[]`` values are dropped recursively.
That is what Go's typed comparison does for free (``creationTimestamp: null`` and
``resources: {}`` are the zero values there), and it is what makes ``kubectl rollout undo``
work: undo sends the old RS template with exactly those two decorations, and must bring the
old ReplicaSet back instead of creating a third one.  Both objects are defaulted by the API
server, so defaulted fields compare equal too.

The hash (``controller.ComputeHash``): 32-bit FNV-1a over the canonical JSON of the normal
form (sorted keys, no whitespace), then, if ``collisionCount`` is set, its value as 8
little-endian bytes; the decimal digits of the result are mapped onto the alphabet
``bcdfghjklmnpqrstvwxz2456789`` (``rand.SafeEncodeString``), so a hash is 1-10 of those
characters.  The bytes differ from Go's (which hashes a Go-syntax dump of the struct) but the
properties are the same: stable, deterministic, and changed by every template change.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from shoal.kube.objects import Obj

__all__ = ["HASH_LABEL", "SAFE_ALPHABET", "compute_hash", "equal_ignore_hash", "fnv32a", "normalize",
           "safe_encode", "without_hash"]

#: The label the Deployment controller adds to a ReplicaSet, its selector and its pods.
HASH_LABEL = "pod-template-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

def normalize(value: Any) -> Any:
    """``value`` without ``None``/``{}``/``[]`` members, recursively (a new object)."""
    if isinstance(value, dict):
        out = {k: normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [normalize(item) for item in value]
    return value


def without_hash(template: Any) -> Obj:
    """A deep copy of ``template`` without the ``pod-template-hash`` label."""
    copied: Obj = copy.deepcopy(template) if isinstance(template, dict) else {}
    labels = (copied.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return copied


def equal_ignore_hash(first: Any, second: Any) -> bool:
    """Whether two pod templates are the same apart from the hash label and empty values."""
    return bool(normalize(without_hash(first)) == normalize(without_hash(second)))


def fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each character mapped onto :data:`SAFE_ALPHABET`."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def compute_hash(template: Any, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of ``template`` (see the module docstring)."""
    data = orjson.dumps(normalize(without_hash(template)), option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(8, "little")
    return safe_encode(str(fnv32a(data)))

"""Encryption at rest for Secret values: an AES-GCM envelope in the style of Kubernetes' KMS v2.

Each object gets a fresh 256-bit data key (DEK).  The value is sealed with the DEK, and the
DEK is sealed ("wrapped") with a key-encryption key (KEK) from the keyring.  Layout::

    b"k8s:enc:shoal-aesgcm:v1:" + key_id + b":"    header; key_id names the KEK, e.g. b"kek1"
    u16 big-endian  len(wrapped)                    length prefix
    wrapped = kek_nonce(12) + AESGCM(KEK).encrypt(kek_nonce, DEK, aad)   (12 + 32 + 16 bytes)
    nonce(12) + AESGCM(DEK).encrypt(nonce, plaintext, aad)

``aad = header + u32 big-endian len(context) + context``.  ``context`` is the storage key
(``b"/registry/secrets/default/s1"``), so a blob copied to another key, or relabelled with
another key id, fails to decrypt.

Contract and invariants
-----------------------
* The KEK lives in ``<data_dir>/encryption/kek`` (32 raw bytes, 0600), made on first start
  and loaded as key id ``kek1``.  It is never replaced automatically.
* The keyring maps key ids to KEKs; ``encrypt`` uses the primary id and ``decrypt`` uses the
  id named in the blob, so a new KEK can be added and made primary later (rotation) while
  old blobs still decrypt.  Key ids are ``[a-z0-9-]+``.
* Nonces are random (96 bits).  A DEK seals exactly one value, so a DEK nonce is never
  reused.  KEK nonces are random too; NIST's bound for random nonces (2**32 messages per
  key) is far above the Secret writes of a cluster, and adding a new KEK resets it.
* ``decrypt`` raises :class:`DecryptionError` for any blob that is not exactly what
  ``encrypt`` produced for that context under a key in the keyring: unknown prefix or key
  id, truncation, tampering, wrong context.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.kube.files import atomic_write

PREFIX = b"k8s:enc:shoal-aesgcm:v1:"
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
DEFAULT_KEY_ID = "kek1"
_KEY_ID_RE = re.compile(r"[a-z0-9-]+")
_WRAPPED_LEN = NONCE_SIZE + KEY_SIZE + TAG_SIZE


class EncryptionError(Exception):
    """Base class of encryption-at-rest failures."""


class KeyFileError(EncryptionError):
    """The KEK file or keyring is invalid."""


class DecryptionError(EncryptionError):
    """A blob could not be authenticated and decrypted (tampered, truncated, wrong context or key)."""


def is_encrypted(blob: bytes) -> bool:
    """True if ``blob`` carries this module's envelope prefix (it may still fail to decrypt)."""
    return blob.startswith(PREFIX)


class SecretBox:
    """Envelope encryption with a keyring of KEKs; ``primary`` is the key id used to encrypt."""

    def __init__(self, keyring: Mapping[str, bytes], primary: str) -> None:
        for key_id, kek in keyring.items():
            if not _KEY_ID_RE.fullmatch(key_id):
                raise KeyFileError(f"invalid key id {key_id!r}: must match [a-z0-9-]+")
            if len(kek) != KEY_SIZE:
                raise KeyFileError(f"KEK {key_id!r} must be {KEY_SIZE} bytes, got {len(kek)}")
        if primary not in keyring:
            raise KeyFileError(f"primary key id {primary!r} is not in the keyring")
        self._keks = {key_id: AESGCM(kek) for key_id, kek in keyring.items()}
        self._primary = primary

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SecretBox:
        """Load ``data_dir/encryption/kek`` as ``kek1``, creating it (32 random bytes, 0600) if absent."""
        path = data_dir / "encryption" / "kek"
        if path.exists():
            kek = path.read_bytes()
            if len(kek) != KEY_SIZE:
                raise KeyFileError(f"{path}: expected {KEY_SIZE} bytes, found {len(kek)}")
        else:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            kek = os.urandom(KEY_SIZE)
            atomic_write(path, kek, 0o600)
        return cls({DEFAULT_KEY_ID: kek}, DEFAULT_KEY_ID)

    @property
    def primary_key_id(self) -> str:
        return self._primary

    @staticmethod
    def is_encrypted(blob: bytes) -> bool:
        return is_encrypted(blob)

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        """Seal ``plaintext`` bound to ``context``; every call gives a different blob."""
        header = PREFIX + self._primary.encode("ascii") + b":"
        aad = _aad(header, context)
        dek = AESGCM.generate_key(bit_length=KEY_SIZE * 8)
        kek_nonce = os.urandom(NONCE_SIZE)
        wrapped = kek_nonce + self._keks[self._primary].encrypt(kek_nonce, dek, aad)
        nonce = os.urandom(NONCE_SIZE)
        sealed = AESGCM(dek).encrypt(nonce, plaintext, aad)
        return header + struct.pack(">H", len(wrapped)) + wrapped + nonce + sealed

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        """Open a blob made by :meth:`encrypt` for the same ``context``."""
        if not is_encrypted(blob):
            raise DecryptionError("not an encrypted value (unknown prefix)")
        sep = blob.find(b":", len(PREFIX))
        if sep < 0:
            raise DecryptionError("malformed envelope: no key id terminator")
        key_id = blob[len(PREFIX) : sep].decode("ascii", errors="replace")
        kek = self._keks.get(key_id)
        if kek is None:
            raise DecryptionError(f"unknown key id {key_id!r}")
        header = blob[: sep + 1]
        body = blob[sep + 1 :]
        if len(body) < 2:
            raise DecryptionError("malformed envelope: truncated length prefix")
        (wrapped_len,) = struct.unpack(">H", body[:2])
        if wrapped_len != _WRAPPED_LEN or len(body) < 2 + wrapped_len + NONCE_SIZE + TAG_SIZE:
            raise DecryptionError("malformed envelope: bad lengths")
        wrapped = body[2 : 2 + wrapped_len]
        nonce = body[2 + wrapped_len : 2 + wrapped_len + NONCE_SIZE]
        sealed = body[2 + wrapped_len + NONCE_SIZE :]
        aad = _aad(header, context)
        try:
            dek = kek.decrypt(wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], aad)
            return AESGCM(dek).decrypt(nonce, sealed, aad)
        except InvalidTag as exc:
            raise DecryptionError(
                "authentication failed: tampered value, wrong key or wrong context"
            ) from exc


def _aad(header: bytes, context: bytes) -> bytes:
    return header + struct.pack(">I", len(context)) + context

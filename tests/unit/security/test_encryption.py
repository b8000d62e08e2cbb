"""Envelope encryption of Secret values: round trips, layout, and every way a blob can be wrong."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from shoal.security import encryption
from shoal.security.encryption import DecryptionError, KeyFileError, SecretBox

CTX = b"/registry/secrets/default/s1"
SECRET = b'{"data":{"password":"aHVudGVyMi1zdXBlci1zZWNyZXQ="},"note":"hunter2-super-secret"}'


@pytest.fixture
def box(tmp_path: Path) -> SecretBox:
    return SecretBox.load_or_create(tmp_path)


def test_round_trip(box: SecretBox) -> None:
    for plaintext in (SECRET, b"", os.urandom(100_000)):
        assert box.decrypt(box.encrypt(plaintext, CTX), CTX) == plaintext


def test_layout_is_prefixed_and_length_prefixed(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, CTX)
    header = b"k8s:enc:shoal-aesgcm:v1:kek1:"
    assert blob.startswith(header)
    (wrapped_len,) = struct.unpack(">H", blob[len(header) : len(header) + 2])
    assert wrapped_len == 12 + 32 + 16  # nonce + DEK + tag
    rest = blob[len(header) + 2 + wrapped_len :]
    assert len(rest) == 12 + len(SECRET) + 16  # nonce + ciphertext + tag


def test_fresh_ciphertext_every_time_and_no_plaintext_leak(box: SecretBox) -> None:
    blobs = {box.encrypt(SECRET, CTX) for _ in range(20)}
    assert len(blobs) == 20
    for blob in blobs:
        assert b"hunter2" not in blob
        assert b"aHVudGVy" not in blob
        assert b"password" not in blob


def test_is_encrypted(box: SecretBox) -> None:
    assert encryption.is_encrypted(box.encrypt(SECRET, CTX))
    assert box.is_encrypted(box.encrypt(b"", CTX))
    assert not encryption.is_encrypted(SECRET)
    assert not encryption.is_encrypted(b"")
    with pytest.raises(DecryptionError, match="prefix"):
        box.decrypt(SECRET, CTX)


def test_any_flipped_byte_is_detected(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, CTX)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionError):
            box.decrypt(bytes(tampered), CTX)


def test_truncation_and_extension_are_detected(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, CTX)
    for n in range(len(blob)):
        with pytest.raises(DecryptionError):
            box.decrypt(blob[:n], CTX)
    with pytest.raises(DecryptionError):
        box.decrypt(blob + b"\x00", CTX)


def test_wrong_context_is_detected(box: SecretBox) -> None:
    blob = box.encrypt(SECRET, CTX)
    for other in (b"/registry/secrets/default/s2", b"/registry/secrets/kube-system/s1", b"", CTX + b"x"):
        with pytest.raises(DecryptionError, match="authentication failed"):
            box.decrypt(blob, other)


def test_kek_file_created_once_and_reused(tmp_path: Path) -> None:
    first = SecretBox.load_or_create(tmp_path)
    kek_path = tmp_path / "encryption" / "kek"
    assert kek_path.stat().st_mode & 0o777 == 0o600
    kek = kek_path.read_bytes()
    assert len(kek) == 32
    blob = first.encrypt(SECRET, CTX)
    second = SecretBox.load_or_create(tmp_path)
    assert kek_path.read_bytes() == kek
    assert second.decrypt(blob, CTX) == SECRET


def test_other_kek_cannot_decrypt(tmp_path: Path) -> None:
    blob = SecretBox.load_or_create(tmp_path / "a").encrypt(SECRET, CTX)
    with pytest.raises(DecryptionError):
        SecretBox.load_or_create(tmp_path / "b").decrypt(blob, CTX)


def test_bad_kek_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "encryption").mkdir()
    (tmp_path / "encryption" / "kek").write_bytes(b"short")
    with pytest.raises(KeyFileError, match="32 bytes"):
        SecretBox.load_or_create(tmp_path)


def test_keyring_shape_supports_rotation() -> None:
    k1, k2 = os.urandom(32), os.urandom(32)
    old = SecretBox({"kek1": k1}, "kek1")
    new = SecretBox({"kek1": k1, "kek2": k2}, "kek2")
    old_blob = old.encrypt(SECRET, CTX)
    new_blob = new.encrypt(SECRET, CTX)
    assert new.primary_key_id == "kek2"
    assert new_blob.startswith(b"k8s:enc:shoal-aesgcm:v1:kek2:")
    assert new.decrypt(old_blob, CTX) == SECRET
    assert new.decrypt(new_blob, CTX) == SECRET
    with pytest.raises(DecryptionError, match="unknown key id"):
        old.decrypt(new_blob, CTX)


def test_relabelled_key_id_fails_even_with_same_key_bytes() -> None:
    k = os.urandom(32)
    box = SecretBox({"kek1": k, "kek2": k}, "kek1")
    blob = box.encrypt(SECRET, CTX)
    relabelled = blob.replace(b":kek1:", b":kek2:", 1)
    with pytest.raises(DecryptionError):
        box.decrypt(relabelled, CTX)


@pytest.mark.parametrize(
    ("keyring", "primary", "message"),
    [
        ({"kek1": b"x" * 31}, "kek1", "32 bytes"),
        ({"bad:id": b"x" * 32}, "bad:id", "invalid key id"),
        ({"kek1": b"x" * 32}, "kek2", "not in the keyring"),
    ],
)
def test_invalid_keyring(keyring: dict[str, bytes], primary: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message):
        SecretBox(keyring, primary)

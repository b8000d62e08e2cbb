"""The cluster PKI, checked with real X.509 path validation and real TLS handshakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.security import pki

FILES = ("ca.crt", "ca.key", "server.crt", "server.key")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _snapshot(tls_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {name: ((tls_dir / name).read_bytes(), (tls_dir / name).stat().st_mtime_ns) for name in FILES}


def _server_verifier(ca_pem: bytes, name: str) -> verification.ServerVerifier:
    store = verification.Store(x509.load_pem_x509_certificates(ca_pem))
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        subject = x509.DNSName(name)
    return verification.PolicyBuilder().store(store).build_server_verifier(subject)


def _client_ctx(cafile: Path, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile))
    ctx.set_alpn_protocols(["http/1.1"])
    if cert is not None:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx


async def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str) -> str:
    """Connect over TLS; the server answers with the peer cert's CN (or "-") and the ALPN protocol."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        cn = "-"
        if peer:
            cn = next(v for rdn in peer["subject"] for k, v in rdn if k == "commonName")
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        writer.write(f"{cn} {alpn}\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname),
            timeout=5,
        )
        try:
            return (await asyncio.wait_for(reader.readline(), timeout=5)).decode().strip()
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


def test_first_start_creates_ca_and_serving_cert(tmp_path: Path) -> None:
    p = pki.ensure_pki(tmp_path, ["node-a.example"], ["192.168.7.7"])
    tls = tmp_path / "tls"
    assert p.ca_cert_path == tls / "ca.crt"
    assert (tls / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (tls / "server.key").stat().st_mode & 0o777 == 0o600
    assert tls.stat().st_mode & 0o077 == 0
    assert sorted(f.name for f in tls.iterdir()) == sorted(FILES)  # no temp files left

    ca = _cert(tls / "ca.crt")
    assert p.ca_pem == (tls / "ca.crt").read_bytes()
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "shoal-ca"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)

    server = _cert(tls / "server.crt")
    server.verify_directly_issued_by(ca)
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (
        dt.timedelta(days=364)
        < server.not_valid_after_utc - server.not_valid_before_utc
        < dt.timedelta(days=366)
    )
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "localhost",
        "node-a.example",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    }
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "192.168.7.7",
        "10.43.0.1",
    }


@pytest.mark.parametrize(
    "name", ["localhost", "127.0.0.1", "10.43.0.1", "192.168.7.7", "kubernetes.default.svc", "node-a.example"]
)
def test_serving_cert_passes_path_validation(tmp_path: Path, name: str) -> None:
    p = pki.ensure_pki(tmp_path, ["node-a.example"], ["192.168.7.7"])
    leaf = _cert(p.server_cert_path)
    chain = _server_verifier(p.ca_pem, name).verify(leaf, [])
    assert chain[-1] == _cert(p.ca_cert_path)


def test_serving_cert_rejected_for_other_name_or_other_ca(tmp_path: Path) -> None:
    p = pki.ensure_pki(tmp_path / "a", [], [])
    other = pki.ensure_pki(tmp_path / "b", [], [])
    leaf = _cert(p.server_cert_path)
    with pytest.raises(verification.VerificationError):
        _server_verifier(p.ca_pem, "evil.example").verify(leaf, [])
    with pytest.raises(verification.VerificationError):
        _server_verifier(other.ca_pem, "localhost").verify(leaf, [])


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
async def test_tls_handshake_with_cluster_ca(tmp_path: Path, server_hostname: str) -> None:
    p = pki.ensure_pki(tmp_path, [], [])
    reply = await _handshake(p.ssl_context(), _client_ctx(p.ca_cert_path), server_hostname)
    assert reply == "- http/1.1"


async def test_tls_handshake_fails_with_wrong_ca_or_hostname(tmp_path: Path) -> None:
    p = pki.ensure_pki(tmp_path / "a", [], [])
    other = pki.ensure_pki(tmp_path / "b", [], [])
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(p.ssl_context(), _client_ctx(other.ca_cert_path), "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(p.ssl_context(), _client_ctx(p.ca_cert_path), "evil.example")


def test_server_context_settings(tmp_path: Path) -> None:
    ctx = pki.ensure_pki(tmp_path, [], []).ssl_context()
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert (
        pki.ensure_pki(tmp_path, [], []).ssl_context(request_client_cert=False).verify_mode == ssl.CERT_NONE
    )


async def test_client_cert_mtls_and_verification(tmp_path: Path) -> None:
    p = pki.ensure_pki(tmp_path, [], [])
    cert_pem, key_pem = p.issue_client_cert("system:node:n1", ["system:nodes"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:nodes"
    cert.verify_directly_issued_by(_cert(p.ca_cert_path))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    (tmp_path / "n1.crt").write_bytes(cert_pem)
    (tmp_path / "n1.key").write_bytes(key_pem)
    client = _client_ctx(p.ca_cert_path, (tmp_path / "n1.crt", tmp_path / "n1.key"))
    assert await _handshake(p.ssl_context(), client, "localhost") == "system:node:n1 http/1.1"


async def test_client_cert_from_another_ca_is_refused(tmp_path: Path) -> None:
    p = pki.ensure_pki(tmp_path / "a", [], [])
    foreign = pki.ensure_pki(tmp_path / "b", [], [])
    cert_pem, key_pem = foreign.issue_client_cert("intruder", [])
    (tmp_path / "x.crt").write_bytes(cert_pem)
    (tmp_path / "x.key").write_bytes(key_pem)
    client = _client_ctx(p.ca_cert_path, (tmp_path / "x.crt", tmp_path / "x.key"))
    # TLS 1.2 fails inside the handshake; with TLS 1.3 the client finishes first and the server
    # then aborts.  Either way the server never answers.
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        client.maximum_version = version
        try:
            reply: str | None = await _handshake(p.ssl_context(), client, "localhost")
        except (ssl.SSLError, ConnectionError):
            reply = None
        assert reply in (None, ""), version


def test_second_call_reuses_files_unchanged(tmp_path: Path) -> None:
    first = pki.ensure_pki(tmp_path, ["h1"], ["10.0.0.5"])
    before = _snapshot(tmp_path / "tls")
    second = pki.ensure_pki(tmp_path, ["h1"], ["10.0.0.5"])
    assert _snapshot(tmp_path / "tls") == before
    assert second.ca_hash() == first.ca_hash()
    # a subset of the existing SANs is also satisfied by the existing cert
    pki.ensure_pki(tmp_path, [], [])
    assert _snapshot(tmp_path / "tls") == before


def test_missing_san_reissues_serving_cert_and_keeps_ca(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, ["h1"], ["10.0.0.5"])
    before = _snapshot(tmp_path / "tls")
    p = pki.ensure_pki(tmp_path, ["h1", "h2"], ["10.0.0.5", "10.0.0.6"])
    after = _snapshot(tmp_path / "tls")
    assert after["ca.crt"] == before["ca.crt"]
    assert after["ca.key"] == before["ca.key"]
    assert after["server.crt"][0] != before["server.crt"][0]
    assert after["server.key"][0] != before["server.key"][0]
    _server_verifier(p.ca_pem, "h2").verify(_cert(p.server_cert_path), [])
    _server_verifier(p.ca_pem, "10.0.0.6").verify(_cert(p.server_cert_path), [])


def test_expiring_serving_cert_is_reissued(tmp_path: Path) -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=340)  # cert expires in ~25 days
    pki.ensure_pki(tmp_path, [], [], now=long_ago)
    old = _cert(tmp_path / "tls" / "server.crt")
    pki.ensure_pki(tmp_path, [], [])
    new = _cert(tmp_path / "tls" / "server.crt")
    assert new.serial_number != old.serial_number
    assert new.not_valid_after_utc - dt.datetime.now(dt.UTC) > dt.timedelta(days=360)


def test_serving_cert_from_another_ca_is_reissued(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path / "a", [], [])
    pki.ensure_pki(tmp_path / "b", [], [])
    for name in ("server.crt", "server.key"):
        shutil.copy(tmp_path / "b" / "tls" / name, tmp_path / "a" / "tls" / name)
    p = pki.ensure_pki(tmp_path / "a", [], [])
    _server_verifier(p.ca_pem, "localhost").verify(_cert(p.server_cert_path), [])


def test_incomplete_or_corrupt_ca_is_an_error_not_replaced(tmp_path: Path) -> None:
    pki.ensure_pki(tmp_path, [], [])
    ca_key = tmp_path / "tls" / "ca.key"
    saved = ca_key.read_bytes()
    ca_key.unlink()
    with pytest.raises(pki.PkiError, match="incomplete"):
        pki.ensure_pki(tmp_path, [], [])
    ca_key.write_bytes(b"garbage")
    with pytest.raises(pki.PkiError, match="unreadable"):
        pki.ensure_pki(tmp_path, [], [])
    ca_key.write_bytes(saved)
    pki.ensure_pki(tmp_path, [], [])


def test_bad_ip_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="not an IP"):
        pki.ensure_pki(tmp_path, [], ["10.0.0.300"])


def test_ca_hash_matches_openssl_pipeline(tmp_path: Path) -> None:
    """The kubeadm-documented recipe: openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256."""
    p = pki.ensure_pki(tmp_path, [], [])
    pub = subprocess.run(
        ["openssl", "x509", "-pubkey", "-noout", "-in", str(p.ca_cert_path)], check=True, capture_output=True
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True, capture_output=True
    ).stdout
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hex"], input=der, check=True, capture_output=True
    )
    expected = digest.stdout.decode().split("=")[-1].strip()
    assert p.ca_hash() == f"sha256:{expected}"
    assert pki.ca_hash_from_pem(p.ca_pem) == p.ca_hash()


def test_first_start_is_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    pki.ensure_pki(tmp_path, ["h"], ["10.1.2.3"])
    elapsed = time.perf_counter() - start
    assert elapsed < 0.2, f"first start took {elapsed * 1000:.0f} ms"

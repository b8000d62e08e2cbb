"""The admin's client certificate and the kubeconfig that carries it (Issue 8 items 10 and 18).

Ends with real kubectl reading ``client-certificate-data``/``client-key-data`` and presenting
the certificate in a real TLS handshake, next to the token.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import shutil
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.security import pki
from shoal.security.kubeconfig import write_kubeconfig
from shoal.security.tokens import ADMIN_GROUPS, ADMIN_USER, ensure_admin_token


def stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_the_admin_cert_is_issued_once_and_reused_until_near_expiry(tmp_path: Path) -> None:
    """Issue 8 item 18: CN shoal-admin, O system:masters (the admin token's user and groups),
    clientAuth, from the cluster CA; item 10: a second start rewrites nothing."""
    ca = pki.ensure_pki(tmp_path, [], [])
    first = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    assert (first.cert_path, first.key_path) == (tmp_path / "tls" / "client-admin.crt",
                                                 tmp_path / "tls" / "client-admin.key")
    assert first.key_path.stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(first.cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.ca_pem))
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["shoal-admin"]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]

    before = stamp(first.cert_path), stamp(first.key_path)
    again = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    assert (stamp(again.cert_path), stamp(again.key_path)) == before
    assert (again.cert_pem, again.key_pem) == (first.cert_pem, first.key_pem)

    near_expiry = cert.not_valid_after_utc - pki.RENEW_BEFORE + dt.timedelta(hours=1)
    renewed = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS, now=near_expiry)
    assert renewed.cert_pem != first.cert_pem and renewed.cert_path.read_bytes() == renewed.cert_pem
    other_groups = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ["other"])
    assert other_groups.cert_pem != renewed.cert_pem


def test_a_cert_of_another_ca_or_with_a_foreign_key_is_reissued(tmp_path: Path) -> None:
    """Issue 8 item 18: the admin cert always chains to the current cluster CA."""
    ca = pki.ensure_pki(tmp_path / "a", [], [])
    foreign = pki.ensure_pki(tmp_path / "b", [], [])
    planted = pki.ensure_client_cert(foreign, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    target = tmp_path / "a" / "tls"
    shutil.copy(planted.cert_path, target / "client-admin.crt")
    shutil.copy(planted.key_path, target / "client-admin.key")
    fixed = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    x509.load_pem_x509_certificate(fixed.cert_pem).verify_directly_issued_by(
        x509.load_pem_x509_certificate(ca.ca_pem))
    (target / "client-admin.key").write_bytes(planted.key_pem)  # a key that does not match
    assert pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS).cert_pem != fixed.cert_pem


def test_the_kubeconfig_is_written_only_when_it_changes(tmp_path: Path) -> None:
    """Issue 8 item 10: an unchanged kubeconfig is not rewritten (a start on a full disk must not write)."""
    ca = pki.ensure_pki(tmp_path, [], [])
    cert = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    path = tmp_path / "kubeconfig.yaml"
    args = (path, "https://127.0.0.1:6443", ca.ca_pem, "t0ken")
    assert write_kubeconfig(*args, client_cert=(cert.cert_pem, cert.key_pem)) is True
    before = stamp(path)
    assert write_kubeconfig(*args, client_cert=(cert.cert_pem, cert.key_pem)) is False
    assert stamp(path) == before
    os.chmod(path, 0o644)
    assert write_kubeconfig(*args, client_cert=(cert.cert_pem, cert.key_pem)) is False
    assert path.stat().st_mode & 0o777 == 0o600 and stamp(path) == before
    assert write_kubeconfig(*args) is True  # the certificate left: the file changes

    write_kubeconfig(*args, client_cert=(cert.cert_pem, cert.key_pem))
    [user] = yaml.safe_load(path.read_text())["users"]
    assert user["name"] == "shoal-admin"
    assert set(user["user"]) == {"client-certificate-data", "client-key-data", "token"}
    assert base64.b64decode(user["user"]["client-certificate-data"]) == cert.cert_pem
    assert base64.b64decode(user["user"]["client-key-data"]) == cert.key_pem
    assert user["user"]["token"] == "t0ken"


async def test_kubectl_presents_the_kubeconfig_certificate_and_the_token(tmp_path: Path) -> None:
    """Issue 8 item 18: real kubectl reads client-certificate-data/client-key-data and presents the
    certificate in the handshake (verified by the cluster CA's server context) next to the token."""
    ca = pki.ensure_pki(tmp_path, [], [])
    token = ensure_admin_token(tmp_path)
    cert = pki.ensure_client_cert(ca, "client-admin", ADMIN_USER, ADMIN_GROUPS)
    seen: list[tuple[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        peer = writer.get_extra_info("peercert") or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), "-")
        seen.append((cn, "token" if f"authorization: bearer {token.lower()}" in head else "no token"))
        body = b'{"major":"1","minor":"32","gitVersion":"v1.32.0"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ca.ssl_context())
    try:
        port = server.sockets[0].getsockname()[1]
        kubeconfig = tmp_path / "kubeconfig.yaml"
        write_kubeconfig(kubeconfig, f"https://127.0.0.1:{port}", ca.ca_pem, token,
                         client_cert=(cert.cert_pem, cert.key_pem))
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(kubeconfig), "get", "--raw", "/version",
            env={"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        assert b"v1.32.0" in out
        assert seen and set(seen) == {("shoal-admin", "token")}
    finally:
        server.close()
        await server.wait_closed()

"""Client-certificate authentication (Issue 8 item 18), with certificates verified in real TLS handshakes.

The certificate dicts come from a real handshake on 127.0.0.1 against the cluster CA's server
context (:meth:`shoal.security.pki.Pki.ssl_context`, client certificates optional), exactly as
``ssl`` hands them to the API server's TLS layer; the harness then puts them into the scope
state the way that layer does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.api.authn import PEERCERT_STATE_KEY, X509Authentication, peercert_user
from shoal.security import pki
from shoal.security.user import UserInfo
from tests.support.api_harness import ApiHarness, ok, status_of

REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


async def verified_peercert(server: pki.Pki, cert_pem: bytes, key_pem: bytes, tmp: Path) -> dict[str, Any] | None:
    """The client certificate as the server side of a real TLS handshake sees it (None: refused)."""
    (tmp / "c.crt").write_bytes(cert_pem)
    (tmp / "c.key").write_bytes(key_pem)
    client = ssl.create_default_context(cafile=str(server.ca_cert_path))
    client.load_cert_chain(tmp / "c.crt", tmp / "c.key")
    client.maximum_version = ssl.TLSVersion.TLSv1_2  # a refused certificate fails the handshake itself
    seen: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not seen.done():
            seen.set_result(writer.get_extra_info("peercert"))
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server.ssl_context())
    try:
        port = listener.sockets[0].getsockname()[1]
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="localhost"), 5)
        except (ssl.SSLError, ConnectionError):
            return None
        writer.close()
        return await asyncio.wait_for(seen, 5)
    finally:
        listener.close()
        await listener.wait_closed()


def leaf(ca: pki.Pki, subject: list[x509.NameAttribute[str]], usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
    """A leaf signed by ``ca`` with any subject and extended key usage."""
    ca_cert = x509.load_pem_x509_certificate(ca.ca_pem)
    ca_key = serialization.load_pem_private_key(ca.ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name(subject)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


async def test_a_client_certificate_authenticates_its_cn_and_organizations(tmp_path: Path) -> None:
    """Issue 8 item 18: CN = user, O = groups (in order), plus system:authenticated; no token needed."""
    async with ApiHarness(tmp_path / "api") as harness:
        ca = pki.ensure_pki(harness.data_dir, [], [])
        peercert = await verified_peercert(ca, *ca.issue_client_cert("carol", ["team-c", "ops"]), tmp_path)
        assert peercert is not None
        async with harness.with_scope_state({PEERCERT_STATE_KEY: peercert}) as http:
            review = ok(await http.post(REVIEW, json={"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "SelfSubjectReview"}), 201)
            assert review["kind"] == "SelfSubjectReview"
            assert review["apiVersion"] == "authentication.k8s.io/v1"
            assert review["status"] == {"userInfo": {"username": "carol",
                                                     "groups": ["team-c", "ops", "system:authenticated"]}}
            names = [n["metadata"]["name"] for n in ok(await http.get("/api/v1/namespaces"))["items"]]
            assert "kube-system" in names
        async with harness.with_scope_state({PEERCERT_STATE_KEY: None}) as anonymous:
            status_of(await anonymous.post(REVIEW, json={}), 401, "Unauthorized")


async def test_the_certificate_comes_before_the_token_and_the_token_still_works(tmp_path: Path) -> None:
    """Issue 8 item 18: with both, the certificate's user (kube-apiserver's order); without one, the token's."""
    async with ApiHarness(tmp_path / "api") as harness:
        ca = pki.ensure_pki(harness.data_dir, [], [])
        peercert = await verified_peercert(ca, *ca.issue_client_cert("carol", []), tmp_path)
        async with harness.with_scope_state({PEERCERT_STATE_KEY: peercert}, user="alice") as both:
            review = ok(await both.post(REVIEW, json={}), 201)
            assert review["status"]["userInfo"] == {"username": "carol", "groups": ["system:authenticated"]}
        async with harness.with_scope_state({PEERCERT_STATE_KEY: None}, user="alice") as token_only:
            info = ok(await token_only.post(REVIEW, json={}), 201)["status"]["userInfo"]
            assert info == {"username": "alice", "uid": "uid-alice",
                            "groups": ["team-a", "devs", "system:authenticated"]}
            assert (await token_only.get(REVIEW)).status_code == 405


async def test_the_tls_layer_refuses_foreign_and_server_only_certificates(tmp_path: Path) -> None:
    """Issue 8 item 18: only certificates of the cluster CA with the clientAuth usage get through.

    As Kubernetes' x509 authenticator (verified against the client CA with ExtKeyUsageClientAuth),
    but in the handshake: Python's ``ssl`` cannot accept a certificate it failed to verify."""
    ca = pki.ensure_pki(tmp_path / "ca", [], [])
    foreign = pki.ensure_pki(tmp_path / "other", [], [])
    assert await verified_peercert(ca, *ca.issue_client_cert("ok", []), tmp_path) is not None
    assert await verified_peercert(ca, *foreign.issue_client_cert("intruder", ["system:masters"]), tmp_path) is None
    server_only = leaf(ca, [x509.NameAttribute(NameOID.COMMON_NAME, "intruder")], ExtendedKeyUsageOID.SERVER_AUTH)
    assert await verified_peercert(ca, *server_only, tmp_path) is None


async def test_no_common_name_or_outside_validity_authenticates_nobody(tmp_path: Path) -> None:
    """Issue 8 item 18: a verified certificate without a CN names nobody (as Kubernetes); nor does
    one that expired while its connection stayed open."""
    ca = pki.ensure_pki(tmp_path / "ca", [], [])
    no_cn = leaf(ca, [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")],
                 ExtendedKeyUsageOID.CLIENT_AUTH)
    peercert = await verified_peercert(ca, *no_cn, tmp_path)
    assert peercert is not None and peercert_user(peercert, ssl.cert_time_to_seconds(peercert["notAfter"])) is None

    good = await verified_peercert(ca, *ca.issue_client_cert("dave", ["g"]), tmp_path)
    assert good is not None
    not_after = ssl.cert_time_to_seconds(good["notAfter"])
    state = {"type": "http", "path": "/api", "headers": [], "state": {PEERCERT_STATE_KEY: good}}
    assert await X509Authentication(lambda: not_after - 1).authenticate(state) == UserInfo(
        "dave", "", ("g", "system:authenticated"), authenticated_by="x509")
    assert await X509Authentication(lambda: not_after + 1).authenticate(state) is None
    assert await X509Authentication().authenticate({"type": "http", "path": "/api", "headers": []}) is None

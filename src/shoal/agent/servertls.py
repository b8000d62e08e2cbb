"""TLS for the agent's HTTPS API: a self-signed serving cert, mutual TLS, the peer's identity.

* :func:`ensure_serving_cert` keeps ``agent.crt``/``agent.key`` in a directory: a self-signed
  EC P-256 certificate (CN ``shoal-agent@<hostname>``, SANs ``localhost``, the host name,
  ``127.0.0.1`` and the bind address when it is a specific IP), 1 year.  It is reissued when
  missing, unreadable, not matching its key, expiring within 30 days or lacking a SAN;
  otherwise the files are left unchanged.  Nobody verifies it (the API server connects
  without verification, as Kubernetes' API server does to kubelets by default).
* :func:`server_context` REQUIRES a client certificate signed by the cluster CA.
* :class:`PeerIdentityProtocol` is uvicorn's h11 protocol plus one step: on each connection it
  puts the verified client certificate's CN into the ASGI ``scope["state"]`` under
  :data:`PEER_STATE_KEY`, for HTTP requests and for WebSockets upgraded on that connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from uvicorn.protocols.http.h11_impl import H11Protocol

from shoal.kube.files import atomic_write

PEER_STATE_KEY = "shoal.peer"
VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)


def _wanted_sans(bind: str) -> tuple[set[str], set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    names = {"localhost", socket.gethostname().lower()}
    ips: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {ipaddress.ip_address("127.0.0.1")}
    try:
        address = ipaddress.ip_address(bind)
    except ValueError:
        if bind:
            names.add(bind.lower())
    else:
        if not address.is_unspecified:
            ips.add(address)
    return names, ips


def _usable(cert_path: Path, key_path: Path, bind: str, now: dt.datetime) -> bool:
    if not cert_path.exists() or not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    names, ips = _wanted_sans(bind)
    return names <= {d.lower() for d in san.get_values_for_type(x509.DNSName)} and ips <= set(
        san.get_values_for_type(x509.IPAddress))


def ensure_serving_cert(cert_dir: Path, bind: str, *, now: dt.datetime | None = None) -> tuple[Path, Path]:
    """``(cert_path, key_path)`` of a usable self-signed serving certificate in ``cert_dir``."""
    now = now or dt.datetime.now(dt.UTC)
    cert_path, key_path = cert_dir / "agent.crt", cert_dir / "agent.key"
    if _usable(cert_path, key_path, bind, now):
        return cert_path, key_path
    cert_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names, ips = _wanted_sans(bind)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"shoal-agent@{socket.gethostname()}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in sorted(names)]
            + [x509.IPAddress(i) for i in sorted(ips, key=lambda a: (a.version, int(a)))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path, ca_pem: bytes) -> ssl.SSLContext:
    """TLS 1.2+, ALPN ``http/1.1``, client certificates required and verified against ``ca_pem``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["http/1.1"])
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def common_name(peercert: dict[str, Any] | None) -> str | None:
    """The subject CN of a certificate as ``SSLSocket.getpeercert()`` returns it."""
    for rdn in (peercert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


class PeerIdentityProtocol(H11Protocol):
    """uvicorn's h11 protocol that records the verified client certificate's CN per connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A per-connection copy: uvicorn copies app_state into every request's scope["state"]
        # and hands it to the WebSocket protocol on upgrade.
        self.app_state = {**self.app_state, PEER_STATE_KEY: common_name(transport.get_extra_info("peercert"))}

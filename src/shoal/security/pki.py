"""The cluster PKI: a CA made on first start, the API server's serving certificate, node certs.

Layout under ``<data_dir>/tls/`` (directory mode 0700)::

    ca.crt      cluster CA, EC P-256, CN "shoal-ca", 10 years, CA:TRUE pathlen 0, keyCertSign
    ca.key      0600
    server.crt  serving cert signed by the CA, 1 year, serverAuth
    server.key  0600
    client-admin.crt / .key   the admin's client cert (written by the server, see below)

Contract and invariants
-----------------------
* :func:`ensure_pki` is idempotent.  The CA is made once and never replaced automatically:
  every node trusts it (pinned by :meth:`Pki.ca_hash`), so a missing half (``ca.crt`` without
  ``ca.key`` or the reverse), an unreadable, mismatched or expired CA raises :class:`PkiError`
  instead of silently minting a new one.
* The serving cert is derived state.  It is reissued (CA kept) when it is missing, unreadable,
  not issued by the current CA, not matching ``server.key``, expiring within 30 days, or when
  it lacks a requested SAN.  Otherwise the files are left byte-for-byte unchanged.
* SANs: DNS ``localhost``, the given hostnames, ``kubernetes``, ``kubernetes.default``,
  ``kubernetes.default.svc``, ``kubernetes.default.svc.cluster.local``; IP ``127.0.0.1``,
  the given ips and ``10.43.0.1`` (the ``kubernetes`` Service).  A "hostname" that parses as
  an IP address becomes an IP SAN.  Callers pass ``socket.gethostname()`` themselves.
* Every file is written atomically (temp file + rename) with its final mode set before any
  byte is written, so a private key is never readable by others, not even briefly.
* Not-before is backdated 5 minutes to tolerate clock skew between nodes.
* EC keys keep first start fast: about 3-8 ms for the CA, the serving cert and the files.
* :func:`ensure_client_cert` keeps a named client certificate (``<name>.crt``/``.key``, e.g. the
  admin's ``client-admin``) under the same rules: reused unchanged while valid for its CN/O
  and the current CA for more than 30 days, reissued otherwise.  So a start with nothing to
  renew writes no file.
* Not safe against two processes running :func:`ensure_pki` on one data dir at the same time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.kube.files import atomic_write

log = logging.getLogger(__name__)

CA_COMMON_NAME = "shoal-ca"
SERVER_COMMON_NAME = "shoal-apiserver"
KUBERNETES_SERVICE_IP = "10.43.0.1"
KUBERNETES_DNS_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
CLOCK_SKEW = dt.timedelta(minutes=5)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PkiError(Exception):
    """The PKI on disk cannot be used and must not be replaced automatically."""


def ca_hash_from_pem(ca_pem: bytes) -> str:
    """``sha256:<hex>`` of the CA's SubjectPublicKeyInfo DER (kubeadm's discovery-token-ca-cert-hash)."""
    spki = (
        x509.load_pem_x509_certificate(ca_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class Pki:
    """The loaded PKI: file paths, the CA PEM, and the CA key for issuing node certs."""

    ca_cert_path: Path
    ca_key_path: Path
    server_cert_path: Path
    server_key_path: Path
    ca_pem: bytes
    _ca_cert: x509.Certificate = field(repr=False)
    _ca_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def ssl_context(self, *, request_client_cert: bool = True) -> ssl.SSLContext:
        """A server context: TLS 1.2+, ALPN ``http/1.1``, the serving cert.

        With ``request_client_cert`` the server asks for (but does not require) a client
        certificate and verifies any it gets against the cluster CA (node certs).
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert_path, self.server_key_path)
        ctx.set_alpn_protocols(["http/1.1"])
        if request_client_cert:
            ctx.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
            ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def ca_hash(self) -> str:
        return ca_hash_from_pem(self.ca_pem)

    def issue_client_cert(
        self,
        common_name: str,
        organizations: list[str],
        *,
        validity: dt.timedelta = LEAF_VALIDITY,
    ) -> tuple[bytes, bytes]:
        """A clientAuth cert (CN = user, O = groups, as Kubernetes reads them) and its key, as PEM."""
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
        cert, key = _issue_leaf(
            self._ca_cert,
            self._ca_key,
            x509.Name(attrs),
            sans=None,
            usage=ExtendedKeyUsageOID.CLIENT_AUTH,
            validity=validity,
            now=_utcnow(),
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate and its key under ``<data_dir>/tls``: paths and PEM contents."""

    cert_path: Path
    key_path: Path
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


def ensure_client_cert(
    pki: Pki, name: str, common_name: str, organizations: Sequence[str], *, now: dt.datetime | None = None
) -> ClientCertificate:
    """``tls/<name>.crt``/``.key``, a clientAuth cert for CN/O, loaded or (re)issued.

    Reused byte for byte while it matches its key, was issued by the current CA, names exactly
    ``common_name`` and ``organizations`` and is valid for more than :data:`RENEW_BEFORE`;
    (re)issued and written otherwise.
    """
    now = now or _utcnow()
    tls_dir = pki.ca_cert_path.parent
    cert_path, key_path = tls_dir / f"{name}.crt", tls_dir / f"{name}.key"
    reason = _client_cert_problem(cert_path, key_path, pki._ca_cert, common_name, list(organizations), now)
    if reason is None:
        return ClientCertificate(cert_path, key_path, cert_path.read_bytes(), key_path.read_bytes())
    log.info("issuing client certificate %s: %s", cert_path, reason)
    cert_pem, key_pem = pki.issue_client_cert(common_name, list(organizations))
    atomic_write(key_path, key_pem, 0o600)
    atomic_write(cert_path, cert_pem, 0o644)
    return ClientCertificate(cert_path, key_path, cert_pem, key_pem)


def _client_cert_problem(cert_path: Path, key_path: Path, ca_cert: x509.Certificate, common_name: str,
                         organizations: list[str], now: dt.datetime) -> str | None:
    """Why a client cert must be (re)issued, or None if it can be reused as is."""
    if not cert_path.exists() or not key_path.exists():
        return "none yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = _load_ec_key(key_path)
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, PkiError) as exc:
        return f"the existing one is unreadable or not issued by the current CA ({exc})"
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        return f"{key_path.name} does not match {cert_path.name}"
    subject = cert.subject
    names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if names != [common_name] or orgs != organizations:
        return f"the existing one is for CN={names} O={orgs}"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"the existing one expires at {cert.not_valid_after_utc.isoformat()}"
    return None


def ensure_pki(
    data_dir: Path,
    hostnames: list[str],
    ips: list[str],
    *,
    now: dt.datetime | None = None,
) -> Pki:
    """Create (first start) or load the PKI under ``data_dir/tls``; reissue the serving cert if needed.

    ``now`` (timezone-aware) is injectable for tests; it defaults to the current UTC time.
    """
    now = now or _utcnow()
    tls_dir = data_dir / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = tls_dir / "ca.crt", tls_dir / "ca.key"
    server_cert_path, server_key_path = tls_dir / "server.crt", tls_dir / "server.key"

    ca_cert, ca_key = _load_or_create_ca(ca_cert_path, ca_key_path, now)
    dns_names, ip_sans = _requested_sans(hostnames, ips)
    reason = _server_cert_problem(server_cert_path, server_key_path, ca_cert, dns_names, ip_sans, now)
    if reason is not None:
        log.info("issuing API server certificate: %s", reason)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_COMMON_NAME)])
        san = x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in sorted(dns_names)]
            + [x509.IPAddress(i) for i in sorted(ip_sans, key=lambda a: (a.version, int(a)))]
        )
        cert, key = _issue_leaf(
            ca_cert, ca_key, subject, san, ExtendedKeyUsageOID.SERVER_AUTH, LEAF_VALIDITY, now
        )
        atomic_write(server_key_path, _key_pem(key), 0o600)
        atomic_write(server_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    return Pki(
        ca_cert_path=ca_cert_path,
        ca_key_path=ca_key_path,
        server_cert_path=server_cert_path,
        server_key_path=server_key_path,
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        _ca_cert=ca_cert,
        _ca_key=ca_key,
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_der(key: object) -> bytes:
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PkiError(f"expected an EC public key, got {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path}: expected an EC private key, got {type(key).__name__}")
    return key


def _load_or_create_ca(
    cert_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if not have_cert and not have_key:
        return _create_ca(cert_path, key_path, now)
    if have_cert != have_key:
        missing = key_path if have_cert else cert_path
        raise PkiError(
            f"cluster CA is incomplete: {missing} is missing; restore it, or delete "
            f"{cert_path.parent} to make a new CA (every node must then re-join)"
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = _load_ec_key(key_path)
    except ValueError as exc:
        raise PkiError(f"cluster CA in {cert_path.parent} is unreadable: {exc}") from exc
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        raise PkiError(f"{key_path} does not belong to {cert_path}")
    if cert.not_valid_after_utc <= now:
        raise PkiError(f"cluster CA {cert_path} expired at {cert.not_valid_after_utc.isoformat()}")
    return cert, key


def _create_ca(
    cert_path: Path, key_path: Path, now: dt.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(digital_signature=True, key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    atomic_write(key_path, _key_pem(key), 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    log.info("created cluster CA %s", cert_path)
    return cert, key


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _requested_sans(hostnames: Iterable[str], ips: Iterable[str]) -> tuple[set[str], set[IPAddress]]:
    dns_names = {"localhost", *KUBERNETES_DNS_NAMES}
    ip_sans: set[IPAddress] = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address(KUBERNETES_SERVICE_IP)}
    for host in hostnames:
        try:
            ip_sans.add(ipaddress.ip_address(host))
        except ValueError:
            dns_names.add(host.lower())
    for ip in ips:
        try:
            ip_sans.add(ipaddress.ip_address(ip))
        except ValueError as exc:
            raise PkiError(f"not an IP address for the serving certificate: {ip!r}") from exc
    return dns_names, ip_sans


def _server_cert_problem(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    dns_names: set[str],
    ip_sans: set[IPAddress],
    now: dt.datetime,
) -> str | None:
    """Why the serving cert must be (re)issued, or None if it can be reused as is."""
    if not cert_path.exists() or not key_path.exists():
        return "no serving certificate yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = _load_ec_key(key_path)
    except (ValueError, PkiError) as exc:
        return f"existing serving certificate or key is unreadable ({exc})"
    if _public_der(cert.public_key()) != _public_der(key.public_key()):
        return "server.key does not match server.crt"
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "serving certificate was not issued by the current CA"
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"serving certificate expires at {cert.not_valid_after_utc.isoformat()}"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "serving certificate has no subjectAltName"
    missing_dns = dns_names - {d.lower() for d in san.get_values_for_type(x509.DNSName)}
    missing_ips = ip_sans - set(san.get_values_for_type(x509.IPAddress))
    if missing_dns or missing_ips:
        missing = sorted(missing_dns) + sorted(str(i) for i in missing_ips)
        return f"serving certificate lacks SANs {', '.join(missing)}"
    return None


def _issue_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    sans: x509.SubjectAlternativeName | None,
    usage: x509.ObjectIdentifier,
    validity: dt.timedelta,
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + validity, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    if sans is not None:
        builder = builder.add_extension(sans, critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key

"""Reading a kubeconfig file and building the TLS context for :class:`~shoal.client.rest.ApiClient`.

Supported, as kubectl reads them: ``current-context`` or an explicit context; per cluster
``server``, ``certificate-authority-data`` (base64 PEM), ``certificate-authority`` (file) and
``insecure-skip-tls-verify``; per user ``token``, ``tokenFile``, ``client-certificate[-data]``
and ``client-key[-data]``.  Relative file paths are relative to the kubeconfig's directory.
Not supported (raises :class:`KubeconfigError`): exec/auth-provider plugins, username/password.

Python's ``ssl`` loads client certificates only from files, so inline certificate data is
written to a private temporary directory for the duration of :meth:`Credentials.materialized`
and removed right after the context has loaded it.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CertFiles", "Credentials", "KubeconfigError", "load", "ssl_context"]


class KubeconfigError(Exception):
    """The kubeconfig is missing, malformed, or uses an unsupported authentication method."""


@dataclass(frozen=True, slots=True)
class CertFiles:
    cert_file: str | None
    key_file: str | None


@dataclass(frozen=True, slots=True)
class Credentials:
    """Everything needed to reach one cluster as one user."""

    server: str
    token: str | None = None
    ca_pem: bytes | None = None
    ca_file: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    @contextmanager
    def materialized(self) -> Iterator[CertFiles]:
        """Client certificate and key as file paths (temporary files for inline data)."""
        if self.cert_pem is None and self.key_pem is None:
            yield CertFiles(self.cert_file, self.key_file)
            return
        with tempfile.TemporaryDirectory(prefix="shoal-kubeconfig-") as tmp:
            cert_file, key_file = self.cert_file, self.key_file
            if self.cert_pem is not None:
                cert_file = _write_private(Path(tmp) / "client.crt", self.cert_pem)
            if self.key_pem is not None:
                key_file = _write_private(Path(tmp) / "client.key", self.key_pem)
            yield CertFiles(cert_file, key_file)


def load(path: str | os.PathLike[str], context: str | None = None) -> Credentials:
    """Parse the kubeconfig at ``path`` and resolve ``context`` (default ``current-context``)."""
    base = Path(path).expanduser()
    try:
        doc = yaml.safe_load(base.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise KubeconfigError(f"cannot read kubeconfig {str(base)!r}: {exc}") from exc
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {str(base)!r} is not a mapping")
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError(f"kubeconfig {str(base)!r} has no current-context")
    ctx = _named(doc, "contexts", "context", name)
    cluster = _named(doc, "clusters", "cluster", ctx.get("cluster"))
    user = _named(doc, "users", "user", ctx.get("user")) if ctx.get("user") else {}
    for unsupported in ("exec", "auth-provider", "username", "password"):
        if unsupported in user:
            raise KubeconfigError(f"kubeconfig user {ctx.get('user')!r}: {unsupported!r} is not supported")
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise KubeconfigError(f"kubeconfig cluster {ctx.get('cluster')!r} has no server")
    directory = base.parent
    token = user.get("token")
    if not token and user.get("tokenFile"):
        token = _read(directory, user["tokenFile"]).decode().strip()
    return Credentials(
        server=server,
        token=token or None,
        ca_pem=_b64(cluster, "certificate-authority-data"),
        ca_file=_path(directory, cluster.get("certificate-authority")),
        cert_pem=_b64(user, "client-certificate-data"),
        key_pem=_b64(user, "client-key-data"),
        cert_file=_path(directory, user.get("client-certificate")),
        key_file=_path(directory, user.get("client-key")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
    )


def ssl_context(*, ca_pem: str | bytes | None = None, ca_file: str | os.PathLike[str] | None = None,
                cert_file: str | os.PathLike[str] | None = None,
                key_file: str | os.PathLike[str] | None = None, insecure: bool = False) -> ssl.SSLContext:
    """A client TLS context trusting ``ca_pem``/``ca_file`` (the system store if neither)."""
    if insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_pem is not None or ca_file is not None:
        cadata = ca_pem.decode() if isinstance(ca_pem, bytes) else ca_pem
        ctx = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file else None, cadata=cadata)
    else:
        ctx = ssl.create_default_context()
    if cert_file is not None:
        ctx.load_cert_chain(os.fspath(cert_file), os.fspath(key_file) if key_file else None)
    return ctx


def _named(doc: dict[str, Any], section: str, field: str, name: Any) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field)
            return value if isinstance(value, dict) else {}
    raise KubeconfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _b64(section: dict[str, Any], key: str) -> bytes | None:
    value = section.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KubeconfigError(f"kubeconfig field {key!r} is not valid base64") from exc


def _path(directory: Path, value: Any) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else directory / path)


def _read(directory: Path, value: Any) -> bytes:
    path = _path(directory, value)
    assert path is not None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KubeconfigError(f"cannot read {path!r} named in the kubeconfig: {exc}") from exc


def _write_private(path: Path, data: bytes) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return str(path)

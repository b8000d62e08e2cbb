"""Writing a kubeconfig that kubectl and the kubernetes clients accept.

Contract and invariants
-----------------------
* The file is a standard ``apiVersion: v1, kind: Config`` document with one cluster
  (``server`` + base64 ``certificate-authority-data``), one user, one context joining them,
  and ``current-context`` set to it.  The user has a ``token`` and, when given, a client
  certificate (``client-certificate-data`` + ``client-key-data``, base64 PEM, as kubeadm,
  kind and k3s write them).  kubectl and client-go then present the certificate in the TLS
  handshake and send the token too; the server's x509 authenticator runs first, so the
  certificate decides, and the token serves clients that cannot present one.
* It holds a credential, so it is written with mode 0600, atomically (temp file in the same
  directory + rename): readers see the old file or the new one, never a partial one.
* An existing file at ``path`` is replaced, not merged, and only when its bytes differ from
  the new document: a start with nothing changed writes nothing (it may be on a full disk).
  A file with the right content but another mode only gets its mode fixed.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from shoal.kube.files import atomic_write

MODE = 0o600


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def build_kubeconfig(
    server_url: str,
    ca_pem: bytes,
    token: str,
    user: str = "shoal-admin",
    cluster: str = "shoal",
    context: str = "shoal",
    *,
    client_cert: tuple[bytes, bytes] | None = None,
) -> dict[str, Any]:
    """The kubeconfig document as a dict; ``client_cert`` is ``(cert_pem, key_pem)``."""
    credentials: dict[str, str] = {}
    if client_cert is not None:
        credentials["client-certificate-data"] = _b64(client_cert[0])
        credentials["client-key-data"] = _b64(client_cert[1])
    credentials["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": _b64(ca_pem),
                },
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": {"cluster": cluster, "user": user}}],
        "current-context": context,
    }


def write_kubeconfig(
    path: Path,
    server_url: str,
    ca_pem: bytes,
    token: str,
    user: str = "shoal-admin",
    cluster: str = "shoal",
    context: str = "shoal",
    *,
    client_cert: tuple[bytes, bytes] | None = None,
) -> bool:
    """Write a kubeconfig for ``server_url`` trusting ``ca_pem`` with ``token`` (and ``client_cert``).

    Returns True when the file was written, False when it already held exactly this document.
    """
    doc = build_kubeconfig(server_url, ca_pem, token, user=user, cluster=cluster, context=context,
                           client_cert=client_cert)
    data = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False).encode("utf-8")
    try:
        unchanged = path.read_bytes() == data
    except FileNotFoundError:
        unchanged = False
    if unchanged:
        if stat.S_IMODE(path.stat().st_mode) != MODE:
            os.chmod(path, MODE)
        return False
    atomic_write(path, data, MODE)
    return True

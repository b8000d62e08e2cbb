"""Writing a kubeconfig that kubectl and the kubernetes clients accept.

Contract and invariants
-----------------------
* The file is a standard ``apiVersion: v1, kind: Config`` document with one cluster
  (``server`` + base64 ``certificate-authority-data``), one user (``token``), one context
  joining them, and ``current-context`` set to it.
* It holds a credential, so it is written with mode 0600, atomically (temp file in the same
  directory + rename): readers see the old file or the new one, never a partial one.
* An existing file at ``path`` is replaced, not merged.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from shoal.kube.files import atomic_write


def build_kubeconfig(
    server_url: str,
    ca_pem: bytes,
    token: str,
    user: str = "shoal-admin",
    cluster: str = "shoal",
    context: str = "shoal",
) -> dict[str, Any]:
    """The kubeconfig document as a dict."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": cluster,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
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
) -> None:
    """Write a kubeconfig for ``server_url`` trusting ``ca_pem`` and using bearer ``token``."""
    doc = build_kubeconfig(server_url, ca_pem, token, user=user, cluster=cluster, context=context)
    text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)
    atomic_write(path, text.encode("utf-8"), 0o600)

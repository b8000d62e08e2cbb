"""Client-certificate authentication end to end: real ``shoal server``, real kubectl.

The server's TLS layer must request client certificates (optional, verified against the
cluster CA) and hand the verified one to the API's x509 authenticator; kubeconfigs here hold
a certificate and no token.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from shoal.security import pki
from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e


def cert_only_kubeconfig(server: ShoalProcess, path: Path, cert_pem: bytes, key_pem: bytes) -> Path:
    """The server's admin kubeconfig with its user's credentials replaced by a certificate."""
    doc = yaml.safe_load(server.kubeconfig.read_text())
    doc["users"][0]["user"] = {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                               "client-key-data": base64.b64encode(key_pem).decode()}
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path


def kubectl(server: ShoalProcess, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cache = server.data_dir.parent / "kubectl-cache"
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShoalProcess]:
    with ShoalProcess(tmp_path_factory.mktemp("client-cert") / "data") as running:
        yield running


def test_the_admin_kubeconfig_has_a_client_certificate_and_whoami_answers(server: ShoalProcess) -> None:
    """Issue 8 item 18: kubeconfig.yaml carries client-certificate-data and client-key-data (and the
    token); ``kubectl auth whoami`` names the admin in system:masters."""
    [user] = yaml.safe_load(server.kubeconfig.read_text())["users"]
    assert {"client-certificate-data", "client-key-data", "token"} <= set(user["user"])
    review = json.loads(server.kubectl("auth", "whoami", "-o", "json").stdout)
    assert review["kind"] == "SelfSubjectReview"
    info = review["status"]["userInfo"]
    assert (info["username"], info["groups"]) == ("shoal-admin", ["system:masters", "system:authenticated"])


def test_kubectl_with_only_the_admin_certificate(server: ShoalProcess, tmp_path: Path) -> None:
    """Issue 8 item 18: the admin's certificate alone authenticates (whoami, get ns)."""
    [user] = yaml.safe_load(server.kubeconfig.read_text())["users"]
    cert_pem = base64.b64decode(user["user"]["client-certificate-data"])
    key_pem = base64.b64decode(user["user"]["client-key-data"])
    config = cert_only_kubeconfig(server, tmp_path / "admin-cert.yaml", cert_pem, key_pem)
    whoami = kubectl(server, config, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr + server.log()
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info == {"username": "shoal-admin", "groups": ["system:masters", "system:authenticated"]}
    namespaces = kubectl(server, config, "get", "ns", "-o", "name")
    assert namespaces.returncode == 0, namespaces.stderr
    assert "namespace/kube-system" in namespaces.stdout.split()


def test_a_cluster_ca_certificate_names_its_user_and_a_foreign_one_is_refused(
        server: ShoalProcess, tmp_path: Path) -> None:
    """Issue 8 item 18: CN = user, O = groups; a certificate of another CA authenticates nobody.

    The foreign certificate is refused at the TLS handshake (the server verifies optional client
    certificates against the cluster CA; Python's ssl cannot let an unverified one through to
    answer 401 as kube-apiserver does): kubectl fails with "Unable to connect to the server"
    (connection reset or EOF under TLS 1.3), or Unauthorized should a TLS layer pass it on."""
    cluster_ca = pki.ensure_pki(server.data_dir, [], [])
    config = cert_only_kubeconfig(server, tmp_path / "carol.yaml", *cluster_ca.issue_client_cert("carol", ["team-c"]))
    whoami = kubectl(server, config, "auth", "whoami", "-o", "json")
    assert whoami.returncode == 0, whoami.stderr
    assert json.loads(whoami.stdout)["status"]["userInfo"] == {
        "username": "carol", "groups": ["team-c", "system:authenticated"]}

    foreign = pki.ensure_pki(tmp_path / "other", [], [])
    cert_pem, key_pem = foreign.issue_client_cert("shoal-admin", ["system:masters"])
    (tmp_path / "intruder.crt").write_bytes(cert_pem)
    (tmp_path / "intruder.key").write_bytes(key_pem)
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.load_cert_chain(tmp_path / "intruder.crt", tmp_path / "intruder.key")
    # kubectl retries a refused handshake for about 50 s (10 tries per discovery request),
    # so the refusal is checked with one TLS client; kubectl ends "Unable to connect: EOF".
    # TLS 1.3: the handshake error, or the connection closed right after it.
    with httpx.Client(verify=context, trust_env=False, timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(server.url + "/api/v1/namespaces")

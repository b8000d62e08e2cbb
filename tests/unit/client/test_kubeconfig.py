"""Reading kubeconfig files and addressing resources (pure: files in tmp_path, no network)."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal.client import kubeconfig, resources
from shoal.client.rest import ApiClient


def self_signed() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def write_config(path: Path, users: list[dict[str, object]], *, current: str = "main",
                 cluster: dict[str, object] | None = None) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443"}}],
        "users": users,
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": users[0]["name"]}},
                     {"name": "other", "context": {"cluster": "c", "user": users[-1]["name"]}}],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_token_and_inline_ca_of_the_current_context(tmp_path: Path) -> None:
    ca, _ = self_signed()
    path = write_config(tmp_path / "config", [{"name": "admin", "user": {"token": "t0k"}}],
                        cluster={"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(ca)})
    creds = kubeconfig.load(path)
    assert (creds.server, creds.token) == ("https://127.0.0.1:6443", "t0k")
    assert (creds.ca_pem, creds.insecure) == (ca, False)


def test_context_selection_and_token_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = write_config(tmp_path / "config", [{"name": "a", "user": {"token": "first"}},
                                              {"name": "b", "user": {"tokenFile": "token"}}])
    assert kubeconfig.load(path).token == "first"
    assert kubeconfig.load(path, "other").token == "from-file"


def test_inline_client_certificate_is_materialized_privately_and_removed(tmp_path: Path) -> None:
    cert, key = self_signed()
    path = write_config(tmp_path / "config", [{"name": "node", "user": {
        "client-certificate-data": b64(cert), "client-key-data": b64(key)}}],
        cluster={"server": "https://127.0.0.1:6443", "certificate-authority-data": b64(cert)})
    creds = kubeconfig.load(path)
    with creds.materialized() as files:
        assert files.cert_file is not None and files.key_file is not None
        assert Path(files.cert_file).read_bytes() == cert
        assert Path(files.key_file).stat().st_mode & 0o777 == 0o600
        context = kubeconfig.ssl_context(ca_pem=creds.ca_pem, cert_file=files.cert_file,
                                         key_file=files.key_file)
        assert context.check_hostname
    assert not Path(files.cert_file).exists() and not Path(files.key_file).exists()


async def test_api_client_builds_from_a_kubeconfig_with_files(tmp_path: Path) -> None:
    cert, key = self_signed()
    (tmp_path / "ca.crt").write_bytes(cert)
    (tmp_path / "client.crt").write_bytes(cert)
    (tmp_path / "client.key").write_bytes(key)
    path = write_config(tmp_path / "config", [{"name": "u", "user": {
        "client-certificate": "client.crt", "client-key": "client.key", "token": "abc"}}],
        cluster={"server": "https://127.0.0.1:6443/", "certificate-authority": "ca.crt"})
    async with ApiClient.from_kubeconfig(path) as client:
        assert client.server_url == "https://127.0.0.1:6443"


@pytest.mark.parametrize(
    ("users", "current", "message"),
    [
        pytest.param([{"name": "u", "user": {"exec": {"command": "x"}}}], "main", "'exec' is not supported",
                     id="exec-plugin"),
        pytest.param([{"name": "u", "user": {}}], "missing", "no context named 'missing'", id="no-context"),
        pytest.param([{"name": "u", "user": {"client-key-data": "!!"}}], "main", "not valid base64",
                     id="bad-base64"),
        pytest.param([{"name": "u", "user": {"tokenFile": "nope"}}], "main", "cannot read",
                     id="no-token-file"),
    ],
)
def test_unusable_configs_raise_a_kubeconfig_error(tmp_path: Path, users: list[dict[str, object]],
                                                   current: str, message: str) -> None:
    path = write_config(tmp_path / "config", users, current=current)
    with pytest.raises(kubeconfig.KubeconfigError, match=message):
        kubeconfig.load(path)


def test_a_missing_file_raises_a_kubeconfig_error(tmp_path: Path) -> None:
    with pytest.raises(kubeconfig.KubeconfigError, match="cannot read kubeconfig"):
        kubeconfig.load(tmp_path / "absent")


def test_resource_paths() -> None:
    assert resources.PODS.collection_path("web") == "/api/v1/namespaces/web/pods"
    assert resources.PODS.collection_path() == "/api/v1/pods"
    scale = resources.DEPLOYMENTS.object_path("d", "ns", "scale")
    assert scale == "/apis/apps/v1/namespaces/ns/deployments/d/scale"
    assert resources.NAMESPACES.object_path("ns", None, "finalize") == "/api/v1/namespaces/ns/finalize"
    assert resources.NODES.object_path("n1", "ignored") == "/api/v1/nodes/n1"
    with pytest.raises(ValueError, match="namespaced"):
        resources.PODS.object_path("p")
    assert resources.ref_for_kind("apps/v1", "ReplicaSet") is resources.REPLICASETS
    assert resources.ref_for_kind("v1", "Pod") is resources.PODS
    assert resources.ref_for_kind("apps/v1", "StatefulSet") is None
    assert resources.ref_for_resource("endpointslices.discovery.k8s.io") is resources.ENDPOINTSLICES
    assert resources.LEASES.api_version == "coordination.k8s.io/v1"

"""Tests for shoal.api.podproxy (locating a pod's agent, the client certificate) and the agent's TLS."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shoal.agent import server, servertls
from shoal.api import podproxy
from shoal.kube.errors import ApiError
from shoal.security.pki import ensure_pki


def pod(*containers: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "x"} for c in containers]}
    if init:
        spec["initContainers"] = [{"name": c, "image": "x"} for c in init]
    return {"metadata": {"name": "web-1", "namespace": "default"}, "spec": spec}


def bad_request(fn: Any, *args: Any) -> str:
    with pytest.raises(ApiError) as info:
        fn(*args)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    return info.value.message


def test_the_only_container_is_the_default() -> None:
    assert podproxy.choose_container(pod("app"), "") == "app"
    assert podproxy.choose_container(pod("app", "side"), "side") == "side"
    assert podproxy.choose_container(pod("app", init=("setup",)), "setup") == "setup"


def test_container_errors_are_worded_like_kubernetes() -> None:
    assert bad_request(podproxy.choose_container, pod("a", "b"), "") == \
        "a container name must be specified for pod web-1, choose one of: [a b]"
    assert bad_request(podproxy.choose_container, pod("a", "b", init=("i",)), "") == \
        "a container name must be specified for pod web-1, choose one of: [a b] or one of the init containers: [i]"
    assert bad_request(podproxy.choose_container, pod("a"), "nope") == "container nope is not valid for pod web-1"
    assert bad_request(podproxy.choose_container, pod(), "") == "no containers in pod web-1"


def node(addresses: list[dict[str, str]], port: int | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"addresses": addresses}
    if port is not None:
        status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"metadata": {"name": "n1"}, "status": status}


def test_node_endpoint_prefers_the_internal_ip() -> None:
    addresses = [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "10.0.0.5"}]
    assert podproxy.node_endpoint(node(addresses, 12345)) == ("10.0.0.5", 12345)
    assert podproxy.node_endpoint(node([{"type": "Hostname", "address": "n1"}])) == ("n1", 10250)
    with pytest.raises(ApiError) as info:
        podproxy.node_endpoint(node([]))
    assert info.value.code == 500
    assert "no preferred addresses found" in info.value.message


def test_agent_urls_quote_names_and_bracket_ipv6() -> None:
    target = podproxy.AgentTarget("default", "web-1", "app", "n1", "127.0.0.1", 10250)
    assert target.url("https", "containerLogs", [("tailLines", "2")]) == \
        "https://127.0.0.1:10250/containerLogs/default/web-1/app?tailLines=2"
    target = podproxy.AgentTarget("default", "web-1", "app", "n1", "::1", 1)
    assert target.url("wss", "exec", [("command", "sh -c"), ("command", "a&b")]) == \
        "wss://[::1]:1/exec/default/web-1/app?command=sh+-c&command=a%26b"


def test_the_agent_accepts_the_name_the_api_server_uses() -> None:
    assert podproxy.CLIENT_COMMON_NAME == server.APISERVER_CLIENT


def test_client_cert_is_issued_once_by_the_cluster_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [], [])
    cert_file = podproxy.ensure_agent_client_cert(tmp_path)
    cert = x509.load_pem_x509_certificate(cert_file.cert_path.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(pki.ca_pem))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "shoal-apiserver"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert_file.key_path.stat().st_mode & 0o777 == 0o600
    before = cert_file.cert_path.read_bytes()
    assert podproxy.ensure_agent_client_cert(tmp_path).cert_path.read_bytes() == before
    # Near expiry (or a new CA, or a damaged file) it is reissued.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)
    assert podproxy.ensure_agent_client_cert(tmp_path, now=later).cert_path.read_bytes() != before
    cert_file.cert_path.write_bytes(b"garbage")
    assert b"BEGIN CERTIFICATE" in podproxy.ensure_agent_client_cert(tmp_path).cert_path.read_bytes()
    context = cert_file.ssl_context()
    assert context.verify_mode == ssl.CERT_NONE


def test_agent_serving_cert_is_self_signed_and_reused(tmp_path: Path) -> None:
    cert_path, key_path = servertls.ensure_serving_cert(tmp_path / "agent", "10.1.2.3")
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.issuer == cert.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "10.1.2.3"}
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert key_path.stat().st_mode & 0o777 == 0o600
    before = cert_path.read_bytes()
    assert servertls.ensure_serving_cert(tmp_path / "agent", "10.1.2.3")[0].read_bytes() == before
    assert servertls.ensure_serving_cert(tmp_path / "agent", "0.0.0.0")[0].read_bytes() == before
    # A new bind address that the certificate does not name makes a new one.
    assert servertls.ensure_serving_cert(tmp_path / "agent", "10.9.9.9")[0].read_bytes() != before


def test_common_name_from_a_peer_certificate() -> None:
    peer = {"subject": ((("organizationName", "system:masters"),), (("commonName", "shoal-apiserver"),))}
    assert servertls.common_name(peer) == "shoal-apiserver"
    assert servertls.common_name({"subject": ()}) is None
    assert servertls.common_name(None) is None

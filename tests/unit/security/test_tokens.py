"""Static token auth and the admin kubeconfig, ending with real kubectl over TLS against both."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import ssl
from pathlib import Path

import pytest
import yaml

from shoal.security import pki, tokens
from shoal.security.kubeconfig import write_kubeconfig
from shoal.security.tokens import TokenAuthenticator, TokenEntry, TokenFileError
from shoal.security.user import UserInfo


def test_admin_token_created_once(tmp_path: Path) -> None:
    token = tokens.ensure_admin_token(tmp_path)
    path = tmp_path / "tokens"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    text = path.read_text()
    fields = text.strip().split(",")
    assert fields[0] == token
    assert fields[1] == "shoal-admin"
    assert fields[2]  # a uid
    assert fields[3] == "system:masters"
    assert tokens.ensure_admin_token(tmp_path) == token
    assert path.read_text() == text
    assert tokens.ensure_admin_token(tmp_path / "other") != token


def test_admin_entry_added_to_existing_file(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text('# bootstrap\nabc123,node-1,uid-1,"system:nodes,system:bootstrappers"\n')
    token = tokens.ensure_admin_token(tmp_path)
    entries = tokens.parse_token_file((tmp_path / "tokens").read_text())
    assert [(e.token, e.user.name) for e in entries] == [("abc123", "node-1"), (token, "shoal-admin")]
    assert entries[0].user.groups == ("system:nodes", "system:bootstrappers")


def test_format_quotes_multiple_groups() -> None:
    entry = TokenEntry("t0k", UserInfo("alice", "u1", ("g1", "g2")))
    assert tokens.format_token_file([entry]) == 't0k,alice,u1,"g1,g2"\n'
    assert tokens.parse_token_file(tokens.format_token_file([entry])) == [entry]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("onlytoken,user\n", "expected token,user,uid"),
        ("a,b,c,d,e\n", "expected token,user,uid"),
        (",user,uid\n", "must not be empty"),
        ("t,u1,1\nt,u2,2\n", "duplicate token"),
    ],
)
def test_malformed_token_file(text: str, message: str) -> None:
    with pytest.raises(TokenFileError, match=message):
        tokens.parse_token_file(text)


def test_authenticate_accepts_admin_token(tmp_path: Path) -> None:
    token = tokens.ensure_admin_token(tmp_path)
    authn = TokenAuthenticator(tmp_path / "tokens")
    user = authn.authenticate(f"Bearer {token}")
    assert user is not None
    assert user.name == "shoal-admin"
    assert user.groups == ("system:masters",)
    assert user.uid
    assert authn.authenticate(f"bearer {token}") == user
    assert authn.authenticate(f"  Bearer {token}  ") == user


def test_authenticate_rejects_bad_and_malformed_headers(tmp_path: Path) -> None:
    token = tokens.ensure_admin_token(tmp_path)
    authn = TokenAuthenticator(tmp_path / "tokens")
    for header in [
        None,
        "",
        "Bearer",
        "Bearer ",
        token,
        f"Basic {token}",
        f"Bearer  {token}",
        f"Bearer {token} extra",
        f"Bearer {token[:-1]}",
        f"Bearer {token}x",
        f"Bearer {tokens.new_token()}",
        "Bearer tökén",
    ]:
        assert authn.authenticate(header) is None, header


def test_authenticator_reloads_changed_file(tmp_path: Path) -> None:
    old = tokens.ensure_admin_token(tmp_path)
    authn = TokenAuthenticator(tmp_path / "tokens")
    assert authn.authenticate(f"Bearer {old}") is not None
    (tmp_path / "tokens").unlink()
    new = tokens.ensure_admin_token(tmp_path)
    assert authn.authenticate(f"Bearer {old}") is None
    assert authn.authenticate(f"Bearer {new}") is not None


def test_authenticator_missing_or_broken_file_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(TokenFileError, match="does not exist"):
        TokenAuthenticator(tmp_path / "tokens")
    token = tokens.ensure_admin_token(tmp_path)
    authn = TokenAuthenticator(tmp_path / "tokens")
    (tmp_path / "tokens").write_text(f"{token},only-two-fields\n")
    with pytest.raises(TokenFileError):
        authn.authenticate(f"Bearer {token}")


def test_kubeconfig_fields(tmp_path: Path) -> None:
    ca_pem = pki.ensure_pki(tmp_path, [], []).ca_pem
    path = tmp_path / "kube" / "config"
    write_kubeconfig(path, "https://127.0.0.1:6443", ca_pem, "s3cret")
    assert path.stat().st_mode & 0o777 == 0o600
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "v1"
    assert doc["kind"] == "Config"
    assert doc["current-context"] == "shoal"
    [cluster] = doc["clusters"]
    assert cluster["name"] == "shoal"
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == ca_pem
    assert doc["users"] == [{"name": "shoal-admin", "user": {"token": "s3cret"}}]
    assert doc["contexts"] == [{"name": "shoal", "context": {"cluster": "shoal", "user": "shoal-admin"}}]

    write_kubeconfig(path, "https://10.0.0.1:6443", ca_pem, "t2", user="u", cluster="c", context="x")
    doc = yaml.safe_load(path.read_text())
    assert doc["current-context"] == "x"
    assert doc["contexts"][0]["context"] == {"cluster": "c", "user": "u"}
    assert os.listdir(path.parent) == ["config"]  # the temp file was renamed away


def _kubectl() -> str:
    for candidate in ("kubectl.1.32", "/usr/lib/google-cloud-sdk/bin/kubectl.1.32", "kubectl"):
        found = shutil.which(candidate)
        if found:
            return found
    raise AssertionError("kubectl is required for this test")


async def _serve_https(authn: TokenAuthenticator, ssl_ctx: ssl.SSLContext) -> asyncio.Server:
    """A tiny HTTPS server: /version for kubectl's dispatcher, everything else needs a token."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        target = head[0].split(" ")[1]
        headers = dict(line.split(":", 1) for line in head[1:] if line)
        auth = next((v.strip() for k, v in headers.items() if k.lower() == "authorization"), None)
        user = authn.authenticate(auth)
        body: dict[str, object]
        if target.startswith("/version"):
            status, body = "200 OK", {"major": "1", "minor": "32", "gitVersion": "v1.32.0"}
        elif user is None:
            status = "401 Unauthorized"
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "reason": "Unauthorized",
                "code": 401,
            }
        else:
            status, body = "200 OK", {"user": user.name, "groups": list(user.groups)}
        data = json.dumps(body).encode()
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_ctx)


async def _run_kubectl(kubeconfig: Path, home: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        _kubectl(),
        "--kubeconfig",
        str(kubeconfig),
        "get",
        "--raw",
        "/healthz",
        env={"PATH": os.environ.get("PATH", "/usr/bin"), "HOME": str(home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_kubectl_uses_kubeconfig_ca_and_token(tmp_path: Path) -> None:
    """Real kubectl verifies the serving cert against certificate-authority-data and sends the token."""
    p = pki.ensure_pki(tmp_path, [], [])
    token = tokens.ensure_admin_token(tmp_path)
    server = await _serve_https(TokenAuthenticator(tmp_path / "tokens"), p.ssl_context())
    port = server.sockets[0].getsockname()[1]
    try:
        good = tmp_path / "good.yaml"
        write_kubeconfig(good, f"https://127.0.0.1:{port}", p.ca_pem, token)
        code, out, err = await _run_kubectl(good, tmp_path)
        assert code == 0, err
        assert json.loads(out) == {"user": "shoal-admin", "groups": ["system:masters"]}

        bad_token = tmp_path / "bad-token.yaml"
        write_kubeconfig(bad_token, f"https://localhost:{port}", p.ca_pem, tokens.new_token())
        code, _, err = await _run_kubectl(bad_token, tmp_path)
        assert code != 0
        assert "must be logged in" in err

        other_ca = pki.ensure_pki(tmp_path / "other", [], []).ca_pem
        bad_ca = tmp_path / "bad-ca.yaml"
        write_kubeconfig(bad_ca, f"https://127.0.0.1:{port}", other_ca, token)
        code, _, err = await _run_kubectl(bad_ca, tmp_path)
        assert code != 0
        assert "certificate" in err
    finally:
        server.close()
        await server.wait_closed()

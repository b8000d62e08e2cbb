"""A restart on a full disk: the server starts without writing, serves reads, refuses writes with 503.

The data dir is a small tmpfs mounted for the test (the tests run as root) and unmounted
afterwards; the server's log and kubectl's cache live outside it.  The disk is filled while
the server is down, after a graceful stop or a ``kill -9`` (which leaves the SQLite WAL and
``-shm`` files behind).
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.disk import fill, tmpfs
from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e

TMPFS_SIZE = "16m"


def stamps(data: Path) -> dict[str, int]:
    """Modification times of the data dir's files but the store's and the filler's."""
    return {str(p.relative_to(data)): p.stat().st_mtime_ns for p in sorted(data.rglob("*"))
            if p.is_file() and not p.name.startswith("state.db") and p.name != "filler"}


def request(server: ShoalProcess, method: str, path: str, body: dict[str, Any] | None = None,
            ) -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


CM = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize("crash", [False, True], ids=["stopped", "killed"])
def test_restart_on_a_full_disk_serves_reads_and_refuses_writes_with_503(tmp_path: Path, crash: bool) -> None:
    """Issue 8 item 10: after a stop or kill -9 and a full disk, the server starts again.

    /readyz 200, kubectl and HTTP reads work (a Secret decrypts), no file was rewritten, a
    write gets 503 naming the full disk; once space is freed, writes work again."""
    with tmpfs(tmp_path / "data", TMPFS_SIZE) as data:
        server = ShoalProcess(data)
        try:
            server.start()
            server.kubectl("create", "configmap", "before", "--from-literal=a=b")
            server.kubectl("create", "secret", "generic", "s", "--from-literal=pw=hunter2")
            server.kubectl("create", "namespace", "team")
            if crash:
                server.kill9()
            else:
                server.stop()
            before = stamps(data)
            filler = fill(data)

            server.start()

            assert stamps(data) == before
            assert {"kubeconfig.yaml", "tokens", "encryption/kek", "tls/client-admin.crt"} <= set(before)
            names = server.kubectl("get", "namespaces", "-o", "name").stdout.split()
            assert names == ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public",
                             "namespace/kube-system", "namespace/team"]
            got = json.loads(server.kubectl("get", "configmap", "before", "-o", "json").stdout)
            assert got["data"] == {"a": "b"}
            secret = json.loads(server.kubectl("get", "secret", "s", "-o", "json").stdout)
            assert secret["data"]["pw"] == "aHVudGVyMg=="
            code, listed = request(server, "GET", CM)
            assert code == 200 and [i["metadata"]["name"] for i in listed["items"]] == ["before"]

            code, status = request(server, "POST", CM, configmap("during"))
            assert (code, status["reason"]) == (503, "ServiceUnavailable"), status
            assert "database or disk is full" in str(status["message"]), status
            refused = server.kubectl("create", "configmap", "during2", check=False)
            assert refused.returncode != 0 and "database or disk is full" in refused.stderr, refused.stderr

            filler.unlink()
            deadline = time.monotonic() + 10
            while (code := request(server, "POST", CM, configmap("after"))[0]) == 503:
                assert time.monotonic() < deadline, "writes did not resume after space was freed"
                time.sleep(0.1)
            assert code == 201
            server.kubectl("create", "configmap", "after2", "--from-literal=c=d")
            assert server.proc is not None and server.proc.poll() is None, server.log()
        finally:
            server.stop()

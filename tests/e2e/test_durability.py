"""Restart and kill -9: no acknowledged write is lost; secrets are not in the store in clear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e


def test_restart_keeps_objects_and_kill9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    server = ShoalProcess(tmp_path / "data")
    server.start()
    try:
        server.kubectl("create", "namespace", "keep")
        for index in range(30):
            server.kubectl("-n", "keep", "create", "configmap", f"cm{index}", f"--from-literal=i={index}")
        server.kubectl("-n", "keep", "create", "secret", "generic", "s", "--from-literal=pw=hunter2-xyzzy")
        before = json.loads(server.kubectl("-n", "keep", "get", "cm", "-o", "json").stdout)
        server.kill9()  # no graceful shutdown: every acknowledged write must survive
        server.start()
        after = json.loads(server.kubectl("-n", "keep", "get", "cm", "-o", "json").stdout)
        assert [i["metadata"]["name"] for i in after["items"]] == [i["metadata"]["name"] for i in before["items"]]
        assert [i["metadata"]["resourceVersion"] for i in after["items"]] == [
            i["metadata"]["resourceVersion"] for i in before["items"]]
        secret = json.loads(server.kubectl("-n", "keep", "get", "secret", "s", "-o", "json").stdout)
        assert secret["data"]["pw"] == "aHVudGVyMi14eXp6eQ=="
        server.stop()
        server.start()  # a graceful restart too
        again = json.loads(server.kubectl("-n", "keep", "get", "cm", "-o", "json").stdout)
        assert len(again["items"]) == len(before["items"]) == 30
    finally:
        server.stop()
    stored = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    raw = b"".join(p.read_bytes() for p in stored)
    assert b"cm29" in raw, f"the store's files were not found among {stored}"
    assert b"hunter2-xyzzy" not in raw and b"aHVudGVyMi14eXp6eQ" not in raw


def test_secret_values_are_not_in_etcd_in_clear(tmp_path: Path) -> None:
    from tests.support.etcd import start_etcd

    with start_etcd(tmp_path) as etcd:
        server = ShoalProcess(tmp_path / "data", datastore=etcd.url)
        server.start()
        try:
            server.kubectl("create", "secret", "generic", "s", "--from-literal=pw=hunter2-plugh")
            got = json.loads(server.kubectl("get", "secret", "s", "-o", "json").stdout)
            assert got["data"]["pw"] == "aHVudGVyMi1wbHVnaA=="
            server.kill9()
            server.start()  # acknowledged writes on etcd survive a server crash as well
            server.kubectl("get", "secret", "s")
        finally:
            server.stop()
        etcd.stop()
        raw = b"".join(p.read_bytes() for p in etcd.data_dir.rglob("*") if p.is_file())
    assert b"/registry/secrets/default/s" in raw, "the etcd data files were not found"
    assert b"hunter2-plugh" not in raw and b"aHVudGVyMi1wbHVnaA" not in raw

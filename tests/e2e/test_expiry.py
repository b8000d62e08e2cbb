"""Compaction through the API: old watches and stale continue tokens get 410, as in Kubernetes."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.server import ShoalProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def compacting(tmp_path: Path) -> Iterator[ShoalProcess]:
    server = ShoalProcess(tmp_path / "data", disable="controllers,agent,scheduler,proxy,dns",
                          extra_args=("--compact-interval", "0.5"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_old_watch_and_continue_token_get_410(compacting: ShoalProcess) -> None:
    base = f"{compacting.url}/api/v1/namespaces/default/configmaps"
    headers = {"Authorization": f"Bearer {compacting.token}"}
    tls = ssl.create_default_context(cafile=str(compacting.ca_file))
    with httpx.Client(verify=tls, headers=headers, timeout=10) as client:
        for index in range(5):
            assert client.post(base, json={"metadata": {"name": f"c{index}"}}).status_code == 201
        first = client.get(base, params={"limit": 2}).json()
        old_rv = first["metadata"]["resourceVersion"]
        token = first["metadata"]["continue"]
        # a fresh watch from the list's version works and sees later writes
        with client.stream("GET", base, params={"watch": "true", "resourceVersion": old_rv,
                                                "timeoutSeconds": "5"}) as stream:
            client.post(base, json={"metadata": {"name": "later"}})
            event = orjson.loads(next(stream.iter_lines()))
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "later"
        deadline = time.monotonic() + 10
        while True:  # bounded: wait until the compactor has passed old_rv
            client.post(base, json={"metadata": {"generateName": "tick-"}})
            page = client.get(base, params={"limit": 2, "continue": token})
            if page.status_code == 410 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert page.status_code == 410
        status = page.json()
        assert status["reason"] == "Expired" and "continue" in status["message"]
        with client.stream("GET", base, params={"watch": "true", "resourceVersion": old_rv,
                                                "timeoutSeconds": "5"}) as stream:
            event = orjson.loads(next(stream.iter_lines()))
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        # a new list and watch from its version work again
        fresh = client.get(base).json()
        assert len(fresh["items"]) >= 6

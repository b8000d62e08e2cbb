"""Drain before kill, its pure parts: when a pod's endpoints count as drained."""

from __future__ import annotations

import time
from typing import Any

from shoal.agent.drain import pending_slices
from shoal.client.proxystatus import PROXY_LEASE_LABEL, PROXY_LEASE_LABEL_VALUE, SYNCED_REVISION, live_proxy_revisions
from shoal.kube.times import format_micro


def piece(rv: int, *endpoints: tuple[str, bool]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(rv)},
            "endpoints": [{"targetRef": {"uid": uid}, "conditions": {"ready": ready}} for uid, ready in endpoints]}


def test_a_pod_is_pending_while_some_slice_lists_it_ready() -> None:
    assert pending_slices([piece(7, ("a", True)), piece(9, ("b", True))], "a") == (True, 9)
    assert pending_slices([piece(12, ("a", False))], "a") == (False, 12)
    assert pending_slices([piece(15, ("b", True))], "a") == (False, 15)  # gone from the slice
    assert pending_slices([], "a") == (False, 0)


def lease(node: str, revision: str, renewed: float, duration: int = 30) -> dict[str, Any]:
    return {"metadata": {"name": f"shoal-proxy-{node}", "labels": {PROXY_LEASE_LABEL: PROXY_LEASE_LABEL_VALUE},
                         "annotations": {SYNCED_REVISION: revision}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": format_micro(renewed)}}


def test_only_live_proxies_are_waited_for() -> None:
    now = time.time()
    leases: list[dict[str, Any]] = [lease("n1", "40", now - 1), lease("n2", "12", now - 100), lease("n3", "bad", now),
              {"metadata": {"name": "n4"}, "spec": {}}]
    assert live_proxy_revisions(leases, now) == {"n1": 40}

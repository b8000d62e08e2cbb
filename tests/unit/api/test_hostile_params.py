"""Hostile numbers in queries and option bodies: each is a 4xx naming the parameter, or works.

Through the real API (in-process ApiServer on a real SQLite store, :mod:`tests.support.api_harness`):

* ``limit`` is an int64 as in Kubernetes: 2**63-1 lists everything (it was a 500 "datatype
  mismatch" showing the database file's path), 2**63 and non-integers are a 400 naming ``limit``,
  a negative limit is no limit;
* ``gracePeriodSeconds`` (query or DeleteOptions body, and ``terminationGracePeriodSeconds``)
  of any int64 size on a bound pod: the deletion is pending with ``deletionTimestamp`` at the
  latest RFC 3339 time (it was an OverflowError 500); beyond int64 it is a 400;
* ``timeoutSeconds`` ``nan``/``inf`` on a watch is a 400 (the watch never ended), and
  ``resourceVersion=abc`` on a list is Kubernetes' 400 "invalid resource version";
* the log options ``tailLines``, ``limitBytes``, ``sinceSeconds`` refuse what is not an int64.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness, ok, status_of

NS = "default"
CONFIGMAPS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
INT64_MAX = 2**63 - 1
LATEST = "9999-12-31T23:59:59Z"


def pod(name: str, node: str = "n1", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox:1"}], "nodeName": node, **spec}}


async def configmaps(harness: ApiHarness, count: int) -> None:
    for i in range(count):
        ok(await harness.http.post(CONFIGMAPS, json={"metadata": {"name": f"cm{i}"}, "data": {"k": "v"}}), 201)


def bad_request(response: httpx.Response, *words: str) -> str:
    """The message of a 400 BadRequest Status, checked to contain ``words`` and no server path."""
    message = str(status_of(response, 400, "BadRequest")["message"])
    for word in words:
        assert word in message, message
    assert "/tmp" not in message and "state.db" not in message, message
    return message


# -- limit ---------------------------------------------------------------------------------------


async def test_a_limit_as_large_as_int64_lists_everything(harness: ApiHarness) -> None:
    """Issue 8 item 4: ``limit=9223372036854775807`` was a 500 "datatype mismatch" with the db path."""
    await configmaps(harness, 3)
    for limit in (INT64_MAX, INT64_MAX - 1, 2**62, 10**12):
        response = await harness.http.get(CONFIGMAPS, params={"limit": str(limit)})
        listed = ok(response)
        assert [item["metadata"]["name"] for item in listed["items"]] == ["cm0", "cm1", "cm2"], limit
        assert "continue" not in listed["metadata"]
    # Kubernetes pages only when limit > 0: a negative limit lists everything too.
    assert len(ok(await harness.http.get(CONFIGMAPS, params={"limit": "-5"}))["items"]) == 3
    # A small limit still pages.
    first = ok(await harness.http.get(CONFIGMAPS, params={"limit": "2"}))
    assert len(first["items"]) == 2 and first["metadata"]["continue"]


@pytest.mark.parametrize("limit", [str(2**63), str(2**64 + 1), "-" + str(2**63 + 1), "abc", "1.5", "nan", "inf",
                                   "1e3", " 5", "1_000", "\u0665"])
async def test_a_limit_that_is_no_int64_is_a_bad_request(harness: ApiHarness, limit: str) -> None:
    """Issue 8 item 4: ``limit`` is parsed as Go's ParseInt(s, 10, 64) would, naming the parameter."""
    await configmaps(harness, 1)
    bad_request(await harness.http.get(CONFIGMAPS, params={"limit": limit}), "limit")


# -- grace periods -------------------------------------------------------------------------------


async def test_a_huge_grace_period_on_a_bound_pod_leaves_it_pending(harness: ApiHarness) -> None:
    """Issue 8 item 5: ``gracePeriodSeconds=10**18`` (query and body) was an OverflowError 500."""
    ok(await harness.http.post(PODS, json=pod("p1")), 201)
    pending = ok(await harness.http.delete(f"{PODS}/p1", params={"gracePeriodSeconds": str(10**18)}))
    meta = pending["metadata"]
    assert meta["deletionTimestamp"] == LATEST and meta["deletionGracePeriodSeconds"] == 10**18
    assert ok(await harness.http.get(f"{PODS}/p1"))["metadata"]["deletionTimestamp"] == LATEST

    ok(await harness.http.post(PODS, json=pod("p2", terminationGracePeriodSeconds=60)), 201)
    body = ok(await harness.http.request("DELETE", f"{PODS}/p2", json={"gracePeriodSeconds": 10**18}))
    assert body["metadata"]["deletionGracePeriodSeconds"] == 10**18  # the request's, as in Kubernetes
    assert body["metadata"]["deletionTimestamp"] == LATEST

    ok(await harness.http.post(PODS, json=pod("p3", terminationGracePeriodSeconds=INT64_MAX)), 201)
    longest = ok(await harness.http.delete(f"{PODS}/p3"))["metadata"]
    assert longest["deletionGracePeriodSeconds"] == INT64_MAX and longest["deletionTimestamp"] == LATEST
    # A shorter grace period still moves the deadline closer, and 0 removes the pod.
    closer = ok(await harness.http.request("DELETE", f"{PODS}/p3", json={"gracePeriodSeconds": 10**15}))
    assert closer["metadata"]["deletionGracePeriodSeconds"] == 10**15
    assert closer["metadata"]["deletionTimestamp"] == LATEST
    ok(await harness.http.delete(f"{PODS}/p3", params={"gracePeriodSeconds": "0"}))
    status_of(await harness.http.get(f"{PODS}/p3"), 404, "NotFound")


async def test_a_negative_grace_period_on_a_bound_pod_is_one_second(harness: ApiHarness) -> None:
    """Kubernetes' pod strategy (CheckGracefulDelete): a negative grace period becomes 1 s, so
    the agent still stops the pod; it was taken as 0, which removed the pod at once."""
    ok(await harness.http.post(PODS, json=pod("neg")), 201)
    pending = ok(await harness.http.delete(f"{PODS}/neg", params={"gracePeriodSeconds": "-5"}))
    assert pending["metadata"]["deletionGracePeriodSeconds"] == 1
    assert ok(await harness.http.get(f"{PODS}/neg"))["metadata"]["deletionGracePeriodSeconds"] == 1


@pytest.mark.parametrize("grace", [str(2**63), "1e18", "nan", "5s", ""])
async def test_a_grace_period_query_that_is_no_int64_is_a_bad_request(harness: ApiHarness, grace: str) -> None:
    """Issue 8 item 5: the query's ``gracePeriodSeconds`` is an int64 ("" is no value, as before)."""
    ok(await harness.http.post(PODS, json=pod("p1")), 201)
    response = await harness.http.delete(f"{PODS}/p1", params={"gracePeriodSeconds": grace})
    if grace == "":
        assert ok(response)["metadata"]["deletionGracePeriodSeconds"] == 30
        return
    bad_request(response, "gracePeriodSeconds")
    assert "deletionTimestamp" not in ok(await harness.http.get(f"{PODS}/p1"))["metadata"]


@pytest.mark.parametrize("grace", [2**63, -(2**63) - 1, 1.5, "30", True, [30], {"s": 30}])
async def test_a_grace_period_field_that_is_no_int64_is_a_bad_request(harness: ApiHarness, grace: Any) -> None:
    """Issue 8 item 5: ``DeleteOptions.gracePeriodSeconds`` in a body is an int64 too."""
    ok(await harness.http.post(PODS, json=pod("p1")), 201)
    response = await harness.http.request("DELETE", f"{PODS}/p1", json={"gracePeriodSeconds": grace})
    bad_request(response, "gracePeriodSeconds", "DeleteOptions")
    assert "deletionTimestamp" not in ok(await harness.http.get(f"{PODS}/p1"))["metadata"]


# -- watch and list options ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1.5", "abc", str(2**63)])
async def test_a_watch_timeout_that_is_no_int64_is_a_bad_request(harness: ApiHarness, seconds: str) -> None:
    """Issue 8 item 11: ``timeoutSeconds=nan`` or ``inf`` was taken and the watch never ended."""
    request = harness.http.get(CONFIGMAPS, params={"watch": "true", "timeoutSeconds": seconds})
    response = await asyncio.wait_for(request, 10)
    bad_request(response, "timeoutSeconds")
    # On a plain list too, as Kubernetes decodes the same ListOptions.
    bad_request(await harness.http.get(CONFIGMAPS, params={"timeoutSeconds": seconds}), "timeoutSeconds")


async def test_a_watch_with_a_negative_timeout_ends_at_once(harness: ApiHarness) -> None:
    """Issue 8 item 11 (guard, passes on main too): an int64 timeout is still taken (negative: at once)."""
    await configmaps(harness, 1)
    response = await asyncio.wait_for(
        harness.http.get(CONFIGMAPS, params={"watch": "true", "timeoutSeconds": "-1"}), 10)
    assert response.status_code == 200
    # The synthetic ADDED of the existing object, then the end: no waiting for changes.
    assert [line.count('"ADDED"') for line in response.text.splitlines() if line] == [1]


@pytest.mark.parametrize("rv", ["abc", "-1", "+5", "1.0", str(2**64), " 1"])
async def test_a_list_with_a_resource_version_that_is_no_number_is_a_bad_request(
        harness: ApiHarness, rv: str) -> None:
    """Issue 8 item 11: ``resourceVersion=abc`` on a list was a 200; Kubernetes answers 400."""
    await configmaps(harness, 1)
    message = bad_request(await harness.http.get(CONFIGMAPS, params={"resourceVersion": rv}),
                          "invalid resource version: resourceVersion: Invalid value: ")
    assert "strconv.ParseUint" in message
    bad_request(await harness.http.get(CONFIGMAPS, params={"resourceVersion": rv, "watch": "true"}),
                "invalid resource version")


async def test_a_list_with_a_numeric_resource_version_is_served(harness: ApiHarness) -> None:
    """Issue 8 item 11 (guard, passes on main too): the numbers Kubernetes takes still list."""
    await configmaps(harness, 2)
    rv = ok(await harness.http.get(CONFIGMAPS))["metadata"]["resourceVersion"]
    for value in ("0", "1", rv):
        assert len(ok(await harness.http.get(CONFIGMAPS, params={"resourceVersion": value}))["items"]) == 2


# -- log options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [("tailLines", str(2**63)), ("limitBytes", "1e9"),
                                             ("sinceSeconds", "nan"), ("tailLines", "1_0")])
async def test_log_options_that_are_no_int64_are_bad_requests(harness: ApiHarness, name: str, value: str) -> None:
    """Issue 8 item 4 (typed numbers on every query): ``pods/log`` options are int64 as well."""
    ok(await harness.http.post(PODS, json=pod("p1")), 201)
    bad_request(await harness.http.get(f"{PODS}/p1/log", params={name: value}), name)

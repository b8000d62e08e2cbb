"""Schemathesis hooks for the OpenAPI fuzz run of ``test_openapi_fuzz.py``.

The schemathesis CLI loads this module (``SCHEMATHESIS_HOOKS=tests.e2e.fuzz_hooks``); the test
passes the server in ``SHOAL_FUZZ_URL``, ``SHOAL_FUZZ_TOKEN`` and ``SHOAL_FUZZ_CA``.

Random names and namespaces only ever reach a 404, so the hooks steer the fuzzer at objects
that exist:

* every other case with path parameters names the fixtures instead (namespace
  :data:`NAMESPACE`, name :data:`NAME`, or :data:`NAMESPACE_ITEM` for the
  ``/api/v1/namespaces/{name}`` paths), and its body's ``metadata`` carries that name and
  namespace;
* after a successful DELETE the fixtures are created again (:func:`ensure_fixtures`), so a
  deletion early in the run does not turn every later case into a 404;
* a watch is bounded: the first :data:`WATCHES` watches get ``timeoutSeconds=1`` (so a
  streaming list ends instead of holding the run until the client's request timeout), later
  ones are sent as ``watch=false`` lists (each watch costs a second of the run's budget).

The hooks run in ``before_call``, so they see the cases of every phase (coverage and fuzzing)
in the order they are sent; with one worker and a fixed seed the run stays deterministic.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx
import schemathesis

Case = schemathesis.Case[Any]

NAMESPACE = "fuzz"
NAMESPACE_ITEM = "fuzz-ns"
NAME = "target"
#: Watches that really stream (each lasts its one-second timeout); later ones become lists.
WATCHES = 12

_META = {"name": NAME, "namespace": NAMESPACE, "labels": {"app": "fuzz"}}
_POD_SPEC = {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}
_TEMPLATE = {"metadata": {"labels": {"app": "fuzz"}}, "spec": _POD_SPEC}

#: (collection path, manifest): everything a fuzzed item path can name.
FIXTURES: list[tuple[str, dict[str, Any]]] = [
    ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}),
    ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE_ITEM}}),
    ("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NAME}}),
    (f"/api/v1/namespaces/{NAMESPACE}/configmaps",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _META, "data": {"a": "b"}}),
    (f"/api/v1/namespaces/{NAMESPACE}/secrets",
     {"apiVersion": "v1", "kind": "Secret", "metadata": _META, "data": {"a": "Yg=="}}),
    (f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _META}),
    (f"/api/v1/namespaces/{NAMESPACE}/services",
     {"apiVersion": "v1", "kind": "Service", "metadata": _META,
      "spec": {"selector": {"app": "fuzz"}, "ports": [{"port": 80}]}}),
    (f"/api/v1/namespaces/{NAMESPACE}/endpoints",
     {"apiVersion": "v1", "kind": "Endpoints", "metadata": {**_META, "name": "other"}}),
    (f"/api/v1/namespaces/{NAMESPACE}/events",
     {"apiVersion": "v1", "kind": "Event", "metadata": _META, "reason": "Fuzz", "message": "m",
      "involvedObject": {"kind": "Pod", "name": NAME, "namespace": NAMESPACE}}),
    (f"/api/v1/namespaces/{NAMESPACE}/pods",
     {"apiVersion": "v1", "kind": "Pod", "metadata": _META, "spec": _POD_SPEC}),
    (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments",
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _META,
      "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "fuzz"}}, "template": _TEMPLATE}}),
    (f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets",
     {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": _META,
      "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "fuzz"}}, "template": _TEMPLATE}}),
    (f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases",
     {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": _META,
      "spec": {"holderIdentity": "fuzz"}}),
    (f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
     {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": _META,
      "addressType": "IPv4", "endpoints": []}),
]


def _client() -> httpx.Client:
    return httpx.Client(base_url=os.environ["SHOAL_FUZZ_URL"],
                        verify=ssl.create_default_context(cafile=os.environ["SHOAL_FUZZ_CA"]),
                        headers={"Authorization": f"Bearer {os.environ['SHOAL_FUZZ_TOKEN']}"}, timeout=10)


def ensure_fixtures() -> None:
    """Create every fixture that is missing (a 409 means it is there, or still terminating)."""
    with _client() as client:
        for collection, manifest in FIXTURES:
            response = client.post(collection, json=manifest)
            if response.status_code >= 500:
                raise AssertionError(f"creating fixture {collection}: {response.status_code} {response.text}")


def _fixture_parameters(path: str, parameters: dict[str, Any]) -> dict[str, Any]:
    fixture = dict(parameters)
    if "namespace" in fixture:
        fixture["namespace"] = NAMESPACE
    if "name" in fixture:
        fixture["name"] = NAMESPACE_ITEM if path.startswith("/api/v1/namespaces/{name}") else NAME
    return fixture


_calls = 0
_watches = 0


def _steer(case: Case) -> None:
    """Every other case with path parameters names the fixtures, its body's metadata too."""
    global _calls
    if not case.path_parameters:
        return
    _calls += 1
    if _calls % 2:
        return
    case.path_parameters = _fixture_parameters(case.operation.path, case.path_parameters)
    metadata = case.body.get("metadata") if isinstance(case.body, dict) else None
    if isinstance(metadata, dict):
        if "name" in case.path_parameters:
            metadata["name"] = case.path_parameters["name"]
        if "namespace" in case.path_parameters and "namespace" in metadata:
            metadata["namespace"] = NAMESPACE


def _bound_watch(case: Case) -> None:
    global _watches
    query = case.query
    if not query or str(query.get("watch")).lower() not in ("true", "1"):
        return
    _watches += 1
    if _watches > WATCHES:
        query["watch"] = "false"
    else:
        query["timeoutSeconds"] = 1


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: Case, kwargs: dict[str, Any]) -> None:
    _steer(case)
    _bound_watch(case)


@schemathesis.hook
def after_call(context: schemathesis.HookContext, case: Case, response: Any) -> None:
    if case.method.upper() == "DELETE" and response.status_code < 300:
        ensure_fixtures()

"""RequestInfo: the verb and resource attributes Kubernetes derives from a request."""

from __future__ import annotations

import pytest

from shoal.api.requestinfo import RequestInfo, request_info


def info(method: str, path: str, query: bytes = b"", kind: str = "http") -> RequestInfo:
    scope = {"type": kind, "path": path, "query_string": query, "headers": []}
    if kind == "http":
        scope["method"] = method
    return request_info(scope)


R = True


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods/web", b"",
         RequestInfo("/api/v1/namespaces/default/pods/web", "get", R, "", "v1", "default", "pods", "", "web")),
        ("HEAD", "/api/v1/nodes/n1", b"", RequestInfo("/api/v1/nodes/n1", "get", R, "", "v1", "", "nodes", "", "n1")),
        ("GET", "/api/v1/namespaces/default/pods", b"limit=500",
         RequestInfo("/api/v1/namespaces/default/pods", "list", R, "", "v1", "default", "pods")),
        ("GET", "/api/v1/pods", b"watch=true&resourceVersion=5",
         RequestInfo("/api/v1/pods", "watch", R, "", "v1", "", "pods")),
        ("GET", "/api/v1/pods", b"watch=1&watch=false", RequestInfo("/api/v1/pods", "list", R, "", "v1", "", "pods")),
        ("GET", "/api/v1/pods", b"w%61tch=true", RequestInfo("/api/v1/pods", "watch", R, "", "v1", "", "pods")),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments", b"fieldSelector=metadata.name%3Dweb&watch=True",
         RequestInfo("/apis/apps/v1/namespaces/ns/deployments", "watch", R, "apps", "v1", "ns", "deployments", "",
                     "web")),
        ("GET", "/api/v1/pods", b"fieldSelector=metadata.name%3D%3Dp,status.phase%3DRunning",
         RequestInfo("/api/v1/pods", "list", R, "", "v1", "", "pods", "", "p")),
        ("GET", "/api/v1/pods", b"fieldSelector=metadata.name!%3Dp",
         RequestInfo("/api/v1/pods", "list", R, "", "v1", "", "pods")),
        ("POST", "/api/v1/namespaces/default/pods", b"fieldManager=kubectl",
         RequestInfo("/api/v1/namespaces/default/pods", "create", R, "", "v1", "default", "pods")),
        ("PUT", "/apis/apps/v1/namespaces/ns/deployments/web/scale", b"",
         RequestInfo("/apis/apps/v1/namespaces/ns/deployments/web/scale", "update", R, "apps", "v1", "ns",
                     "deployments", "scale", "web")),
        ("PATCH", "/api/v1/namespaces/default/pods/web/status", b"",
         RequestInfo("/api/v1/namespaces/default/pods/web/status", "patch", R, "", "v1", "default", "pods",
                     "status", "web")),
        ("DELETE", "/api/v1/namespaces/default/configmaps", b"",
         RequestInfo("/api/v1/namespaces/default/configmaps", "deletecollection", R, "", "v1", "default",
                     "configmaps")),
        ("DELETE", "/api/v1/namespaces/doomed", b"",
         RequestInfo("/api/v1/namespaces/doomed", "delete", R, "", "v1", "doomed", "namespaces", "", "doomed")),
        ("PUT", "/api/v1/namespaces/doomed/finalize", b"",
         RequestInfo("/api/v1/namespaces/doomed/finalize", "update", R, "", "v1", "doomed", "namespaces",
                     "finalize", "doomed")),
        ("GET", "/api/v1/namespaces", b"", RequestInfo("/api/v1/namespaces", "list", R, "", "v1", "", "namespaces")),
        ("POST", "/api/v1/namespaces/default/pods/web/binding", b"",
         RequestInfo("/api/v1/namespaces/default/pods/web/binding", "create", R, "", "v1", "default", "pods",
                     "binding", "web")),
        ("GET", "/api//v1//namespaces/default/pods//web", b"",
         RequestInfo("/api//v1//namespaces/default/pods//web", "get", R, "", "v1", "default", "pods", "", "web")),
        ("OPTIONS", "/api/v1/pods/x", b"", RequestInfo("/api/v1/pods/x", "", R, "", "v1", "", "pods", "", "x")),
        # non-resource requests: discovery, OpenAPI, health, metrics
        ("GET", "/api", b"", RequestInfo("/api", "get")),
        ("GET", "/api/", b"", RequestInfo("/api/", "get")),
        ("GET", "/api/v1", b"", RequestInfo("/api/v1", "get")),
        ("GET", "/apis/apps", b"", RequestInfo("/apis/apps", "get")),
        ("GET", "/apis/apps/v1", b"", RequestInfo("/apis/apps/v1", "get")),
        ("GET", "/openapi/v3/apis/apps/v1", b"hash=x", RequestInfo("/openapi/v3/apis/apps/v1", "get")),
        ("POST", "/metrics", b"", RequestInfo("/metrics", "post")),
        ("HEAD", "/livez", b"", RequestInfo("/livez", "head")),
    ],
)
def test_request_info(method: str, path: str, query: bytes, expected: RequestInfo) -> None:
    assert info(method, path, query) == expected


def test_a_websocket_upgrade_is_a_get() -> None:
    assert info("", "/api/v1/namespaces/default/pods/web/exec", b"command=sh", kind="websocket") == RequestInfo(
        "/api/v1/namespaces/default/pods/web/exec", "get", R, "", "v1", "default", "pods", "exec", "web")

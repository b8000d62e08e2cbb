"""Service environment variables (issue 9 item 5), as kubelet's getServiceEnvVarMap makes them."""

from __future__ import annotations

from typing import Any

from shoal.agent.envs import SourceCache, expand_command, resolve_env, service_env
from shoal.client import resources
from shoal.client.rest import ApiClient
from shoal.kube.objects import Obj
from tests.support.api_harness import ApiHarness


def svc(name: str, namespace: str, ip: str | None, ports: list[Obj], **spec: Any) -> Obj:
    body: Obj = {"ports": ports, **spec}
    if ip is not None:
        body["clusterIP"] = ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": body}


KUBERNETES = svc("kubernetes", "default", "10.43.0.1", [{"name": "https", "port": 443, "protocol": "TCP"}])
WEB = svc("my-web", "team", "10.43.1.2", [{"name": "http", "port": 80, "protocol": "TCP"},
                                          {"name": "dns-udp", "port": 53, "protocol": "UDP"}])
HEADLESS = svc("db", "team", "None", [{"name": "pg", "port": 5432}])
OTHER = svc("elsewhere", "other", "10.43.9.9", [{"port": 1}])


def test_docker_link_and_service_variables() -> None:
    env = service_env([KUBERNETES, WEB, HEADLESS, OTHER], "team")
    assert env == {
        "KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443",
        "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.43.0.1:443",
        "KUBERNETES_PORT_443_TCP": "tcp://10.43.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
        "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.43.0.1",
        "MY_WEB_SERVICE_HOST": "10.43.1.2", "MY_WEB_SERVICE_PORT": "80",
        "MY_WEB_SERVICE_PORT_HTTP": "80", "MY_WEB_SERVICE_PORT_DNS_UDP": "53",
        "MY_WEB_PORT": "tcp://10.43.1.2:80",
        "MY_WEB_PORT_80_TCP": "tcp://10.43.1.2:80", "MY_WEB_PORT_80_TCP_PROTO": "tcp",
        "MY_WEB_PORT_80_TCP_PORT": "80", "MY_WEB_PORT_80_TCP_ADDR": "10.43.1.2",
        "MY_WEB_PORT_53_UDP": "udp://10.43.1.2:53", "MY_WEB_PORT_53_UDP_PROTO": "udp",
        "MY_WEB_PORT_53_UDP_PORT": "53", "MY_WEB_PORT_53_UDP_ADDR": "10.43.1.2",
    }, "headless Services and other namespaces give nothing"


def test_enable_service_links_false_keeps_only_the_master_service() -> None:
    env = service_env([KUBERNETES, WEB], "team", enable_service_links=False)
    assert set(env) == {k for k in service_env([KUBERNETES], "team")}
    assert "MY_WEB_SERVICE_HOST" not in env


def test_a_namespace_kubernetes_service_replaces_the_master_one() -> None:
    own = svc("kubernetes", "team", "10.43.3.3", [{"port": 8080}])
    assert service_env([KUBERNETES, own], "team")["KUBERNETES_SERVICE_HOST"] == "10.43.3.3"
    assert service_env([own, KUBERNETES], "team")["KUBERNETES_SERVICE_HOST"] == "10.43.3.3"
    assert service_env([KUBERNETES, own], "team", enable_service_links=False)["KUBERNETES_SERVICE_HOST"] == \
        "10.43.0.1"


async def test_explicit_env_wins_and_expansion_sees_service_variables() -> None:
    pod: Obj = {"metadata": {"name": "p", "namespace": "team", "uid": "u"}, "spec": {}}
    container: Obj = {"name": "c", "command": ["wget", "http://$(MY_WEB_SERVICE_HOST):$(MY_WEB_SERVICE_PORT)/"],
                      "env": [{"name": "URL", "value": "http://$(MY_WEB_SERVICE_HOST)/x"},
                              {"name": "MY_WEB_SERVICE_PORT", "value": "8081"}]}
    sources = SourceCache(None, "team", objects=[KUBERNETES, WEB])
    env = await resolve_env(pod, container, sources, node_ip="10.0.0.1", pod_ip="10.42.0.2")
    assert env["URL"] == "http://10.43.1.2/x", "$(VAR) reaches the Service variables"
    assert env["MY_WEB_SERVICE_PORT"] == "8081", "explicit env wins"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert expand_command(container, env)[0] == ("wget", "http://10.43.1.2:8081/")
    pod["spec"]["enableServiceLinks"] = False
    env = await resolve_env(pod, container, SourceCache(None, "team", objects=[KUBERNETES, WEB]),
                            node_ip="10.0.0.1", pod_ip="10.42.0.2")
    assert env["URL"] == "http://$(MY_WEB_SERVICE_HOST)/x" and "KUBERNETES_PORT" in env


async def test_services_come_from_the_api(harness: ApiHarness, harness_client: ApiClient) -> None:
    """Through a real API: the namespace's Services plus default/kubernetes, listed once."""
    await harness.create_namespace("team")
    for obj in (KUBERNETES, WEB, OTHER):
        if obj["metadata"]["namespace"] == "other":
            await harness.create_namespace("other")
        await harness_client.create(resources.SERVICES, obj)
    pod: Obj = {"metadata": {"name": "p", "namespace": "team", "uid": "u"}, "spec": {}}
    sources = SourceCache(harness_client, "team")
    env = await resolve_env(pod, {"name": "c"}, sources, node_ip="", pod_ip="")
    assert env["MY_WEB_SERVICE_HOST"] == "10.43.1.2" and env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert "ELSEWHERE_SERVICE_HOST" not in env
    await harness_client.delete(resources.SERVICES, "my-web", "team")
    again = await resolve_env(pod, {"name": "c"}, sources, node_ip="", pod_ip="")
    assert again["MY_WEB_SERVICE_HOST"] == "10.43.1.2", "one list per SourceCache (per pod sync)"
    fresh = await resolve_env(pod, {"name": "c"}, SourceCache(harness_client, "team"), node_ip="", pod_ip="")
    assert "MY_WEB_SERVICE_HOST" not in fresh and fresh["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    no_links = {"metadata": pod["metadata"], "spec": {"enableServiceLinks": False}}
    master = await resolve_env(no_links, {"name": "c"}, SourceCache(harness_client, "default"), node_ip="", pod_ip="")
    assert master["KUBERNETES_SERVICE_PORT"] == "443"

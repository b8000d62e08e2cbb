"""The proxy's pure parts: what a Service becomes (model.py), how endpoints map onto server
slots and runtime commands (slots.py), and the configuration file (haproxy_cfg.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal.proxy.haproxy_cfg import render, render_service
from shoal.proxy.model import DRAIN, READY, Endpoint, UdpRule, service_model
from shoal.proxy.slots import SlotTable
from shoal.proxy.udp import render as render_udp

READY_C = {"ready": True, "serving": True, "terminating": False}
TERM_C = {"ready": False, "serving": True, "terminating": True}
GONE_C = {"ready": False, "serving": False, "terminating": True}


def svc(**spec: Any) -> dict[str, Any]:
    base = {"clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"], "type": "ClusterIP",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}
    return {"metadata": {"name": "web", "namespace": "ns"}, "spec": {**base, **spec}}


def eps(*endpoints: tuple[str, dict[str, bool], str], port: int = 8080, name: str = "http") -> dict[str, Any]:
    return {"addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": c, "nodeName": node} for ip, c, node in endpoints]}


def model(service: dict[str, Any], *slices: dict[str, Any]) -> Any:
    return service_model(service, slices, node_name="n1", node_addresses=["192.0.2.1", "127.0.0.1"])


def test_ready_terminating_and_gone_endpoints() -> None:
    m = model(svc(), eps(("10.42.0.1", READY_C, "n1"), ("10.42.0.2", TERM_C, "n2"), ("10.42.0.3", GONE_C, "n1")))
    (frontend,), (backend,) = m.frontends, m.backends
    assert frontend.binds == (("10.43.0.9", 80),) and frontend.mode == "http"
    assert backend.endpoints == (Endpoint("10.42.0.1", 8080, READY), Endpoint("10.42.0.2", 8080, DRAIN))


def test_terminating_serving_endpoints_take_requests_when_none_is_ready() -> None:
    m = model(svc(), eps(("10.42.0.2", TERM_C, "n2")))
    assert m.backends[0].endpoints == (Endpoint("10.42.0.2", 8080, READY),)


def test_nodeport_local_policy_uses_only_this_nodes_endpoints() -> None:
    ports = [{"name": "web", "port": 80, "protocol": "TCP", "nodePort": 30080}]
    m = model(svc(type="NodePort", externalTrafficPolicy="Local", ports=ports),
              eps(("10.42.0.1", READY_C, "n1"), ("10.42.1.1", READY_C, "n2"), name="web"))
    by_name = {b.name: b for b in m.backends}
    assert by_name["ns.web.web"].endpoints and len(by_name["ns.web.web"].endpoints) == 2
    assert [e.ip for e in by_name["ns.web.web.local"].endpoints] == ["10.42.0.1"]
    node_port = next(f for f in m.frontends if f.name.startswith("np."))
    assert node_port.binds == (("192.0.2.1", 30080), ("127.0.0.1", 30080)) and node_port.mode == "tcp"


def test_headless_externalname_dns_and_sctp_are_not_carried_udp_is_dnat() -> None:
    assert model(svc(clusterIP="None", clusterIPs=["None"])).frontends == ()
    assert model(svc(type="ExternalName", externalName="x.example")).frontends == ()
    dns = svc()
    dns["metadata"]["labels"] = {"shoal.dev/served-by": "node-dns"}
    assert model(dns).frontends == ()
    m = model(svc(ports=[{"name": "sig", "port": 9, "protocol": "SCTP"}]))
    assert m.frontends == () and "SCTP" in m.warnings[0]
    udp_ports = [{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}]
    udp_slice = eps(("10.42.0.1", READY_C, "n1"), ("10.42.0.2", TERM_C, "n1"), port=5353, name="dns")
    udp_slice["ports"][0]["protocol"] = "UDP"
    m = model(svc(type="NodePort", ports=udp_ports), udp_slice)
    assert m.frontends == () and m.backends == () and not m.warnings
    assert [(r.name, r.binds, r.endpoints) for r in m.udp] == [
        ("ci.ns.web.dns", (("10.43.0.9", 53),), (("10.42.0.1", 5353),)),
        ("np.ns.web.dns", (("192.0.2.1", 30053),), (("10.42.0.1", 5353),))], "no loopback NodePort for UDP"
    assert m.addresses == {"10.43.0.9"}
    text = render_udp("shoal_udp_x", m.udp)
    assert "ip daddr 10.43.0.9 udp dport 53 dnat ip to numgen random mod 1 map { 0 : 10.42.0.1 . 5353 }" in text
    assert text.startswith("table ip shoal_udp_x\nflush table ip shoal_udp_x\n")
    assert "dnat ip to" not in render_udp("t", [UdpRule("ci.a", (("10.43.0.2", 53),), ())])


def test_affinity_and_structure() -> None:
    m = model(svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    assert m.backends[0].affinity_seconds == 60
    assert model(svc(), eps(("10.42.0.1", READY_C, "n1"))).structure == model(svc()).structure


def test_slots_keep_their_endpoint_and_emit_runtime_commands() -> None:
    table = SlotTable("be", [Endpoint("10.0.0.1", 80)])
    assert table.capacity == 4
    commands = table.update([Endpoint("10.0.0.1", 80, DRAIN), Endpoint("10.0.0.2", 80)])
    assert commands == ["set server be/s1 state drain", "set server be/s2 addr 10.0.0.2 port 80",
                        "set server be/s2 weight 1; set server be/s2 state ready"]
    assert table.update([Endpoint("10.0.0.2", 80)]) == ["set server be/s1 state maint"]
    assert [s.name for s in table.servers() if s.state == "ready"] == ["s2"]
    many = [Endpoint(f"10.0.1.{i}", 80) for i in range(5)]
    commands = table.update(many)
    assert any(c.startswith("add server be/s5 ") for c in commands) and "enable server be/s5" in commands
    assert table.endpoints == tuple(sorted(many)) and table.capacity == 5


def test_config_is_the_whole_truth() -> None:
    m = model(svc(), eps(("10.42.0.1", READY_C, "n1"), ("10.42.0.2", TERM_C, "n1")))
    slots = {b.name: SlotTable(b.name, b.endpoints) for b in m.backends}
    text = render(Path("/run/admin.sock"), Path("/run/alive.sock"), [render_service(m.frontends, m.backends, slots)])
    assert "stats socket /run/admin.sock mode 600 level admin expose-fd listeners" in text
    assert "bind 10.43.0.9:80" in text and "retry-on conn-failure empty-response" in text
    assert "server s1 10.42.0.1:8080 check" in text
    assert "server s2 10.42.0.2:8080 check" in text and "weight 0" in text
    assert text.count(" disabled") == 2

"""Pods' /etc/resolv.conf for each dnsPolicy, merged with dnsConfig as the kubelet does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shoal.agent.resolvconf import PodDns, Resolver, parse_resolv_conf, pod_resolv_conf
from shoal.kube.objects import Obj

HOST = parse_resolv_conf("# the node's\nnameserver 192.0.2.53\nnameserver 192.0.2.54\n"
                         "search corp.example lab.example.\noptions edns0 timeout:2\n")


def pod(namespace: str = "team", **spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": namespace, "uid": "uid-1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def conf(p: Obj, cluster_dns: tuple[str, ...] = ("10.43.0.10",)) -> str:
    return pod_resolv_conf(p, cluster_dns=cluster_dns, cluster_domain="cluster.local", host=HOST).render()


CLUSTER = ("nameserver 10.43.0.10\n"
           "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
           "options ndots:5\n")
NODE = "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions edns0 timeout:2\n"


def test_parse_host() -> None:
    expected = Resolver(("192.0.2.53", "192.0.2.54"), ("corp.example", "lab.example"), ("edns0", "timeout:2"))
    assert expected == HOST


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, CLUSTER),
    ({"dnsPolicy": "ClusterFirst"}, CLUSTER),
    ({"dnsPolicy": "ClusterFirst", "hostNetwork": True}, NODE),
    ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True}, CLUSTER),
    ({"dnsPolicy": "ClusterFirstWithHostNet"}, CLUSTER),
    ({"dnsPolicy": "Default"}, NODE),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                         "options": [{"name": "ndots", "value": "2"}]}},
     "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2\n"),
    ({"dnsPolicy": "None"}, ""),
])
def test_policies(spec: Obj, expected: str) -> None:
    assert conf(pod(**spec)) == expected


def test_dns_config_is_merged() -> None:
    config: Obj = {"nameservers": ["10.43.0.10", "192.0.2.99"], "searches": ["extra.example", "svc.cluster.local"],
                   "options": [{"name": "ndots", "value": "2"}, {"name": "single-request-reopen"}]}
    assert conf(pod(dnsConfig=config)) == (
        "nameserver 10.43.0.10\nnameserver 192.0.2.99\n"
        "search team.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example extra.example\n"
        "options ndots:2 single-request-reopen\n")
    default = conf(pod(dnsPolicy="Default", dnsConfig={"options": [{"name": "timeout", "value": "5"}],
                                                        "nameservers": ["a", "b"]}))
    assert default.splitlines()[:3] == ["nameserver 192.0.2.53", "nameserver 192.0.2.54", "nameserver a"], \
        "at most 3 nameservers"
    assert default.endswith("options edns0 timeout:5\n")


def test_no_cluster_dns_falls_back_to_the_node() -> None:
    assert conf(pod(), cluster_dns=()) == NODE


def test_pod_dns_writes_the_file_and_mounts_it(tmp_path: Path) -> None:
    node = tmp_path / "node-resolv.conf"
    node.write_text("nameserver 192.0.2.1\n")
    dns = PodDns(tmp_path / "pods", cluster_dns=("10.43.0.10",), cluster_domain="cluster.local",
                 node_resolv_conf=node)
    mount = dns.mount(pod("web"), {"name": "c"})
    assert mount is not None and mount.container_path == "/etc/resolv.conf" and mount.read_only
    assert Path(mount.host_path) == tmp_path / "pods" / "uid-1" / "resolv.conf"
    assert Path(mount.host_path).read_text() == (
        "nameserver 10.43.0.10\nsearch web.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n")
    inode = Path(mount.host_path).stat().st_ino
    dns.mount(pod("web"), {"name": "d"})
    assert Path(mount.host_path).stat().st_ino == inode, "unchanged content is not rewritten"
    own = {"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/etc/resolv.conf"}]}
    assert dns.mount(pod("web"), own) is None, "a container's own mount wins"
    missing = PodDns(tmp_path / "pods2", cluster_dns=(), cluster_domain="cluster.local",
                     node_resolv_conf=tmp_path / "absent")
    assert missing.content(pod()) == ""

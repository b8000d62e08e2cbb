"""The ``kube-system/kube-dns`` Service: the address every node's cluster DNS serves.

Kept apart from :mod:`shoal.proxy.dns` (and free of its imports) so that ``shoal server`` can
create the Service at start without loading the DNS server.
"""

from __future__ import annotations

from shoal.kube.objects import Obj

__all__ = ["CLUSTER_DNS_IP", "SERVED_BY_LABEL", "kube_dns_service"]

CLUSTER_DNS_IP = "10.43.0.10"
SERVED_BY_LABEL = "shoal.dev/served-by"


def kube_dns_service() -> Obj:
    """The ``kube-system/kube-dns`` Service every cluster has (served by each node's DNS)."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                SERVED_BY_LABEL: "node-dns"}},
        "spec": {"type": "ClusterIP", "clusterIP": CLUSTER_DNS_IP, "clusterIPs": [CLUSTER_DNS_IP],
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    }

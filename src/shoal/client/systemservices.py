"""The ``kube-system/kube-dns`` Service: the address every node's cluster DNS serves.

Shared by the three that need it, each on its own floor: ``shoal server`` creates it at start,
the ``kubernetes-service`` controller creates it again whenever it is deleted
(:mod:`shoal.controllers.kubernetes_service`), and the node's DNS (:mod:`shoal.proxy.dns`)
listens on its ClusterIP; the service proxy skips it (label :data:`SERVED_BY_LABEL`).
"""

from __future__ import annotations

from shoal.kube.objects import Obj

__all__ = ["CLUSTER_DNS_IP", "KUBE_DNS_KEY", "SERVED_BY_LABEL", "kube_dns_service"]

CLUSTER_DNS_IP = "10.43.0.10"
SERVED_BY_LABEL = "shoal.dev/served-by"
KUBE_DNS_KEY = "kube-system/kube-dns"


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

"""The Services every cluster has: ``default/kubernetes`` (how pods reach the API) and
``kube-system/kube-dns`` (the address every node's cluster DNS serves).

Shared by those that need them, each on its own floor: ``shoal server`` creates both at start,
the ``kubernetes-service`` controller keeps them (:mod:`shoal.controllers.kubernetes_service`),
and the node's DNS (:mod:`shoal.proxy.dns`) listens on kube-dns's ClusterIP; the service proxy
skips that one (label :data:`SERVED_BY_LABEL`).
"""

from __future__ import annotations

from shoal.kube.objects import Obj

__all__ = ["CLUSTER_DNS_IP", "KUBERNETES_IP", "KUBERNETES_LABELS", "KUBE_DNS_KEY", "SERVED_BY_LABEL",
           "kube_dns_service", "kubernetes_service"]

CLUSTER_DNS_IP = "10.43.0.10"
SERVED_BY_LABEL = "shoal.dev/served-by"
KUBE_DNS_KEY = "kube-system/kube-dns"
#: The service CIDR's first address, which the API's allocator reserves for ``kubernetes``.
KUBERNETES_IP = "10.43.0.1"
KUBERNETES_LABELS = {"component": "apiserver", "provider": "kubernetes"}


def kubernetes_service(api_port: int, cluster_ip: str = KUBERNETES_IP) -> Obj:
    """``default/kubernetes``: port ``https`` 443/TCP to the API server's ``api_port``, no
    selector (its endpoints are the API servers, kept by the ``kubernetes-service`` controller)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": dict(KUBERNETES_LABELS)},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
                     "sessionAffinity": "None"}}


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

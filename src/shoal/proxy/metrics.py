"""The service proxy's Prometheus metrics: per Service port and per endpoint, from HAProxy.

:class:`ProxyCollector` is a prometheus-client collector.  On each scrape it reads HAProxy's
``show stat`` (CSV) over the runtime API and maps each backend back to its Service port
(``ns.name.port[.local]``) and each server slot back to its endpoint and pod, so later work -
canaries, autoscaling, the dashboard - reads request and error rates per Service and per pod
(and so per ReplicaSet: a pod's name is its ReplicaSet's plus a suffix).

Metrics (labels ``namespace``, ``service``, ``port``; endpoint metrics add ``endpoint``
``ip:port`` and ``pod``):

* ``shoal_proxy_requests_total`` - HTTP requests (layer-7 ports) or connections (TCP ports);
* ``shoal_proxy_responses_total{code="2xx"|…}`` - HTTP responses by class (layer-7 only);
* ``shoal_proxy_connection_errors_total``, ``shoal_proxy_retries_total``,
  ``shoal_proxy_redispatches_total``;
* ``shoal_proxy_response_seconds`` - HAProxy's average response time of the last 1024
  requests (a gauge);
* ``shoal_proxy_endpoint_requests_total``, ``shoal_proxy_endpoint_up`` (health check state);
* ``shoal_proxy_reloads_total``, ``shoal_proxy_runtime_updates_total``, and the histogram
  ``shoal_proxy_sync_seconds`` (an EndpointSlice change seen → applied in HAProxy).

Counters restart at 0 when HAProxy reloads (a new worker), which Prometheus' ``rate`` treats as
a counter reset.  :func:`parse_stat` is pure; the tests call it on HAProxy's real output.
"""

from __future__ import annotations

import csv
import io
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["SYNC_BUCKETS", "ProxyCollector", "parse_stat", "read_stat"]

SYNC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SERVICE = ("namespace", "service", "port")
_ENDPOINT = (*_SERVICE, "endpoint", "pod")


def parse_stat(text: str) -> list[dict[str, str]]:
    """``show stat`` CSV (its header starts with ``# ``) as one dict per line."""
    lines = text.lstrip("# ").splitlines()
    return [row for row in csv.DictReader(io.StringIO("\n".join(lines))) if row.get("pxname")]


def read_stat(admin_socket: Path, timeout: float = 2.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(admin_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def _service_labels(backend: str) -> tuple[str, str, str] | None:
    parts = backend.split(".")
    if len(parts) < 3:
        return None
    return parts[0], parts[1], parts[2]


def _int(row: Mapping[str, str], key: str) -> float:
    try:
        return float(row.get(key) or 0)
    except ValueError:
        return 0.0


class ProxyCollector(Collector):
    """``servers(backend)`` names each slot's endpoint (``{"s1": ("10.42.0.5:8080", "web-x")}``)."""

    def __init__(self, admin_socket: Path, servers: Callable[[str], Mapping[str, tuple[str, str]]],
                 counts: Callable[[], tuple[int, int]], registry: CollectorRegistry) -> None:
        self.admin_socket = admin_socket
        self.servers = servers
        self.counts = counts
        self.sync_seconds = Histogram("shoal_proxy_sync_seconds", "EndpointSlice change seen to applied in HAProxy",
                                      buckets=SYNC_BUCKETS, registry=registry)
        registry.register(self)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("shoal_proxy_requests", "HTTP requests or TCP connections", labels=_SERVICE)
        responses = CounterMetricFamily("shoal_proxy_responses", "HTTP responses by class",
                                        labels=(*_SERVICE, "code"))
        errors = CounterMetricFamily("shoal_proxy_connection_errors", "Failed connections to endpoints",
                                     labels=_SERVICE)
        retries = CounterMetricFamily("shoal_proxy_retries", "Retried connections or requests", labels=_SERVICE)
        redispatches = CounterMetricFamily("shoal_proxy_redispatches", "Requests moved to another endpoint",
                                           labels=_SERVICE)
        latency = GaugeMetricFamily("shoal_proxy_response_seconds", "Average response time, last 1024 requests",
                                    labels=_SERVICE)
        ep_requests = CounterMetricFamily("shoal_proxy_endpoint_requests", "Requests or connections per endpoint",
                                          labels=_ENDPOINT)
        ep_up = GaugeMetricFamily("shoal_proxy_endpoint_up", "1 while the endpoint passes health checks",
                                  labels=_ENDPOINT)
        try:
            rows = parse_stat(read_stat(self.admin_socket))
        except OSError:
            rows = []  # HAProxy is (re)starting: no per-Service figures in this scrape
        for row in rows:
            labels = _service_labels(row["pxname"])
            if labels is None:
                continue
            kind = row.get("svname")
            http = row.get("mode") == "http" or bool(row.get("req_tot"))
            if kind == "BACKEND":
                requests.add_metric(labels, _int(row, "req_tot") if http else _int(row, "stot"))
                if http:
                    for code in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"):
                        responses.add_metric((*labels, code), _int(row, f"hrsp_{code}"))
                errors.add_metric(labels, _int(row, "econ"))
                retries.add_metric(labels, _int(row, "wretr"))
                redispatches.add_metric(labels, _int(row, "wredis"))
                latency.add_metric(labels, _int(row, "rtime") / 1000)
            elif kind != "FRONTEND":
                endpoint = self.servers(row["pxname"]).get(str(kind))
                if endpoint is None:
                    continue
                ep_labels = (*labels, *endpoint)
                ep_requests.add_metric(ep_labels, _int(row, "req_tot") if http else _int(row, "stot"))
                status = str(row.get("status", ""))
                ep_up.add_metric(ep_labels, 1.0 if status.startswith(("UP", "DRAIN", "NOLB")) else 0.0)
        reloads, updates = self.counts()
        yield requests
        yield responses
        yield errors
        yield retries
        yield redispatches
        yield latency
        yield ep_requests
        yield ep_up
        yield CounterMetricFamily("shoal_proxy_reloads", "HAProxy reloads", value=reloads)
        yield CounterMetricFamily("shoal_proxy_runtime_updates", "Endpoint changes applied by the runtime API",
                                  value=updates)

"""The printers' helpers (labels and selectors as kubectl prints them) and Kubernetes' name rules."""

from __future__ import annotations

from datetime import UTC, datetime

from shoal.kube import selectors
from shoal.resources import naming, printing

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_format_labels_and_selectors() -> None:
    assert printing.format_labels({}) == "<none>"
    assert printing.format_labels({"tier": "web", "app": "x"}) == "app=x,tier=web"
    selector = {
        "matchLabels": {"z": "1"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "arm", "operator": "DoesNotExist"},
            {"key": "b", "operator": "NotIn", "values": ["x"]},
        ],
    }
    assert selectors.selector_to_string(selector) == "!arm,b notin (x),env in (dev,prod),gpu,z=1"
    assert selectors.format_label_selector(None) == "<none>"
    assert selectors.format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bad"}]}) == "<error>"
    assert printing.container_cells([{"name": "a", "image": "x:1"}, {"name": "b", "image": "y"}]) == (
        "a,b",
        "x:1,y",
    )
    assert printing.list_with_more(["a", "b", "c", "d", "e"]) == "a,b,c + 2 more..."
    assert printing.list_with_more([]) == "<unset>"


def test_name_rules_use_kubernetes_messages() -> None:
    assert naming.dns1123_subdomain_errors("web.example") == []
    assert naming.dns1123_subdomain_errors("Web_1") == [
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
        "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]
    assert naming.dns1123_label_errors("a.b") == [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
        "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]
    assert naming.dns1123_label_errors("a" * 64)[0] == "must be no more than 63 characters"
    assert naming.dns1035_label_errors("web") == []
    assert naming.dns1035_label_errors("1web")[0].startswith("a DNS-1035 label must consist")
    assert naming.qualified_name_errors("example.com/name") == []
    assert naming.qualified_name_errors("/x") == ["prefix part must be non-empty"]
    assert naming.qualified_name_errors("a/b/c")[0].startswith("a qualified name must consist")
    assert naming.label_value_errors("") == []
    assert naming.label_value_errors("-bad")[0].startswith("a valid label must be an empty string")
    assert naming.port_name_errors("http") == []
    assert naming.port_name_errors("8080") == ["must contain at least one letter (a-z)"]
    assert naming.port_name_errors("a--b") == ["must not contain consecutive hyphens"]
    assert naming.config_key_errors("..x") == ["must not start with '..'"]
    assert naming.config_key_errors("a b")[0].startswith("a valid config key must consist")
    assert naming.ip_errors("10.0.0.1") == [] and naming.ip_errors("10.0.0.300") != []
    assert naming.cidr_errors("10.42.0.0/24") == [] and naming.cidr_errors("x") != []

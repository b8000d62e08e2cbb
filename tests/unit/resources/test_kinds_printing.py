"""Shared helpers: Kubernetes' HumanDuration, label/selector formatting, name rules, quantities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from shoal.kube import quantity, selectors, times
from shoal.resources import naming, printing

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-5), "<invalid>"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1), "0s"),
        (timedelta(milliseconds=-1500), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119, milliseconds=999), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=3, seconds=20), "3m20s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=5, minutes=30), "5h30m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=48), "2d"),
        (timedelta(days=3, hours=4), "3d4h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=400), "400d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=800), "2y70d"),
        (timedelta(days=3000), "8y"),
    ],
)
def test_age_follows_kubernetes_human_duration(delta: timedelta, expected: str) -> None:
    created = (NOW - delta).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert times.age(created, NOW) == expected


def test_age_of_missing_or_bad_timestamp_is_unknown() -> None:
    assert times.age(None, NOW) == "<unknown>"
    assert times.age("", NOW) == "<unknown>"
    assert times.age("yesterday", NOW) == "<unknown>"


def test_age_accepts_naive_now_and_offsets() -> None:
    assert times.age("2025-06-01T13:00:00+02:00", NOW.replace(tzinfo=None)) == "60m"


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


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("2Gi", Fraction(2 * 2**30)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1k", Fraction(1000)),
        ("1e3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        ("100n", Fraction(1, 10**7)),
        (".5", Fraction(1, 2)),
        (3, Fraction(3)),
    ],
)
def test_parse_quantity(text: str | int, value: Fraction) -> None:
    assert quantity.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1GB", "1.2.3", "--1", True])
def test_parse_quantity_rejects_garbage(text: object) -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        quantity.parse_quantity(text)
